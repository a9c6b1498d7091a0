/**
 * One worker process as the master sees it: fork with the listening fds, the IPC messages of
 * worker/ipc.ts, readiness, heartbeats, the watchdog's report pipe, RSS, stop and kill. It knows
 * nothing of apps or requests (docs/supervisor.md).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { ContainerConfig } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';
import type { StatsSnapshot } from '../shared/stats.ts';
import {
  type ErrorInfo,
  type ExitReason,
  FIRST_LISTENER_FD,
  type HarakiriReport,
  isWorkerMessage,
  type ListenerHandoff,
  type MasterMessage,
  type WorkerMessage,
} from '../worker/ipc.ts';

export interface WorkerSpawnOptions {
  readonly id: number;
  readonly generation: number;
  readonly config: ContainerConfig;
  /** The master's listening fds and their display addresses, in `config.listeners` order. */
  readonly sockets: readonly { readonly fd: number; readonly address: string }[];
  /** The worker entry module (`worker/entry.js`). */
  readonly entry: string;
  readonly env: NodeJS.ProcessEnv;
  /** When set, the worker's stdout and stderr are piped into it instead of inherited. */
  readonly stdout?: NodeJS.WritableStream;
  readonly maxRequests: number;
  readonly readyTimeoutMs: number;
}

export interface WorkerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface WorkerEvents {
  /** The process was forked (its slot has a new process), and why. */
  onSpawn?(worker: WorkerProcess, why: string): void;
  onReady?(worker: WorkerProcess, message: Extract<WorkerMessage, { type: 'ready' }>): void;
  onExit?(worker: WorkerProcess, exit: WorkerExit): void;
  onRecycle?(worker: WorkerProcess, reason: ExitReason): void;
  onCrashed?(worker: WorkerProcess, error: ErrorInfo): void;
  onHarakiri?(worker: WorkerProcess, report: HarakiriReport): void;
}

/** Extra time a stopping worker gets beyond its grace before SIGKILL (its own close, exit). */
const STOP_MARGIN_MS = 2000;

export class WorkerProcess {
  readonly id: number;
  readonly generation: number;
  readonly pid: number;
  readonly spawnedAt = Date.now();
  readyAt: number | undefined;
  state: 'starting' | 'ready' | 'stopping' | 'exited' = 'starting';
  /** Why the master stopped or killed it; undefined: it died on its own. */
  stopReason: ExitReason | undefined;
  /** The watchdog's record, when harakiri killed it. */
  harakiri: HarakiriReport | undefined;
  crashError: ErrorInfo | undefined;
  lastHeartbeat = Date.now();
  requests = 0;
  inFlight = 0;
  /** The counters it reported last (each heartbeat, each stats answer, and before it exits). */
  lastStats: StatsSnapshot | undefined;
  readonly ready: Promise<Extract<WorkerMessage, { type: 'ready' }>>;
  readonly exited: Promise<WorkerExit>;
  /** After `exited`, once its IPC channel and pipes are closed: no message can arrive any more. */
  readonly closed: Promise<void>;
  readonly #child: ChildProcess;
  readonly #events: WorkerEvents;
  #stopTimer: NodeJS.Timeout | undefined;
  #stopBy = Number.POSITIVE_INFINITY;
  #statsId = 0;
  readonly #statsWaiters = new Map<number, (s: StatsSnapshot | undefined) => void>();

