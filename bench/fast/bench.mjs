#!/usr/bin/env node
// Per-connection cost behind real nginx (issue 4): backend CPU µs per request and req/s for the
// minimal responders in responder.mjs and uWSGI (C + Python WSGI hello, 1 worker), one nginx
// worker, uwsgi_pass over unix sockets, `wrk -t1 -c32`, a 13-byte hello. Rounds interleave the
// backends so a noisy moment on the shared machine hits all of them; the median is reported.
// CPU = utime + stime of the backend's process tree from /proc/<pid>/stat around each wrk run.
//
// Container modes run the real thing (`uwsgi-ts run` on a generated YAML config, the `(req, res)`
// hello of bench/backends/hello-app.mjs mounted at `/`, JSON logs to a file as under a process
// manager): `container` (transport fast, access log on), `container-nolog` (access log off),
// `container-health` (`health:` answered by the protocol layer), `container-tcp`
// (uwsgi_pass over loopback TCP), `container-net` / `container-net-nolog` (transport net),
// `container-w2` (`workers: 2`; suffixes combine, e.g. `container-tcp-w2`).
// `uwsgi` is uWSGI (C + Python WSGI hello, 1 process, unix socket); `uwsgi-tcp` over loopback
// TCP, `uwsgi-p2` with 2 processes and a master (suffixes combine).
// `base-container...`: the same with the CLI given by `--base-cli` (before/after in one run).
// `proxy-http` is the default `proxy_pass` (HTTP/1.0, a connection per request) to a node:http
// hello. `--body BYTES` POSTs that many bytes instead of GET (container and uwsgi modes read it).
// `--path big` appends `big` to the URL: the container and uWSGI apps answer 1 MiB.
//
//   npx tsc -b && node bench/fast/bench.mjs [--duration 10] [--rounds 3] [--modes net-raw,fast]
//   node bench/fast/bench.mjs --modes container,container-nolog,fast-http,net --node-args=--cpu-prof
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { median } from '../lib/harness.mjs';
import { startNginx, UWSGI_PARAMS } from '../lib/nginx.mjs';
import {
  CLK_TCK,
  cpuTicksSplit,
  freePort,
  poll,
  spawnTracked,
  stopAll,
  stopAllOnSignals,
} from '../lib/proc.mjs';
import { containerCli, writeContainerConfig } from './container-mode.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'net-raw,net,fast,net-http,fast-http,uwsgi' },
    node: { type: 'string', default: process.execPath },
    // Extra node flags for the backends (`--cpu-prof --cpu-prof-dir=DIR`), space-separated.
    'node-args': { type: 'string', default: '' },
    body: { type: 'string', default: '0' },
    // Appended to each backend's URL: `big` makes the container and uWSGI apps answer 1 MiB.
    path: { type: 'string', default: '' },
    // Another checkout's CLI (e.g. `git archive HEAD` built elsewhere) for `base-container*`
    // modes: before/after comparisons in one run.
    'base-cli': { type: 'string' },
  },
});
const NODE_ARGS = args['node-args'].split(' ').filter((a) => a !== '');
const BODY = Number(args.body);
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

/** `uwsgi-ts run` on a config for `mode`; stdout (JSON logs) goes to a file, as under systemd. */
async function startContainer(dir, mode) {
  const tcp = mode.includes('-tcp');
  const sock = path.join(dir, `${mode}.sock`);
  const config = writeContainerConfig(dir, mode, {
    address: tcp ? '127.0.0.1:0' : sock,
    healthPath: `/${mode}/healthz`,
  });
  const logFile = path.join(dir, `${mode}.log`);
  const fd = openSync(logFile, 'w');
  const cli = containerCli(mode, args['base-cli']);
  const rec = spawnTracked(args.node, [...NODE_ARGS, cli, 'run', config], {
    name: mode,
    cwd: dir,
    stdio: ['ignore', fd, 'pipe'],
  });
  closeSync(fd);
  const ready = await poll(
    () => {
      if (rec.exited) throw new Error(`${mode} exited: ${rec.stderr}`);
      const line = readFileSync(logFile, 'utf8')
        .split('\n')
        .find((l) => l.includes('"msg":"ready"'));
      return line === undefined ? undefined : JSON.parse(line);
    },
    { what: mode },
  );
  if (ready.transport !== (mode.includes('-net') ? 'net' : 'fast')) {
    throw new Error(`${mode}: container runs transport ${ready.transport}`);
  }
  const address = ready.listeners[0].address;
  const pass = tcp ? address : `unix:${sock}`;
  // The health mode asks for its health path; the others for `/<mode>/`.
  const url = mode.includes('-health') ? `/${mode}/healthz` : `/${mode}/`;
  const location = `location /${mode}/ { include ${UWSGI_PARAMS}; uwsgi_pass ${pass}; }`;
  return { mode, pid: rec.child.pid, location, url };
}

