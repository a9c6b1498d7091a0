/**
 * The built CLI as a subprocess (STYLE.md section 8): `node packages/cli/bin/uwsgi-ts.js run
 * CONFIG --log-format json`, readiness from the `"msg":"ready"` stdout line (no sleeps),
 * logs collected, stopped with SIGTERM (exit code returned for the test to assert), killed in
 * `kill()` as a last resort.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseTarget, pollUntil, type Target } from './net.ts';
import { openFds } from './procs.ts';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI_BIN = join(REPO_ROOT, 'packages', 'cli', 'bin', 'uwsgi-ts.js');
/** The e2e suites run the built CLI: fail with the fix in the message when it is missing. */
export function assertBuilt(): void {
  for (const f of [CLI_BIN, join(REPO_ROOT, 'packages', 'cli', 'dist', 'index.js')]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run \`npx tsc -b\` before the e2e suite`);
  }
}

export interface LogRecord {
  readonly level?: number;
  readonly msg?: string;
  readonly [key: string]: unknown;
}

export interface ListenerInfo {
  readonly protocol: 'uwsgi' | 'http';
  readonly address: string;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface RunningContainer {
  readonly pid: number;
  readonly child: ChildProcess;
  readonly ready: LogRecord;
  readonly listeners: readonly ListenerInfo[];
  /** Every JSON log line so far (non-JSON stdout lines are kept in `stdoutText`). */
  readonly logs: LogRecord[];
  stdoutText(): string;
  stderrText(): string;
  /** First listener of this protocol on a unix socket (`unix`) or TCP (`tcp`). */
  target(protocol: 'uwsgi' | 'http', kind?: 'unix' | 'tcp'): Target;
  /** `unix:/abs.sock` or `127.0.0.1:port`: nginx `uwsgi_pass` syntax. */
  address(protocol: 'uwsgi' | 'http', kind?: 'unix' | 'tcp'): string;
  /** Resolves with the first log record (past or future) matching `pred`. */
  waitForLog(pred: (r: LogRecord) => boolean, timeoutMs?: number): Promise<LogRecord>;
  /** Sends `signal` (default SIGTERM) and resolves with the exit; SIGKILL after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  /** SIGKILL if still running (for `finally`/`afterAll`). */
  kill(): Promise<void>;
  exited: Promise<Exit>;
}

export interface StartOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** The CLI to run, as argv before its arguments (default: `node` on the repository's bin). */
  readonly command?: readonly [string, ...string[]];
  readonly args?: readonly string[];
  readonly readyTimeoutMs?: number;
}

function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let rest = '';
  return (chunk) => {
    rest += chunk;
    let i = rest.indexOf('\n');
    while (i >= 0) {
      onLine(rest.slice(0, i));
      rest = rest.slice(i + 1);
      i = rest.indexOf('\n');
    }
  };
}

/** Starts `uwsgi-ts run <config>` and resolves once the ready line is out. */
export async function startContainer(
  configPath: string,
  options: StartOptions = {},
): Promise<RunningContainer> {
  const [file, ...prefix] = options.command ?? [process.execPath, CLI_BIN];
  const child = spawn(
    file,
    [...prefix, 'run', configPath, '--log-format', 'json', ...(options.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } },
  );
  const logs: LogRecord[] = [];
  const waiters: Array<{ pred: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }> = [];
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on(
    'data',
    lineSplitter((line) => {
      stdout += `${line}\n`;
      if (!line.startsWith('{')) return;
      let rec: LogRecord;
      try {
        rec = JSON.parse(line) as LogRecord;
      } catch {
        return;
      }
      logs.push(rec);
      for (let i = waiters.length - 1; i >= 0; i--) {
        const w = waiters[i]!;
        if (w.pred(rec)) {
          waiters.splice(i, 1);
          w.resolve(rec);
        }
      }
    }),
  );
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });

  const waitForLog = (pred: (r: LogRecord) => boolean, timeoutMs = 10_000) => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<LogRecord>((resolve, reject) => {
      const w = {
        pred,
        resolve: (r: LogRecord) => {
          clearTimeout(timer);
          resolve(r);
        },
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(
          new Error(`log line not seen in ${timeoutMs} ms; stdout:\n${stdout}\nstderr:\n${stderr}`),
        );
      }, timeoutMs);
      waiters.push(w);
    });
  };

  const kill = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  };

  let ready: LogRecord;
  try {
    ready = await Promise.race([
      waitForLog((r) => r.msg === 'ready', options.readyTimeoutMs ?? 15_000),
      exited.then((e) => {
        throw new Error(
          `uwsgi-ts exited before ready (${e.code ?? e.signal}); stdout:\n${stdout}\nstderr:\n${stderr}`,
        );
      }),
    ]);
  } catch (err) {
    await kill();
    throw err;
  }
  const listeners = (ready['listeners'] ?? []) as ListenerInfo[];
  const address = (protocol: 'uwsgi' | 'http', kind?: 'unix' | 'tcp') => {
    const l = listeners.find(
      (x) =>
        x.protocol === protocol &&
        (kind === undefined || (kind === 'unix') === x.address.startsWith('unix:')),
    );
    if (!l)
      throw new Error(`no ${protocol} ${kind ?? ''} listener in ${JSON.stringify(listeners)}`);
    return l.address;
  };
  return {
    pid: child.pid!,
    child,
    ready,
    listeners,
    logs,
    stdoutText: () => stdout,
    stderrText: () => stderr,
    address,
    target: (protocol, kind) => parseTarget(address(protocol, kind)),
    waitForLog,
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const e = await exited;
      clearTimeout(timer);
      return e;
    },
    kill,
    exited,
  };
}

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  readonly env?: NodeJS.ProcessEnv;
  readonly timeoutMs?: number;
  readonly cwd?: string;
}

/** Runs one CLI command to completion (`check`, `request` ...), bounded by `timeoutMs`. */
export function runCli(
  args: readonly string[],
  options: RunOptions & { command?: readonly [string, ...string[]] } = {},
): Promise<CliResult> {
  const [file, ...prefix] = options.command ?? [process.execPath, CLI_BIN];
  return runCommand(file, [...prefix, ...args], options);
}

/** Runs any program to completion (SIGKILL after `timeoutMs`, default 15 s), output collected. */
export function runCommand(
  file: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      cwd: options.cwd ?? REPO_ROOT,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 15_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Waits (polling, up to 5 s) until process `pid` holds no more fds than `baseline`. */
export function fdsBackTo(pid: number, baseline: number): Promise<void> {
  return pollUntil(() => openFds(pid) <= baseline, {
    what: `container fds back to ${baseline}`,
    attempts: 100,
    intervalMs: 50,
  });
}
