#!/usr/bin/env node
// Issue 10: what the operator endpoints cost per request. `uwsgi-ts run` with `workers: 2`
// behind one private nginx (1 worker process, `uwsgi_pass` on a unix socket per backend),
// `wrk -t1 -c32`, the 13-byte hello of bench/backends/hello-app.mjs, `transport: fast`, access
// log off, JSON logs to a file per backend. Two backends, both started at once:
//
// - `off`: no `stats:` / `metrics:` keys (the workers still keep their counters: they always do);
// - `on`:  `stats:` on a unix socket (uWSGI's raw protocol) and `metrics: 127.0.0.1:PORT`; the
//   master then also samples the listen queues every second (`ss`). During each `on` wrk window
//   a scraper in this process reads the stats socket once per second and GETs /metrics once per
//   second, half a second apart (Prometheus plus `uwsgi-ts top`); its own CPU is not counted.
//
// Measured per wrk run, from /proc/<pid>/stat around it: backend CPU µs per request summed over
// the master and its 2 workers (utime+stime; split into the master and the workers), the CPU of
// the master's reaped children (cutime+cstime: the `ss` processes it spawns; reported beside,
// and in a second total), nginx's CPU, req/s and p99. The backend not under load is read too:
// each master's CPU at rest (the `on` one still samples the queues). Rounds interleave the two
// cases (order alternating); reported are the medians and the ratio on/off of the medians and
// the median of the per-round ratios. When either ratio is over 1.03 (`--profile auto`; `on`:
// always), both cases run once more under `node --cpu-prof` (250 µs sampling; the master passes
// its execArgv to its workers) and the master's and the workers' main-thread samples in the
// measured window are compared per area and per function, scaled to their procfs CPU.
//
//   npx tsc -b && node bench/operator-bench.mjs [--duration 10] [--rounds 5] [--quick]
//       [--profile auto|on|off] [--scrape-every 1] [--cli PATH] [--json FILE] [--keep]
//
// About 2 min with the defaults (2 min 30 s when it profiles). Every process it starts (nginx,
// the two masters and their workers, wrk) is stopped by its pid at the end, also on Ctrl-C; the
// sockets, configs, logs and profiles live in one mkdtemp dir that is removed (`--keep` keeps it).
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { addInto, profileSelfTime, profilesOf } from './lib/cpuprofile.mjs';
import { markdownTable, median } from './lib/harness.mjs';
import { startNginxForBackends, UWSGI_PARAMS } from './lib/nginx.mjs';
import {
  CLK_TCK,
  cpuTicks,
  freePort,
  logRecords,
  poll,
  processTree,
  rawHttpGet,
  spawnTracked,
  stop,
  stopAll,
  stopAllOnSignals,
} from './lib/proc.mjs';
import {
  commandOutput,
  hostInfo,
  nginxVersion,
  OWN_CLI,
  parseBenchArgs,
  resolveCli,
  wrkVersion,
} from './lib/run.mjs';
import { processAndMainThreadTicks } from './lib/threads.mjs';
import { runWrk, writeWrkScript } from './lib/wrk.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HELLO_APP = path.join(HERE, 'backends/hello-app.mjs');

const {
  args,
  duration: DURATION,
  rounds: ROUNDS,
} = parseBenchArgs({
  rounds: { type: 'string', default: '5' },
  cli: { type: 'string' },
  profile: { type: 'string', default: 'auto' },
  'scrape-every': { type: 'string', default: '1' },
});
if (!['auto', 'on', 'off'].includes(args.profile)) throw new Error('--profile auto|on|off');
// Longer than the other benches' 2 s: both backends' workers fully optimised before round 1.
const WARMUP = args.quick ? 1 : 5;
const CLI = resolveCli(args.cli, '--cli') ?? OWN_CLI;
const WORKERS = 2;
const CONNECTIONS = 32;
const SCRAPE_MS = Number(args['scrape-every']) * 1000;
const THRESHOLD = 1.03;
const PROFILE_INTERVAL_US = 250;

const f1 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));
const f2 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(2));
const f3 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(3));
const fInt = (x) => Math.round(x).toLocaleString('en-US');
const nowMs = () => performance.now();
const hrUs = () => Number(process.hrtime.bigint() / 1000n);