async function startBackend(dir, mode) {
  if (mode.startsWith('container') || mode.startsWith('base-container')) {
    return startContainer(dir, mode);
  }
  const sock = path.join(dir, `${mode}.sock`);
  const uwsgiLocation = `location /${mode}/ { include ${UWSGI_PARAMS}; uwsgi_pass unix:${sock}; }`;
  if (mode === 'proxy-http') {
    const rec = spawnTracked(
      args.node,
      [...NODE_ARGS, path.join(HERE, '../backends/http-hello.mjs'), sock],
      {
        name: mode,
      },
    );
    await poll(() => rec.stdout.includes('"ready":true'), { what: mode });
    // nginx's default proxy_pass: HTTP/1.0 upstream, a new connection per request.
    const location = `location /${mode}/ { proxy_pass http://unix:${sock}:; }`;
    return { mode, pid: rec.child.pid, location, url: `/${mode}/` };
  }
  if (mode === 'uwsgi' || mode.startsWith('uwsgi-')) {
    // `uwsgi-tcp`: loopback TCP instead of the unix socket; `uwsgi-p2`: 2 processes (and a
    // master, which idles), the reference for the container's `-w2` modes.
    const tcp = mode.includes('-tcp');
    const processes = mode.includes('-p2') ? 2 : 1;
    const address = tcp ? `127.0.0.1:${await freePort()}` : sock;
    const rec = spawnTracked(
      'uwsgi',
      [
        ...['--plugin', 'python3', '--socket', address, '--wsgi-file'],
        path.join(HERE, '../backends/hello.py'),
        ...(processes > 1 ? ['--master'] : []),
        ...['--processes', String(processes), '--disable-logging', '--die-on-term'],
        ...['--listen', '1024'],
      ],
      { name: mode, cwd: dir },
    );
    await poll(
      () => {
        if (rec.exited) throw new Error(`${mode} exited: ${rec.stderr}`);
        return (
          rec.stderr.includes(`spawned uWSGI worker ${processes}`) ||
          rec.stderr.includes('*** Operational MODE: single process ***')
        );
      },
      { what: mode },
    );
    const pass = tcp ? address : `unix:${sock}`;
    const location = `location /${mode}/ { include ${UWSGI_PARAMS}; uwsgi_pass ${pass}; }`;
    return { mode, pid: rec.child.pid, location, url: `/${mode}/` };
  }
  const rec = spawnTracked(
    args.node,
    [...NODE_ARGS, path.join(HERE, 'responder.mjs'), mode, sock],
    {
      name: mode,
    },
  );
  await poll(
    () => {
      if (rec.exited) throw new Error(`${mode} exited: ${rec.stderr}`);
      return rec.stdout.includes('"ready":true');
    },
    { what: mode },
  );
  return { mode, pid: rec.child.pid, location: uwsgiLocation, url: `/${mode}/` };
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
    client_max_body_size ${Math.max(1, Math.ceil(BODY / 1048576) + 1)}m;
    client_body_buffer_size ${Math.max(16384, BODY)};
${
  // Room for a 1 MiB response in memory (no temp file), as in bench/nginx-bench.mjs.
  args.path === ''
    ? ''
    : '    uwsgi_buffer_size 16k;\n    uwsgi_buffers 80 16k;\n    uwsgi_busy_buffers_size 64k;\n'
}${backends.map((b) => `    ${b.location}`).join('\n')}
  }`,
    });
    const script = path.join(dir, 'done.lua');
    const post =
      BODY > 0
        ? `wrk.method = "POST"\nwrk.body = string.rep("a", ${BODY})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`
        : '';
    writeFileSync(script, post + DONE_LUA);
    const base = `http://127.0.0.1:${nginx.port}`;
    const results = new Map(MODES.map((m) => [m, []]));
    for (const b of backends) await wrk(`${base}${b.url}${args.path}`, script, 2); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const b of backends) {
        const before = cpuTicksSplit([b.pid]);
        const r = await wrk(`${base}${b.url}${args.path}`, script, DURATION);
        const after = cpuTicksSplit([b.pid]);
        const usPerReq = ((after.ticks - before.ticks) * (1e6 / CLK_TCK)) / r.requests;
        const sysPerReq = ((after.stime - before.stime) * (1e6 / CLK_TCK)) / r.requests;
        const rps = r.requests / (r.duration_us / 1e6);
        if (r.requests === 0) throw new Error(`${b.mode}: no request completed`);
        results.get(b.mode).push({ usPerReq, sysPerReq, rps, errors: r.errors, p99: r.p99_us });
        process.stderr.write(
          `round ${round + 1} ${b.mode}: ${usPerReq.toFixed(1)} µs/req (sys ${sysPerReq.toFixed(1)}), ${rps.toFixed(0)} req/s, errors ${r.errors}\n`,
        );
      }
    }
    // Reference for the ratio column: the bare net responder when it ran, else the first mode.
    const baseline = results.get('net-raw') ?? results.get('net') ?? [...results.values()][0];
    const baseName = results.has('net-raw') ? 'net-raw' : results.has('net') ? 'net' : MODES[0];
    const baseRps = baseline ? median(baseline.map((x) => x.rps)) : undefined;
    const nodeVersion = execFileSync(args.node, ['-v'], { encoding: 'utf8' }).trim();
    console.log(
      `backends on node ${nodeVersion} (${args.node}), ${ROUNDS} rounds x ${DURATION}s, wrk -t1 -c32, ${BODY > 0 ? `POST ${BODY} bytes` : 'GET'} ${args.path}\n`,
    );
    console.log(
      `| backend | CPU µs/req (median) | of it kernel | req/s (median) | req/s vs ${baseName} | errors |`,
    );
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const [mode, rs] of results) {
      const rps = median(rs.map((x) => x.rps));
      console.log(
        `| ${mode} | ${median(rs.map((x) => x.usPerReq)).toFixed(1)} | ${median(rs.map((x) => x.sysPerReq)).toFixed(1)} | ${rps.toFixed(0)} | ${baseRps ? (rps / baseRps).toFixed(2) : '-'}x | ${rs.reduce((a, x) => a + x.errors, 0)} |`,
      );
    }
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
