/**
 * One reliability test's world (RELIABILITY.md section 4): a mkdtemp dir holding the config, a
 * generated `app.mjs` (test/reliability/fixtures/handler.mjs at a given version), the master
 * with 2 workers serving a unix uwsgi socket and an HTTP listener, and a real nginx in front
 * (`uwsgi_pass unix:`, one new uwsgi connection per request). Every PID is recorded; `teardown()`
 * stops everything by PID, checks that nothing is left (processes, zombies, socket files) and
 * removes the dir.
 */
import { existsSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CLI_BIN, type LogRecord, type RunningContainer, startContainer } from '../utils/cli.ts';
import { TRANSPORT } from '../utils/config.ts';
import { type Nginx, startNginx } from '../utils/nginx.ts';
import { childrenOf, liveChildren, openFds, PidRegistry, zombiesUnder } from '../utils/procs.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';

export const HANDLER = join(dirname(fileURLToPath(import.meta.url)), 'fixtures', 'handler.mjs');

export interface StackOptions {
  readonly label: string;
  readonly workers?: number;
  readonly reloadMercyMs?: number;
  readonly readyTimeoutMs?: number;
  /** Workers append `ID PID` per request to `<dir>/trace.log` (fixtures/handler.mjs). */
  readonly trace?: boolean;
  /** The config's `limits` (container defaults otherwise). */
  readonly limits?: Readonly<Record<string, number>>;
  /** Also a uwsgi listener on 127.0.0.1 (TCP), beside the unix one nginx uses. */
  readonly tcpUwsgi?: boolean;
  /** Runs the master (and so its workers) under `ulimit -n N` (soft and hard). */
  readonly openFiles?: number;
}

/** The config object (JSON is YAML) for `options`, in `dir`. */
function configObject(dir: string, options: StackOptions): Record<string, unknown> {
  return {
    listeners: [
      { protocol: 'uwsgi', address: 'app.sock' },
      { protocol: 'http', address: '127.0.0.1:0' },
      ...(options.tcpUwsgi === true ? [{ protocol: 'uwsgi', address: '127.0.0.1:0' }] : []),
    ],
    mounts: [{ path: '/', app: join(dir, 'app.mjs') }],
    workers: options.workers ?? 2,
    reloadMercyMs: options.reloadMercyMs ?? 5000,
    readyTimeoutMs: options.readyTimeoutMs ?? 30_000,
    shutdownTimeoutMs: 5000,
    control: 'control.sock',
    log: { format: 'json', access: false, level: 'info' },
    ...(options.limits === undefined ? {} : { limits: options.limits }),
    ...(options.trace === true ? { env: { REL_TRACE_FILE: join(dir, 'trace.log') } } : {}),
    ...(TRANSPORT ? { transport: TRANSPORT } : {}),
  };
}

/** Source of `app.mjs`: a good version, code that throws at import, or code never ready. */
export type AppSource = { version: string } | 'throws' | 'hangs';

function appText(source: AppSource): string {
  if (source === 'throws') {
    return "throw new Error('reliability: broken build (throws at import)');\n";
  }
  if (source === 'hangs') return 'await new Promise(() => {});\nexport default () => {};\n';
  return `import { makeHandler } from ${JSON.stringify(pathToFileURL(HANDLER).href)};\nexport default makeHandler(${JSON.stringify(source.version)});\n`;
}

/** Writes `path` atomically (tmp + rename): a worker never imports half a file. */
async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, path);
}