// ---------------------------------------------------------------------------------------------
// Backends

/** `uwsgi-ts run` with `workers: 2`; `on`: with a stats socket and a metrics port. */
async function startBackend(dir, name, { on, metricsPort, nodeArgs = [], logSuffix = '' }) {
  const sock = path.join(dir, `${name}.sock`);
  const statsSock = path.join(dir, `${name}-stats.sock`);
  const config = path.join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'listeners:',
      '  - protocol: uwsgi',
      `    address: ${sock}`,
      'mounts:',
      '  - path: /',
      `    app: ${HELLO_APP}`,
      'log: { access: false, format: json, level: info }',
      'transport: fast',
      `workers: ${WORKERS}`,
      ...(on ? [`stats: ${statsSock}`, `metrics: 127.0.0.1:${metricsPort}`] : []),
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, `${name}${logSuffix}.log`);
  const fd = openSync(logFile, 'w');
  const rec = spawnTracked(process.execPath, [...nodeArgs, CLI, 'run', config], {
    name,
    cwd: dir,
    stdio: ['ignore', fd, 'pipe'],
  });
  closeSync(fd);
  const ready = await poll(
    () => {
      if (rec.exited) throw new Error(`${name} exited: ${rec.stderr}`);
      return logRecords(logFile).find((r) => r.msg === 'ready');
    },
    { what: `${name} ready`, tries: 600 },
  );
  if (ready.transport !== undefined && ready.transport !== 'fast') {
    throw new Error(`${name} runs transport ${ready.transport}`);
  }
  if (!Array.isArray(ready.workers) || ready.workers.length !== WORKERS) {
    throw new Error(`${name}: ready record without ${WORKERS} workers: ${JSON.stringify(ready)}`);
  }
  if (on && (ready.stats === undefined || ready.metrics === undefined)) {
    throw new Error(`${name}: ready record without stats/metrics: ${JSON.stringify(ready)}`);
  }
  return {
    name,
    on,
    rec,
    pid: rec.child.pid,
    workers: ready.workers,
    sock,
    statsSock: on ? statsSock : undefined,
    metricsPort: on ? metricsPort : undefined,
    logFile,
  };
}

// ---------------------------------------------------------------------------------------------
// CPU from procfs

/** utime+stime and cutime+cstime (reaped children) of one process, in clock ticks. */
function selfAndReaped(pid) {
  const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // comm (field 2) may contain spaces and parentheses: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3: utime 14, stime 15, cutime 16, cstime 17.
  return {
    user: Number(rest[11]),
    sys: Number(rest[12]),
    self: Number(rest[11]) + Number(rest[12]),
    reaped: Number(rest[13]) + Number(rest[14]),
  };
}

function snapshot(b) {
  const master = selfAndReaped(b.pid);
  const masterThreads = processAndMainThreadTicks(b.pid);
  const workers = b.workers.map((pid) => {
    const t = processAndMainThreadTicks(pid);
    if (t === undefined) throw new Error(`${b.name}: worker ${pid} is gone`);
    return t;
  });
  return {
    at: nowMs(),
    master: master.self,
    masterUser: master.user,
    masterSys: master.sys,
    masterMain: masterThreads.main,
    reaped: master.reaped,
    workers: workers.reduce((a, t) => a + t.process, 0),
    workersMain: workers.reduce((a, t) => a + t.main, 0),
  };
}

/** CPU between two snapshots: µs per request (when `requests`) and ms per wall second. */
function cpuBetween(s0, s1, requests) {
  const d = (k) => ((s1[k] - s0[k]) / CLK_TCK) * 1e6; // µs
  const seconds = (s1.at - s0.at) / 1000;
  const keys = [
    'master',
    'masterUser',
    'masterSys',
    'masterMain',
    'reaped',
    'workers',
    'workersMain',
  ];
  const us = Object.fromEntries(keys.map((k) => [k, d(k)]));
  us.backend = us.master + us.workers;
  us.withSs = us.backend + us.reaped;
  const perReq = Object.fromEntries(
    Object.entries(us).map(([k, v]) => [k, requests ? v / requests : undefined]),
  );
  const msPerS = Object.fromEntries(Object.entries(us).map(([k, v]) => [k, v / 1000 / seconds]));
  return { perReq, msPerS, seconds };
}

