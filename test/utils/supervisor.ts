/**
 * The supervisor e2e suites' shared pieces: master/worker configs written per test (plain JSON
 * with a .yaml name, as config.ts does, with the supervisor keys), the built CLI started with
 * every PID it logs recorded as it appears, log queries ("the first record after index i"), the
 * control socket, and small request helpers that say which worker answered.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sendControl } from '@uwsgi-ts/container';
import { afterAll, afterEach, beforeAll, beforeEach, expect } from 'vitest';
import {
  assertBuilt,
  type LogRecord,
  type RunningContainer,
  type StartOptions,
  startContainer,
} from './cli.ts';
import { APPS_DIR, TRANSPORT } from './config.ts';
import { type ClientResponse, request } from './http-client.ts';
import { parseTarget, type Target } from './net.ts';
import { type Nginx, startNginx } from './nginx.ts';
import { liveChildren, ProcessRecorder } from './procs.ts';
import { makeTmpDir, removeTmpDir } from './tmp.ts';
import { nginxLikeVars, uwsgiRequest } from './uwsgi-client.ts';

export const SUPERVISOR_APP = join(APPS_DIR, 'supervisor.mjs');

export interface ListenerSpec {
  readonly protocol: 'uwsgi' | 'http';
  readonly address: string;
  readonly mode?: string;
  readonly group?: string;
  readonly backlog?: number;
}

export interface SupervisorSpec {
  /** Default: uwsgi on `app.sock` (config dir) and http on 127.0.0.1:0. */
  readonly listeners?: readonly ListenerSpec[];
  /** Default: `/` -> test/fixtures/apps/supervisor.mjs. `app` may be absolute or a fixture name. */
  readonly mounts?: readonly { readonly path: string; readonly app: string }[];
  readonly workers?: number | 'auto';
  readonly limits?: Readonly<Record<string, number>>;
  readonly env?: Readonly<Record<string, string>>;
  readonly pidfile?: string;
  readonly control?: string;
  readonly touchReload?: string;
  readonly readyTimeoutMs?: number;
  readonly reloadMercyMs?: number;
  readonly shutdownTimeoutMs?: number;
  readonly logFile?: string;
  /** Access records (default true: the tests read them). */
  readonly access?: boolean;
  /** Other top-level keys, as they are (`stats`, `metrics`, ...). */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** The config as the file holds it (JSON is YAML 1.2). */
export function renderSupervisorConfig(spec: SupervisorSpec): string {
  const config: Record<string, unknown> = {
    listeners: spec.listeners ?? [
      { protocol: 'uwsgi', address: 'app.sock' },
      { protocol: 'http', address: '127.0.0.1:0' },
    ],
    mounts: (spec.mounts ?? [{ path: '/', app: SUPERVISOR_APP }]).map((m) => ({
      path: m.path,
      app: m.app.startsWith('/') ? m.app : join(APPS_DIR, m.app),
    })),
    workers: spec.workers ?? 2,
    log: {
      format: 'json',
      access: spec.access ?? true,
      level: 'info',
      ...(spec.logFile === undefined ? {} : { file: spec.logFile }),
    },
    ...(spec.limits === undefined ? {} : { limits: spec.limits }),
    ...(spec.env === undefined ? {} : { env: spec.env }),
    ...(spec.pidfile === undefined ? {} : { pidfile: spec.pidfile }),
    ...(spec.control === undefined ? {} : { control: spec.control }),
    ...(spec.touchReload === undefined ? {} : { touchReload: spec.touchReload }),
    ...(spec.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: spec.readyTimeoutMs }),
    ...(spec.reloadMercyMs === undefined ? {} : { reloadMercyMs: spec.reloadMercyMs }),
    ...(spec.shutdownTimeoutMs === undefined ? {} : { shutdownTimeoutMs: spec.shutdownTimeoutMs }),
    ...(TRANSPORT ? { transport: TRANSPORT } : {}),
    ...spec.extra,
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Writes `<dir>/<name>` and returns its absolute path. */
export async function writeSupervisorConfig(
  dir: string,
  spec: SupervisorSpec,
  name = 'uwsgi-ts.yaml',
): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, renderSupervisorConfig(spec));
  return file;
}