  constructor(options: WorkerSpawnOptions, events: WorkerEvents) {
    this.id = options.id;
    this.generation = options.generation;
    this.#events = events;
    const out = options.stdout === undefined ? 'inherit' : 'pipe';
    const child = fork(options.entry, [], {
      stdio: ['ignore', out, out, 'ipc', 'pipe', ...options.sockets.map((s) => s.fd)],
      env: options.env,
      execArgv: workerExecArgv(process.execArgv),
      serialization: 'json',
    });
    if (options.stdout !== undefined) {
      child.stdout?.pipe(options.stdout, { end: false });
      child.stderr?.pipe(options.stdout, { end: false });
    }
    this.#child = child;
    this.pid = child.pid ?? -1;
    const listeners: ListenerHandoff[] = options.sockets.map((s, i) => ({
      fd: FIRST_LISTENER_FD + i,
      address: s.address,
    }));

    this.closed = new Promise((resolve) => child.once('close', () => resolve()));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.state = 'exited';
        if (this.#stopTimer !== undefined) clearTimeout(this.#stopTimer);
        for (const waiter of this.#statsWaiters.values()) waiter(undefined);
        this.#statsWaiters.clear();
        const exit = { code, signal };
        resolve(exit);
        this.#events.onExit?.(this, exit);
      });
    });
    this.ready = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new ContainerError(
            'UWSGI_ERR_WORKER_START_TIMEOUT',
            `worker ${this.id} (pid ${this.pid}) was not ready within ${options.readyTimeoutMs} ms`,
          ),
        );
        this.kill('boot');
      }, options.readyTimeoutMs);
      const onMessage = (message: unknown) => {
        if (!isWorkerMessage(message)) return;
        if (message.type === 'ready') {
          clearTimeout(timer);
          this.state = this.state === 'starting' ? 'ready' : this.state;
          this.readyAt = Date.now();
          this.lastHeartbeat = Date.now();
          resolve(message);
          this.#events.onReady?.(this, message);
        } else if (message.type === 'boot-failed') {
          clearTimeout(timer);
          const code = message.error.code === undefined ? '' : `${message.error.code}: `;
          reject(
            new ContainerError('UWSGI_ERR_WORKER_BOOT', `${code}${message.error.message}`, {
              cause: message.error,
            }),
          );
        }
      };
      child.on('message', onMessage);
      void this.exited.then((exit) => {
        clearTimeout(timer);
        reject(
          new ContainerError(
            'UWSGI_ERR_WORKER_BOOT',
            `worker ${this.id} (pid ${this.pid}) exited before it was ready (${describeExit(exit)})`,
          ),
        );
      });
    });
    // Nobody may be waiting (a respawn): a boot failure is reported through onExit.
    this.ready.catch(() => undefined);
    child.on('message', (message: unknown) => this.#onMessage(message));
    // A worker that exits while a send is in flight: EPIPE on the channel, not a crash of ours.
    child.on('error', () => undefined);

    const report = child.stdio[4];
    if (report != null) {
      createInterface({ input: report as Readable }).on('line', (line) => {
        try {
          const parsed = JSON.parse(line) as HarakiriReport;
          if (parsed.type === 'harakiri') {
            this.harakiri = parsed;
            this.#events.onHarakiri?.(this, parsed);
          }
        } catch {
          // Not a report line: ignore.
        }
      });
    }
    this.#send({
      type: 'start',
      config: options.config,
      listeners,
      workerId: this.id,
      generation: this.generation,
      maxRequests: options.maxRequests,
    });
  }

  #onMessage(message: unknown): void {
    if (!isWorkerMessage(message)) return;
    switch (message.type) {
      case 'heartbeat':
        this.lastHeartbeat = Date.now();
        this.requests = message.stats.requests;
        this.inFlight = message.stats.inFlight;
        this.lastStats = message.stats;
        return;
      case 'recycle':
        this.#events.onRecycle?.(this, message.reason);
        return;
      case 'crashed':
        this.crashError = message.error;
        this.#events.onCrashed?.(this, message.error);
        return;
      case 'stats':
        this.lastStats = message.stats;
        this.#statsWaiters.get(message.id)?.(message.stats);
        this.#statsWaiters.delete(message.id);
        return;
      case 'ready':
      case 'boot-failed':
        return;
    }
  }

  #send(message: MasterMessage): void {
    if (this.#child.connected) this.#child.send(message, () => undefined);
  }

  /**
   * Graceful stop: stop accepting, finish in flight within `timeoutMs`, exit; SIGKILL when it
   * has not exited shortly after. A later call with a shorter grace shortens it.
   */
  stop(timeoutMs: number, reason: ExitReason): void {
    if (this.state === 'exited') return;
    this.stopReason ??= reason;
    const by = Date.now() + timeoutMs;
    if (by >= this.#stopBy) return;
    this.#stopBy = by;
    this.state = 'stopping';
    this.#send({ type: 'stop', timeoutMs, reason });
    if (this.#stopTimer !== undefined) clearTimeout(this.#stopTimer);
    this.#stopTimer = setTimeout(() => this.kill(reason), timeoutMs + STOP_MARGIN_MS);
  }

  /** SIGKILL (the master's hard decisions: evil RSS, missed heartbeats, mercy exhausted). */
  kill(reason: ExitReason): void {
    if (this.state === 'exited') return;
    this.stopReason ??= reason;
    this.#child.kill('SIGKILL');
  }

  reopenLogs(): void {
    this.#send({ type: 'reopen-logs' });
  }

  /** This worker's `Container.stats()`, or undefined if it exits or does not answer in 1 s. */
  stats(): Promise<StatsSnapshot | undefined> {
    if (this.state === 'exited' || !this.#child.connected) return Promise.resolve(undefined);
    const id = ++this.#statsId;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#statsWaiters.delete(id);
        resolve(undefined);
      }, 1000);
      this.#statsWaiters.set(id, (s) => {
        clearTimeout(timer);
        resolve(s);
      });
      this.#send({ type: 'stats', id });
    });
  }

  /** Resident set size in bytes (procfs `VmRSS`), undefined when the process is gone. */
  rss(): number | undefined {
    return this.memory()?.rss;
  }

  /** Resident and virtual size in bytes (procfs `VmRSS`, `VmSize`); undefined once gone. */
  memory(): { rss: number; vsz: number } | undefined {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
      const rss = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      const vsz = /^VmSize:\s+(\d+) kB/m.exec(status)?.[1];
      if (rss === undefined) return undefined;
      return { rss: Number(rss) * 1024, vsz: Number(vsz ?? 0) * 1024 };
    } catch {
      return undefined;
    }
  }
}

/**
 * The master's Node flags minus resolution conditions: a `source` condition (the test runner's)
 * would make the compiled worker import TypeScript sources it cannot run. Memory and diagnostic
 * flags (--max-old-space-size, --enable-source-maps...) pass through to workers.
 */
export function workerExecArgv(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const arg = execArgv[i] ?? '';
    if (arg === '--conditions' || arg === '-C') {
      i++;
      continue;
    }
    if (arg.startsWith('--conditions=') || arg.startsWith('-C=')) continue;
    out.push(arg);
  }
  return out;
}

export function describeExit(exit: WorkerExit): string {
  return exit.signal === null ? `exit code ${String(exit.code)}` : `signal ${exit.signal}`;
}