/** The master's children now, other than its workers and short-lived helpers (ss). */
function strayChildren(b) {
  const kids = processTree(b.pid).filter((p) => p !== b.pid);
  return kids.filter((p) => {
    if (b.workers.includes(p)) return false;
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'node';
    } catch {
      return false;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// The scraper: what Prometheus (GET /metrics) and `uwsgi-ts top` (the raw stats socket) do

function scrapeStats(sockPath) {
  return new Promise((resolve) => {
    const t0 = nowMs();
    const chunks = [];
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      resolve({ ...r, ms: nowMs() - t0 });
    };
    const s = net.connect(sockPath);
    s.setTimeout(5000, () => s.destroy(new Error('timeout')));
    s.on('data', (c) => chunks.push(c));
    s.on('error', (err) => finish({ ok: false, error: err.message }));
    s.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        const doc = JSON.parse(text);
        const ok = Array.isArray(doc.workers) && doc.workers.length === WORKERS;
        finish({ ok, bytes: text.length, error: ok ? undefined : 'unexpected document' });
      } catch (err) {
        finish({ ok: false, error: `bad JSON: ${err.message}` });
      }
    });
  });
}

function scrapeMetrics(port) {
  return new Promise((resolve) => {
    const t0 = nowMs();
    let done = false;
    const finish = (r) => {
      if (done) return;
      done = true;
      resolve({ ...r, ms: nowMs() - t0 });
    };
    const req = http.get(
      { host: '127.0.0.1', port, path: '/metrics', agent: false, timeout: 5000 },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', (err) => finish({ ok: false, error: err.message }));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const ok = res.statusCode === 200 && text.includes('# TYPE uwsgi_ts_');
          finish({ ok, bytes: text.length, error: ok ? undefined : `status ${res.statusCode}` });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => finish({ ok: false, error: err.message }));
  });
}