/** A running master (the built CLI) and what its log says about its workers. */
export interface Supervised extends RunningContainer {
  /** Worker PIDs of the ready record, sorted. */
  readonly firstWorkers: readonly number[];
  /** The first log record at index >= `from` matching `pred`. */
  logAfter(from: number, pred: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Every record so far matching `pred`. */
  records(pred: (r: LogRecord) => boolean): LogRecord[];
  /** The PIDs of the workers that logged `worker ready` for `generation`, in log order. */
  generationPids(generation: number): number[];
}

/**
 * `startContainer` plus PID bookkeeping: the master and every PID that appears in a log line
 * (`pid`, `workerPid`) are recorded in `recorder` the moment the line arrives, so cleanup can
 * kill exactly what this test started.
 */
export async function startSupervised(
  configPath: string,
  recorder: ProcessRecorder,
  options: StartOptions = {},
): Promise<Supervised> {
  const running = await startContainer(configPath, options);
  recorder.record(running.pid);
  const note = (r: LogRecord) => {
    const workers = Array.isArray(r['workers']) ? (r['workers'] as unknown[]) : [];
    for (const v of [r['pid'], r['workerPid'], ...workers]) {
      if (typeof v === 'number') recorder.record(v);
    }
  };
  for (const r of running.logs) note(r);
  // Later lines as they arrive (our own reader beside cli.ts's: a worker that logs once and
  // dies at once is still recorded while it is alive, if it is).
  let rest = '';
  running.child.stdout?.on('data', (chunk: string | Buffer) => {
    rest += chunk.toString();
    for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
      const line = rest.slice(0, i);
      rest = rest.slice(i + 1);
      if (!line.startsWith('{')) continue;
      try {
        note(JSON.parse(line) as LogRecord);
      } catch {
        // Not a record.
      }
    }
  });
  const logs = running.logs;
  const records = (pred: (r: LogRecord) => boolean) => logs.filter(pred);
  return Object.assign(running, {
    firstWorkers: ((running.ready['workers'] as number[] | undefined) ?? [])
      .slice()
      .sort((a, b) => a - b),
    logAfter: (from: number, pred: (r: LogRecord) => boolean, timeoutMs = 10_000) =>
      running.waitForLog((r) => logs.indexOf(r) >= from && pred(r), timeoutMs),
    records,
    generationPids: (generation: number) =>
      records((r) => r.msg === 'worker ready' && r['generation'] === generation).map(
        (r) => r['workerPid'] as number,
      ),
  });
}

/** A `worker exited` record (an unexpected exit's msg says how: `worker exited (signal SIGKILL)`). */
export function isExit(r: LogRecord): boolean {
  return typeof r.msg === 'string' && r.msg.startsWith('worker exited');
}

export interface PidAnswer {
  readonly status: number;
  readonly pid: number | undefined;
  readonly version: string | null | undefined;
  readonly body: Buffer;
}

function pidOf(body: Buffer): { pid?: number; version?: string | null } {
  try {
    return JSON.parse(body.toString('utf8')) as { pid?: number; version?: string | null };
  } catch {
    return {};
  }
}

/** GET over uwsgi (unix or TCP listener), the answering worker's PID from the JSON body. */
export async function uwsgiGet(
  target: Target | string,
  path: string,
  timeoutMs = 10_000,
): Promise<PidAnswer> {
  const res = await uwsgiRequest(target, nginxLikeVars('GET', path), undefined, { timeoutMs });
  const parsed = pidOf(res.body);
  return { status: res.status, pid: parsed.pid, version: parsed.version, body: res.body };
}

/** GET over HTTP (nginx or the HTTP listener). */
export async function httpGet(url: string, timeoutMs = 10_000): Promise<PidAnswer> {
  const res: ClientResponse = await request(url, { timeoutMs });
  const parsed = pidOf(res.body);
  return { status: res.status, pid: parsed.pid, version: parsed.version, body: res.body };
}

/** `http://127.0.0.1:<port>` of a running master's HTTP listener. */
export function httpBase(c: RunningContainer): string {
  const t = parseTarget(c.address('http', 'tcp'));
  if (!('port' in t)) throw new Error('the HTTP listener is not TCP');
  return `http://127.0.0.1:${t.port}`;
}

/**
 * One command on the master's control socket (the product's `sendControl`); resolves with the
 * parsed answer and the time it took. Rejects on a socket error or after `timeoutMs`.
 */
export async function control(
  path: string,
  cmd: string,
  timeoutMs = 5000,
): Promise<{ answer: Record<string, unknown>; ms: number }> {
  const started = performance.now();
  const answer = await sendControl(path, cmd, timeoutMs);
  return { answer, ms: performance.now() - started };
}

/** Runs `n` requests with `concurrency` in parallel; returns the results in completion order. */
export async function fanOut<T>(
  n: number,
  concurrency: number,
  one: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        out.push(await one(i));
      }
    }),
  );
  return out;
}

/** `{ pid: count }` of the 200 answers, and the count of everything else. */
export function split(answers: readonly PidAnswer[]): {
  byPid: Map<number, number>;
  failed: number;
} {
  const byPid = new Map<number, number>();
  let failed = 0;
  for (const a of answers) {
    if (a.status !== 200 || a.pid === undefined) failed++;
    else byPid.set(a.pid, (byPid.get(a.pid) ?? 0) + 1);
  }
  return { byPid, failed };
}

/**
 * A background request loop (one request at a time, `everyMs` apart at most) that counts what
 * came back until `stop()`; used to show that something (a recycle, a crash loop) costs no
 * request. Failures keep their reason.
 */
export function backgroundLoad(
  one: () => Promise<PidAnswer>,
  everyMs = 10,
): { stop(): Promise<{ ok: number; failures: string[]; pids: Set<number> }> } {
  let running = true;
  const failures: string[] = [];
  const pids = new Set<number>();
  let ok = 0;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      try {
        const a = await one();
        if (a.status === 200 && a.pid !== undefined) {
          ok++;
          pids.add(a.pid);
        } else failures.push(`status ${a.status}`);
      } catch (err) {
        failures.push((err as Error).message);
      }
      const wait = everyMs - (performance.now() - t);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { ok, failures, pids };
    },
  };
}

