#!/usr/bin/env node
// Master and workers behind nginx (docs/supervisor.md): what the process model costs and how it
// behaves, all in one run. One private nginx (1 worker process, `uwsgi_pass` on unix sockets),
// `wrk -t1 -c32`, the 13-byte hello of bench/backends/hello-app.mjs, `transport: fast`, JSON
// logs to a file per backend (as under a process manager). Reports:
//
// 1. `run` with `workers: 1` vs `workers: 2`: req/s, backend CPU µs per request summed over the
//    master and its workers (utime+stime from /proc/<pid>/stat around each wrk run, split into
//    master / workers' main threads / workers' other threads), and how the requests spread over
//    the workers (per-worker `requests` from the control socket's `{"cmd":"stats"}`).
// 2. Single-worker CPU per request of this checkout's `run` vs the single-process `run` of
//    another build (`--base-cli`, e.g. commit 121e641 built in a worktree), access log off and
//    on, as ratios within the run (of the medians, and the median of the per-round ratios).
//    When the worker costs more than 2% over the base by the per-round figure (`--profile
//    auto`; `on`: always), that pair is run again under `node --cpu-prof` (the master passes
//    its execArgv to the workers) and the self time per request of each function and area in
//    the measured window is compared.
// 3. Reload: time from SIGHUP to the new generation serving (the master's `reloaded` record and
//    its `ms`; from the client side, the first response carrying a new worker's pid in
//    `X-Worker-Pid`, from bench/backends/hello-pid-app.mjs, seen by a probe that sends one
//    request at a time through nginx), idle and under load; and wrk's latency percentiles in a
//    window with a SIGHUP every `--reload-every` s vs the same window without reloads.
//
// Rounds interleave the cases so a noisy moment on the shared machine hits all of them; medians.
//
//   npx tsc -b && node bench/supervisor-bench.mjs [--duration 10] [--rounds 3] [--quick]
//       [--base-cli /tmp/uwsgi-base] [--profile auto|on|off] [--reload-every 2]
//       [--reload-workers 2] [--reload on|off] [--cases base,w1,w2,base-log,w1-log]
//       [--json FILE] [--keep]
//
// A base build (the single-process `run` before the master, commit 121e641):
//   git worktree add /tmp/uwsgi-base 121e641 && cd /tmp/uwsgi-base \
//     && npx -y pnpm@12.4.2 install --frozen-lockfile && npx tsc -b
//   ... && git worktree remove --force /tmp/uwsgi-base
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { sendControl } from '@uwsgi-ts/container';
import { profileSelfTime, profilesOf } from './lib/cpuprofile.mjs';
import { markdownTable, median } from './lib/harness.mjs';
import { startNginxForBackends, UWSGI_PARAMS } from './lib/nginx.mjs';
import {
  CLK_TCK,
  cpuTicks,
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
  hostInfo,
  nginxVersion,
  OWN_CLI,
  parseBenchArgs,
  resolveCli,
  wrkVersion,
} from './lib/run.mjs';
import { mainThreadSwitches, processAndMainThreadTicks } from './lib/threads.mjs';
import { runWrk, writeWrkScript } from './lib/wrk.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const HELLO_APP = path.join(HERE, 'backends/hello-app.mjs');
const PID_APP = path.join(HERE, 'backends/hello-pid-app.mjs');

const {
  args,
  duration: DURATION,
  rounds: ROUNDS,
  warmup: WARMUP,
} = parseBenchArgs({
  // The build measured as "today": default this checkout; another build's CLI or checkout
  // root (e.g. a clean worktree of HEAD while others edit this one).
  cli: { type: 'string' },
  // Another build's CLI, or the root of its checkout (built with `npx tsc -b`).
  'base-cli': { type: 'string' },
  // auto: profile when `workers: 1` costs > PROFILE_THRESHOLD more CPU/request than the base.
  profile: { type: 'string', default: 'auto' },
  'reload-every': { type: 'string', default: '2' },
  'reload-workers': { type: 'string', default: '2' },
  // off: parts 1 and 2 only (e.g. many rounds of the CPU comparison).
  reload: { type: 'string', default: 'on' },
  cases: { type: 'string', default: 'base,w1,w2,base-log,w1-log' },
});
const CONNECTIONS = 32;
const RELOAD_EVERY = Number(args['reload-every']);
// Long enough for two reloads that each finish inside the window.
const WINDOW = Math.max(DURATION, 2 * RELOAD_EVERY + 1);
const IDLE_RELOADS = args.quick ? 1 : 3;
const PROFILE_THRESHOLD = 1.02;
/** Sampling interval of the profiles: 1 ms (the default) leaves few samples per function. */
const PROFILE_INTERVAL_US = 250;
if (!['auto', 'on', 'off'].includes(args.profile)) throw new Error('--profile auto|on|off');
if (!['on', 'off'].includes(args.reload)) throw new Error('--reload on|off');
const RELOAD = args.reload === 'on';