/** Stats read at 0, 1, 2, ... s and /metrics at 0.5, 1.5, ... s until stopped. */
function startScraper(b) {
  const results = { stats: [], metrics: [] };
  const pending = new Set();
  const fire = (kind, fn) => {
    const p = fn().then((r) => results[kind].push(r));
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };
  const stats = () => fire('stats', () => scrapeStats(b.statsSock));
  const metrics = () => fire('metrics', () => scrapeMetrics(b.metricsPort));
  const timers = [];
  stats();
  timers.push(setInterval(stats, SCRAPE_MS));
  timers.push(
    setTimeout(() => {
      metrics();
      timers.push(setInterval(metrics, SCRAPE_MS));
    }, SCRAPE_MS / 2),
  );
  return {
    async stop() {
      for (const t of timers) clearInterval(t);
      await Promise.all(pending);
      return results;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// One measured window

async function measure(c, other, nginx, script) {
  const s0 = snapshot(c.backend);
  const o0 = snapshot(other.backend);
  const n0 = cpuTicks([nginx.pid]);
  const scraper = c.backend.on ? startScraper(c.backend) : undefined;
  const w = await runWrk(c.url, script, { seconds: DURATION, connections: CONNECTIONS });
  const scrapes = await scraper?.stop();
  const s1 = snapshot(c.backend);
  const o1 = snapshot(other.backend);
  const n1 = cpuTicks([nginx.pid]);
  const stray = strayChildren(c.backend);
  if (stray.length > 0) throw new Error(`${c.id}: unexpected children ${stray.join(', ')}`);
  return {
    rps: w.rps,
    p99ms: w.p99_us / 1000,
    requests: w.requests,
    errors: w.errors,
    non2xx: w.status,
    cpu: cpuBetween(s0, s1, w.requests),
    // The other backend, idle during this window: its master's CPU at rest.
    rest: cpuBetween(o0, o1, 0),
    nginxUs: (((n1 - n0) / CLK_TCK) * 1e6) / Math.max(1, w.requests),
    scrapes,
  };
}

// ---------------------------------------------------------------------------------------------
// Profiles

async function profileCase(dir, c, nginx, script) {
  const profDir = path.join(dir, `prof-${c.id}`);
  mkdirSync(profDir, { recursive: true });
  await stop(c.backend.rec, 15000);
  const b = await startBackend(dir, c.id, {
    on: c.backend.on,
    metricsPort: c.backend.metricsPort,
    nodeArgs: [
      '--cpu-prof',
      `--cpu-prof-dir=${profDir}`,
      '--cpu-prof-interval',
      String(PROFILE_INTERVAL_US),
    ],
    logSuffix: '-prof',
  });
  await poll(async () => (await rawHttpGet(nginx.port, `/${c.id}/hello`)).status === 200, {
    what: `${c.id} (profiled) through nginx`,
  });
  await runWrk(c.url, script, { seconds: WARMUP, connections: CONNECTIONS });
  const s0 = snapshot(b);
  const fromUs = hrUs();
  const scraper = b.on ? startScraper(b) : undefined;
  const w = await runWrk(c.url, script, { seconds: DURATION, connections: CONNECTIONS });
  const scrapes = await scraper?.stop();
  const toUs = hrUs();
  const s1 = snapshot(b);
  const cpu = cpuBetween(s0, s1, w.requests);
  // Profiles are written when the processes exit.
  await stop(b.rec, 15000);
  const read = (pid) => {
    const main = profilesOf(profDir, pid).find((p) => p.thread === 0);
    if (main === undefined) throw new Error(`no main-thread profile of ${pid} in ${profDir}`);
    return profileSelfTime(main.file, fromUs, toUs);
  };
  const master = read(b.pid);
  const workers = { byFn: new Map(), byArea: new Map(), total: 0 };
  for (const pid of b.workers) {
    const p = read(pid);
    addInto(workers.byFn, p.byFn);
    addInto(workers.byArea, p.byArea);
    workers.total += p.total;
  }
  // Samples are wall time (a preempted thread's time goes to the frame it stopped in): each
  // function's share of the busy samples times the main thread(s)' procfs CPU per request.
  const scale = (p, mainUs) => {
    const f = (m) => new Map([...m].map(([k, us]) => [k, (us / Math.max(1, p.total)) * mainUs]));
    return { byFn: f(p.byFn), byArea: f(p.byArea), sampledUs: p.total / w.requests };
  };
  return {
    id: c.id,
    rps: w.rps,
    requests: w.requests,
    cpu,
    scrapes,
    master: scale(master, cpu.perReq.masterMain),
    workers: scale(workers, cpu.perReq.workersMain),
  };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  stopAllOnSignals();
  if (!UWSGI_PARAMS) throw new Error('/etc/nginx/uwsgi_params missing');
  const info = {
    node: process.version,
    nginx: nginxVersion(),
    wrk: wrkVersion(),
    ss: commandOutput('ss', ['-V']),
    ...hostInfo(),
    head: commandOutput('git', ['-C', path.dirname(CLI), 'log', '-1', '--format=%h %s']).slice(
      0,
      80,
    ),
  };
  const loadBefore = os.loadavg();
  const started = new Date();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-operator-bench-'));
  try {
    const backends = {
      off: await startBackend(dir, 'off', { on: false }),
      on: await startBackend(dir, 'on', { on: true, metricsPort: await freePort() }),
    };
    const nginx = await startNginxForBackends(dir, Object.values(backends));
    const origin = `http://127.0.0.1:${nginx.port}`;
    const script = writeWrkScript(dir);
    const first = await startScraper(backends.on).stop();
    if (!first.stats[0]?.ok) throw new Error(`stats socket: ${first.stats[0]?.error}`);
    const cases = ['off', 'on'].map((id) => ({
      id,
      backend: backends[id],
      url: `${origin}/${id}/hello`,
      samples: [],
    }));
    const [off, on] = cases;

    console.error(`warming up (${WARMUP} s per case) ...`);
    for (const c of cases) await runWrk(c.url, script, { seconds: WARMUP });
    for (let r = 0; r < ROUNDS; r++) {
      const order = r % 2 === 0 ? [off, on] : [on, off];
      for (const c of order) {
        const other = c === off ? on : off;
        const s = await measure(c, other, nginx, script);
        c.samples.push(s);
        const sc = s.scrapes
          ? `, scrapes ${s.scrapes.stats.filter((x) => x.ok).length}+${s.scrapes.metrics.filter((x) => x.ok).length}`
          : '';
        console.error(
          `round ${r + 1}/${ROUNDS} ${c.id.padEnd(3)} ${fInt(s.rps)} req/s, ` +
            `${f1(s.cpu.perReq.backend)} µs/req (master ${f2(s.cpu.perReq.master)}, ss ${f2(s.cpu.perReq.reaped)})${sc}`,
        );
      }
    }
    const summary = (c) => {
      const pick = (f) => median(c.samples.map(f));
      const scrapes = c.samples.flatMap((s) => (s.scrapes ? [s.scrapes] : []));
      const all = (k) => scrapes.flatMap((x) => x[k]);
      return {
        rps: pick((s) => s.rps),
        p99ms: pick((s) => s.p99ms),
        backend: pick((s) => s.cpu.perReq.backend),
        master: pick((s) => s.cpu.perReq.master),
        workers: pick((s) => s.cpu.perReq.workers),
        reaped: pick((s) => s.cpu.perReq.reaped),
        withSs: pick((s) => s.cpu.perReq.withSs),
        masterMsPerS: pick((s) => s.cpu.msPerS.master),
        masterUserMsPerS: pick((s) => s.cpu.msPerS.masterUser),
        masterSysMsPerS: pick((s) => s.cpu.msPerS.masterSys),
        reapedMsPerS: pick((s) => s.cpu.msPerS.reaped),
        nginxUs: pick((s) => s.nginxUs),
        errors: c.samples.reduce((a, s) => a + s.errors, 0),
        non2xx: c.samples.reduce((a, s) => a + s.non2xx, 0),
        // This backend's master while the other case ran (no load on it).
        // This backend while the other case ran (no requests, no scraper): ms per second.
        rest: Object.fromEntries(
          ['master', 'masterUser', 'masterSys', 'reaped', 'workers'].map((k) => [
            k,
            median((c === off ? on : off).samples.map((s) => s.rest.msPerS[k])),
          ]),
        ),
        scrapes:
          scrapes.length === 0
            ? undefined
            : Object.fromEntries(
                ['stats', 'metrics'].map((k) => {
                  const list = all(k);
                  const okd = list.filter((x) => x.ok);
                  return [
                    k,
                    {
                      ok: okd.length,
                      failed: list.length - okd.length,
                      errors: [...new Set(list.filter((x) => !x.ok).map((x) => x.error))],
                      msMedian: median(okd.map((x) => x.ms)),
                      msMax: Math.max(...okd.map((x) => x.ms)),
                      bytes: median(okd.map((x) => x.bytes)),
                    },
                  ];
                }),
              ),
      };
    };
    for (const c of cases) c.result = summary(c);
    const ratios = (key) => {
      const perRound = on.samples.map((s, i) => s.cpu.perReq[key] / off.samples[i].cpu.perReq[key]);
      return { medians: on.result[key] / off.result[key], perRound, paired: median(perRound) };
    };
    const cmp = { backend: ratios('backend'), withSs: ratios('withSs') };
    const over = Math.max(cmp.backend.medians, cmp.backend.paired) > THRESHOLD;

    let profiles;
    if (args.profile === 'on' || (args.profile === 'auto' && over)) {
      console.error('profiling off and on under node --cpu-prof ...');
      profiles = [];
      for (const c of cases) profiles.push(await profileCase(dir, c, nginx, script));
    }
    const loadAfter = os.loadavg();
    report({ info, started, loadBefore, loadAfter, cases, cmp, over, profiles });
    if (args.json) {
      writeFileSync(
        args.json,
        JSON.stringify(
          {
            date: started.toISOString(),
            info,
            duration: DURATION,
            rounds: ROUNDS,
            load: { before: loadBefore, after: loadAfter },
            cases: cases.map(({ id, samples, result }) => ({ id, samples, result })),
            cmp,
            profiles: profiles?.map((p) => ({
              ...p,
              master: {
                ...p.master,
                byFn: Object.fromEntries(p.master.byFn),
                byArea: Object.fromEntries(p.master.byArea),
              },
              workers: {
                ...p.workers,
                byFn: Object.fromEntries(p.workers.byFn),
                byArea: Object.fromEntries(p.workers.byArea),
              },
            })),
          },
          null,
          2,
        ),
      );
    }
  } finally {
    await stopAll();
    if (args.keep) console.error(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

function report({ info, started, loadBefore, loadAfter, cases, cmp, over, profiles }) {
  const on = cases[1];
  console.log('# Operator endpoints: CPU per request, stats + metrics on vs off\n');
  console.log(
    `${started.toISOString()}; node ${info.node}, ${info.nginx} (1 worker), ${info.wrk}, ${info.ss}; ` +
      `kernel ${info.kernel}; ${info.cpus}; load average ${loadBefore.map(f2).join(' ')} before, ` +
      `${loadAfter.map(f2).join(' ')} after`,
  );
  console.log(`HEAD: ${info.head}`);
  console.log(
    `\`workers: ${WORKERS}\`, transport fast, access log off, nginx \`uwsgi_pass\` unix socket; ` +
      `\`wrk -t1 -c${CONNECTIONS} -d${DURATION}s\`, ${ROUNDS} interleaved round(s), median; ` +
      `"on": stats (unix socket, raw) read every ${SCRAPE_MS / 1000} s and GET /metrics every ` +
      `${SCRAPE_MS / 1000} s during the window; CPU from /proc/<pid>/stat (${1000 / CLK_TCK} ms ticks) / requests\n`,
  );
  console.log(
    markdownTable(
      [
        'case',
        'req/s',
        'p99 ms',
        'backend CPU µs/req (master + workers)',
        'per round',
        'master µs/req',
        'workers µs/req',
        "ss (master's reaped children) µs/req",
        'backend + ss µs/req',
        'master CPU ms/s (user + sys)',
        'nginx CPU µs/req',
        'sock err / non-2xx',
      ],
      cases.map((c) => {
        const r = c.result;
        return [
          c.id === 'off' ? 'off (no stats/metrics keys)' : 'on (stats + metrics, scraped 1/s each)',
          fInt(r.rps),
          f2(r.p99ms),
          f1(r.backend),
          c.samples.map((s) => f1(s.cpu.perReq.backend)).join(', '),
          f2(r.master),
          f1(r.workers),
          f2(r.reaped),
          f1(r.withSs),
          `${f1(r.masterMsPerS)} (${f1(r.masterUserMsPerS)} + ${f1(r.masterSysMsPerS)})`,
          f1(r.nginxUs),
          `${r.errors}/${r.non2xx}`,
        ];
      }),
      ['l', 'r', 'r', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  console.log(
    "\nMaster user + sys: medians of their own (need not add up to the total's median). " +
      "ss: the master's reaped children (cutime+cstime), the `ss` runs of the listen-queue reads.",
  );
  console.log('\n## Ratio on / off\n');
  console.log(
    markdownTable(
      [
        'CPU per request',
        'ratio of medians',
        'ratio per round',
        'median of per-round ratios',
        `over ${Math.round((THRESHOLD - 1) * 100)}%?`,
      ],
      [
        ['master + workers', cmp.backend],
        ['master + workers + ss', cmp.withSs],
      ].map(([label, x]) => [
        label,
        `${f3(x.medians)}x`,
        x.perRound.map(f2).join(', '),
        `${f3(x.paired)}x`,
        Math.max(x.medians, x.paired) > THRESHOLD ? 'yes' : 'no',
      ]),
      ['l', 'r', 'l', 'r', 'l'],
    ),
  );
  const s = on.result.scrapes;
  if (s !== undefined) {
    console.log('\n## Scrapes during the "on" windows\n');
    console.log(
      markdownTable(
        ['endpoint', 'ok', 'failed', 'latency median ms', 'latency max ms', 'bytes'],
        [
          ['stats (unix socket, raw)', s.stats],
          ['GET /metrics', s.metrics],
        ].map(([label, x]) => [
          label,
          String(x.ok),
          `${x.failed}${x.errors.length > 0 ? ` (${x.errors.join('; ')})` : ''}`,
          f1(x.msMedian),
          f1(x.msMax),
          fInt(x.bytes),
        ]),
        ['l', 'r', 'l', 'r', 'r', 'r'],
      ),
    );
  }
  console.log('\n## Each backend at rest (while the other case ran: no requests, no scraper)\n');
  console.log(
    markdownTable(
      ['backend', 'master CPU ms/s (user + sys)', 'ss (reaped) CPU ms/s', 'workers CPU ms/s'],
      cases.map((c) => [
        c.id,
        `${f1(c.result.rest.master)} (${f1(c.result.rest.masterUser)} + ${f1(c.result.rest.masterSys)})`,
        f1(c.result.rest.reaped),
        f1(c.result.rest.workers),
      ]),
      ['l', 'r', 'r', 'r'],
    ),
  );
  if (profiles !== undefined) reportProfiles(profiles);
  const failedScrapes = (s?.stats.failed ?? 0) + (s?.metrics.failed ?? 0);
  const bad = cases.filter((c) => c.result.errors > 0 || c.result.non2xx > 0);
  if (bad.length > 0 || failedScrapes > 0) {
    console.log(
      `\nErrors: ${[...bad.map((c) => c.id), ...(failedScrapes > 0 ? [`${failedScrapes} failed scrapes`] : [])].join(', ')}`,
    );
    process.exitCode = 1;
  }
  if (!over) console.log(`\nWithin ${Math.round((THRESHOLD - 1) * 100)}%: no profile needed.`);
}

function reportProfiles(profiles) {
  const [off, on] = profiles;
  console.log(
    `\n## Profiles (node --cpu-prof, ${PROFILE_INTERVAL_US} µs sampling, one ${DURATION} s window per case, not interleaved)\n`,
  );
  console.log(
    markdownTable(
      [
        'case',
        'req/s',
        'backend CPU µs/req',
        'master µs/req',
        'master main thread µs/req',
        'workers µs/req',
        'workers main threads µs/req',
        'ss µs/req',
      ],
      profiles.map((p) => [
        p.id,
        fInt(p.rps),
        f1(p.cpu.perReq.backend),
        f2(p.cpu.perReq.master),
        f2(p.cpu.perReq.masterMain),
        f1(p.cpu.perReq.workers),
        f1(p.cpu.perReq.workersMain),
        f2(p.cpu.perReq.reaped),
      ]),
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  for (const who of ['master', 'workers']) {
    console.log(
      `\n### ${who === 'master' ? 'Master' : 'Workers (both)'}: main-thread CPU per request by area (share of the busy samples x procfs main-thread CPU)\n`,
    );
    const areas = new Set([...off[who].byArea.keys(), ...on[who].byArea.keys()]);
    console.log(
      markdownTable(
        ['area', 'off µs/req', 'on µs/req', 'on - off µs/req'],
        [...areas]
          .map((k) => ({ k, a: off[who].byArea.get(k) ?? 0, b: on[who].byArea.get(k) ?? 0 }))
          .sort((x, y) => y.a + y.b - (x.a + x.b))
          .map((d) => [d.k, f3(d.a), f3(d.b), f3(d.b - d.a)]),
        ['l', 'r', 'r', 'r'],
      ),
    );
    const keys = new Set([...off[who].byFn.keys(), ...on[who].byFn.keys()]);
    const diffs = [...keys]
      .map((k) => ({ k, a: off[who].byFn.get(k) ?? 0, b: on[who].byFn.get(k) ?? 0 }))
      .sort((x, y) => Math.abs(y.b - y.a) - Math.abs(x.b - x.a))
      .slice(0, 12);
    console.log(`\nLargest differences (function, file):\n`);
    console.log(
      markdownTable(
        ['function', 'off µs/req', 'on µs/req', 'on - off µs/req'],
        diffs.map((d) => [`\`${d.k}\``, f3(d.a), f3(d.b), f3(d.b - d.a)]),
        ['l', 'r', 'r', 'r'],
      ),
    );
  }
}

await main();