export interface Stack {
  readonly dir: string;
  readonly configPath: string;
  readonly controlPath: string;
  /** `<dir>/trace.log` (with `trace: true`). */
  readonly tracePath: string;
  readonly container: RunningContainer;
  readonly nginx: Nginx;
  readonly masterPid: number;
  readonly pids: PidRegistry;
  /** The HTTP listener, `http://127.0.0.1:PORT`. */
  readonly httpOrigin: string;
  /** nginx, `http://127.0.0.1:PORT`. */
  readonly nginxOrigin: string;
  /** Master fd count once the first generation served (canary answered). */
  readonly fdBaseline: number;
  /** Deploys `app.mjs` (picked up by the next generation). */
  writeApp(source: AppSource): Promise<void>;
  /** Rewrites the config (`text` verbatim, or the good config). */
  writeConfig(text?: string): Promise<void>;
  /**
   * Registers a load generator's stop, run first by `teardown()` (a test that failed midway
   * leaves no load running); stops must be idempotent.
   */
  defer(stop: () => Promise<unknown>): void;
  /** Records every current child of the master (call after each fault). */
  recordWorkers(): void;
  /** Live workers of the generation serving now (the last one a reload switched to). */
  servingWorkers(): number[];
  /** The master's records with this `msg`. */
  records(msg: string): LogRecord[];
  /** Waits until the master logged a record matching `pred` (after the past ones). */
  waitFor(pred: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Polls (<= timeoutMs) until the master holds <= baseline fds; returns the final delta. */
  fdDelta(timeoutMs?: number): Promise<number>;
  /**
   * Graceful stop of everything (master SIGTERM: exit 0 expected; nginx), then the end checks.
   * Never throws: returns the problems found, for the test to assert after clean-up.
   */
  teardown(): Promise<string[]>;
}

export async function startStack(options: StackOptions): Promise<Stack> {
  const pids = new PidRegistry();
  const dir = await makeTmpDir(`rel-${options.label}`);
  const configPath = join(dir, 'uwsgi-ts.yaml');
  const controlPath = join(dir, 'control.sock');
  const goodConfig = `${JSON.stringify(configObject(dir, options), null, 2)}\n`;
  let container: RunningContainer | undefined;
  let nginx: Nginx | undefined;
  try {
    await replaceFile(join(dir, 'app.mjs'), appText({ version: 'v1' }));
    await replaceFile(configPath, goodConfig);
    container = await startContainer(configPath, {
      readyTimeoutMs: 20_000,
      // sh execs node: the PID is the master's.
      ...(options.openFiles === undefined
        ? {}
        : {
            command: [
              '/bin/sh',
              '-c',
              `ulimit -n ${options.openFiles} && exec "$0" "$@"`,
              process.execPath,
              CLI_BIN,
            ] as const,
          }),
    });
    const running = container;
    pids.add(running.pid, 'master');
    for (const pid of (running.ready['workers'] ?? []) as number[]) pids.add(pid, 'worker');
    nginx = await startNginx({
      http: ['keepalive_requests 100000'],
      locations: [{ path: '/', upstream: running.address('uwsgi', 'unix') }],
    });
    pids.add(nginx.pid, 'nginx');
    const nginxOrigin = `http://127.0.0.1:${nginx.port}`;
    const httpTarget = running.target('http', 'tcp');
    if (!('port' in httpTarget)) throw new Error('no TCP HTTP listener');
    const httpOrigin = `http://127.0.0.1:${httpTarget.port}`;
    // Canary through nginx and direct, then the fd baseline.
    for (const origin of [nginxOrigin, httpOrigin]) {
      const res = await fetch(`${origin}/instant`);
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`canary ${origin}: ${res.status}`);
    }
    await delay(200);
    const fdBaseline = openFds(running.pid);

    const masterRecords = () => running.logs.filter((r) => r['role'] === 'master');
    const deferred: (() => Promise<unknown>)[] = [];
    const stack: Stack = {
      dir,
      configPath,
      controlPath,
      tracePath: join(dir, 'trace.log'),
      container: running,
      nginx,
      masterPid: running.pid,
      pids,
      httpOrigin,
      nginxOrigin,
      fdBaseline,
      defer: (stop) => {
        deferred.push(stop);
      },
      writeApp: (source) => replaceFile(join(dir, 'app.mjs'), appText(source)),
      writeConfig: (text) => replaceFile(configPath, text ?? goodConfig),
      recordWorkers() {
        for (const child of childrenOf(running.pid)) pids.add(child.pid, 'worker');
      },
      records: (msg) => masterRecords().filter((r) => r.msg === msg),
      servingWorkers() {
        const generation = Math.max(
          Number(running.ready['generation']),
          ...stack.records('reloaded').map((r) => Number(r['generation'])),
        );
        const live = new Set(liveChildren(running.pid));
        return stack
          .records('worker ready')
          .filter((r) => Number(r['generation']) === generation)
          .map((r) => Number(r['workerPid']))
          .filter((pid) => live.has(pid))
          .sort((a, b) => a - b);
      },
      waitFor: (pred, timeoutMs = 15_000) =>
        running.waitForLog((r) => r['role'] === 'master' && pred(r), timeoutMs),
      async fdDelta(timeoutMs = 60_000) {
        const until = Date.now() + timeoutMs;
        let fds = openFds(running.pid);
        while (fds > fdBaseline && Date.now() < until) {
          await delay(100);
          fds = openFds(running.pid);
        }
        return fds - fdBaseline;
      },
      teardown: async () => {
        for (const stop of deferred.splice(0)) await stop().catch(() => undefined);
        return teardown(stack);
      },
    };
    return stack;
  } catch (err) {
    await nginx?.stop();
    await container?.kill();
    pids.killLeftovers();
    await removeTmpDir(dir);
    throw err;
  }
}

async function teardown(stack: Stack): Promise<string[]> {
  const problems: string[] = [];
  const { container, pids } = stack;
  try {
    stack.recordWorkers();
    // Every worker the master ever logged (ready, exited, failed boots).
    for (const r of container.logs) {
      if (typeof r['workerPid'] === 'number') pids.add(r['workerPid'], 'worker');
    }
    const zombies = zombiesUnder(stack.masterPid);
    if (zombies.length > 0) {
      problems.push(`zombies under the master: ${zombies.map((z) => z.pid).join(', ')}`);
    }
    const exit = await container.stop('SIGTERM', 15_000);
    if (exit.code !== 0) problems.push(`master exit ${JSON.stringify(exit)} (expected code 0)`);
    await stack.nginx.stop();
    const left = await pids.waitAllGone(10_000);
    if (left.length > 0) {
      problems.push(
        `still alive after stop: ${left.map((p) => `${p.what} ${p.pid} (${p.state})`).join(', ')}`,
      );
    }
    for (const socket of ['app.sock', 'control.sock']) {
      if (existsSync(join(stack.dir, socket))) problems.push(`${socket} left behind`);
    }
    const bad = container.logs.filter(
      (r) => /uncaught|unhandled/i.test(r.msg ?? '') || (r.level ?? 0) >= 60,
    );
    if (bad.length > 0) {
      problems.push(`log has uncaught/unhandled/fatal records: ${JSON.stringify(bad.slice(0, 3))}`);
    }
    if (/FATAL/.test(container.stderrText())) problems.push('FATAL on stderr');
  } finally {
    pids.killLeftovers();
    await container.kill();
    await stack.nginx.stop();
    await removeTmpDir(stack.dir);
  }
  if (existsSync(stack.dir)) problems.push(`${stack.dir} not removed`);
  return problems;
}