const now = () => performance.timeOrigin + performance.now();
const f1 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));
const f2 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(2));
const fInt = (x) => Math.round(x).toLocaleString('en-US');
const ratio = (a, b) => (a && b ? `${f2(a / b)}x` : '-');
const msRange = (xs) =>
  xs.length === 0 ? '-' : `${fInt(median(xs))} (${fInt(Math.min(...xs))}-${fInt(Math.max(...xs))})`;

/** `--cli` / `--base-cli`: a CLI file or the root of its checkout, checked to be built. */
const cliOption = (name) => resolveCli(args[name], `--${name}`);

const CLI = cliOption('cli') ?? OWN_CLI;

function gitDescribe(cli) {
  try {
    return execFileSync('git', ['-C', path.dirname(cli), 'log', '-1', '--format=%h %s'], {
      encoding: 'utf8',
    })
      .trim()
      .slice(0, 80);
  } catch {
    return 'unknown commit';
  }
}

function versions() {
  return {
    node: process.version,
    nginx: nginxVersion(),
    wrk: wrkVersion(),
    ...hostInfo(),
    head: gitDescribe(CLI),
  };
}

// ---------------------------------------------------------------------------------------------
// Backends: `uwsgi-ts run` on a generated config, stdout (JSON lines) to a file.

/**
 * @param {{ cli: string, workers?: number, control?: boolean, app: string, access: boolean,
 *   nodeArgs?: string[], logSuffix?: string }} spec `workers` / `control` undefined: the keys
 *   are left out (the base build knows neither).
 */
