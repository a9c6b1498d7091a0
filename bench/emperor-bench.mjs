#!/usr/bin/env node
// The emperor (docs/emperor.md): how fast a vassal file turns into a serving app, how fast an
// edit turns into the new version serving, and what the emperor costs while nothing happens.
// One private nginx (1 worker process) is started first, with one `location /NAME/` per vassal
// the run will create (`uwsgi_pass` to the unix socket that vassal will bind), so every figure is
// seen from the client side: one GET at a time through nginx on a new connection, every
// `--poll-ms` (5) ms. Vassals: test/fixtures/apps/supervisor.mjs mounted at `/NAME`, `workers: 1`,
// access log off, `GET /NAME/pid` answers {"pid","version"} with version = the config's
// `env: { APP_VERSION }`. Files are written as deploy tools write them: a hidden temp file in the
// same directory, renamed over the name. Reports:
//
// 1. Add: the emperor watches an empty directory; per try a new vassal file -> first 200 through
//    nginx; then the file is deleted -> first non-200 through nginx, -> the emperor's `stopped`
//    record, -> the socket file gone. Median and max over `--tries`; goal 500 ms for the add.
//    The emperor runs with its default `spareVassals: 1` and the tries start once its spare is
//    forked (the steady state: a spare is refilled after each vassal's boot).
// 1b. Cold add (part `cold`): the same tries on an emperor with `spareVassals: 0`, every vassal
//    process forked when its file appears.
// 2. Edit: one vassal; per try its file is rewritten with APP_VERSION = i -> first answer through
//    nginx carrying version i (any non-200 meanwhile is counted). Goal 1 s.
// 3. Idle: a fresh emperor with 20 vassals (1 worker each) at rest: the emperor's VmRSS (procfs,
//    sampled every second) and its CPU time (utime+stime) over `--idle-seconds` (60), as
//    CPU-seconds per minute and percent of one core; the same for a fresh emperor with 1 vassal.
//    The vassals' own cost (masters + workers) is shown beside it.
//
// Parts 1 and 2 break each try down with the records on the emperor's stdout (every process's
// `time` is Date.now(), same machine): file renamed -> emperor `spawned` -> worker forked (the
// master's `worker ready` time minus its `ms`) -> the worker's `worker serving` -> the master's
// `worker ready` and `ready` -> the emperor's `vassal ready` -> first 200; for an edit: emperor
// `reloading` -> master `reloading` -> new worker forked / serving / ready -> master `reloaded` ->
// emperor `reloaded` -> first answer with the new version.
//
//   npx -y pnpm@12.4.2 run build && node bench/emperor-bench.mjs [--tries 20]
//       [--idle-seconds 60] [--poll-ms 5] [--parts add,cold,edit,idle] [--cli PATH] [--json FILE]
//       [--keep]
//
// Prints a human-readable summary, then one JSON line with every figure. Every process it starts
// (nginx, the emperors, and every vassal and worker pid seen in their logs) is stopped at the
// end, on error and on Ctrl-C, and the temp directory removed (`--keep` keeps it).
import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { markdownTable, median } from './lib/harness.mjs';
import { startNginx, UWSGI_PARAMS } from './lib/nginx.mjs';
import { CLK_TCK, processTree, rawHttpGet, spawnTracked, stop, stopAll } from './lib/proc.mjs';
import { hostInfo, nginxVersion, OWN_CLI, ROOT, resolveCli } from './lib/run.mjs';

const APP = path.join(ROOT, 'test/fixtures/apps/supervisor.mjs');

