#!/usr/bin/env node
// User-space instructions per request, counted by valgrind's callgrind: repeatable on a shared,
// noisy machine where CPU time per request swings by 10-30% from run to run (the instruction
// count of the same build and input differs by well under 1%). It counts what the process that
// serves the requests executes outside the kernel (JS, V8, GC, libuv, libc, all its threads), not
// syscall or scheduler time, so it is the figure to compare for changes to the container's own
// code; bench.mjs behind real nginx stays the one that reports CPU time and req/s.
//
// Each backend runs under `valgrind --tool=callgrind --instr-atstart=no`; a client in this
// process sends `--warmup` requests (uninstrumented, so JIT tiers settle), then instrumentation
// is switched on for exactly `--requests` requests (`callgrind_control -i on PID`, then `-d PID`
// dumps the window), with `--concurrency` connections at a time, one request per connection as
// nginx does. Every request is nginx's captured small GET
// (packages/codec/test/fixtures/nginx-get-small.bin); the backend answers it with the 13-byte
// hello.
//
// Which process is counted. A responder is the process valgrind starts. A container mode runs
// `uwsgi-ts run` with `workers: 1` (the default): since the master/worker split the CLI process
// is the master, which only binds the socket and forks the worker that accepts and serves
// (docs/supervisor.md). So valgrind runs with `--trace-children=yes` (the master forks the worker
// with `child_process.fork`, i.e. an execve of the same node with the master's execArgv, which
// valgrind follows; the master forks nothing else) and `--callgrind-out-file=MODE.cg.%p` (one
// file per pid). The CLI's stdout goes to DIR/MODE.log (a regular file: the logger batches as it
// does for /dev/null) and the master's `"msg":"ready"` record names the worker:
// `workers: [pid]`. A single-process CLI (121e641 and earlier, e.g. a --base-cli build) logs
// `"msg":"ready"` without `workers`: its `pid` is the CLI itself. That pid alone gets `-i on`
// and `-d`, and only its dumps (MODE.cg.PID.1-<thread>) are read; the master stays
// uninstrumented (it runs under valgrind too, idle but slower). Afterwards the master and then
// the worker are SIGKILLed (no exit dump).
//
// `--separate-threads=yes`: the table shows the main thread beside the total. A worker's other
// threads are V8's GC helpers and its watchdog thread (docs/supervisor.md, Harakiri), whose
// 100 ms timer costs per second, not per request: under callgrind a window of 8,000 requests
// lasts several seconds, so it adds ~250-400 instructions/request here, far more than at native
// speed. GC is counted too: the number of scavenges in the window follows the young
// generation's size, which V8 grows from what survives while the process boots and warms up.
//
// Modes: the container ones of bench.mjs (`container`, `container-nolog`, `container-health`,
// `container-net`, `container-tcp` (loopback TCP), `base-container...` with --base-cli) and the responders of responder.mjs
// (`fast`, `fast-http`, `net`, `net-http`, `net-raw`). `--cli` / `--base-cli` take a CLI file or
// a checkout's root (a clean worktree of HEAD when others edit this one); with both, each mode
// that has its `base-` pair gets the ratio.
//
//   npx tsc -b && node bench/fast/instructions.mjs [--requests 8000] [--modes container,fast-http]
//   node bench/fast/instructions.mjs --cli /tmp/instr-head --base-cli /tmp/instr-base \
//     --modes container,base-container,container-nolog,base-container-nolog
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { encodeRaw, FIXTURES_DIR, walkPacket } from '../lib/packets.mjs';
import { poll } from '../lib/proc.mjs';
import { CLI, containerCli, resolveCli, writeContainerConfig } from './container-mode.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '8000' },
    warmup: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '4' },
    modes: { type: 'string', default: 'fast,fast-http,container-nolog,container' },
    node: { type: 'string', default: process.execPath },
    // The CLI of the `container...` modes (its file or its checkout's root; default this
    // checkout's) and of the `base-container...` modes.
    cli: { type: 'string' },
    'base-cli': { type: 'string' },
    // Keep the callgrind dumps here (for callgrind_annotate) instead of deleting them.
    keep: { type: 'string' },
    // Extra node flags for the backends, space-separated (`--perf-basic-prof` writes
    // /tmp/perf-<pid>.map, which names the JIT addresses of a kept dump; a master passes its
    // flags to its workers).
    'node-args': { type: 'string', default: '' },
    // POST a body of this many bytes (the fixture's vars with REQUEST_METHOD POST and
    // CONTENT_LENGTH); the hello app reads it to the end. 0: the fixture's GET.
    body: { type: 'string', default: '0' },
    // Extra valgrind flags, space-separated.
    'valgrind-args': { type: 'string', default: '' },
  },
});
const REQUESTS = Number(args.requests);
const WARMUP = Number(args.warmup);
const CONCURRENCY = Number(args.concurrency);
const PACKET = withBody(
  readFileSync(path.join(FIXTURES_DIR, 'nginx-get-small.bin')),
  Number(args.body),
);

