#!/usr/bin/env node
// End-to-end benchmark behind nginx (issues 3 and 4). One nginx (1 worker), one load generator
// (`wrk -t1 -c32`), one 13-byte hello, unix socket and TCP, all backends measured in the same run:
//
//   container/net   nginx uwsgi_pass -> `uwsgi-ts run` with `transport: net`
//   container/fast  same with `transport: fast` (skipped when the container refuses it)
//   net responder   nginx uwsgi_pass -> minimal node:net + codec responder (the floor for Node)
//   proxy_pass      nginx proxy_pass (HTTP/1.0, a connection per request) -> node:http
//   proxy_pass ka   nginx proxy_pass with upstream keepalive (HTTP/1.1) -> node:http
//   uWSGI           nginx uwsgi_pass -> uWSGI 2.0 (C) + Python WSGI hello, 1 process
//
// plus a 1 MiB request body (wrk Lua POST) and a 1 MiB response for container vs uWSGI.
// Reports req/s, p99 latency, backend CPU µs/request (utime+stime of the backend's process tree
// from /proc/<pid>/stat before/after), nginx CPU µs/request, and ratios within this run.
// Rounds interleave all cases so a noisy moment on the shared machine hits every case.
//
//   npx tsc -b && node bench/nginx-bench.mjs [--duration 10] [--rounds 3] [--quick]
//                                            [--only REGEX] [--json FILE] [--keep]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { markdownTable, median } from './lib/harness.mjs';
import { startNginx, UWSGI_PARAMS } from './lib/nginx.mjs';
import {
  CLK_TCK,
  cpuTicks,
  freePort,
  poll,
  rawHttpGet,
  spawnTracked,
  stopAll,
  stopAllOnSignals,
} from './lib/proc.mjs';
import {
  commandOutput,
  hostInfo,
  nginxVersion,
  OWN_CLI,
  parseBenchArgs,
  ROOT,
  wrkVersion,
} from './lib/run.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const CLI = OWN_CLI;
const UWSGI_PYTHON_PLUGIN = '/usr/lib/uwsgi/plugins/python3_plugin.so';

const {
  args,
  duration: DURATION,
  rounds: ROUNDS,
  warmup: WARMUP,
} = parseBenchArgs({ only: { type: 'string' } });
const CONNECTIONS = 32;
const only = args.only ? new RegExp(args.only) : undefined;

// ---------------------------------------------------------------------------------------------
// Tools

function have(cmd) {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function ensureTools() {
  const missing = [];
  if (!have('wrk')) missing.push('wrk');
  if (!have('nginx') && !existsSync('/usr/sbin/nginx')) missing.push('nginx');
  if (!have('uwsgi')) missing.push('uwsgi-core');
  if (!existsSync(UWSGI_PYTHON_PLUGIN)) missing.push('uwsgi-plugin-python3');
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(
      `missing ${missing.join(', ')}: install them (apt-get install ${missing.join(' ')})`,
    );
  }
  console.error(`installing ${missing.join(' ')} ...`);
  // Package scripts must not start system services (Debian's nginx would take port 80): a
  // policy-rc.d that refuses, only for the duration of the install.
  const policy = '/usr/sbin/policy-rc.d';
  const ownPolicy = !existsSync(policy);
  if (ownPolicy) writeFileSync(policy, '#!/bin/sh\nexit 101\n', { mode: 0o755 });
  try {
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit' });
    execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } finally {
    if (ownPolicy) rmSync(policy, { force: true });
  }
}

function versions() {
  return {
    node: process.version,
    nginx: nginxVersion(),
    uwsgi: commandOutput('uwsgi', ['--version']),
    wrk: wrkVersion(),
    ...hostInfo(),
  };
}

// ---------------------------------------------------------------------------------------------
// Backends

/** Waits for a JSON line on the child's stdout matching `test`; returns the parsed object. */
async function readyLine(rec, test, what) {
  return poll(
    () => {
      if (rec.exited)
        throw new Error(`${what} exited:\n${rec.stdout.slice(-2000)}${rec.stderr.slice(-2000)}`);
      for (const line of rec.stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          const obj = JSON.parse(line);
          if (test(obj)) return obj;
        } catch {}
      }
      return undefined;
    },
    { tries: 300, intervalMs: 100, what },
  );
}

async function startNodeBackend(dir, script, name) {
  const sock = path.join(dir, `${name}.sock`);
  const rec = spawnTracked(process.execPath, [path.join(HERE, 'backends', script), sock], {
    name,
    cwd: ROOT,
  });
  const ready = await readyLine(rec, (o) => o.ready === true, name);
  return { name, rec, pids: [rec.child.pid], unix: sock, tcp: `127.0.0.1:${ready.port}` };
}