const { values: args } = parseArgs({
  options: {
    tries: { type: 'string', default: '20' },
    'idle-seconds': { type: 'string', default: '60' },
    'idle-vassals': { type: 'string', default: '20' },
    'poll-ms': { type: 'string', default: '5' },
    parts: { type: 'string', default: 'add,cold,edit,idle' },
    // The build measured: default this checkout; another build's CLI or checkout root.
    cli: { type: 'string' },
    json: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const TRIES = Number(args.tries);
const IDLE_SECONDS = Number(args['idle-seconds']);
const IDLE_VASSALS = Number(args['idle-vassals']);
const POLL_MS = Number(args['poll-ms']);
const PARTS = new Set(args.parts.split(',').filter(Boolean));
for (const p of PARTS) {
  if (!['add', 'cold', 'edit', 'idle'].includes(p)) throw new Error(`--parts: unknown part ${p}`);
}
if (!(TRIES >= 1) || !(IDLE_SECONDS >= 1) || !(POLL_MS >= 0) || !(IDLE_VASSALS >= 1)) {
  throw new Error('--tries, --idle-seconds, --idle-vassals >= 1; --poll-ms >= 0');
}
const CLI = resolveCli(args.cli, '--cli') ?? OWN_CLI;
/** The checkout the CLI belongs to: every process of ours runs a file under it. */
const BUILD_ROOT = path.resolve(path.dirname(CLI), '../../..');
const GOAL_ADD_MS = 500;
const GOAL_EDIT_MS = 1000;
/** Quiet time after the vassals are ready, before an idle window (JIT, GC, first heartbeats). */
const SETTLE_MS = Math.min(10_000, IDLE_SECONDS * 250);
const TRY_TIMEOUT_MS = 30_000;

const f0 = (x) =>
  x === undefined || Number.isNaN(x) ? '-' : Math.round(x).toLocaleString('en-US');
const f1 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));
const f2 = (x) => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(2));
const defined = (xs) => xs.filter((x) => x !== undefined && !Number.isNaN(x));
const stats = (list) => {
  const xs = defined(list);
  return xs.length === 0
    ? { n: 0 }
    : { n: xs.length, median: median(xs), min: Math.min(...xs), max: Math.max(...xs) };
};
const note = (msg) => console.error(`[emperor-bench] ${msg}`);

// ---------------------------------------------------------------------------------------------
// Processes: the emperors and nginx are tracked by lib/proc.mjs; every vassal and worker pid that
// appears in a log is remembered, so nothing of ours outlives the run.

const seenPids = new Set();

function rememberPids(r) {
  for (const v of [
    r.pid,
    r.vassalPid,
    r.workerPid,
    ...(Array.isArray(r.workers) ? r.workers : []),
  ]) {
    if (typeof v === 'number' && v > 0 && v !== process.pid) seenPids.add(v);
  }
}

/** Whether `pid` is alive and runs a file of the measured build (not a reused pid). */
function isOurs(pid) {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    const state = /\) (\S)/.exec(readFileSync(`/proc/${pid}/stat`, 'latin1'))?.[1];
    return state !== 'Z' && cmd.includes(BUILD_ROOT);
  } catch {
    return false;
  }
}

function killLeftovers() {
  const left = [...seenPids].filter(isOurs);
  for (const pid of left) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Gone meanwhile.
    }
  }
  return left;
}

let dir;
let cleaned = false;

async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  await stopAll();
  // Vassals whose emperor is gone stop within about a second (docs/emperor.md "No orphans").
  for (let i = 0; i < 40 && [...seenPids].some(isOurs); i++) await delay(100);
  const left = killLeftovers();
  if (left.length > 0) note(`SIGKILLed leftover processes: ${left.join(' ')}`);
  if (dir !== undefined) {
    if (args.keep) note(`kept ${dir}`);
    else rmSync(dir, { recursive: true, force: true });
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    note(`${sig}: cleaning up`);
    void cleanup().finally(() => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));
  });
}

// ---------------------------------------------------------------------------------------------
// Logs: the emperor's stdout (its records and, inherited, every vassal's and worker's) in a file,
// read incrementally.

class LogTail {
  constructor(file) {
    this.file = file;
    this.offset = 0;
    this.rest = Buffer.alloc(0);
    this.records = [];
  }

  read() {
    const fd = openSync(this.file, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size > this.offset) {
        const buf = Buffer.alloc(size - this.offset);
        const n = readSync(fd, buf, 0, buf.length, this.offset);
        this.offset += n;
        const all = Buffer.concat([this.rest, buf.subarray(0, n)]);
        const end = all.lastIndexOf(10);
        this.rest = end < 0 ? all : all.subarray(end + 1);
        if (end >= 0) {
          for (const line of all.subarray(0, end).toString('utf8').split('\n')) {
            if (!line.startsWith('{')) continue;
            try {
              const r = JSON.parse(line);
              rememberPids(r);
              this.records.push(r);
            } catch {
              // Not a record.
            }
          }
        }
      }
    } finally {
      closeSync(fd);
    }
    return this.records;
  }

  get length() {
    return this.read().length;
  }

  /** The first record at index >= `from` matching `pred` (after reading what is new). */
  find(pred, from = 0) {
    return this.read()
      .slice(from)
      .find((r) => pred(r));
  }

  async waitFor(pred, { from = 0, timeoutMs = TRY_TIMEOUT_MS, what = 'a record', rec } = {}) {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const r = this.find(pred, from);
      if (r !== undefined) return r;
      if (rec?.exited) throw new Error(`${rec.name} exited while waiting for ${what}`);
      if (performance.now() > until) throw new Error(`no ${what} within ${timeoutMs} ms`);
      await delay(5);
    }
  }

  tail() {
    try {
      return readFileSync(this.file, 'utf8').slice(-3000);
    } catch {
      return '';
    }
  }
}