/** The fixture as a POST of `bytes` bytes ('a's) when `bytes` > 0. */
function withBody(fixture, bytes) {
  if (bytes === 0) return fixture;
  const { vars, modifier1, modifier2 } = walkPacket(fixture);
  const set = new Map(vars);
  set.set('REQUEST_METHOD', 'POST');
  set.set('CONTENT_LENGTH', String(bytes));
  set.set('CONTENT_TYPE', 'application/octet-stream');
  return Buffer.concat([encodeRaw([...set], modifier1, modifier2), Buffer.alloc(bytes, 0x61)]);
}
const OWN_CLI = resolveCli(args.cli, '--cli') ?? CLI;
const BASE_CLI = resolveCli(args['base-cli'], '--base-cli');

function backendArgs(dir, mode, sock) {
  if (!mode.includes('container')) return [path.join(HERE, 'responder.mjs'), mode, sock];
  // The fixture asks for /hello: the health mode answers that path itself. `-tcp` modes listen
  // on a loopback port the ready record names.
  const address = mode.includes('-tcp') ? '127.0.0.1:0' : sock;
  const config = writeContainerConfig(dir, mode, { address, healthPath: '/hello' });
  const cli = containerCli(mode, BASE_CLI, OWN_CLI);
  return [cli, 'run', config];
}

/**
 * One request on a new connection; resolves with the response bytes once the server closes.
 * `to`: a unix socket path, or `{ host, port }` for TCP.
 */
function request(to) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    const c = net.createConnection(to, () => c.write(PACKET));
    c.on('data', (d) => chunks.push(d));
    c.on('error', reject);
    c.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

async function load(to, total) {
  let next = 0;
  const worker = async () => {
    while (next < total) {
      next++;
      const res = await request(to);
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

/** The `"msg":"ready"` record of the CLI's log, or undefined while there is none. */
function readyRecord(logFile) {
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('"msg":"ready"')) continue;
    try {
      return JSON.parse(line);
    } catch {
      // A line still being written.
    }
  }
  return undefined;
}

/**
 * The process that serves a container mode (header): the master's only worker, or the CLI
 * itself when it is a single process (no `workers` in its ready record).
 */
function servingPid(mode, ready, cliPid) {
  if (ready.workers === undefined) {
    if (ready.pid !== cliPid) throw new Error(`${mode}: ready record of pid ${ready.pid}`);
    return cliPid;
  }
  if (ready.workers.length !== 1) {
    throw new Error(`${mode}: ${ready.workers.length} workers (want 1): ${JSON.stringify(ready)}`);
  }
  return ready.workers[0];
}

function gone(pid) {
  try {
    // A zombie (reparented to a pid 1 that does not reap) counts as gone.
    return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'latin1'));
  } catch {
    return true;
  }
}

