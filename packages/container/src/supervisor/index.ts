/**
 * `startSupervisor(config)`: a master with its workers serving, plus what surrounds it (pidfile,
 * control socket, touch-reload) — what `uwsgi-ts run` drives. Signals stay with the caller (the
 * CLI maps them onto `reload()`, `stop()` and `reopenLogs()`).
 */
import { type Stats, unwatchFile, watchFile, writeFileSync } from 'node:fs';
import type { ContainerConfig } from '../config/types.ts';
import type { Logger } from '../shared/log.ts';
import { type ControlServer, listenControl, removePidfile } from './control.ts';
import { Master, type MasterOptions, type MasterStats, type ReloadResult } from './master.ts';
import { Operator } from './operator.ts';

export { readPidfile, sendControl } from './control.ts';
export type { MasterStats, ReloadResult } from './master.ts';

export interface SupervisorStatus {
  readonly generation: number;
  readonly listeners: readonly { readonly protocol: string; readonly address: string }[];
  /** `requests`: served, as of the worker's last heartbeat (each second). */
  readonly workers: readonly Pick<
    MasterStats['workers'][number],
    'id' | 'pid' | 'generation' | 'state' | 'requests'
  >[];
}

export interface Supervisor {
  readonly pid: number;
  readonly logger: Logger;
  /** Graceful reload; rejects with `UWSGI_ERR_RELOAD_FAILED` (the old generation serves on). */
  reload(trigger?: string): Promise<ReloadResult>;
  /** Graceful stop (a second call with a smaller grace shortens it). */
  stop(timeoutMs?: number): Promise<void>;
  reopenLogs(): void;
  stats(): Promise<MasterStats>;
  /** The stats server's document (uWSGI field names). */
  statsDocument(): Promise<Record<string, unknown>>;
  /** The Prometheus text the metrics endpoint serves. */
  metrics(): Promise<string>;
  /** What the master knows now, without asking the workers (their last heartbeats). */
  status(): SupervisorStatus;
  /** Resolves once the supervisor has stopped (whoever stopped it). */
  readonly stopped: Promise<void>;
}

/**
 * Binds, starts the first generation and waits for it; then writes the pidfile, opens the
 * control socket, watches `touchReload` and logs `"msg":"ready"`.
 * @throws ContainerError from `Master.start()`; nothing is left running.
 */
export async function startSupervisor(
  config: ContainerConfig,
  options: MasterOptions,
): Promise<Supervisor> {
  const master = new Master(config, options);
  const log = master.logger;
  await master.start();

  let control: ControlServer | undefined;
  const operator = new Operator(master, log);
  const reload = async (trigger = 'operator'): Promise<ReloadResult> => {
    const result = await master.reload(trigger);
    // The new generation serves: an operator endpoint that cannot move stays where it was.
    await operator.update(master.config).catch((err: unknown) => {
      log.error({ err }, 'stats or metrics address could not be bound after the reload');
    });
    return result;
  };
  try {
    await operator.update(config);
    if (config.control !== undefined) {
      control = await listenControl(
        config.control,
        { reload: () => reload('control'), stats: async () => ({ stats: await master.stats() }) },
        log,
      );
    }
    if (config.pidfile !== undefined) writeFileSync(config.pidfile, `${process.pid}\n`);
  } catch (err) {
    control?.close();
    await operator.close();
    await master.stop(0);
    throw err;
  }
  const touch = config.touchReload;
  const onTouch = (current: Stats, previous: Stats) => {
    if (current.mtimeMs !== previous.mtimeMs) {
      reload('touch').catch(() => undefined);
    }
  };
  if (touch !== undefined) watchFile(touch, { interval: 500, persistent: false }, onTouch);

  log.info(
    {
      listeners: master.listeners(),
      mounts: config.mounts.map((m) => ({ path: m.path, app: m.app })),
      workers: master.workers().map((w) => w.pid),
      generation: master.generation,
      ...operator.addresses(),
      // As the single-process run logged it (the e2e suites check the transport under test).
      ...(master.transport === undefined ? {} : { transport: master.transport }),
    },
    'ready',
  );

  let stopping: Promise<void> | undefined;
  let onStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    onStopped = resolve;
  });
  return {
    stopped,
    pid: process.pid,
    logger: log,
    reload,
    reopenLogs: () => master.reopenLogs(),
    stats: () => master.stats(),
    statsDocument: () => operator.document(),
    metrics: () => operator.metrics(),
    status: () => ({
      generation: master.generation,
      listeners: master.listeners(),
      workers: master.workers().map((w) => ({
        id: w.id,
        pid: w.pid,
        generation: w.generation,
        state: w.state,
        requests: w.requests,
      })),
    }),
    stop(timeoutMs?: number) {
      const stopped = master.stop(timeoutMs);
      stopping ??= stopped
        .then(() => {
          if (touch !== undefined) unwatchFile(touch, onTouch);
          control?.close();
          removePidfile(config.pidfile);
          return operator.close();
        })
        .then(() => {
          onStopped();
        });
      return stopping;
    },
  };
}
