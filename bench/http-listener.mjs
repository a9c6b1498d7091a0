#!/usr/bin/env node
// The HTTP listener's own checks, priced: `strictRequestLine` (a copy of the read that completed
// each head, searched for doubled spaces) on against off, same container, same app, interleaved
// rounds. wrk talks to the HTTP listener directly (`-t1 -c32`, keep-alive, a small GET); the
// figure is the worker's CPU µs per request from /proc/<pid>/stat (utime + stime over the
// requests wrk completed), and the table gives the median per mode and its ratio to `lenient`.
//
//   npx tsc -b && node bench/http-listener.mjs --duration 5 --rounds 5
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { CLK_TCK, cpuTicks, poll, spawnTracked, stop, stopAllOnSignals } from './lib/proc.mjs';
import { OWN_CLI, parseBenchArgs } from './lib/run.mjs';
import { runWrk, writeWrkScript } from './lib/wrk.mjs';

const MODES = { strict: true, lenient: false };

const { args, duration, rounds, warmup } = parseBenchArgs({});
stopAllOnSignals();
const dir = mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-http-bench-'));
const script = writeWrkScript(dir);
writeFileSync(path.join(dir, 'app.mjs'), "export default (req, res) => res.end('hello');\n");

/** Starts the container for `strictRequestLine`; resolves its HTTP URL and worker pid. */
async function start(name, strict) {
  const config = path.join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    JSON.stringify({
      listeners: [{ protocol: 'http', address: '127.0.0.1:0' }],
      mounts: [{ path: '/', app: path.join(dir, 'app.mjs') }],
      log: { access: false },
      strictRequestLine: strict,
    }),
  );
  const rec = spawnTracked(process.execPath, [OWN_CLI, 'run', config, '--log-format', 'json'], {
    name,
  });
  const ready = await poll(
    () =>
      rec.stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l))
        .find((r) => r.msg === 'ready'),
    { tries: 200, intervalMs: 50, what: `${name} ready` },
  );
  const address = ready.listeners.find((l) => l.protocol === 'http').address;
  return { rec, url: `http://${address}/`, pid: (ready.workers ?? [rec.child.pid])[0] };
}

const results = Object.fromEntries(Object.keys(MODES).map((m) => [m, []]));
try {
  for (let round = 0; round < rounds; round++) {
    for (const [name, strict] of Object.entries(MODES)) {
      const server = await start(name, strict);
      try {
        await runWrk(server.url, script, { seconds: warmup });
        const before = cpuTicks([server.pid]);
        const w = await runWrk(server.url, script, { seconds: duration });
        const ticks = cpuTicks([server.pid]) - before;
        if (w.errors > 0 || w.status > 0)
          throw new Error(`${name}: wrk errors ${JSON.stringify(w)}`);
        results[name].push({ us: ((ticks / CLK_TCK) * 1e6) / w.requests, rps: w.rps });
      } finally {
        await stop(server.rec);
      }
      await delay(200);
    }
  }
} finally {
  if (!args.keep) rmSync(dir, { recursive: true, force: true });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(results.lenient.map((r) => r.us));
console.log(`HTTP listener, wrk -t1 -c32 -d${duration}s, ${rounds} interleaved rounds (median)`);
console.log('mode      µs/req  ratio  req/s   rounds (µs/req)');
for (const [name, rs] of Object.entries(results)) {
  const us = median(rs.map((r) => r.us));
  console.log(
    `${name.padEnd(9)} ${us.toFixed(2).padStart(6)}  ${(us / base).toFixed(3)}  ${Math.round(
      median(rs.map((r) => r.rps)),
    )
      .toString()
      .padStart(6)}  ${rs.map((r) => r.us.toFixed(1)).join(' ')}`,
  );
}
