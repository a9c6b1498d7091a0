#!/usr/bin/env node
// User-space instructions per request, counted by valgrind's callgrind: repeatable on a shared,
// noisy machine where CPU time per request swings by 10-30% from run to run (the instruction
// count of the same build and input differs by well under 1%). It counts what the backend
// process executes outside the kernel (JS, V8, GC, libuv, libc), not syscall or scheduler time,
// so it is the figure to compare for changes to the container's own code; bench.mjs behind real
// nginx stays the one that reports CPU time and req/s.
//
// Each backend runs under `valgrind --tool=callgrind --instr-atstart=no`; a client in this
// process sends `--warmup` requests (uninstrumented, so JIT tiers settle), then instrumentation
// is switched on for exactly `--requests` requests (`callgrind_control -i on`, then a dump), with
// `--concurrency` connections at a time, one request per connection as nginx does. Every request
// is nginx's captured small GET (packages/codec/test/fixtures/nginx-get-small.bin); the backend
// answers it with the 13-byte hello.
//
// Modes: the container ones of bench.mjs (`container`, `container-nolog`, `container-health`,
// `container-net`, `base-container...` with --base-cli) and the responders of responder.mjs
// (`fast`, `fast-http`, `net`, `net-http`, `net-raw`).
//
//   npx tsc -b && node bench/fast/instructions.mjs [--requests 8000] [--modes container,fast-http]
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FIXTURES_DIR } from '../lib/packets.mjs';
import { poll } from '../lib/proc.mjs';
import { containerCli, writeContainerConfig } from './container-mode.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '8000' },
    warmup: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '4' },
    modes: { type: 'string', default: 'fast,fast-http,container-nolog,container' },
    node: { type: 'string', default: process.execPath },
    'base-cli': { type: 'string' },
    // Keep the callgrind dumps here (for callgrind_annotate) instead of deleting them.
    keep: { type: 'string' },
    // Extra node flags for the backends, space-separated (`--perf-basic-prof` writes
    // /tmp/perf-<pid>.map, which names the JIT addresses of a kept dump).
    'node-args': { type: 'string', default: '' },
  },
});
const REQUESTS = Number(args.requests);
const WARMUP = Number(args.warmup);
const CONCURRENCY = Number(args.concurrency);
const PACKET = readFileSync(path.join(FIXTURES_DIR, 'nginx-get-small.bin'));

function backendArgs(dir, mode, sock) {
  if (!mode.includes('container')) return [path.join(HERE, 'responder.mjs'), mode, sock];
  // The fixture asks for /hello: the health mode answers that path itself.
  const config = writeContainerConfig(dir, mode, { address: sock, healthPath: '/hello' });
  const cli = containerCli(mode, args['base-cli']);
  return [cli, 'run', config];
}

/** One request on a new connection; resolves with the response bytes once the server closes. */
function request(sock) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const c = net.createConnection(sock, () => c.write(PACKET));
    c.on('data', (d) => chunks.push(d));
    c.on('error', reject);
    c.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

async function load(sock, total) {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next++;
      const res = await request(sock);
      if (!res.toString('latin1').startsWith('HTTP/1.1 200')) {
        throw new Error(`unexpected response: ${res.toString('latin1').slice(0, 80)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

function control(pid, ...flags) {
  const r = spawnSync('callgrind_control', [...flags, String(pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`callgrind_control ${flags.join(' ')}: ${r.stderr}`);
}

async function measure(dir, mode) {
  const sock = path.join(dir, `${mode}.sock`);
  const out = path.join(dir, `${mode}.cg`);
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      `--callgrind-out-file=${out}`,
      args.node,
      // TurboFan on the main thread: under valgrind a background compile lands at a different
      // request each run, and the counts then differ by 10-30% between identical runs.
      '--no-concurrent-recompilation',
      ...args['node-args'].split(' ').filter((a) => a !== ''),
      ...backendArgs(dir, mode, sock),
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  try {
    await poll(
      async () => {
        if (exited) throw new Error(`${mode} exited: ${stderr}`);
        try {
          return (await request(sock)).length > 0;
        } catch {
          return false;
        }
      },
      { what: mode, tries: 600, intervalMs: 200 },
    );
    await load(sock, WARMUP);
    control(child.pid, '-i', 'on');
    await load(sock, REQUESTS);
    control(child.pid, '-d');
    control(child.pid, '-i', 'off');
  } finally {
    child.kill('SIGKILL');
    await new Promise((resolve) => (exited ? resolve() : child.on('exit', resolve)));
  }
  // The dump of the instrumented window: the file `-d` wrote (out.<n>), its `summary:` line.
  let total = 0;
  for (const f of readdirSync(dir).filter((f) => f.startsWith(`${mode}.cg`))) {
    const m = /^summary:\s*(\d+)/m.exec(readFileSync(path.join(dir, f), 'utf8'));
    if (m) total += Number(m[1]);
  }
  return total / REQUESTS;
}

async function main() {
  const dir = args.keep ?? mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-instr-'));
  const rows = [];
  try {
    for (const mode of args.modes.split(',')) {
      const perRequest = await measure(dir, mode);
      rows.push([mode, perRequest]);
      process.stderr.write(`${mode}: ${Math.round(perRequest)} instructions/request\n`);
    }
  } finally {
    if (args.keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const base = rows[0]?.[1] ?? 1;
  console.log(
    `\nnode ${spawnSync(args.node, ['-v'], { encoding: 'utf8' }).stdout.trim()}, callgrind, ` +
      `${REQUESTS} requests after ${WARMUP} warm-up, ${CONCURRENCY} connections at a time\n`,
  );
  console.log(`| backend | instructions/request | vs ${rows[0]?.[0]} |`);
  console.log('|---|---:|---:|');
  for (const [mode, n] of rows) {
    console.log(
      `| ${mode} | ${Math.round(n).toLocaleString('en-US')} | ${(n / base).toFixed(2)}x |`,
    );
  }
}

await main();