const emperorEvent = (vassal, event) => (r) =>
  r.role === 'emperor' && r.event === event && (vassal === undefined || r.vassal === vassal);
const masterMsg = (vassal, msg) => (r) =>
  r.role === 'master' && r.vassal === vassal && r.msg === msg;

// ---------------------------------------------------------------------------------------------
// Vassal files and the emperor

const sockOf = (name) => path.join(dir, 'sockets', `${name}.sock`);

function vassalText(name, version) {
  const config = {
    listeners: [{ protocol: 'uwsgi', address: sockOf(name) }],
    mounts: [{ path: `/${name}`, app: APP }],
    workers: 1,
    log: { format: 'json', access: false, level: 'info' },
    env: { APP_VERSION: String(version) },
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Writes `<vdir>/<name>.yaml` as deploy tools do; returns Date.now() and performance.now() after the rename. */
function writeVassal(vdir, name, version) {
  const file = path.join(vdir, `${name}.yaml`);
  const tmp = path.join(vdir, `.${name}.yaml.tmp`);
  writeFileSync(tmp, vassalText(name, version));
  renameSync(tmp, file);
  return { wall: Date.now(), mono: performance.now(), file };
}

/**
 * An emperor on a fresh directory. `spares` (spareVassals, default 1): with spares, returns once
 * the first spare vassal process is forked (it is, 1 s after the start), so the tries measure
 * the steady state; with 0 every vassal is forked when its file appears.
 */
async function startEmperor(label, { spares = 1 } = {}) {
  const vdir = path.join(dir, `vassals-${label}`);
  mkdirSync(vdir);
  const logFile = path.join(dir, `emperor-${label}.log`);
  const config = path.join(dir, `emperor-${label}.yaml`);
  writeFileSync(
    config,
    `emperor:\n  watch: [${JSON.stringify(vdir)}]\n  spareVassals: ${spares}\n`,
  );
  const fd = openSync(logFile, 'w');
  const rec = spawnTracked(
    process.execPath,
    [CLI, 'emperor', '--config', config, '--control', path.join(dir, `emperor-${label}.ctl`)],
    { name: `emperor ${label}`, cwd: dir, stdio: ['ignore', fd, 'pipe'] },
  );
  closeSync(fd);
  const log = new LogTail(logFile);
  try {
    await log.waitFor(emperorEvent(undefined, 'started'), { what: 'emperor started', rec });
    if (spares > 0) await log.waitFor(emperorEvent(undefined, 'spare'), { what: 'a spare', rec });
  } catch (err) {
    throw new Error(`${err.message}\n${rec.stderr}${log.tail()}`);
  }
  return { label, rec, pid: rec.child.pid, vdir, log };
}

async function stopEmperor(emp) {
  await stop(emp.rec, 15_000);
  emp.log.read();
}

// ---------------------------------------------------------------------------------------------
// Client side: one GET through nginx at a time

async function get(port, urlPath) {
  try {
    const r = await rawHttpGet(port, urlPath, 2000);
    let body;
    try {
      body = JSON.parse(r.body);
    } catch {
      // Not JSON (nginx's 502 page).
    }
    return { status: r.status, body };
  } catch (err) {
    return { status: 0, error: err.message };
  }
}

/**
 * GETs `urlPath` every POLL_MS until `done(answer)`; ms from `t0` (performance.now()) to the
 * answer that passed, the probes sent and the statuses seen before it.
 */
async function pollUntil(port, urlPath, done, t0, timeoutMs = TRY_TIMEOUT_MS) {
  const seen = {};
  let probes = 0;
  for (;;) {
    const a = await get(port, urlPath);
    const at = performance.now();
    probes++;
    if (done(a)) return { ms: at - t0, wall: Date.now(), probes, seen, answer: a };
    const key = a.status === 200 ? `200 v${a.body?.version}` : String(a.status);
    seen[key] = (seen[key] ?? 0) + 1;
    if (at - t0 > timeoutMs) return { ms: undefined, probes, seen, answer: a, timedOut: true };
    if (POLL_MS > 0) await delay(POLL_MS);
  }
}

async function waitUntil(probe, t0, timeoutMs = 10_000) {
  for (;;) {
    if (probe()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) return undefined;
    await delay(POLL_MS || 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Part 1: add and delete

/** Marks of one add (ms after the rename) from the records after index `from`. */
function addMarks(log, vassal, from, wall) {
  const rs = log.read().slice(from);
  const at = (r) => (r === undefined ? undefined : r.time - wall);
  const spawned = rs.find(emperorEvent(vassal, 'spawned'));
  const wready = rs.find(masterMsg(vassal, 'worker ready'));
  const serving = rs.find(
    (r) => r.vassal === vassal && r.msg === 'worker serving' && r.pid === wready?.workerPid,
  );
  return {
    spawned: at(spawned),
    workerForked: wready === undefined ? undefined : at(wready) - wready.ms,
    workerServing: at(serving),
    workerReady: at(wready),
    masterReady: at(rs.find(masterMsg(vassal, 'ready'))),
    emperorReady: at(rs.find(emperorEvent(vassal, 'ready'))),
  };
}

async function partAdd(emp, port) {
  const tries = [];
  for (let i = 0; i < TRIES; i++) {
    const name = `a${i}`;
    const vassal = `${name}.yaml`;
    const from = emp.log.length;
    const w = writeVassal(emp.vdir, name, 1);
    const up = await pollUntil(
      port,
      `/${name}/pid`,
      (a) => a.status === 200 && a.body?.pid > 0,
      w.mono,
    );
    if (up.timedOut) {
      throw new Error(
        `add ${vassal}: no 200 within ${TRY_TIMEOUT_MS} ms (${JSON.stringify(up.seen)})\n${emp.log.tail()}`,
      );
    }
    await emp.log.waitFor(emperorEvent(vassal, 'ready'), {
      from,
      what: `${vassal} ready`,
      rec: emp.rec,
    });
    const marks = { ...addMarks(emp.log, vassal, from, w.wall), first200: up.wall - w.wall };
    await delay(200);

    const fromDel = emp.log.length;
    unlinkSync(w.file);
    const delWall = Date.now();
    const t1 = performance.now();
    const down = await pollUntil(port, `/${name}/pid`, (a) => a.status !== 200, t1);
    const stopped = await emp.log.waitFor(emperorEvent(vassal, 'stopped'), {
      from: fromDel,
      what: `${vassal} stopped`,
      rec: emp.rec,
    });
    const stoppedMs = stopped.time - delWall;
    const sockGoneMs = await waitUntil(() => !existsSync(sockOf(name)), t1, 5000);
    const rs = emp.log.read().slice(fromDel);
    const t = {
      i,
      addMs: up.ms,
      addProbes: up.probes,
      addSeen: up.seen,
      marks,
      bootMs: emp.log.find(emperorEvent(vassal, 'ready'), from)?.bootMs,
      deleteMs: down.ms,
      deleteStatus: down.answer.status,
      deleteSeen: down.seen,
      stoppingRecMs: (rs.find(emperorEvent(vassal, 'stopping'))?.time ?? Number.NaN) - delWall,
      masterStoppedMs: (rs.find(masterMsg(vassal, 'stopped'))?.time ?? Number.NaN) - delWall,
      stoppedMs,
      sockGoneMs,
    };
    tries.push(t);
    note(
      `add ${i + 1}/${TRIES}: ${f0(t.addMs)} ms (spawned +${f0(marks.spawned)}, worker forked +${f0(marks.workerForked)}, ` +
        `worker ready +${f0(marks.workerReady)}, emperor ready +${f0(marks.emperorReady)}); ` +
        `delete: non-200 after ${f0(t.deleteMs)} ms, stopped ${f0(stoppedMs)} ms, socket ${sockGoneMs === undefined ? 'left' : `gone ${f0(sockGoneMs)} ms`}`,
    );
    await delay(200);
  }
  return tries;
}

// ---------------------------------------------------------------------------------------------
// Part 2: edit

function editMarks(log, vassal, from, wall) {
  const rs = log.read().slice(from);
  const at = (r) => (r === undefined ? undefined : r.time - wall);
  const reloaded = rs.find(masterMsg(vassal, 'reloaded'));
  const generation = reloaded?.generation;
  const wready = rs.find(
    (r) =>
      masterMsg(vassal, 'worker ready')(r) &&
      (generation === undefined || r.generation === generation),
  );
  const serving = rs.find(
    (r) => r.vassal === vassal && r.msg === 'worker serving' && r.pid === wready?.workerPid,
  );
  const oldExit = rs.find((r) => masterMsg(vassal, 'worker exited')(r) && r.reason === 'reload');
  return {
    emperorReloading: at(rs.find(emperorEvent(vassal, 'reloading'))),
    masterReloading: at(rs.find(masterMsg(vassal, 'reloading'))),
    workerForked: wready === undefined ? undefined : at(wready) - wready.ms,
    workerServing: at(serving),
    workerReady: at(wready),
    masterReloaded: at(reloaded),
    masterReloadMs: reloaded?.ms,
    emperorReloaded: at(rs.find(emperorEvent(vassal, 'reloaded'))),
    oldWorkerExited: at(oldExit),
  };
}

async function partEdit(emp, port) {
  const name = 'edit';
  const vassal = `${name}.yaml`;
  const w0 = writeVassal(emp.vdir, name, 0);
  const first = await pollUntil(
    port,
    `/${name}/pid`,
    (a) => a.status === 200 && a.body?.version === '0',
    w0.mono,
  );
  if (first.timedOut) throw new Error(`${vassal} never served version 0\n${emp.log.tail()}`);
  await emp.log.waitFor(emperorEvent(vassal, 'ready'), { what: `${vassal} ready`, rec: emp.rec });
  await delay(500);
  const tries = [];
  for (let i = 1; i <= TRIES; i++) {
    const from = emp.log.length;
    const w = writeVassal(emp.vdir, name, i);
    const v = String(i);
    const up = await pollUntil(
      port,
      `/${name}/pid`,
      (a) => a.status === 200 && a.body?.version === v,
      w.mono,
    );
    if (up.timedOut) {
      throw new Error(
        `edit ${i}: version ${v} not served within ${TRY_TIMEOUT_MS} ms (${JSON.stringify(up.seen)})\n${emp.log.tail()}`,
      );
    }
    // The reload must be over (and the old worker gone) before the next edit, or edits coalesce.
    await emp.log.waitFor(emperorEvent(vassal, 'reloaded'), {
      from,
      what: `${vassal} reloaded ${i}`,
      rec: emp.rec,
    });
    await emp.log.waitFor((r) => masterMsg(vassal, 'worker exited')(r) && r.reason === 'reload', {
      from,
      what: `${vassal} old worker exited ${i}`,
      rec: emp.rec,
    });
    const marks = { ...editMarks(emp.log, vassal, from, w.wall), firstNew: up.wall - w.wall };
    const failures = Object.entries(up.seen)
      .filter(([k]) => !k.startsWith('200'))
      .reduce((a, [, n]) => a + n, 0);
    tries.push({ i, editMs: up.ms, probes: up.probes, seen: up.seen, failures, marks });
    note(
      `edit ${i}/${TRIES}: ${f0(up.ms)} ms (emperor reloading +${f0(marks.emperorReloading)}, new worker forked +${f0(marks.workerForked)}, ` +
        `serving +${f0(marks.workerServing)}, master reloaded +${f0(marks.masterReloaded)}); non-200 meanwhile: ${failures}`,
    );
    await delay(300);
  }
  return tries;
}

// ---------------------------------------------------------------------------------------------
// Part 3: idle cost

function procStatus(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'latin1');
    const kb = (key) =>
      Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  } catch {
    return { rssKb: Number.NaN, hwmKb: Number.NaN };
  }
}

function ticksOf(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return Number.NaN;
  }
}

/** The emperor's and its descendants' CPU ticks and RSS (kB). */
function treeSnapshot(rootPid) {
  const pids = processTree(rootPid).filter((p) => p !== rootPid);
  let ticks = 0;
  let rssKb = 0;
  for (const p of pids) {
    ticks += ticksOf(p) || 0;
    rssKb += procStatus(p).rssKb || 0;
  }
  return { pids: pids.length, ticks, rssKb };
}

async function idleWindow(emp, count) {
  const names = Array.from({ length: count }, (_, i) => `idle${i}`);
  const emptyRss = procStatus(emp.pid).rssKb;
  const from = emp.log.length;
  const t0 = performance.now();
  for (const name of names) writeVassal(emp.vdir, name, 1);
  for (const name of names) {
    await emp.log.waitFor(emperorEvent(`${name}.yaml`, 'ready'), {
      from,
      timeoutMs: 120_000,
      what: `${name}.yaml ready`,
      rec: emp.rec,
    });
  }
  const allReadyMs = performance.now() - t0;
  note(
    `${count} vassal(s) ready ${f0(allReadyMs)} ms after their files; settling ${SETTLE_MS / 1000} s`,
  );
  await delay(SETTLE_MS);
  const e0 = ticksOf(emp.pid);
  const v0 = treeSnapshot(emp.pid);
  const m0 = performance.now();
  const rss = [];
  const until = m0 + IDLE_SECONDS * 1000;
  while (performance.now() < until) {
    rss.push(procStatus(emp.pid).rssKb);
    await delay(Math.min(1000, Math.max(0, until - performance.now())));
  }
  const e1 = ticksOf(emp.pid);
  const v1 = treeSnapshot(emp.pid);
  const seconds = (performance.now() - m0) / 1000;
  rss.push(procStatus(emp.pid).rssKb);
  const cpuS = (e1 - e0) / CLK_TCK;
  const treeCpuS = (v1.ticks - v0.ticks) / CLK_TCK;
  const crashed = emp.log
    .read()
    .slice(from)
    .filter((r) => r.role === 'emperor' && r.event === 'crashed');
  const out = {
    vassals: count,
    seconds,
    allReadyMs,
    emptyRssKb: emptyRss,
    rssKb: stats(rss),
    hwmKb: procStatus(emp.pid).hwmKb,
    cpuTicks: e1 - e0,
    cpuSecondsPerMinute: (cpuS / seconds) * 60,
    cpuPercent: (cpuS / seconds) * 100,
    vassalProcesses: v1.pids,
    vassalsRssKb: v1.rssKb,
    vassalsCpuSecondsPerMinute: (treeCpuS / seconds) * 60,
    vassalsCpuPercent: (treeCpuS / seconds) * 100,
    crashed: crashed.length,
  };
  note(
    `idle, ${count} vassal(s), ${f0(seconds)} s: emperor RSS ${f1(out.rssKb.median / 1024)} MiB, ` +
      `CPU ${f2(out.cpuSecondsPerMinute)} s/min (${f2(out.cpuPercent)}%); vassals ${v1.pids} processes ` +
      `${f0(v1.rssKb / 1024)} MiB, ${f2(out.vassalsCpuSecondsPerMinute)} s/min`,
  );
  return out;
}

// ---------------------------------------------------------------------------------------------

function gitDescribe() {
  try {
    return execFileSync('git', ['-C', BUILD_ROOT, 'log', '-1', '--format=%h %s'], {
      encoding: 'utf8',
    })
      .trim()
      .slice(0, 80);
  } catch {
    return 'unknown commit';
  }
}

async function main() {
  if (!UWSGI_PARAMS) throw new Error('/etc/nginx/uwsgi_params missing (apt-get install nginx)');
  dir = mkdtempSync(path.join(os.tmpdir(), 'emperor-bench-'));
  mkdirSync(path.join(dir, 'sockets'));
  const info = {
    date: new Date().toISOString(),
    node: process.version,
    nginx: nginxVersion(),
    ...hostInfo(),
    head: gitDescribe(),
    cli: CLI,
  };
  const loadBefore = os.loadavg();
  const out = {
    bench: 'emperor',
    info,
    options: {
      tries: TRIES,
      idleSeconds: IDLE_SECONDS,
      idleVassals: IDLE_VASSALS,
      pollMs: POLL_MS,
    },
  };

  const locations = [...Array.from({ length: TRIES }, (_, i) => `a${i}`), 'edit'].map(
    (n) => `    location /${n}/ { include ${UWSGI_PARAMS}; uwsgi_pass unix:${sockOf(n)}; }`,
  );
  const nginx = await startNginx({
    dir,
    server: (port) => `  server {\n    listen 127.0.0.1:${port};\n${locations.join('\n')}\n  }`,
  });
  note(`nginx on 127.0.0.1:${nginx.port} (pid ${nginx.pid}), ${locations.length} locations`);

  if (PARTS.has('add') || PARTS.has('edit')) {
    const emp = await startEmperor('main');
    note(`emperor ${emp.pid} watching ${emp.vdir}`);
    if (PARTS.has('add')) out.add = await partAdd(emp, nginx.port);
    if (PARTS.has('edit')) out.edit = await partEdit(emp, nginx.port);
    await stopEmperor(emp);
  }
  if (PARTS.has('cold')) {
    const emp = await startEmperor('cold', { spares: 0 });
    note(`emperor ${emp.pid} (spareVassals: 0) watching ${emp.vdir}`);
    out.cold = await partAdd(emp, nginx.port);
    await stopEmperor(emp);
  }
  if (PARTS.has('idle')) {
    for (const count of [IDLE_VASSALS, 1]) {
      const emp = await startEmperor(`idle${count}`);
      out[count === 1 ? 'idle1' : 'idleMany'] = await idleWindow(emp, count);
      await stopEmperor(emp);
    }
  }
  await nginx.stop();
  out.load = { before: loadBefore, after: os.loadavg() };
  out.summary = summarize(out);
  report(out);
  console.log(JSON.stringify(out));
  if (args.json) writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
}

function summarize(out) {
  const s = {};
  if (out.add) {
    const pick = (f) => stats(out.add.map(f));
    s.addMs = pick((t) => t.addMs);
    s.deleteMs = pick((t) => t.deleteMs);
    s.deleteStoppedMs = pick((t) => t.stoppedMs);
    s.deleteSocketGoneMs = pick((t) => t.sockGoneMs);
    s.addBootMs = pick((t) => t.bootMs);
    s.socketsLeft = out.add.filter((t) => t.sockGoneMs === undefined).length;
    s.addMarks = Object.fromEntries(
      Object.keys(out.add[0].marks).map((k) => [
        k,
        median(defined(out.add.map((t) => t.marks[k]))),
      ]),
    );
    s.addGoalMet = { median: s.addMs.median <= GOAL_ADD_MS, max: s.addMs.max <= GOAL_ADD_MS };
  }
  if (out.cold) {
    s.coldAddMs = stats(out.cold.map((t) => t.addMs));
    s.coldGoalMet = {
      median: s.coldAddMs.median <= GOAL_ADD_MS,
      max: s.coldAddMs.max <= GOAL_ADD_MS,
    };
  }
  if (out.edit) {
    s.editMs = stats(out.edit.map((t) => t.editMs));
    s.editFailures = out.edit.reduce((a, t) => a + t.failures, 0);
    s.editMarks = Object.fromEntries(
      Object.keys(out.edit[0].marks).map((k) => [
        k,
        median(defined(out.edit.map((t) => t.marks[k]))),
      ]),
    );
    s.editGoalMet = { median: s.editMs.median <= GOAL_EDIT_MS, max: s.editMs.max <= GOAL_EDIT_MS };
  }
  for (const k of ['idleMany', 'idle1']) {
    const x = out[k];
    if (x === undefined) continue;
    s[k] = {
      vassals: x.vassals,
      rssMiB: x.rssKb.median / 1024,
      rssMaxMiB: x.rssKb.max / 1024,
      emptyRssMiB: x.emptyRssKb / 1024,
      cpuSecondsPerMinute: x.cpuSecondsPerMinute,
      cpuPercent: x.cpuPercent,
    };
  }
  return s;
}

const range = (st) => (st.n ? `${f0(st.median)} / ${f0(st.max)} (min ${f0(st.min)})` : '-');

function report(out) {
  const { info, summary: s } = out;
  console.log('# Emperor: add/edit latency and idle cost\n');
  console.log(
    `${info.date}; node ${info.node}, ${info.nginx} (1 worker); kernel ${info.kernel}; ${info.cpus}; ` +
      `load average ${out.load.before.map(f2).join(' ')} before, ${out.load.after.map(f2).join(' ')} after`,
  );
  console.log(`HEAD: ${info.head}`);
  console.log(
    `${TRIES} tries, one GET through nginx every ${POLL_MS} ms (new connection each); vassals: workers: 1, ` +
      `access log off; emperor defaults (debounceMs 50, rescanMs 2000)\n`,
  );
  if (out.add || out.edit) {
    const rows = [];
    if (out.add) {
      rows.push([
        'add: file renamed in -> first 200',
        range(s.addMs),
        `${GOAL_ADD_MS} ms`,
        s.addGoalMet.median ? (s.addGoalMet.max ? 'yes' : 'median yes, max no') : 'no',
      ]);
      if (out.cold) {
        rows.push([
          'add without a spare (`spareVassals: 0`): file renamed in -> first 200',
          range(s.coldAddMs),
          `${GOAL_ADD_MS} ms`,
          s.coldGoalMet.median ? (s.coldGoalMet.max ? 'yes' : 'median yes, max no') : 'no',
        ]);
      }
      rows.push(['delete: file removed -> first non-200 (502)', range(s.deleteMs), '-', '-']);
      rows.push([
        'delete: file removed -> emperor `vassal stopped`',
        range(s.deleteStoppedMs),
        '-',
        '-',
      ]);
      rows.push([
        'delete: file removed -> socket file gone',
        `${range(s.deleteSocketGoneMs)}${s.socketsLeft ? `; left behind ${s.socketsLeft}x` : ''}`,
        '-',
        '-',
      ]);
    }
    if (out.edit) {
      rows.push([
        `edit: file rewritten -> first answer with the new version (non-200 meanwhile: ${s.editFailures})`,
        range(s.editMs),
        `${GOAL_EDIT_MS} ms`,
        s.editGoalMet.median ? (s.editGoalMet.max ? 'yes' : 'median yes, max no') : 'no',
      ]);
    }
    console.log('## Latency (ms: median / max)\n');
    console.log(markdownTable(['what', 'ms', 'goal', 'met'], rows, ['l', 'r', 'r', 'l']));
  }
  if (out.add) {
    const m = s.addMarks;
    console.log(
      '\n### Where an add goes (median ms after the rename, per mark; segments: median of per-try differences)\n',
    );
    const seg = (a, b) =>
      median(defined(out.add.map((t) => t.marks[b] - (a === '' ? 0 : t.marks[a]))));
    console.log(
      markdownTable(
        ['mark', 'ms after rename', 'segment', 'segment ms'],
        [
          [
            'emperor `vassal spawned`',
            f0(m.spawned),
            'event + debounce + scan + validate + fork',
            f0(seg('', 'spawned')),
          ],
          [
            'worker forked (master: `worker ready` - ms)',
            f0(m.workerForked),
            'vassal master: node boot, modules, config, bind',
            f0(seg('spawned', 'workerForked')),
          ],
          [
            'worker `worker serving`',
            f0(m.workerServing),
            'worker: node boot, modules, app import, listen',
            f0(seg('workerForked', 'workerServing')),
          ],
          [
            'master `worker ready`',
            f0(m.workerReady),
            'worker -> master IPC',
            f0(seg('workerServing', 'workerReady')),
          ],
          ['master `ready`', f0(m.masterReady), '', f0(seg('workerReady', 'masterReady'))],
          [
            'emperor `vassal ready`',
            f0(m.emperorReady),
            'vassal -> emperor IPC',
            f0(seg('masterReady', 'emperorReady')),
          ],
          [
            'first 200 through nginx',
            f0(m.first200),
            'vs the worker serving',
            f0(seg('workerServing', 'first200')),
          ],
        ],
        ['l', 'r', 'l', 'r'],
      ),
    );
    console.log(
      `\nThe emperor's \`bootMs\` (fork -> ready message): median ${f0(s.addBootMs.median)} ms, ` +
        `max ${f0(s.addBootMs.max)} ms. First try (the emperor's first validation of a text ` +
        `included): ${f0(out.add[0].addMs)} ms, \`spawned\` +${f0(out.add[0].marks.spawned)} ms.`,
    );
  }
  if (out.edit) {
    const m = s.editMarks;
    const seg = (a, b) =>
      median(defined(out.edit.map((t) => t.marks[b] - (a === '' ? 0 : t.marks[a]))));
    console.log('\n### Where an edit goes (median ms after the rename)\n');
    console.log(
      markdownTable(
        ['mark', 'ms after rename', 'segment ms'],
        [
          ['emperor `vassal reloading`', f0(m.emperorReloading), f0(seg('', 'emperorReloading'))],
          [
            'master `reloading`',
            f0(m.masterReloading),
            f0(seg('emperorReloading', 'masterReloading')),
          ],
          ['new worker forked', f0(m.workerForked), f0(seg('masterReloading', 'workerForked'))],
          [
            'new worker `worker serving`',
            f0(m.workerServing),
            f0(seg('workerForked', 'workerServing')),
          ],
          [
            'first answer with the new version',
            f0(m.firstNew),
            f0(seg('workerServing', 'firstNew')),
          ],
          ['master `worker ready`', f0(m.workerReady), f0(seg('workerServing', 'workerReady'))],
          [
            `master \`reloaded\` (its ms: ${f0(m.masterReloadMs)})`,
            f0(m.masterReloaded),
            f0(seg('workerReady', 'masterReloaded')),
          ],
          [
            'emperor `vassal reloaded`',
            f0(m.emperorReloaded),
            f0(seg('masterReloaded', 'emperorReloaded')),
          ],
          [
            'old worker exited',
            f0(m.oldWorkerExited),
            f0(seg('masterReloaded', 'oldWorkerExited')),
          ],
        ],
        ['l', 'r', 'r'],
      ),
    );
  }
  const idleRows = [];
  for (const k of ['idleMany', 'idle1']) {
    const x = out[k];
    if (x === undefined) continue;
    idleRows.push([
      String(x.vassals),
      f0(x.allReadyMs),
      f1(x.emptyRssKb / 1024),
      `${f1(x.rssKb.median / 1024)} (max ${f1(x.rssKb.max / 1024)})`,
      `${f0(x.seconds)} s`,
      f2(x.cpuSecondsPerMinute),
      `${f2(x.cpuPercent)}%`,
      `${x.vassalProcesses}: ${f0(x.vassalsRssKb / 1024)} MiB, ${f2(x.vassalsCpuSecondsPerMinute)} CPU-s/min`,
      String(x.crashed),
    ]);
  }
  if (idleRows.length > 0) {
    console.log('\n## Idle cost (fresh emperor per row; procfs of the emperor pid)\n');
    console.log(
      markdownTable(
        [
          'vassals',
          'files -> all ready ms',
          'emperor RSS MiB, no vassal',
          'emperor RSS MiB at rest',
          'window',
          'emperor CPU-s/min',
          'emperor CPU %',
          'vassal processes (masters + workers): RSS, CPU',
          'crashes',
        ],
        idleRows,
        ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'r'],
      ),
    );
  }
  console.log('');
}

try {
  await main();
} catch (err) {
  process.exitCode = 1;
  console.error(err);
} finally {
  await cleanup();
}
