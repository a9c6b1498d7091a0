#!/usr/bin/env node
// Per-connection cost behind real nginx (issue 4): backend CPU µs per request and req/s for the
// minimal responders in responder.mjs and uWSGI (C + Python WSGI hello, 1 worker), one nginx
// worker, uwsgi_pass over unix sockets, `wrk -t1 -c32`, a 13-byte hello. Rounds interleave the
// backends so a noisy moment on the shared machine hits all of them; the median is reported.
// CPU = utime + stime of the backend's process tree from /proc/<pid>/stat around each wrk run.
//
//   npx tsc -b && node bench/fast/bench.mjs [--duration 10] [--rounds 3] [--modes net-raw,fast]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startNginx, UWSGI_PARAMS } from '../lib/nginx.mjs';
import { CLK_TCK, cpuTicks, poll, spawnTracked, stopAll, stopAllOnSignals } from '../lib/proc.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'net-raw,net,fast,net-http,fast-http,uwsgi' },
    node: { type: 'string', default: process.execPath },
  },
});
const DURATION = Number(args.duration);
const ROUNDS = Number(args.rounds);
const MODES = args.modes.split(',');

const DONE_LUA = `done = function(summary, latency, requests)
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status +
    summary.errors.timeout, latency:percentile(99)))
end
`;

async function startBackend(dir, mode) {
  const sock = path.join(dir, `${mode}.sock`);
  if (mode === 'uwsgi') {
    const rec = spawnTracked(
      'uwsgi',
      [
        ...['--plugin', 'python3', '--socket', sock, '--wsgi-file'],
        path.join(HERE, '../backends/hello.py'),
        ...['--processes', '1', '--disable-logging', '--die-on-term', '--listen', '1024'],
      ],
      { name: 'uwsgi', cwd: dir },
    );
    await poll(
      () =>
        rec.stderr.includes('spawned uWSGI worker 1') ||
        rec.stderr.includes('*** Operational MODE: single process ***'),
      { what: 'uwsgi' },
    );
    return { mode, sock, pid: rec.child.pid };
  }
  const rec = spawnTracked(args.node, [path.join(HERE, 'responder.mjs'), mode, sock], {
    name: mode,
  });
  await poll(
    () => {
      if (rec.exited) throw new Error(`${mode} exited: ${rec.stderr}`);
      return rec.stdout.includes('"ready":true');
    },
    { what: mode },
  );
  return { mode, sock, pid: rec.child.pid };
}

async function wrk(url, script, seconds) {
  const rec = spawnTracked('wrk', ['-t1', '-c32', `-d${seconds}s`, '-s', script, url], {
    name: 'wrk',
  });
  await rec.exit;
  const line = rec.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk: ${rec.stdout}${rec.stderr}`);
  return JSON.parse(line.slice(8));
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

async function main() {
  stopAllOnSignals();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-fastbench-'));
  try {
    const backends = [];
    for (const mode of MODES) backends.push(await startBackend(dir, mode));
    const nginx = await startNginx({
      dir,
      server: (port) => `server {
    listen 127.0.0.1:${port} backlog=4096;
    keepalive_requests 1000000;
${backends.map((b) => `    location /${b.mode}/ { include ${UWSGI_PARAMS}; uwsgi_pass unix:${b.sock}; }`).join('\n')}
  }`,
    });
    const script = path.join(dir, 'done.lua');
    writeFileSync(script, DONE_LUA);
    const base = `http://127.0.0.1:${nginx.port}`;
    const results = new Map(MODES.map((m) => [m, []]));
    for (const b of backends) await wrk(`${base}/${b.mode}/`, script, 2); // warm-up (JIT, caches)
    for (let round = 0; round < ROUNDS; round++) {
      for (const b of backends) {
        const before = cpuTicks([b.pid]);
        const r = await wrk(`${base}/${b.mode}/`, script, DURATION);
        const ticks = cpuTicks([b.pid]) - before;
        const usPerReq = (ticks * (1e6 / CLK_TCK)) / r.requests;
        const rps = r.requests / (r.duration_us / 1e6);
        results.get(b.mode).push({ usPerReq, rps, errors: r.errors, p99: r.p99_us });
        process.stderr.write(
          `round ${round + 1} ${b.mode}: ${usPerReq.toFixed(1)} µs/req, ${rps.toFixed(0)} req/s, errors ${r.errors}\n`,
        );
      }
    }
    const baseline = results.get('net-raw');
    const baseRps = baseline ? median(baseline.map((x) => x.rps)) : undefined;
    const nodeVersion = execFileSync(args.node, ['-v'], { encoding: 'utf8' }).trim();
    console.log(
      `backends on node ${nodeVersion} (${args.node}), ${ROUNDS} rounds x ${DURATION}s, wrk -t1 -c32, unix socket\n`,
    );
    console.log('| backend | CPU µs/req (median) | req/s (median) | req/s vs net-raw | errors |');
    console.log('|---|---:|---:|---:|---:|');
    for (const [mode, rs] of results) {
      const rps = median(rs.map((x) => x.rps));
      console.log(
        `| ${mode} | ${median(rs.map((x) => x.usPerReq)).toFixed(1)} | ${rps.toFixed(0)} | ${baseRps ? (rps / baseRps).toFixed(2) : '-'}x | ${rs.reduce((a, x) => a + x.errors, 0)} |`,
      );
    }
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