/**
 * Per-test state and cleanup shared by the supervisor suites: a fresh tmp dir per test, every
 * master and nginx the test starts (through `start`/`nginx`) stopped afterwards, every PID they
 * logged swept (SIGKILL by recorded PID only) and the test failed if one outlived it; at the end
 * of the file, no process the file started is alive.
 */
export function supervisorSuite(label: string): {
  readonly procs: ProcessRecorder;
  dir(): string;
  start(configPath: string, options?: StartOptions): Promise<Supervised>;
  nginx(upstream: string): Promise<Nginx>;
  /** `spawnLogged`, killed (SIGKILL) after the test if it is still running. */
  spawn(command: string, args: readonly string[], env?: NodeJS.ProcessEnv): LoggedProcess;
} {
  const procs = new ProcessRecorder();
  let dir = '';
  let masters: Supervised[] = [];
  let nginxes: Nginx[] = [];
  let spawned: LoggedProcess[] = [];
  beforeAll(() => {
    assertBuilt();
  });
  beforeEach(async () => {
    dir = await makeTmpDir(label);
  });
  afterEach(async () => {
    try {
      for (const m of masters) for (const pid of liveChildren(m.pid)) procs.record(pid);
      // A master still running here is one the test did not stop (it failed): SIGKILL; its
      // workers' orphan guard ends them, which the sweep checks.
      for (const m of masters) await m.kill();
      for (const p of spawned) {
        if (p.child.pid !== undefined)
          for (const pid of liveChildren(p.child.pid)) procs.record(pid);
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
        await p.exited;
      }
      for (const n of nginxes) await n.stop();
      const left = await procs.sweep(3000);
      if (left.length > 0) {
        throw new Error(`processes outlived the test (SIGKILLed now): ${left.join(', ')}`);
      }
    } finally {
      masters = [];
      nginxes = [];
      spawned = [];
      await removeTmpDir(dir);
    }
  });
  afterAll(async () => {
    expect(await procs.sweep(3000), 'processes of this file still alive').toEqual([]);
  });
  return {
    procs,
    dir: () => dir,
    async start(configPath, options) {
      const m = await startSupervised(configPath, procs, options);
      masters.push(m);
      return m;
    },
    spawn(command, args, env) {
      const p = spawnLogged(command, args, procs, env);
      spawned.push(p);
      return p;
    },
    async nginx(upstream) {
      const n = await startNginx({ locations: [{ path: '/', upstream }] });
      nginxes.push(n);
      procs.record(n.pid);
      return n;
    },
  };
}

/** A process started by `spawnLogged`: its JSON stdout records and its stderr. */
export interface LoggedProcess {
  readonly child: ChildProcess;
  readonly logs: LogRecord[];
  stderr(): string;
  /** The first record (past or future) matching `pred`. */
  waitForLog(pred: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Resolves once `pred(stderr so far)` holds. */
  waitForStderr(pred: (text: string) => boolean, timeoutMs?: number): Promise<void>;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Spawns a command whose stdout carries JSON log lines (a master started some other way than
 * `startContainer`: under systemd-socket-activate, or logging to a file); records its PID and
 * every PID its records name in `recorder`.
 */
export function spawnLogged(
  command: string,
  args: readonly string[],
  recorder: ProcessRecorder,
  env: NodeJS.ProcessEnv = process.env,
): LoggedProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  if (child.pid !== undefined) recorder.record(child.pid);
  const logs: LogRecord[] = [];
  let stderr = '';
  let rest = '';
  const changed = new EventEmitter();
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    rest += d;
    for (let i = rest.indexOf('\n'); i >= 0; i = rest.indexOf('\n')) {
      const line = rest.slice(0, i);
      rest = rest.slice(i + 1);
      if (!line.startsWith('{')) continue;
      try {
        const r = JSON.parse(line) as LogRecord;
        for (const v of [r['pid'], r['workerPid']]) if (typeof v === 'number') recorder.record(v);
        logs.push(r);
      } catch {
        // Not a record.
      }
    }
    changed.emit('change');
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
    changed.emit('change');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      changed.emit('change');
      resolve({ code, signal });
    }),
  );
  const until = <T>(probe: () => T | undefined, timeoutMs: number, what: string) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = probe();
        if (v === undefined) return;
        changed.off('change', check);
        clearTimeout(timer);
        resolve(v);
      };
      const timer = setTimeout(() => {
        changed.off('change', check);
        reject(new Error(`${what} not seen in ${timeoutMs} ms; stderr:\n${stderr}`));
      }, timeoutMs);
      changed.on('change', check);
      check();
    });
  return {
    child,
    logs,
    stderr: () => stderr,
    waitForLog: (pred, timeoutMs = 10_000) => until(() => logs.find(pred), timeoutMs, 'log record'),
    waitForStderr: async (pred, timeoutMs = 10_000) => {
      await until(() => (pred(stderr) ? true : undefined), timeoutMs, 'stderr text');
    },
    exited,
  };
}
