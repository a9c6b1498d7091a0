// A small micro-benchmark harness for a shared, noisy 2-core machine: every case is calibrated to
// a batch of about `batchMs`, warmed up, then measured in `rounds` rounds that interleave all
// cases (so a noisy moment hits every case, not just one). Each batch is timed twice: process
// CPU time (getrusage; time spent preempted by other jobs is not counted, GC threads are) and
// wall time. Reported: the median CPU ns/op (the figure ratios use) and the best wall ns/op.
// Compare only as ratios within one run.

let sink = 0;
/** Consume a result so the optimiser cannot drop the work. */
export function consume(v) {
  if (v !== undefined && v !== null) sink = (sink + 1) | 0;
}

/** Process CPU ns (getrusage: microsecond resolution here; includes V8's helper threads). */
function cpuNs() {
  const c = process.cpuUsage();
  return (c.user + c.system) * 1000;
}
export const CPU_CLOCK = 'process.cpuUsage';

function timeBatch(fn, n) {
  const c0 = cpuNs();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) consume(fn());
  const wall = Number(process.hrtime.bigint() - t0) / n;
  return { wall, cpu: (cpuNs() - c0) / n };
}

function calibrate(fn, batchMs) {
  let n = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) consume(fn());
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= batchMs / 4 || n >= 1 << 24)
      return Math.max(1, Math.round((n * batchMs) / Math.max(ms, 1e-3)));
    n *= 4;
  }
}

/** Median of a list of numbers (mean of the middle two for an even count). */
export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * @param {Array<{ name: string, group?: string, fn: () => unknown }>} cases
 * @returns {Array<{ name, group, nsPerOp, nsWallBest, opsPerSec }>} nsPerOp = median CPU ns/op
 */
export function run(cases, { rounds = 15, batchMs = 20, warmupMs = 150, log = () => {} } = {}) {
  const plans = cases.map((c) => {
    const t0 = Date.now();
    while (Date.now() - t0 < warmupMs) consume(c.fn());
    return { ...c, n: calibrate(c.fn, batchMs), samples: [] };
  });
  for (let r = 0; r < rounds; r++) {
    // Rotate the order each round so no case always runs right after the same neighbour.
    for (let k = 0; k < plans.length; k++) {
      const p = plans[(k + r) % plans.length];
      p.samples.push(timeBatch(p.fn, p.n));
    }
    log(`round ${r + 1}/${rounds}`);
  }
  return plans.map((p) => {
    const cpu = median(p.samples.map((x) => x.cpu));
    return {
      name: p.name,
      group: p.group,
      nsPerOp: cpu,
      nsWallBest: Math.min(...p.samples.map((x) => x.wall)),
      opsPerSec: 1e9 / cpu,
    };
  });
}

export function fmtInt(n) {
  return Math.round(n).toLocaleString('en-US');
}

export function fmtNs(ns) {
  return ns >= 100 ? fmtInt(ns) : ns.toFixed(1);
}

/** Renders rows (arrays of cells) as a GitHub markdown table; `align` per column 'l' | 'r'. */
export function markdownTable(header, rows, align = []) {
  const sep = header.map((_, i) => (align[i] === 'r' ? '---:' : '---'));
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n');
}