async function startContainer(dir, transport) {
  const name = `container-${transport}`;
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: build first (npx tsc -b)`);
  const sock = path.join(dir, `${name}.sock`);
  const config = path.join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'listeners:',
      '  - protocol: uwsgi',
      `    address: ${sock}`,
      '  - protocol: uwsgi',
      '    address: 127.0.0.1:0',
      'mounts:',
      '  - path: /',
      `    app: ${path.join(HERE, 'backends/hello-app.mjs')}`,
      'log: { access: false, format: json, level: info }',
      `transport: ${transport}`,
      '',
    ].join('\n'),
  );
  const rec = spawnTracked(process.execPath, [CLI, 'run', config], { name, cwd: dir });
  const ready = await readyLine(rec, (o) => o.msg === 'ready', name);
  const tcp = ready.listeners?.find((l) => !String(l.address).startsWith('unix:'))?.address;
  if (!tcp) throw new Error(`${name}: no TCP listener in the ready line: ${JSON.stringify(ready)}`);
  return { name, rec, pids: [rec.child.pid], unix: sock, tcp, ready };
}

async function startUwsgi(dir) {
  const sock = path.join(dir, 'uwsgi.sock');
  const port = await freePort();
  const rec = spawnTracked(
    'uwsgi',
    [
      '--plugin',
      'python3',
      '--socket',
      sock,
      '--socket',
      `127.0.0.1:${port}`,
      '--wsgi-file',
      path.join(HERE, 'backends/hello.py'),
      '--master',
      '--processes',
      '1',
      '--disable-logging',
      '--die-on-term',
      '--listen',
      '1024',
    ],
    { name: 'uwsgi', cwd: dir },
  );
  return { name: 'uwsgi', rec, pids: [rec.child.pid], unix: sock, tcp: `127.0.0.1:${port}` };
}

// ---------------------------------------------------------------------------------------------
// nginx

function nginxServer(backends) {
  const uw = (loc, target) =>
    `    location /${loc}/ { include ${UWSGI_PARAMS}; uwsgi_pass ${target}; }`;
  return (port) => {
    const lines = [];
    const http = backends['http-hello'];
    if (http) {
      lines.push(
        `  upstream ka_unix { server unix:${http.unix}; keepalive ${CONNECTIONS}; }`,
        `  upstream ka_tcp { server ${http.tcp}; keepalive ${CONNECTIONS}; }`,
      );
    }
    lines.push(
      '  server {',
      `    listen 127.0.0.1:${port} backlog=4096;`,
      // A 1 MiB request body stays in memory; a 1 MiB response fits the buffers (no temp file).
      '    client_max_body_size 2m;',
      '    client_body_buffer_size 2m;',
      '    uwsgi_buffer_size 16k;',
      '    uwsgi_buffers 80 16k;',
      '    uwsgi_busy_buffers_size 64k;',
      '    keepalive_requests 1000000;',
    );
    for (const b of Object.values(backends)) {
      if (b.name === 'http-hello') {
        lines.push(
          `    location /proxy-unix/ { proxy_pass http://unix:${b.unix}:; }`,
          `    location /proxy-tcp/ { proxy_pass http://${b.tcp}; }`,
          '    location /proxyka-unix/ { proxy_pass http://ka_unix; proxy_http_version 1.1; proxy_set_header Connection ""; }',
          '    location /proxyka-tcp/ { proxy_pass http://ka_tcp; proxy_http_version 1.1; proxy_set_header Connection ""; }',
        );
      } else {
        lines.push(uw(`${b.name}-unix`, `unix:${b.unix}`), uw(`${b.name}-tcp`, b.tcp));
      }
    }
    lines.push('  }');
    return lines.join('\n');
  };
}

// ---------------------------------------------------------------------------------------------
// wrk

const DONE_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(99)))
end
`;

function writeLua(dir) {
  const get = path.join(dir, 'get.lua');
  const post = path.join(dir, 'post.lua');
  writeFileSync(get, DONE_LUA);
  writeFileSync(
    post,
    `wrk.method = "POST"\nwrk.body = string.rep("a", 1048576)\nwrk.headers["Content-Type"] = "application/octet-stream"\n${DONE_LUA}`,
  );
  return { get, post };
}

async function wrk(url, script, seconds) {
  const rec = spawnTracked(
    'wrk',
    ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url],
    { name: 'wrk' },
  );
  await rec.exit;
  const line = rec.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk gave no summary for ${url}:\n${rec.stdout}${rec.stderr}`);
  return JSON.parse(line.slice(8));
}

// ---------------------------------------------------------------------------------------------

