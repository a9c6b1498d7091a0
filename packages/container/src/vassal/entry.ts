/**
 * A vassal process: forked by the emperor (emperor/), it runs one supervisor (a master and its
 * workers, docs/supervisor.md) for one config file and reports to the emperor over IPC. It
 * never watches or parses files: the emperor validates each text and sends the parsed config.
 * docs/emperor.md has the messages and what happens on each signal and failure.
 */
import type { ContainerConfig } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';
import { flushLogger } from '../shared/log.ts';
import { type Supervisor, startSupervisor } from '../supervisor/index.ts';
import { errorInfo } from '../worker/ipc.ts';
import {
  type EmperorMessage,
  isEmperorMessage,
  VASSAL_ENV,
  VASSAL_HEARTBEAT_MS,
  type VassalCounters,
  type VassalMessage,
} from './ipc.ts';

/** Grace for in-flight requests when the emperor is gone (then the whole group is killed). */
const ORPHAN_GRACE_MS = 800;

let supervisor: Supervisor | undefined;
/** The config the next reload starts (set just before `reload()`). */
let next: ContainerConfig | undefined;
/** The config the serving generation runs (a SIGHUP to this process restarts it as is). */
let current: ContainerConfig | undefined;
let stopping = false;
let heartbeat: NodeJS.Timeout | undefined;
/** The serving config's, for a SIGTERM sent to the vassal itself. */
let shutdownTimeoutMs = 0;

function send(message: VassalMessage, then?: () => void): void {
  if (!process.connected) {
    then?.();
    return;
  }
  process.send?.(message, undefined, {}, () => then?.());
}

function counters(running: Supervisor): VassalCounters {
  const status = running.status();
  const live = status.workers.filter((w) => w.generation === status.generation);
  return {
    generation: status.generation,
    requests: status.workers.reduce((sum, w) => sum + w.requests, 0),
    workers: live.map((w) => w.pid),
  };
}

function failure(
  err: unknown,
): Pick<Extract<VassalMessage, { type: 'boot-failed' }>, 'error' | 'issues'> {
  return {
    error: errorInfo(err),
    ...(err instanceof ContainerError && err.issues !== undefined ? { issues: err.issues } : {}),
  };
}

async function start(message: Extract<EmperorMessage, { type: 'start' }>): Promise<void> {
  const { config } = message;
  // A spare was forked before it had a name: every logger (and each worker's) binds it from here.
  process.env[VASSAL_ENV] = message.name;
  try {
    current = config;
    shutdownTimeoutMs = config.shutdownTimeoutMs;
    supervisor = await startSupervisor(config, {
      reloadConfig: async () => next ?? current ?? config,
    });
  } catch (err) {
    send({ type: 'boot-failed', ...failure(err) }, () => process.exit(1));
    return;
  }
  const running = supervisor;
  if (stopping) {
    // A stop arrived while the first generation was starting.
    void running.stop(0).then(() => process.exit(0));
    return;
  }
  send({ type: 'ready', listeners: running.status().listeners, ...counters(running) });
  heartbeat = setInterval(
    () => send({ type: 'heartbeat', ...counters(running) }),
    VASSAL_HEARTBEAT_MS,
  );
  void running.stopped.then(() => {
    // Stopped from inside (it never is today) or by stop(): nothing is left to supervise.
    clearInterval(heartbeat);
  });
}

/** The emperor's reload that arrived while this process's own SIGHUP reload ran. */
let queued: Extract<EmperorMessage, { type: 'reload' }> | undefined;

/**
 * One reload at a time. The emperor never overlaps its own; a SIGHUP sent to this process
 * while a reload runs is ignored, and an emperor's reload that arrives during a SIGHUP one is
 * run next (the emperor waits for its answer).
 */
function reload(message: Extract<EmperorMessage, { type: 'reload' }>, own = false): void {
  const running = supervisor;
  if (running === undefined) return;
  if (next !== undefined) {
    if (own) running.logger.warn('SIGHUP: a reload is already running: ignored');
    else queued = message;
    return;
  }
  const { config } = message;
  next = config;
  const done = (answer: VassalMessage) => {
    next = undefined;
    if (!own) send(answer);
    const after = queued;
    queued = undefined;
    if (after !== undefined) reload(after);
  };
  running.reload(message.trigger).then(
    () => {
      current = config;
      shutdownTimeoutMs = config.shutdownTimeoutMs;
      done({ type: 'reloaded', ...counters(running) });
    },
    (err: unknown) => done({ type: 'reload-failed', ...failure(err) }),
  );
}

function stop(timeoutMs: number, code: number): void {
  stopping = true;
  clearInterval(heartbeat);
  const running = supervisor;
  if (running === undefined) {
    // Still starting: start() stops it once it serves (or it fails and exits).
    return;
  }
  void running.stop(timeoutMs).then(() => {
    flushLogger(running.logger);
    process.exit(code);
  });
}

function onMessage(message: unknown): void {
  if (!isEmperorMessage(message)) return;
  switch (message.type) {
    case 'start':
      void start(message);
      return;
    case 'reload':
      reload(message);
      return;
    case 'stop':
      stop(message.timeoutMs, 0);
      return;
    case 'reopen-logs':
      supervisor?.reopenLogs();
      return;
  }
}

/**
 * The emperor is gone (even by SIGKILL: the kernel closes its end of the channel). Nobody would
 * supervise this vassal any more, so it goes too, as uWSGI's vassals do: a short grace for
 * in-flight requests, then SIGKILL to its own process group, which takes whatever the apps
 * spawned with it (docs/emperor.md "No orphans").
 */
function onEmperorLost(): void {
  supervisor?.logger.warn('lost the emperor: stopping');
  const killGroup = () => {
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {
      // Not a group leader (started by hand): the workers go on their own disconnect.
    }
    process.exit(1);
  };
  setTimeout(killGroup, ORPHAN_GRACE_MS + 400).unref();
  const running = supervisor;
  if (running === undefined) killGroup();
  else void running.stop(ORPHAN_GRACE_MS).then(killGroup);
}

process.on('message', onMessage);
process.on('disconnect', onEmperorLost);
// The emperor decides; a vassal's own SIGTERM (an operator, systemd) is a graceful stop.
process.on('SIGTERM', () => stop(shutdownTimeoutMs, 0));
process.on('SIGINT', () => undefined);
process.on('SIGHUP', () => {
  if (current !== undefined) {
    reload({ type: 'reload', trigger: 'SIGHUP', file: '', config: current }, true);
  }
});
process.on('SIGUSR1', () => supervisor?.reopenLogs());
