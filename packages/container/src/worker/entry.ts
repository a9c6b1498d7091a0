/**
 * A worker process: forked by the master (supervisor/), it runs one `Container` on the listening
 * sockets it inherited (fds 5..), reports over IPC, and never manages another process. See
 * docs/supervisor.md for the messages and what happens on each signal and failure.
 */
import { Worker } from 'node:worker_threads';
import { type Container, createContainer } from '../container.ts';
import { createLogger, flushLogger, type Logger, reopenLogFiles } from '../shared/log.ts';
import {
  BEAT_MS,
  errorInfo,
  IN_FLIGHT_GLOBAL,
  isMasterMessage,
  type MasterMessage,
  REPORT_FD,
  type WatchdogData,
  type WorkerMessage,
} from './ipc.ts';

/** How often the main thread tells the master it is alive (and its counters). */
const HEARTBEAT_MS = 1000;
/** Longest an exiting worker waits for its last counters to reach the master (ms). */
const FINAL_STATS_MS = 200;
/** The master, as forked: a later ppid is init or a subreaper (the master is gone). */
const MASTER_PID = process.ppid;
/** Grace for in-flight requests when the master is gone. */
const ORPHAN_GRACE_MS = 800;

type StartMessage = Extract<MasterMessage, { type: 'start' }>;

let container: Container | undefined;
let logger: Logger | undefined;
let stopping: Promise<void> | undefined;
let exitCode = 0;

function send(message: WorkerMessage): void {
  if (process.connected) process.send?.(message);
}

/** Stops the container within `timeoutMs` and exits; later calls can only shorten the grace. */
function stop(timeoutMs: number, code: number): void {
  if (code !== 0) exitCode = code;
  if (container === undefined) {
    flushAndExit();
    return;
  }
  const closing = container.close({ timeoutMs });
  stopping ??= closing.then(flushAndExit, (err: unknown) => {
    logger?.error({ err }, 'worker stop failed');
    exitCode = 1;
    flushAndExit();
  });
}

function flushAndExit(): void {
  if (logger !== undefined) flushLogger(logger);
  // The last counters, so the master's lifetime totals (Prometheus) miss nothing of ours.
  if (container === undefined || !process.connected) process.exit(exitCode);
  const exit = () => process.exit(exitCode);
  setTimeout(exit, FINAL_STATS_MS);
  process.send?.({ type: 'heartbeat', stats: container.stats() } satisfies WorkerMessage, exit);
}

function onCrash(kind: string, err: unknown): void {
  // One JSON record with the stack, then a drain: requests in flight are answered or closed.
  logger?.error({ err }, kind);
  if (stopping !== undefined) return;
  send({ type: 'crashed', error: errorInfo(err) });
  const timeoutMs = startMessage?.config.shutdownTimeoutMs ?? 0;
  stop(timeoutMs, 1);
}

let startMessage: StartMessage | undefined;

async function start(message: StartMessage): Promise<void> {
  startMessage = message;
  const { config } = message;
  logger = createLogger(config.log, { sharedOutput: true, bindings: { worker: message.workerId } });
  let served = 0;
  const maxRequests = message.maxRequests;
  let recycleAsked = false;
  const created = createContainer(config, {
    logger,
    inherited: message.listeners,
    trackRequests: config.limits.harakiriMs > 0,
    // The master logs the one "ready" record, once every worker serves.
    readyMessage: 'worker serving',
    ...(maxRequests > 0
      ? {
          onRequestDone: () => {
            served++;
            if (served >= maxRequests && !recycleAsked) {
              recycleAsked = true;
              send({ type: 'recycle', reason: 'max-requests' });
            }
          },
        }
      : {}),
  });
  container = created;
  (globalThis as Record<symbol, unknown>)[Symbol.for(IN_FLIGHT_GLOBAL)] = () =>
    created.inFlightRequests();
  try {
    await created.start();
  } catch (err) {
    logger.error({ err }, 'worker boot failed');
    send({ type: 'boot-failed', error: errorInfo(err) });
    stop(0, 1);
    return;
  }
  // After the apps loaded: its thread's boot (~80 ms of CPU) does not delay readiness. Until
  // then a blocked boot is the master's readyTimeoutMs, and an orphaned one the IPC disconnect.
  startWatchdog(config.limits.harakiriMs);
  send({
    type: 'ready',
    listeners: created.listeners,
    mounts: created.mounts.map((m) => ({ path: m.path, kind: m.kind })),
    // The master's ready record names it, as the single-process run's did.
    ...(created.transport === undefined ? {} : { transport: created.transport }),
  });
  setInterval(() => send({ type: 'heartbeat', stats: created.stats() }), HEARTBEAT_MS).unref();
}

/** The watchdog thread (worker/watchdog.ts): harakiri and the orphan guard. */
function startWatchdog(harakiriMs: number): void {
  const beats = new SharedArrayBuffer(4);
  const watchdogData: WatchdogData = {
    beats,
    harakiriMs,
    masterPid: MASTER_PID,
    reportFd: REPORT_FD,
  };
  const watchdog = new Worker(new URL('./watchdog.js', import.meta.url), {
    workerData: watchdogData,
    // Its own small heap; it never touches the main thread's objects.
    resourceLimits: { maxOldGenerationSizeMb: 16 },
  });
  watchdog.unref();
  watchdog.on('error', (err) => logger?.error({ err }, 'watchdog failed'));
  const counter = new Int32Array(beats);
  setInterval(() => Atomics.add(counter, 0, 1), BEAT_MS).unref();
}

function onMessage(raw: unknown): void {
  if (!isMasterMessage(raw)) return;
  const message = raw;
  switch (message.type) {
    case 'start':
      if (startMessage !== undefined) return;
      start(message).catch((err: unknown) => onCrash('worker start failed', err));
      return;
    case 'stop':
      stop(message.timeoutMs, 0);
      return;
    case 'stats':
      if (container !== undefined)
        send({ type: 'stats', id: message.id, stats: container.stats() });
      return;
    case 'reopen-logs':
      reopenLogFiles();
      return;
  }
}

process.on('message', onMessage);
// The master is gone (even by SIGKILL: the kernel closes its end of the channel).
process.on('disconnect', () => {
  stop(ORPHAN_GRACE_MS, exitCode);
  // The watchdog thread kills a worker that stays orphaned (ORPHAN_KILL_MS), blocked or not.
});
process.on('uncaughtException', (err) => onCrash('uncaught exception', err));
process.on('unhandledRejection', (reason) => onCrash('unhandled rejection', reason));
// Ctrl-C on a terminal reaches the whole process group: the master decides what happens.
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => undefined);
process.on('SIGUSR1', () => undefined);
// An operator stopping this one worker: graceful, the master replaces it.
process.on('SIGTERM', () => stop(startMessage?.config.shutdownTimeoutMs ?? 0, 0));
// IPC must not keep a stopped worker alive, nor must it end a worker before 'start' arrives.
process.channel?.ref();
