/**
 * The messages between the master (supervisor/) and a worker process (worker/entry.ts), over
 * Node's IPC channel (JSON serialisation). The one contract both sides import; see
 * docs/supervisor.md "IPC messages".
 */
import type { ContainerConfig } from '../config/types.ts';
import type { StatsSnapshot } from '../shared/stats.ts';

/**
 * Worker stdio layout (supervisor/worker-process.ts forks with it): fd 3 is the IPC channel,
 * fd 4 the watchdog's report pipe.
 */
export const REPORT_FD = 4;
/** Listening sockets follow, in the order of `config.listeners`. */
export const FIRST_LISTENER_FD = 5;

/** How often a worker's main thread bumps the watchdog's heartbeat counter (ms). */
export const BEAT_MS = 100;
/** The global the paused main thread is asked to call at harakiri (worker/entry.ts sets it). */
export const IN_FLIGHT_GLOBAL = 'uwsgi-ts.inFlight';

/** What the watchdog thread is started with. */
export interface WatchdogData {
  readonly beats: SharedArrayBuffer;
  /** 0: no harakiri, only the orphan guard. */
  readonly harakiriMs: number;
  readonly masterPid: number;
  /** Where the report goes (the worker's fd 4, read by the master). */
  readonly reportFd: number;
}

/** Why a worker was stopped or why it died. */
export type ExitReason =
  | 'crash'
  | 'boot'
  | 'harakiri'
  | 'heartbeat'
  | 'max-requests'
  | 'max-lifetime'
  | 'rss'
  | 'evil-rss'
  | 'reload'
  | 'reload-failed'
  | 'stop';

/** An error as it crosses the process boundary. */
export interface ErrorInfo {
  readonly code?: string;
  readonly message: string;
  readonly stack?: string;
}

export interface ListenerHandoff {
  readonly fd: number;
  /** Display form, `unix:/abs.sock` or `host:port`. */
  readonly address: string;
}

export type MasterMessage =
  | {
      readonly type: 'start';
      readonly config: ContainerConfig;
      readonly listeners: readonly ListenerHandoff[];
      readonly workerId: number;
      readonly generation: number;
      /** This worker's `maxRequests` with its jitter applied; 0 = off. */
      readonly maxRequests: number;
    }
  | { readonly type: 'stop'; readonly timeoutMs: number; readonly reason: ExitReason }
  | { readonly type: 'stats'; readonly id: number }
  | { readonly type: 'reopen-logs' };

export type WorkerMessage =
  | {
      readonly type: 'ready';
      readonly listeners: readonly { readonly protocol: string; readonly address: string }[];
      readonly mounts: readonly { readonly path: string; readonly kind: string }[];
      readonly transport?: string;
    }
  | { readonly type: 'boot-failed'; readonly error: ErrorInfo }
  /** Each second, and once more before a graceful exit: the worker's counters. */
  | { readonly type: 'heartbeat'; readonly stats: StatsSnapshot }
  | { readonly type: 'recycle'; readonly reason: ExitReason }
  | { readonly type: 'crashed'; readonly error: ErrorInfo }
  | { readonly type: 'stats'; readonly id: number; readonly stats: StatsSnapshot };

/** What the watchdog thread writes to the report pipe (one JSON line) before it kills. */
export interface HarakiriReport {
  readonly type: 'harakiri';
  readonly harakiriMs: number;
  readonly blockedMs: number;
  readonly requests: readonly {
    readonly method: string;
    readonly url: string;
    readonly mount: string | null;
    readonly ageMs: number;
    readonly answered: '504' | 'closed';
  }[];
  /** Innermost frame first, `name (url:line:col)`; absent when the pause never came. */
  readonly stack?: readonly string[];
  /** Why there is no stack or request list (a blocking native call cannot be paused). */
  readonly note?: string;
}

export function errorInfo(err: unknown): ErrorInfo {
  if (err instanceof Error) {
    const code = (err as Error & { code?: unknown }).code;
    return {
      ...(typeof code === 'string' ? { code } : {}),
      message: err.message,
      ...(err.stack === undefined ? {} : { stack: err.stack }),
    };
  }
  return { message: String(err) };
}

/** Type guard for messages arriving from a worker (anything else is ignored and logged). */
export function isWorkerMessage(value: unknown): value is WorkerMessage {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { type?: unknown }).type === 'string'
  );
}

export function isMasterMessage(value: unknown): value is MasterMessage {
  return isWorkerMessage(value);
}