async function main() {
  stopAllOnSignals();
  ensureTools();
  if (!UWSGI_PARAMS) throw new Error('/etc/nginx/uwsgi_params missing');
  const info = versions();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-bench-'));
  const notes = [];
  try {
    const backends = {};
    // A backend that cannot start (e.g. a transport not built yet) is reported, not fatal.
    const tryStart = async (name, start) => {
      if (only && !only.test(name) && !(name === 'http-hello' && only.test('proxy'))) return;
      try {
        const b = await start();
        backends[b.name] = b;
      } catch (err) {
        notes.push(`${name} not measured: ${err.message.split('\n').slice(0, 3).join(' ')}`);
      }
    };
    await tryStart('net-responder', () =>
      startNodeBackend(dir, 'net-responder.mjs', 'net-responder'),
    );
    await tryStart('http-hello', () => startNodeBackend(dir, 'http-hello.mjs', 'http-hello'));
    await tryStart('uwsgi', () => startUwsgi(dir));
    for (const transport of ['net', 'fast']) {
      await tryStart(`container-${transport}`, () => startContainer(dir, transport));
    }
    const nginx = await startNginx({ dir, server: nginxServer(backends) });
    const base = `http://127.0.0.1:${nginx.port}`;
    const lua = writeLua(dir);

    const label = {
      'container-net': 'container (transport net)',
      'container-fast': 'container (transport fast)',
      'net-responder': 'minimal node:net uwsgi responder',
      proxy: 'proxy_pass (HTTP/1.0) -> node:http',
      proxyka: 'proxy_pass keepalive -> node:http',
      uwsgi: 'uWSGI (C) + Python WSGI, 1 process',
    };
    const cases = [];
    for (const sockKind of ['unix', 'tcp']) {
      for (const key of Object.keys(label)) {
        const backend = key.startsWith('proxy') ? backends['http-hello'] : backends[key];
        if (!backend) continue;
        cases.push({
          id: `hello ${key} ${sockKind}`,
          table: 'hello',
          key,
          sockKind,
          backend,
          url: `${base}/${key}-${sockKind}/hello`,
          script: lua.get,
        });
      }
    }
    for (const key of ['container-net', 'container-fast', 'uwsgi']) {
      if (!backends[key]) continue;
      cases.push({
        id: `post1m ${key} unix`,
        table: 'post 1 MiB',
        key,
        sockKind: 'unix',
        backend: backends[key],
        url: `${base}/${key}-unix/upload`,
        script: lua.post,
      });
      cases.push({
        id: `get1m ${key} unix`,
        table: 'response 1 MiB',
        key,
        sockKind: 'unix',
        backend: backends[key],
        url: `${base}/${key}-unix/big`,
        script: lua.get,
      });
    }
    let selected = cases.filter((c) => !only || only.test(c.id));

    // Readiness: every location answers 200 with the expected body through nginx (a GET: the
    // POST cases share their backend and location with a GET case).
    // A backend that never answers correctly is reported and its cases dropped.
    const broken = new Set();
    for (const c of selected) {
      if (broken.has(c.backend)) continue;
      const p = new URL(c.url).pathname;
      const bodyLength = c.table === 'response 1 MiB' ? 1 << 20 : 13;
      let last;
      try {
        await poll(
          async () => {
            last = await rawHttpGet(nginx.port, p);
            return last.status === 200 && last.body.length === bodyLength;
          },
          { what: `${c.id} to answer 200 with ${bodyLength} bytes through nginx` },
        );
      } catch (err) {
        broken.add(c.backend);
        notes.push(
          `${c.backend.name} not measured: ${err.message} (last: status ${last?.status}, ${last?.body.length} body bytes: ${JSON.stringify(last?.body.slice(0, 200))})`,
        );
      }
    }
    selected = selected.filter((c) => !broken.has(c.backend));
    console.error(`warming up ${selected.length} cases (${WARMUP} s each) ...`);
    for (const c of selected) await wrk(c.url, c.script, WARMUP);

    for (const c of selected) c.samples = [];
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < selected.length; k++) {
        const c = selected[(k + r) % selected.length];
        const b0 = cpuTicks(c.backend.pids);
        const n0 = cpuTicks([nginx.pid]);
        const w = await wrk(c.url, c.script, DURATION);
        const b1 = cpuTicks(c.backend.pids);
        const n1 = cpuTicks([nginx.pid]);
        const s = {
          rps: w.requests / (w.duration_us / 1e6),
          p99ms: w.p99_us / 1000,
          backendUs: (((b1 - b0) / CLK_TCK) * 1e6) / Math.max(1, w.requests),
          nginxUs: (((n1 - n0) / CLK_TCK) * 1e6) / Math.max(1, w.requests),
          errors: w.connect + w.read + w.write + w.timeout,
          non2xx: w.status,
          requests: w.requests,
          mibps: w.bytes / 2 ** 20 / (w.duration_us / 1e6),
        };
        c.samples.push(s);
        console.error(
          `round ${r + 1}/${ROUNDS} ${c.id.padEnd(28)} ${Math.round(s.rps)} req/s p99 ${s.p99ms.toFixed(2)} ms backend ${s.backendUs.toFixed(1)} µs/req`,
        );
      }
    }
    for (const c of selected) {
      const pick = (f) => median(c.samples.map(f));
      c.result = {
        rps: pick((s) => s.rps),
        p99ms: pick((s) => s.p99ms),
        backendUs: pick((s) => s.backendUs),
        nginxUs: pick((s) => s.nginxUs),
        mibps: pick((s) => s.mibps),
        errors: c.samples.reduce((a, s) => a + s.errors, 0),
        non2xx: c.samples.reduce((a, s) => a + s.non2xx, 0),
        requests: c.samples.reduce((a, s) => a + s.requests, 0),
      };
    }
    report(selected, label, info, notes, backends);
    if (args.json) {
      writeFileSync(
        args.json,
        JSON.stringify(
          {
            date: new Date().toISOString(),
            info,
            duration: DURATION,
            rounds: ROUNDS,
            notes,
            cases: selected.map(({ id, samples, result }) => ({ id, samples, result })),
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

function report(cases, label, info, notes, backends) {
  const f1 = (x) => x.toFixed(1);
  const f2 = (x) => x.toFixed(2);
  const ratio = (a, b) => (a && b ? `${f2(a / b)}x` : '-');
  console.log('# nginx benchmark\n');
  console.log(
    `${new Date().toISOString()}; node ${info.node}, ${info.nginx} (1 worker), ${info.uwsgi.split('\n')[0]}, ${info.wrk}; kernel ${info.kernel}; ${info.cpus}`,
  );
  console.log(
    `\`wrk -t1 -c${CONNECTIONS} -d${DURATION}s\`, ${ROUNDS} interleaved round(s), median; CPU from /proc/<pid>/stat (utime+stime, ${1000 / CLK_TCK} ms ticks) / requests\n`,
  );
  const hello = cases.filter((c) => c.table === 'hello');
  const find = (key, sockKind) =>
    hello.find((c) => c.key === key && c.sockKind === sockKind)?.result;
  const rows = hello.map((c) => {
    const r = c.result;
    const floor = find('net-responder', c.sockKind);
    const proxy = find('proxy', c.sockKind);
    return [
      label[c.key],
      c.sockKind,
      Math.round(r.rps).toLocaleString('en-US'),
      ratio(r.rps, floor?.rps),
      ratio(r.rps, proxy?.rps),
      f2(r.p99ms),
      f1(r.backendUs),
      ratio(r.backendUs, floor?.backendUs),
      f1(r.nginxUs),
      `${r.errors}/${r.non2xx}`,
    ];
  });
  console.log('## Hello (13-byte body)\n');
  console.log(
    markdownTable(
      [
        'backend',
        'socket',
        'req/s',
        'req/s vs net responder',
        'req/s vs proxy_pass',
        'p99 ms',
        'backend CPU µs/req',
        'CPU vs net responder',
        'nginx CPU µs/req',
        'sock err / non-2xx',
      ],
      rows,
      ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  const big = cases.filter((c) => c.table !== 'hello');
  if (big.length > 0) {
    console.log(
      '\n## 1 MiB request body (POST, read to the end) and 1 MiB response, unix socket\n',
    );
    const uw = (table) => big.find((c) => c.table === table && c.key === 'uwsgi')?.result;
    console.log(
      markdownTable(
        [
          'case',
          'backend',
          'req/s',
          'vs uWSGI',
          'body MiB/s',
          'p99 ms',
          'backend CPU µs/req',
          'sock err / non-2xx',
        ],
        big.map((c) => [
          c.table,
          label[c.key],
          Math.round(c.result.rps).toLocaleString('en-US'),
          ratio(c.result.rps, uw(c.table)?.rps),
          f1(c.table === 'post 1 MiB' ? c.result.rps : c.result.mibps),
          f2(c.result.p99ms),
          f1(c.result.backendUs),
          `${c.result.errors}/${c.result.non2xx}`,
        ]),
        ['l', 'l', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
  }
  const ready = backends['container-fast']?.ready;
  if (ready && 'transport' in ready)
    notes.push(`container-fast ready line reports transport ${ready.transport}`);
  for (const n of notes) console.log(`\nNote: ${n}`);
  const bad = cases.filter((c) => c.result.errors > 0 || c.result.non2xx > 0);
  if (bad.length > 0) {
    console.log(`\nErrors in: ${bad.map((c) => c.id).join(', ')}`);
    process.exitCode = 1;
  }
}

await main();