async function startRun(dir, name, spec) {
  const sock = path.join(dir, `${name}.sock`);
  const ctl = spec.control ? path.join(dir, `${name}.ctl`) : undefined;
  const config = path.join(dir, `${name}.yaml`);
  writeFileSync(
    config,
    [
      'listeners:',
      '  - protocol: uwsgi',
      `    address: ${sock}`,
      'mounts:',
      '  - path: /',
      `    app: ${spec.app}`,
      `log: { access: ${spec.access}, format: json, level: info }`,
      'transport: fast',
      ...(spec.workers === undefined ? [] : [`workers: ${spec.workers}`]),
      ...(ctl === undefined ? [] : [`control: ${ctl}`]),
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, `${name}${spec.logSuffix ?? ''}.log`);
  const fd = openSync(logFile, 'w');
  const rec = spawnTracked(process.execPath, [...(spec.nodeArgs ?? []), spec.cli, 'run', config], {
    name,
    cwd: dir,
    stdio: ['ignore', fd, 'pipe'],
  });
  closeSync(fd);
  const ready = await poll(
    () => {
      if (rec.exited) throw new Error(`${name} exited: ${rec.stderr}${tail(logFile)}`);
      return logRecords(logFile).find((r) => r.msg === 'ready');
    },
    { what: `${name} ready`, tries: 600 },
  );
  if (ready.transport !== undefined && ready.transport !== 'fast') {
    throw new Error(`${name} runs transport ${ready.transport}`);
  }
  return { name, spec, rec, pid: rec.child.pid, sock, ctl, logFile, ready };
}

function tail(file) {
  try {
    return readFileSync(file, 'utf8').slice(-2000);
  } catch {
    return '';
  }
}

/** pid -> requests served so far, per worker of the serving generation (control stats). */
async function workerRequests(b) {
  if (b.ctl === undefined) return undefined;
  const answer = await sendControl(b.ctl, 'stats', 5000);
  if (!answer.ok) throw new Error(`${b.name}: stats failed: ${answer.error}`);
  return new Map(answer.stats.workers.map((w) => [w.pid, w.stats?.requests ?? w.requests]));
}

/** CPU ticks of the master (or the single process) and of each of its children. */
function cpuSnapshot(b) {
  const children = processTree(b.pid).filter((p) => p !== b.pid);
  const serving = children.length === 0 ? [b.pid] : children;
  return {
    tree: cpuTicks([b.pid]),
    self: processAndMainThreadTicks(b.pid),
    children: new Map(children.map((p) => [p, processAndMainThreadTicks(p)])),
    switches: new Map(serving.map((p) => [p, mainThreadSwitches(p)])),
  };
}

/**
 * µs per request between two snapshots: `total` (the whole tree), `master` (the master's own
 * process; for a single-process build, undefined), `main` / `other` (the serving processes'
 * main threads / all their other threads).
 */
function cpuPerRequest(b0, b1, requests) {
  const us = (ticks) => ((ticks / CLK_TCK) * 1e6) / Math.max(1, requests);
  const total = us(b1.tree - b0.tree);
  let voluntary = 0;
  let nonvoluntary = 0;
  for (const [pid, s1] of b1.switches) {
    const s0 = b0.switches.get(pid);
    if (s0 === undefined || s1 === undefined) continue;
    voluntary += s1.voluntary - s0.voluntary;
    nonvoluntary += s1.nonvoluntary - s0.nonvoluntary;
  }
  const switches = {
    wakeups: voluntary / Math.max(1, requests),
    preempted: nonvoluntary / Math.max(1, requests),
  };
  if (b1.children.size === 0) {
    const main = b1.self.main - b0.self.main;
    return {
      total,
      master: undefined,
      main: us(main),
      other: us(b1.self.process - b0.self.process - main),
      ...switches,
    };
  }
  let main = 0;
  let other = 0;
  for (const [pid, t1] of b1.children) {
    const t0 = b0.children.get(pid) ?? { process: 0, main: 0 };
    if (t1 === undefined) continue;
    main += t1.main - t0.main;
    other += t1.process - t1.main - (t0.process - t0.main);
  }
  return {
    total,
    master: us(b1.self.process - b0.self.process),
    main: us(main),
    other: us(other),
    ...switches,
  };
}

// ---------------------------------------------------------------------------------------------
// Part 1 and 2: throughput, CPU and spread

async function measureCase(c, nginx, script, seconds) {
  const s0 = await workerRequests(c.backend);
  const b0 = cpuSnapshot(c.backend);
  const n0 = cpuTicks([nginx.pid]);
  const w = await runWrk(c.url, script, { seconds, connections: CONNECTIONS });
  const b1 = cpuSnapshot(c.backend);
  const n1 = cpuTicks([nginx.pid]);
  const s1 = await workerRequests(c.backend);
  const spread = [];
  if (s0 !== undefined && s1 !== undefined) {
    for (const [pid, n] of s1) spread.push({ pid, requests: n - (s0.get(pid) ?? 0) });
  }
  return {
    rps: w.rps,
    p99ms: w.p99_us / 1000,
    requests: w.requests,
    cpu: cpuPerRequest(b0, b1, w.requests),
    nginxUs: (((n1 - n0) / CLK_TCK) * 1e6) / Math.max(1, w.requests),
    errors: w.errors,
    non2xx: w.status,
    spread,
  };
}

// ---------------------------------------------------------------------------------------------
// Part 3: reloads

/** One GET through nginx on a new connection; the status and the `X-Worker-Pid` header. */
async function probeGet(port, urlPath) {
  const { status, head } = await rawHttpGet(port, urlPath);
  return { status, pid: Number(/\r\nX-Worker-Pid: (\d+)/i.exec(head)?.[1] ?? 0) };
}

/** Sends one request at a time (1 ms apart) until stopped; every answer with its time. */
function startProbe(port, urlPath) {
  const samples = [];
  let running = true;
  let failures = 0;
  const loop = (async () => {
    while (running) {
      try {
        const r = await probeGet(port, urlPath);
        samples.push({ t: now(), pid: r.pid, status: r.status });
        if (r.status !== 200) failures++;
      } catch {
        failures++;
      }
      await delay(1);
    }
  })();
  return {
    samples,
    async stop() {
      running = false;
      await loop;
      return { samples, failures };
    },
  };
}

/** The master's own records (role master), in order. */
function masterRecords(b) {
  return logRecords(b.logFile).filter((r) => r.role === 'master');
}

/**
 * Waits until a reload started after the last SIGHUP (`lastSent`, epoch ms), no reload runs and
 * every worker of an older generation has exited, twice in a row 300 ms apart (a coalesced
 * reload starts right after the one before it).
 */
async function waitSettled(b, lastSent) {
  let calm = 0;
  await poll(
    () => {
      const rs = masterRecords(b);
      const started = rs.filter((r) => r.msg === 'reloading').length;
      const ended = rs.filter(
        (r) => r.msg === 'reloaded' || String(r.msg).startsWith('reload failed'),
      ).length;
      const current = rs.filter((r) => r.msg === 'reloaded').at(-1)?.generation ?? 1;
      const exited = new Set(rs.filter((r) => r.msg === 'worker exited').map((r) => r.workerPid));
      const oldAlive = rs.filter(
        (r) => r.msg === 'worker ready' && r.generation < current && !exited.has(r.workerPid),
      );
      const lastStart = rs.filter((r) => r.msg === 'reloading').at(-1)?.time ?? 0;
      const settled =
        (lastSent === undefined || lastStart >= Math.floor(lastSent) - 1) &&
        started === ended &&
        oldAlive.length === 0;
      calm = settled ? calm + 1 : 0;
      return calm >= 2;
    },
    { tries: 200, intervalMs: 300, what: `${b.name} to settle after reloads` },
  );
}

/**
 * Matches each SIGHUP (epoch ms) to the reload that served it and measures: the master's `ms`,
 * SIGHUP -> `reloaded` record, SIGHUP -> first probe answer from a worker of the new generation,
 * SIGHUP -> last answer from the previous generation, SIGHUP -> previous generation exited.
 */
function analyseReloads(b, sighups, samples) {
  const rs = masterRecords(b);
  const pidsByGeneration = new Map();
  const exitAt = new Map();
  for (const r of rs) {
    if (r.msg === 'worker ready') {
      const list = pidsByGeneration.get(r.generation) ?? [];
      list.push(r.workerPid);
      pidsByGeneration.set(r.generation, list);
    }
    if (r.msg === 'worker exited') exitAt.set(r.workerPid, r.time);
  }
  // Serialised reloads: each `reloading` is ended by the next `reloaded` / `reload failed`.
  const reloads = [];
  let open;
  for (const r of rs) {
    if (r.msg === 'reloading') open = { start: r.time };
    else if (open !== undefined && (r.msg === 'reloaded' || String(r.msg).startsWith('reload f'))) {
      reloads.push({
        ...open,
        end: r.time,
        ok: r.msg === 'reloaded',
        ms: r.ms,
        generation: r.generation,
      });
      open = undefined;
    }
  }
  const results = [];
  const used = new Set();
  for (const t of sighups) {
    // The first reload that started at or after this SIGHUP (ms clock of the master's records).
    const index = reloads.findIndex((r) => r.start >= Math.floor(t) - 1);
    if (index < 0) {
      results.push({ t, missing: true });
      continue;
    }
    if (used.has(index)) {
      results.push({ t, coalesced: true });
      continue;
    }
    used.add(index);
    const r = reloads[index];
    if (!r.ok) {
      results.push({ t, failed: true });
      continue;
    }
    const fresh = new Set(pidsByGeneration.get(r.generation) ?? []);
    const previous = new Set(pidsByGeneration.get(r.generation - 1) ?? []);
    const after = samples.filter((s) => s.t >= t);
    const firstNew = after.find((s) => fresh.has(s.pid));
    const lastOld = after.filter((s) => previous.has(s.pid)).at(-1);
    const exits = [...previous].map((pid) => exitAt.get(pid)).filter((x) => x !== undefined);
    results.push({
      t,
      generation: r.generation,
      masterMs: r.ms,
      // The master's record times are whole ms: a reload that started at once may read -0.x.
      toStart: Math.max(0, r.start - t),
      toReloaded: r.end - t,
      toFirstNew: firstNew === undefined ? undefined : firstNew.t - t,
      toLastOld: lastOld === undefined ? undefined : lastOld.t - t,
      toOldExited:
        exits.length === previous.size && exits.length > 0 ? Math.max(...exits) - t : undefined,
    });
  }
  return results;
}

async function sighup(b, sent) {
  sent.push(now());
  process.kill(b.pid, 'SIGHUP');
}

/** Idle reloads, one at a time, each waited for. */
async function idleReloads(b, port, urlPath) {
  const probe = startProbe(port, urlPath);
  const sent = [];
  for (let i = 0; i < IDLE_RELOADS; i++) {
    await delay(500);
    await sighup(b, sent);
    await waitSettled(b, sent.at(-1));
  }
  await delay(300);
  const { samples, failures } = await probe.stop();
  return { reloads: analyseReloads(b, sent, samples), failures };
}

/** One wrk window on the reload backend, with a SIGHUP every RELOAD_EVERY s or none. */
async function reloadWindow(b, url, port, urlPath, script, withReloads) {
  const probe = startProbe(port, urlPath);
  const sent = [];
  const timers = [];
  if (withReloads) {
    for (let t = 1; t <= WINDOW - RELOAD_EVERY + 1e-9; t += RELOAD_EVERY) {
      timers.push(setTimeout(() => void sighup(b, sent), t * 1000));
    }
  }
  const w = await runWrk(url, script, { seconds: WINDOW, connections: CONNECTIONS });
  for (const timer of timers) clearTimeout(timer);
  // The probe runs on until the last reload served (it may end after wrk did).
  if (withReloads) await waitSettled(b, sent.at(-1));
  const { samples, failures } = await probe.stop();
  return { w, reloads: withReloads ? analyseReloads(b, sent, samples) : [], failures };
}

// ---------------------------------------------------------------------------------------------
// Profiles (node --cpu-prof, restricted to the measured window)

async function profileOne(dir, backend, nginx, url, script) {
  const profDir = path.join(dir, `prof-${backend.name}`);
  mkdirSync(profDir, { recursive: true });
  await stop(backend.rec);
  const again = await startRun(dir, backend.name, {
    ...backend.spec,
    nodeArgs: [
      '--cpu-prof',
      `--cpu-prof-dir=${profDir}`,
      '--cpu-prof-interval',
      String(PROFILE_INTERVAL_US),
    ],
    logSuffix: '-prof',
  });
  await poll(async () => (await rawHttpGet(nginx.port, new URL(url).pathname)).status === 200, {
    what: `${backend.name} (profiled) through nginx`,
  });
  await runWrk(url, script, { seconds: WARMUP, connections: CONNECTIONS });
  const b0 = cpuSnapshot(again);
  const fromUs = Number(process.hrtime.bigint() / 1000n);
  const w = await runWrk(url, script, { seconds: DURATION, connections: CONNECTIONS });
  const toUs = Number(process.hrtime.bigint() / 1000n);
  const b1 = cpuSnapshot(again);
  const cpu = cpuPerRequest(b0, b1, w.requests);
  const servingPid = again.ready.workers?.[0] ?? again.pid;
  await stop(again.rec, 15000);
  const files = profilesOf(profDir, servingPid);
  const main = files.find((p) => p.thread === 0);
  if (main === undefined) throw new Error(`no main-thread profile of ${servingPid} in ${profDir}`);
  const mainSelf = profileSelfTime(main.file, fromUs, toUs);
  // Samples are wall time (a preempted thread's time goes to the frame it stopped in): each
  // function's share of the busy samples times the main thread's procfs CPU per request.
  const perRequest = (m) =>
    new Map([...m].map(([k, us]) => [k, (us / Math.max(1, mainSelf.total)) * cpu.main]));
  const threads = files
    .filter((p) => p.thread !== 0)
    .map((p) => profileSelfTime(p.file, fromUs, toUs).total / w.requests);
  return {
    name: backend.name,
    requests: w.requests,
    rps: w.rps,
    cpu,
    mainTotal: mainSelf.total / w.requests,
    mainByFn: perRequest(mainSelf.byFn),
    mainByArea: perRequest(mainSelf.byArea),
    jsThreads: threads,
    files: files.map((p) => path.basename(p.file)),
  };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  stopAllOnSignals();
  if (!UWSGI_PARAMS) throw new Error('/etc/nginx/uwsgi_params missing');
  if (!existsSync(path.join(path.dirname(CLI), '../../container/dist/supervisor/master.js'))) {
    throw new Error(`${CLI}: its packages/container/dist is missing or old: npx tsc -b there`);
  }
  const base = cliOption('base-cli');
  // `--cases none`: the reload part alone.
  const wanted = new Set(args.cases.split(','));
  if (base === undefined) {
    wanted.delete('base');
    wanted.delete('base-log');
  }
  const info = { ...versions(), base: base === undefined ? undefined : gitDescribe(base) };
  const loadBefore = os.loadavg();
  const started = new Date();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-supervisor-bench-'));
  const notes = [];
  const out = { date: started.toISOString(), info, duration: DURATION, rounds: ROUNDS };
  try {
    const specs = {
      base: { cli: base, app: HELLO_APP, access: false },
      w1: { cli: CLI, workers: 1, control: true, app: HELLO_APP, access: false },
      w2: { cli: CLI, workers: 2, control: true, app: HELLO_APP, access: false },
      'base-log': { cli: base, app: HELLO_APP, access: true },
      'w1-log': { cli: CLI, workers: 1, control: true, app: HELLO_APP, access: true },
    };
    const backends = {};
    for (const name of Object.keys(specs)) {
      if (wanted.has(name)) backends[name] = await startRun(dir, name, specs[name]);
    }
    const reloadWorkers = Number(args['reload-workers']);
    if (RELOAD) {
      backends.reload = await startRun(dir, 'reload', {
        cli: CLI,
        workers: reloadWorkers,
        control: true,
        app: PID_APP,
        access: false,
      });
    }
    const nginx = await startNginxForBackends(dir, Object.values(backends));
    const origin = `http://127.0.0.1:${nginx.port}`;
    const script = writeWrkScript(dir);

    const labels = {
      base: `base: single-process run (${info.base?.split(' ')[0]})`,
      w1: 'run, workers: 1',
      w2: 'run, workers: 2',
      'base-log': `base (${info.base?.split(' ')[0]}), access log on`,
      'w1-log': 'run, workers: 1, access log on',
    };
    const cases = Object.keys(specs)
      .filter((k) => backends[k] !== undefined)
      .map((k) => ({
        id: k,
        label: labels[k],
        backend: backends[k],
        url: `${origin}/${k}/hello`,
        samples: [],
      }));

    // ---- parts 1 and 2
    console.error(`warming up ${cases.length} cases (${WARMUP} s each) ...`);
    for (const c of cases) await runWrk(c.url, script, { seconds: WARMUP });
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(k + r) % cases.length];
        const s = await measureCase(c, nginx, script, DURATION);
        c.samples.push(s);
        console.error(
          `round ${r + 1}/${ROUNDS} ${c.id.padEnd(9)} ${fInt(s.rps)} req/s, ${f1(s.cpu.total)} µs/req` +
            `${s.spread.length > 1 ? ` spread ${s.spread.map((x) => x.requests).join('/')}` : ''}`,
        );
      }
    }
    for (const c of cases) {
      const pick = (f) => median(c.samples.map(f));
      c.result = {
        rps: pick((s) => s.rps),
        p99ms: pick((s) => s.p99ms),
        total: pick((s) => s.cpu.total),
        master: c.samples[0].cpu.master === undefined ? undefined : pick((s) => s.cpu.master),
        main: pick((s) => s.cpu.main),
        other: pick((s) => s.cpu.other),
        wakeups: pick((s) => s.cpu.wakeups),
        preempted: pick((s) => s.cpu.preempted),
        nginxUs: pick((s) => s.nginxUs),
        errors: c.samples.reduce((a, s) => a + s.errors, 0),
        non2xx: c.samples.reduce((a, s) => a + s.non2xx, 0),
      };
    }

    // ---- part 3
    const rb = backends.reload;
    const rPath = '/reload/hello';
    let idle;
    const windows = { steady: [], reloading: [] };
    if (RELOAD) {
      console.error(`reload: ${IDLE_RELOADS} idle reload(s) ...`);
      await runWrk(`${origin}${rPath}`, script, { seconds: WARMUP });
      idle = await idleReloads(rb, nginx.port, rPath);
    }
    for (let r = 0; RELOAD && r < ROUNDS; r++) {
      const order = r % 2 === 0 ? ['steady', 'reloading'] : ['reloading', 'steady'];
      for (const kind of order) {
        const res = await reloadWindow(
          rb,
          `${origin}${rPath}`,
          nginx.port,
          rPath,
          script,
          kind === 'reloading',
        );
        windows[kind].push(res);
        console.error(
          `round ${r + 1}/${ROUNDS} ${kind.padEnd(9)} ${fInt(res.w.rps)} req/s p99 ${f2(res.w.p99_us / 1000)} ms` +
            ` max ${f2(res.w.max_us / 1000)} ms, errors ${res.w.errors}/${res.w.status}/${res.failures}` +
            `${kind === 'reloading' ? `, reloads ${res.reloads.filter((x) => x.masterMs !== undefined).length}/${res.reloads.length}` : ''}`,
        );
      }
    }

    // ---- profile (part 2, when the worker costs more)
    const comparisons = compare(cases);
    for (const cmp of comparisons) {
      const over = cmp.paired > PROFILE_THRESHOLD;
      if (!(args.profile === 'on' || (args.profile === 'auto' && over))) continue;
      console.error(`profiling ${cmp.w} and ${cmp.b} under node --cpu-prof ...`);
      const [w, b] = [cmp.w, cmp.b].map((name) => backends[name]);
      cmp.profile = [
        await profileOne(dir, w, nginx, `${origin}/${w.name}/hello`, script),
        await profileOne(dir, b, nginx, `${origin}/${b.name}/hello`, script),
      ];
    }

    const loadAfter = os.loadavg();
    Object.assign(out, {
      load: { before: loadBefore, after: loadAfter },
      notes,
      cases: cases.map(({ id, label, samples, result }) => ({ id, label, samples, result })),
      idle,
      windows,
      comparisons: comparisons.map(({ profile, ...rest }) => ({
        ...rest,
        profile: profile?.map((p) => ({
          ...p,
          mainByFn: Object.fromEntries(p.mainByFn),
          mainByArea: Object.fromEntries(p.mainByArea),
        })),
      })),
    });
    report({
      info,
      cases,
      idle,
      windows,
      comparisons,
      loadBefore,
      loadAfter,
      notes,
      reloadWorkers,
    });
    if (args.json) writeFileSync(args.json, JSON.stringify(out, null, 2));
  } finally {
    await stopAll();
    if (args.keep) console.error(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------

/**
 * `workers: 1` against the base, access log off and on: the ratio of the medians and the median
 * of the per-round ratios (each round measures both within a minute; the paired figure is the
 * one the profile threshold looks at).
 */
function compare(cases) {
  const out = [];
  for (const [b, w, access] of [
    ['base', 'w1', 'off'],
    ['base-log', 'w1-log', 'on'],
  ]) {
    const cb = cases.find((c) => c.id === b);
    const cw = cases.find((c) => c.id === w);
    if (cb === undefined || cw === undefined) continue;
    const perRound = cw.samples.map((s, i) => s.cpu.total / cb.samples[i].cpu.total);
    out.push({
      b,
      w,
      access,
      base: cb.result,
      one: cw.result,
      medians: cw.result.total / cb.result.total,
      perRound,
      paired: median(perRound),
    });
  }
  return out;
}

function report({
  info,
  cases,
  idle,
  windows,
  comparisons,
  loadBefore,
  loadAfter,
  notes,
  reloadWorkers,
}) {
  const byId = (id) => cases.find((c) => c.id === id)?.result;
  const one = byId('w1');
  console.log('# Master and workers behind nginx\n');
  console.log(
    `${new Date().toISOString()}; node ${info.node}, ${info.nginx} (1 worker), ${info.wrk}; kernel ${info.kernel}; ${info.cpus}; ` +
      `load average ${loadBefore.map(f2).join(' ')} before, ${loadAfter.map(f2).join(' ')} after`,
  );
  console.log(`HEAD: ${info.head}${info.base ? `; base: ${info.base}` : ''}`);
  console.log(
    `\`wrk -t1 -c${CONNECTIONS} -d${DURATION}s\`, ${ROUNDS} interleaved round(s), median; transport fast; ` +
      `CPU from /proc/<pid>/stat (utime+stime, ${1000 / CLK_TCK} ms ticks) / requests\n`,
  );

  if (cases.length > 0) {
    console.log('## Throughput and CPU per request\n');
    console.log(
      markdownTable(
        [
          'case',
          'req/s',
          'req/s vs workers: 1',
          'backend CPU µs/req',
          'CPU vs workers: 1',
          'master µs/req',
          'serving main thread(s) µs/req',
          'serving other threads µs/req',
          'serving main thread(s) blocking waits / req',
          'preemptions / req',
          'p99 ms',
          'nginx CPU µs/req',
          'sock err / non-2xx',
        ],
        cases.map((c) => {
          const r = c.result;
          return [
            c.label,
            fInt(r.rps),
            ratio(r.rps, one?.rps),
            f1(r.total),
            ratio(r.total, one?.total),
            r.master === undefined ? '-' : f1(r.master),
            f1(r.main),
            f1(r.other),
            f2(r.wakeups),
            f2(r.preempted),
            f2(r.p99ms),
            f1(r.nginxUs),
            `${r.errors}/${r.non2xx}`,
          ];
        }),
        ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    console.log(
      '\nBlocking waits: voluntary context switches of the serving main thread(s) (an epoll_wait ' +
        'that found nothing ready), per request; preemptions: involuntary ones.',
    );
  }

  const two = cases.find((c) => c.id === 'w2');
  if (two) {
    console.log(
      '\n## How the requests spread over 2 workers (control socket stats, per wrk run)\n',
    );
    console.log(
      markdownTable(
        ['round', 'requests per worker (pid: count, share)', 'busiest share', 'sum / wrk'],
        two.samples.map((s, i) => {
          const sum = s.spread.reduce((a, x) => a + x.requests, 0);
          const parts = s.spread.map(
            (x) => `${x.pid}: ${fInt(x.requests)} (${f1((100 * x.requests) / Math.max(1, sum))}%)`,
          );
          const busiest = Math.max(...s.spread.map((x) => x.requests)) / Math.max(1, sum);
          return [
            String(i + 1),
            parts.join(', '),
            `${f1(100 * busiest)}%`,
            `${fInt(sum)} / ${fInt(s.requests)}`,
          ];
        }),
        ['r', 'l', 'r', 'r'],
      ),
    );
  }

  if (comparisons.length > 0) {
    console.log(`\n## run, workers: 1 vs the single-process run of ${info.base?.split(' ')[0]}\n`);
    console.log(
      markdownTable(
        [
          'access log',
          'base CPU µs/req',
          'workers: 1 CPU µs/req (master + worker)',
          'ratio of medians',
          'ratio per round',
          'median of per-round ratios',
          `over ${Math.round((PROFILE_THRESHOLD - 1) * 100)}%?`,
          'base req/s',
          'workers: 1 req/s',
        ],
        comparisons.map((c) => [
          c.access,
          f1(c.base.total),
          f1(c.one.total),
          `${f2(c.medians)}x`,
          c.perRound.map(f2).join(', '),
          `${f2(c.paired)}x`,
          c.paired > PROFILE_THRESHOLD ? 'yes' : 'no',
          fInt(c.base.rps),
          fInt(c.one.rps),
        ]),
        ['l', 'r', 'r', 'r', 'l', 'r', 'l', 'r', 'r'],
      ),
    );
  }

  if (idle !== undefined) reportReload(idle, windows, reloadWorkers);
  reportProfiles(comparisons);
  for (const n of notes) console.log(`\nNote: ${n}`);
  const bad = cases.filter((c) => c.result.errors > 0 || c.result.non2xx > 0);
  const badWindows = [...windows.steady, ...windows.reloading].filter(
    (x) => x.w.errors > 0 || x.w.status > 0 || x.failures > 0,
  );
  if (bad.length > 0 || badWindows.length > 0 || (idle?.failures ?? 0) > 0) {
    console.log(
      `\nErrors in: ${[...bad.map((c) => c.id), ...(badWindows.length > 0 ? ['reload windows'] : []), ...((idle?.failures ?? 0) > 0 ? ['idle reloads'] : [])].join(', ')}`,
    );
    process.exitCode = 1;
  }
}

function reportReload(idle, windows, reloadWorkers) {
  console.log(`\n## Reload (workers: ${reloadWorkers}, SIGHUP to the master)\n`);
  const all = windows.reloading.flatMap((w) => w.reloads);
  const row = (label, list, failures) => {
    const okd = list.filter((x) => x.masterMs !== undefined);
    const pick = (f) => okd.map(f).filter((x) => x !== undefined);
    return [
      label,
      `${okd.length}/${list.length}`,
      String(list.filter((x) => x.coalesced).length),
      String(list.filter((x) => x.failed || x.missing).length),
      msRange(pick((x) => x.toStart)),
      msRange(pick((x) => x.masterMs)),
      msRange(pick((x) => x.toReloaded)),
      msRange(pick((x) => x.toFirstNew)),
      msRange(pick((x) => x.toLastOld)),
      msRange(pick((x) => x.toOldExited)),
      String(failures),
    ];
  };
  console.log(
    markdownTable(
      [
        'reloads',
        'done / SIGHUPs',
        'coalesced',
        'failed',
        'SIGHUP -> reload start ms (queue)',
        '`reloaded` ms (master: start -> ready)',
        'SIGHUP -> `reloaded` record ms',
        'SIGHUP -> first answer from a new worker ms',
        'SIGHUP -> last answer from an old worker ms',
        'SIGHUP -> old generation exited ms',
        'probe non-200 / errors',
      ],
      [
        row('idle, one at a time', idle.reloads, idle.failures),
        row(
          `under wrk -c${CONNECTIONS}, every ${RELOAD_EVERY} s`,
          all,
          windows.reloading.reduce((a, w) => a + w.failures, 0),
        ),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  );
  console.log(
    '\nms columns: median (min-max) over the reloads. A SIGHUP that arrives while a reload runs ' +
      'waits for it (queue); SIGHUPs that wait together share one reload (coalesced). The probe ' +
      'sends one request at a time through nginx and reads `X-Worker-Pid`.\n',
  );
  console.log(`### Latency with and without reloads (${WINDOW} s windows, interleaved)\n`);
  const lat = (kind, label) => {
    const ws = windows[kind];
    const pick = (f) => median(ws.map((x) => f(x.w)));
    return [
      label,
      fInt(pick((w) => w.rps)),
      f2(pick((w) => w.p50_us / 1000)),
      f2(pick((w) => w.p90_us / 1000)),
      f2(pick((w) => w.p99_us / 1000)),
      ws.map((x) => f2(x.w.p99_us / 1000)).join(', '),
      f2(pick((w) => w.p999_us / 1000)),
      f2(pick((w) => w.max_us / 1000)),
      `${ws.reduce((a, x) => a + x.w.errors, 0)}/${ws.reduce((a, x) => a + x.w.status, 0)}`,
      kind === 'reloading'
        ? `${ws.reduce((a, x) => a + x.reloads.filter((r) => r.masterMs !== undefined).length, 0)}`
        : '0',
    ];
  };
  const steady = median(windows.steady.map((x) => x.w.p99_us));
  const reloading = median(windows.reloading.map((x) => x.w.p99_us));
  console.log(
    markdownTable(
      [
        'window',
        'req/s',
        'p50 ms',
        'p90 ms',
        'p99 ms',
        'p99 per round',
        'p99.9 ms',
        'max ms',
        'sock err / non-2xx',
        'reloads',
      ],
      [lat('steady', 'no reload'), lat('reloading', `SIGHUP every ${RELOAD_EVERY} s`)],
      ['l', 'r', 'r', 'r', 'r', 'l', 'r', 'r', 'r', 'r'],
    ),
  );
  console.log(`\np99 with reloads / without: ${ratio(reloading, steady)}`);
}

function reportProfiles(comparisons) {
  for (const cmp of comparisons.filter((c) => c.profile !== undefined)) {
    const [w, b] = cmp.profile;
    console.log(
      `\n## Profile, access log ${cmp.access}: run, workers: 1 (the worker) vs base (node --cpu-prof, ${PROFILE_INTERVAL_US} µs sampling, ${DURATION} s under wrk)\n`,
    );
    console.log(
      markdownTable(
        [
          '',
          'CPU µs/req (procfs, whole tree)',
          'serving main thread CPU µs/req (procfs)',
          'main thread sampled µs/req (wall, no idle)',
          'other JS threads sampled µs/req',
          'req/s',
        ],
        cmp.profile.map((p) => [
          p.name,
          f1(p.cpu.total),
          f1(p.cpu.main),
          f1(p.mainTotal),
          p.jsThreads.map(f2).join(', ') || '-',
          fInt(p.rps),
        ]),
        ['l', 'r', 'r', 'r', 'r', 'r'],
      ),
    );
    console.log(
      '\nMain-thread CPU per request by area (share of the busy samples in the measured window x procfs main-thread CPU):\n',
    );
    const areas = new Set([...w.mainByArea.keys(), ...b.mainByArea.keys()]);
    console.log(
      markdownTable(
        ['area', 'workers: 1 µs/req', 'base µs/req', 'difference µs/req'],
        [...areas]
          .map((k) => ({ k, w: w.mainByArea.get(k) ?? 0, b: b.mainByArea.get(k) ?? 0 }))
          .sort((x, y) => y.w + y.b - (x.w + x.b))
          .map((d) => [d.k, f2(d.w), f2(d.b), f2(d.w - d.b)]),
        ['l', 'r', 'r', 'r'],
      ),
    );
    const keys = new Set([...w.mainByFn.keys(), ...b.mainByFn.keys()]);
    const diffs = [...keys]
      .map((k) => ({ k, w: w.mainByFn.get(k) ?? 0, b: b.mainByFn.get(k) ?? 0 }))
      .sort((x, y) => Math.abs(y.w - y.b) - Math.abs(x.w - x.b))
      .slice(0, 15);
    console.log(
      '\nLargest differences in main-thread CPU per request (function, file; same scaling):\n',
    );
    console.log(
      markdownTable(
        ['function', 'workers: 1 µs/req', 'base µs/req', 'difference µs/req'],
        diffs.map((d) => [`\`${d.k}\``, f2(d.w), f2(d.b), f2(d.w - d.b)]),
        ['l', 'r', 'r', 'r'],
      ),
    );
  }
}

await main();