async function measure(dir, mode) {
  const sock = path.join(dir, `${mode}.sock`);
  const out = path.join(dir, `${mode}.cg`);
  const logFile = path.join(dir, `${mode}.log`);
  // Earlier output of this mode (a --keep directory used again) would be summed too.
  for (const f of readdirSync(dir)) {
    if (f.startsWith(`${mode}.cg.`) || f === `${mode}.log`) rmSync(path.join(dir, f));
  }
  const logFd = openSync(logFile, 'w');
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      '--instr-atstart=no',
      // The master's worker runs under callgrind too (the master forks nothing else).
      '--trace-children=yes',
      `--callgrind-out-file=${out}.%p`,
      // A dump per thread (MODE.cg.PID.1-01 is the main thread): all are summed, the main
      // thread is also shown alone (the others: V8's GC helpers, a worker's watchdog thread).
      '--separate-threads=yes',
      ...args['valgrind-args'].split(' ').filter((a) => a !== ''),
      args.node,
      // TurboFan on the main thread: under valgrind a background compile lands at a different
      // request each run, and the counts then differ by 10-30% between identical runs.
      '--no-concurrent-recompilation',
      ...args['node-args'].split(' ').filter((a) => a !== ''),
      ...backendArgs(dir, mode, sock),
    ],
    { cwd: dir, stdio: ['ignore', logFd, 'pipe'] },
  );
  closeSync(logFd);
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  let pid = child.pid;
  let to = sock;
  try {
    if (mode.includes('-tcp')) {
      // The port is known from the ready record only (the master binds `127.0.0.1:0`).
      const ready = await poll(
        () => {
          if (exited) throw new Error(`${mode} exited: ${stderr}`);
          return readyRecord(logFile);
        },
        { what: `${mode} ready record`, tries: 600, intervalMs: 200 },
      );
      const address = String(ready.listeners[0].address);
      const colon = address.lastIndexOf(':');
      to = { host: address.slice(0, colon), port: Number(address.slice(colon + 1)) };
    }
    await poll(
      async () => {
        if (exited) throw new Error(`${mode} exited: ${stderr}`);
        try {
          return (await request(to)).length > 0;
        } catch {
          return false;
        }
      },
      { what: mode, tries: 600, intervalMs: 200 },
    );
    if (mode.includes('container')) {
      // A worker accepts before its master logs ready (once every worker is).
      const ready = await poll(() => readyRecord(logFile), {
        what: `${mode} ready record`,
        tries: 300,
        intervalMs: 100,
      });
      pid = servingPid(mode, ready, child.pid);
    }
    await load(to, WARMUP);
    control(pid, '-i', 'on');
    await load(to, REQUESTS);
    control(pid, '-d');
    control(pid, '-i', 'off');
  } finally {
    // The master first: a worker killed first would be replaced at once.
    child.kill('SIGKILL');
    await new Promise((resolve) => (exited ? resolve() : child.on('exit', resolve)));
    if (pid !== child.pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
      await poll(() => gone(pid), { what: `worker ${pid} exit`, tries: 100, intervalMs: 100 });
    }
  }
  // The dump of the instrumented window: the files `-d` wrote (MODE.cg.PID.1-<thread>), their
  // `summary:` lines.
  let total = 0;
  let main = 0;
  for (const f of readdirSync(dir).filter((f) => f.startsWith(`${mode}.cg.${pid}.`))) {
    const m = /^summary:\s*(\d+)/m.exec(readFileSync(path.join(dir, f), 'utf8'));
    if (m === null) continue;
    total += Number(m[1]);
    if (f.endsWith('-01')) main += Number(m[1]);
  }
  if (total === 0) throw new Error(`${mode}: no dump of pid ${pid} in ${dir}`);
  return { perRequest: total / REQUESTS, mainPerRequest: main / REQUESTS, pid };
}

async function main() {
  const dir = args.keep ?? mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-instr-'));
  mkdirSync(dir, { recursive: true });
  /** mode -> { perRequest, mainPerRequest } */
  const rows = new Map();
  try {
    for (const mode of args.modes.split(',')) {
      const { perRequest, mainPerRequest, pid } = await measure(dir, mode);
      rows.set(mode, { perRequest, mainPerRequest });
      process.stderr.write(
        `${mode}: ${Math.round(perRequest)} instructions/request, main thread ` +
          `${Math.round(mainPerRequest)} (pid ${pid})\n`,
      );
    }
  } finally {
    if (args.keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
  const [firstMode, first] = [...rows][0] ?? ['', { perRequest: 1 }];
  const paired = [...rows.keys()].some((mode) => rows.has(`base-${mode}`));
  console.log(
    `\nnode ${spawnSync(args.node, ['-v'], { encoding: 'utf8' }).stdout.trim()}, callgrind, ` +
      `${REQUESTS} requests after ${WARMUP} warm-up, ${CONCURRENCY} connections at a time` +
      `\ncli: ${describeCli(OWN_CLI)}` +
      (BASE_CLI === undefined ? '' : `\nbase-cli: ${describeCli(BASE_CLI)}`) +
      '\n',
  );
  const fmt = (n) => Math.round(n).toLocaleString('en-US');
  console.log(
    `| backend | instructions/request | main thread | other threads | vs ${firstMode} |` +
      (paired ? ' vs base | main thread vs base |' : ''),
  );
  console.log(`|---|---:|---:|---:|---:|${paired ? '---:|---:|' : ''}`);
  for (const [mode, { perRequest: n, mainPerRequest: m }] of rows) {
    // A mode measured with its base-... pair: the ratios to the base build's figures.
    const base = rows.get(`base-${mode}`);
    const vsBase =
      base === undefined
        ? ' | |'
        : ` ${(n / base.perRequest).toFixed(4)}x | ${(m / base.mainPerRequest).toFixed(4)}x |`;
    console.log(
      `| ${mode} | ${fmt(n)} | ${fmt(m)} | ${fmt(n - m)} | ${(n / first.perRequest).toFixed(2)}x |` +
        (paired ? vsBase : ''),
    );
  }
}

/** A CLI's checkout as `path (commit subject)`, for the output's header. */
function describeCli(cli) {
  const r = spawnSync('git', ['-C', path.dirname(cli), 'log', '-1', '--format=%h %s'], {
    encoding: 'utf8',
  });
  const commit = r.status === 0 ? r.stdout.trim().slice(0, 72) : 'not a git checkout';
  return `${cli} (${commit})`;
}

await main();
