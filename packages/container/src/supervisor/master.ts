/**
 * The master: binds the listeners once, keeps `workers` worker processes serving them, reloads
 * generations transactionally, recycles and replaces workers, and never loads an app or parses
 * a request. The process model, the messages and every signal: docs/supervisor.md.
 */
import { availableParallelism } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatIssue } from '../config/issues.ts';
import type { ContainerConfig } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';
import { createLogger, flushLogger, type Logger, reopenLogFiles } from '../shared/log.ts';
import { addSnapshots, type StatsSnapshot, settledSnapshot } from '../shared/stats.ts';
import type { WorkerFacts } from '../stats/document.ts';
import type { ErrorInfo, ExitReason, HarakiriReport } from '../worker/ipc.ts';
import { Backoff } from './backoff.ts';
import { Generation, type GenerationContext } from './generation.ts';
import { Slots } from './slots.ts';
import { type BoundSocket, bindListener, listenerKey } from './sockets.ts';
import { type SystemdSockets, systemdSockets } from './systemd.ts';
import { describeExit, type WorkerExit, type WorkerProcess } from './worker-process.ts';

export interface MasterOptions {
  /** Re-reads and validates the config file on reload (the CLI passes `readConfig`). */
  readonly reloadConfig: () => Promise<ContainerConfig>;
  /** Absolute path of `worker/entry.js`; default: beside this module in `dist`. */
  readonly workerEntry?: string;
  /** Base environment of the workers; default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /**
   * Where the master's and the workers' logs go; default `process.stdout`, which workers
   * inherit (each writes its own lines). Any other stream gets the workers' output piped in.
   */
  readonly stdout?: NodeJS.WritableStream & { readonly isTTY?: boolean | undefined };
  readonly logger?: Logger;
}

export interface ReloadResult {
  readonly generation: number;
  readonly workers: number;
}

export interface MasterStats {
  readonly generation: number;
  /** Milliseconds since the epoch when the master started. */
  readonly startedAt: number;
  /** Every live worker's counters summed. */
  readonly total: StatsSnapshot | undefined;
  /**
   * Since the master started: the live workers' counters plus the last ones reported by every
   * worker that has exited (Prometheus counters must never go down when a worker is replaced).
   */
  readonly lifetime: StatsSnapshot | undefined;
  /** Live workers: the serving generation's and those draining. */
  readonly workers: readonly WorkerFacts[];
  /** Worker exits by reason since the master started. */
  readonly exits: Readonly<Partial<Record<ExitReason, number>>>;
}

/**
 * How often the master samples RSS, lifetimes and heartbeats: a worker over
 * `evilReloadOnRssMb` is killed within this (plus its exit) of crossing it.
 */
const TICK_MS = 250;
/** A worker whose heartbeat stops this long past harakiriMs is killed by the master. */
const HEARTBEAT_MARGIN_MS = 2000;

export function workerCount(config: ContainerConfig): number {
  return config.workers === 'auto' ? Math.max(1, availableParallelism()) : config.workers;
}

export class Master {
  readonly logger: Logger;
  #config: ContainerConfig;
  readonly #options: MasterOptions;
  readonly #sockets = new Map<string, BoundSocket>();
  readonly #systemd: SystemdSockets | undefined;
  #current: Generation | undefined;
  /** Workers of older generations (or recycled) that are draining. */
  readonly #draining = new Set<WorkerProcess>();
  #generationNumber = 0;
  #reloading: Promise<ReloadResult> | undefined;
  /** The one reload queued behind the running one (later requests share it). */
  #pendingReload: Promise<ReloadResult> | undefined;
  #stopping: Promise<void> | undefined;
  #stopBy = Number.POSITIVE_INFINITY;
  #tick: NodeJS.Timeout | undefined;
  #recycling = false;
  readonly #recycleQueue: { worker: WorkerProcess; reason: ExitReason }[] = [];
  readonly #backoffs = new Map<number, Backoff>();
  /** The uwsgi transport the workers report in `ready` (for the master's ready record). */
  #transport: string | undefined;
  readonly startedAt = Date.now();
  readonly #slots: Slots;
  /** The last counters of every worker that has exited, summed. */
  #retired: StatsSnapshot | undefined;
  /** Workers that have exited and whose channel has not closed yet. */
  readonly #retiring = new Set<WorkerProcess>();

  constructor(config: ContainerConfig, options: MasterOptions) {
    this.#config = config;
    this.#options = options;
    this.logger =
      options.logger ??
      createLogger(config.log, {
        sharedOutput: true,
        bindings: { role: 'master' },
        // `log.file` wins over the caller's stdout: the CLI always passes process.stdout, and
        // createLogger prefers an explicit stream, so the master logged to stdout while its
        // workers wrote the file (and SIGUSR1 had no file of the master's to reopen).
        ...(options.stdout === undefined || config.log.file !== undefined
          ? {}
          : { stdout: options.stdout }),
      });
    this.#systemd = systemdSockets(options.env ?? process.env, process.pid);
    this.#slots = new Slots(config.restartHistory);
  }

  get config(): ContainerConfig {
    return this.#config;
  }

  /** Listeners as bound (actual addresses), in config order. */
  listeners(): { protocol: string; address: string }[] {
    return this.#config.listeners.map((l) => ({
      protocol: l.protocol,
      address: this.#sockets.get(listenerKey(l, this.#config))?.address ?? l.address,
    }));
  }

  get generation(): number {
    return this.#generationNumber;
  }

  /** The uwsgi transport the workers serve with (`fast`, `net`); undefined without uwsgi listeners. */
  get transport(): string | undefined {
    return this.#transport;
  }

  /** Every live worker: the serving generation and those draining. */
  workers(): WorkerProcess[] {
    // A crashed worker drains while its slot waits to respawn: it is in both until then.
    return [...new Set([...(this.#current?.workers() ?? []), ...this.#draining])];
  }

  /**
   * Binds every listener, starts the first generation and waits until every worker is ready.
   * @throws ContainerError `UWSGI_ERR_LISTEN`, `UWSGI_ERR_WORKER_BOOT`,
   *   `UWSGI_ERR_WORKER_START_TIMEOUT`; everything started is released first.
   */
  async start(): Promise<void> {
    const config = this.#config;
    let generation: Generation | undefined;
    try {
      await this.#bindAll(config);
      generation = this.#newGeneration(config, 'start');
      await generation.ready();
      this.#current = generation;
    } catch (err) {
      await generation?.stop(0, 'boot');
      this.#closeSockets(new Set());
      throw err;
    }
    for (const unclaimed of this.#systemd?.unclaimed() ?? []) {
      this.logger.warn({ fd: unclaimed.fd }, 'a socket passed by systemd matches no listener');
    }
    this.#tick = setInterval(() => this.#onTick(), TICK_MS);
    this.#tick.unref();
  }

  /** Binds the listeners of `config` that are not bound yet; returns the keys it bound. */
  async #bindAll(config: ContainerConfig): Promise<Set<string>> {
    const added = new Set<string>();
    try {
      for (const listener of config.listeners) {
        const key = listenerKey(listener, config);
        if (this.#sockets.has(key)) continue;
        this.#sockets.set(key, await bindListener(listener, config, this.#systemd));
        added.add(key);
      }
    } catch (err) {
      for (const key of added) {
        this.#sockets.get(key)?.close();
        this.#sockets.delete(key);
      }
      throw err;
    }
    return added;
  }

  /** Closes every socket whose key is not in `keep`. */
  #closeSockets(keep: ReadonlySet<string>): void {
    for (const [key, socket] of this.#sockets) {
      if (keep.has(key)) continue;
      socket.close();
      this.#sockets.delete(key);
    }
  }

  #keys(config: ContainerConfig): Set<string> {
    return new Set(config.listeners.map((l) => listenerKey(l, config)));
  }

  #newGeneration(config: ContainerConfig, why: string): Generation {
    this.#slots.historySize = config.restartHistory;
    const number = ++this.#generationNumber;
    const sockets = config.listeners.map((l) => {
      const socket = this.#sockets.get(listenerKey(l, config));
      if (socket === undefined) throw new Error('unreachable: listener not bound');
      return { fd: socket.fd, address: socket.address };
    });
    const context: GenerationContext = {
      number,
      why,
      config,
      sockets,
      count: workerCount(config),
      entry: this.#options.workerEntry ?? defaultWorkerEntry(),
      ...(this.#options.stdout === undefined || this.#options.stdout === process.stdout
        ? {}
        : { stdout: this.#options.stdout }),
      env: { ...(this.#options.env ?? process.env), ...config.env },
      log: this.logger,
      backoff: (slot) => {
        let backoff = this.#backoffs.get(slot);
        if (backoff === undefined) {
          backoff = new Backoff();
          this.#backoffs.set(slot, backoff);
        }
        return backoff;
      },
      events: {
        onSpawn: (worker, why) => this.#slots.spawned(worker, why),
        onReady: (worker, message) => {
          if (message.transport !== undefined) this.#transport = message.transport;
          this.#slots.ready(worker);
        },
        onExit: (worker, exit) => this.#onExit(worker, exit),
        onRecycle: (worker, reason) => this.#requestRecycle(worker, reason),
        onCrashed: (worker, error) => this.#onCrashed(worker, error),
        onHarakiri: (worker, report) => this.#onHarakiri(worker, report),
      },
      respawnAllowed: () => this.#stopping === undefined,
    };
    return new Generation(context);
  }

  #onExit(worker: WorkerProcess, exit: WorkerExit): void {
    this.#draining.delete(worker);
    const reason: ExitReason =
      worker.harakiri !== undefined
        ? 'harakiri'
        : (worker.stopReason ?? (worker.readyAt === undefined ? 'boot' : 'crash'));
    const record = {
      worker: worker.id,
      workerPid: worker.pid,
      generation: worker.generation,
      code: exit.code,
      signal: exit.signal,
      reason,
      uptimeMs: Date.now() - worker.spawnedAt,
    };
    this.#slots.exited(worker, exit, reason);
    // Its last counters may still be on the way (the heartbeat a worker sends before a graceful
    // exit): they count once its channel has closed; until then its last report does.
    this.#retiring.add(worker);
    void worker.closed.then(() => {
      this.#retiring.delete(worker);
      const last = worker.lastStats;
      if (last === undefined) return;
      const settled = settledSnapshot(last);
      this.#retired = this.#retired === undefined ? settled : addSnapshots(this.#retired, settled);
      this.#slots.retire(worker.id, settled);
    });
    const expected = worker.stopReason !== undefined && exit.code === 0;
    if (expected) this.logger.info(record, 'worker exited');
    else this.logger.warn(record, `worker exited (${describeExit(exit)})`);
  }

  #onCrashed(worker: WorkerProcess, error: ErrorInfo): void {
    this.#slots.crashed(worker, error.message);
    this.logger.error(
      { worker: worker.id, workerPid: worker.pid, error: error.message },
      'worker crashed: replacing it',
    );
    // The crashed worker drains on its own; its slot gets a replacement now.
    if (this.#current?.detach(worker) === true) this.#draining.add(worker);
  }

  #onHarakiri(worker: WorkerProcess, report: HarakiriReport): void {
    this.#slots.harakiri(worker, report);
    this.logger.error(
      {
        worker: worker.id,
        workerPid: worker.pid,
        harakiriMs: report.harakiriMs,
        blockedMs: report.blockedMs,
        requests: report.requests,
        stack: report.stack,
        ...(report.note === undefined ? {} : { note: report.note }),
      },
      'harakiri: event loop blocked, worker killed',
    );
  }

  /** One graceful recycle at a time, new worker first (never all workers at once). */
  #requestRecycle(worker: WorkerProcess, reason: ExitReason): void {
    if (worker.state !== 'ready') return;
    if (this.#recycleQueue.some((q) => q.worker === worker)) return;
    this.#recycleQueue.push({ worker, reason });
    void this.#runRecycles();
  }

  async #runRecycles(): Promise<void> {
    if (this.#recycling) return;
    this.#recycling = true;
    try {
      for (let next = this.#recycleQueue.shift(); next; next = this.#recycleQueue.shift()) {
        const generation = this.#current;
        if (this.#stopping !== undefined || generation === undefined) break;
        if (!generation.has(next.worker) || next.worker.state !== 'ready') continue;
        this.logger.info(
          { worker: next.worker.id, workerPid: next.worker.pid, reason: next.reason },
          'recycling worker',
        );
        this.#slots.recycling(next.worker, next.reason);
        const old = await generation.replace(next.worker, next.reason);
        if (old !== undefined) {
          this.#draining.add(old);
          old.stop(this.#config.reloadMercyMs, next.reason);
        }
      }
    } finally {
      this.#recycling = false;
    }
  }

  #onTick(): void {
    const limits = this.#config.limits;
    const now = Date.now();
    for (const worker of this.#current?.workers() ?? []) {
      if (worker.state !== 'ready') continue;
      if (
        limits.harakiriMs > 0 &&
        now - worker.lastHeartbeat > limits.harakiriMs + HEARTBEAT_MARGIN_MS
      ) {
        this.logger.error(
          { worker: worker.id, workerPid: worker.pid, silentMs: now - worker.lastHeartbeat },
          'worker heartbeat missed: killing it',
        );
        worker.kill('heartbeat');
        continue;
      }
      if (limits.evilReloadOnRssMb > 0 || limits.reloadOnRssMb > 0) {
        const rss = worker.rss();
        const mb = rss === undefined ? 0 : rss / 1048576;
        if (limits.evilReloadOnRssMb > 0 && mb > limits.evilReloadOnRssMb) {
          this.logger.warn(
            {
              worker: worker.id,
              workerPid: worker.pid,
              rssMb: Math.round(mb),
              limitMb: limits.evilReloadOnRssMb,
            },
            'worker over evilReloadOnRssMb: killing it',
          );
          worker.kill('evil-rss');
          continue;
        }
        if (limits.reloadOnRssMb > 0 && mb > limits.reloadOnRssMb) {
          this.#requestRecycle(worker, 'rss');
          continue;
        }
      }
      if (
        limits.maxLifetimeMs > 0 &&
        worker.readyAt !== undefined &&
        now - worker.spawnedAt > limits.maxLifetimeMs
      ) {
        this.#requestRecycle(worker, 'max-lifetime');
      }
    }
  }

  /**
   * Graceful, transactional reload: validate the file, bind new listeners, start a complete new
   * generation and wait for it; only then drain the old one. Any failure leaves the serving
   * generation untouched and rejects with `UWSGI_ERR_RELOAD_FAILED`. Calls during a reload
   * coalesce into one more reload after it.
   */
  reload(trigger: string): Promise<ReloadResult> {
    if (this.#stopping !== undefined) {
      return Promise.reject(
        new ContainerError('UWSGI_ERR_RELOAD_FAILED', 'the master is stopping'),
      );
    }
    if (this.#reloading !== undefined) {
      this.#pendingReload ??= this.#reloading
        .catch(() => undefined)
        .then(() => {
          this.#pendingReload = undefined;
          return this.reload(trigger);
        });
      return this.#pendingReload;
    }
    this.#reloading = this.#reload(trigger).finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reload(trigger: string): Promise<ReloadResult> {
    const started = Date.now();
    this.logger.info({ trigger }, 'reloading');
    let config: ContainerConfig;
    try {
      config = await this.#options.reloadConfig();
    } catch (err) {
      throw this.#reloadFailed(err, 'the config is invalid', started);
    }
    let added: Set<string>;
    try {
      added = await this.#bindAll(config);
    } catch (err) {
      throw this.#reloadFailed(err, 'a new listener cannot be bound', started);
    }
    const next = this.#newGeneration(config, `reload (${trigger})`);
    try {
      await next.ready();
    } catch (err) {
      await next.stop(config.reloadMercyMs, 'reload-failed');
      for (const key of added) {
        this.#sockets.get(key)?.close();
        this.#sockets.delete(key);
      }
      throw this.#reloadFailed(err, 'the new generation did not become ready', started);
    }
    if (this.#stopping !== undefined) {
      await next.stop(0, 'stop');
      throw new ContainerError('UWSGI_ERR_RELOAD_FAILED', 'the master is stopping');
    }
    const old = this.#current;
    this.#current = next;
    this.#config = config;
    // Stop respawning the old slots, then drain them.
    const oldWorkers = old?.retire() ?? [];
    for (const worker of oldWorkers) {
      this.#draining.add(worker);
      worker.stop(config.reloadMercyMs, 'reload');
    }
    // Listeners the new config dropped close once the old generation is gone (the current
    // config at that time decides, in case another reload came in between).
    void Promise.all(oldWorkers.map((w) => w.exited)).then(() => {
      if (this.#stopping === undefined) this.#closeSockets(this.#keys(this.#config));
    });
    const result = { generation: next.number, workers: next.workers().length };
    this.logger.info({ ...result, trigger, ms: Date.now() - started }, 'reloaded');
    return result;
  }

  #reloadFailed(err: unknown, what: string, started: number): ContainerError {
    const detail =
      err instanceof ContainerError && err.issues !== undefined
        ? err.issues.map((i) => formatIssue(i)).join('; ')
        : err instanceof Error
          ? err.message
          : String(err);
    const failure = new ContainerError(
      'UWSGI_ERR_RELOAD_FAILED',
      `reload failed: ${what}: ${detail}`,
      {
        cause: err,
      },
    );
    this.logger.error(
      { reason: what, error: detail, ms: Date.now() - started, generation: this.#generationNumber },
      'reload failed: the old generation keeps serving',
    );
    return failure;
  }

  /** SIGUSR1: reopen log files here and in every worker. */
  reopenLogs(): void {
    reopenLogFiles();
    for (const worker of this.workers()) worker.reopenLogs();
    this.logger.info('log files reopened');
  }

  /** Every worker's counters, summed, and per worker. */
  async stats(): Promise<MasterStats> {
    const workers = this.workers();
    const current = new Set(this.#current?.workers() ?? []);
    // Taken before the wait: a worker that exits meanwhile must not count here and as retired.
    const retired = this.#retired;
    const retiring = [...this.#retiring].map((w) => w.lastStats);
    const snapshots = await Promise.all(workers.map((w) => w.stats()));
    // A worker that did not answer within 1 s has a blocked event loop: its last report.
    const latest = workers.map((w, i) => snapshots[i] ?? w.lastStats);
    return {
      generation: this.#generationNumber,
      startedAt: this.startedAt,
      total: sumStats(snapshots),
      lifetime: sumStats([retired, ...retiring, ...latest]),
      workers: workers.map((w, i) => {
        const memory = w.memory();
        const stats = latest[i];
        return {
          id: w.id,
          pid: w.pid,
          generation: w.generation,
          state: w.state,
          current: current.has(w),
          requests: stats?.requests ?? w.requests,
          rss: memory?.rss,
          vsz: memory?.vsz,
          spawnedAt: w.spawnedAt,
          stats,
          responsive: snapshots[i] !== undefined,
          slot: this.#slots.view(w.id),
        };
      }),
      exits: Object.fromEntries(this.#slots.exits),
    };
  }

  /** The bound listening sockets, in config order (the stats server reads their queues). */
  listenerSockets(): { protocol: string; address: string; fd: number; backlog: number }[] {
    return this.#config.listeners.flatMap((l) => {
      const socket = this.#sockets.get(listenerKey(l, this.#config));
      return socket === undefined
        ? []
        : [{ protocol: l.protocol, address: socket.address, fd: socket.fd, backlog: l.backlog }];
    });
  }

  /**
   * Graceful stop: every worker stops accepting and finishes in flight within `timeoutMs`
   * (default `shutdownTimeoutMs`); then the sockets are closed. A later call with a shorter
   * grace (a second signal) shortens it. Resolves once every worker has exited.
   */
  stop(timeoutMs = this.#config.shutdownTimeoutMs): Promise<void> {
    const by = Date.now() + timeoutMs;
    if (by < this.#stopBy) {
      this.#stopBy = by;
      for (const worker of this.workers()) worker.stop(timeoutMs, 'stop');
    }
    this.#stopping ??= this.#stop(timeoutMs);
    return this.#stopping;
  }

  async #stop(timeoutMs: number): Promise<void> {
    if (this.#tick !== undefined) clearInterval(this.#tick);
    this.logger.info({ timeoutMs }, 'stopping');
    await this.#reloading?.catch(() => undefined);
    const current = this.#current;
    await Promise.all([
      current?.stop(Math.max(0, this.#stopBy - Date.now()), 'stop'),
      ...[...this.#draining].map((w) => w.exited),
    ]);
    this.#closeSockets(new Set());
    this.logger.info('stopped');
    flushLogger(this.logger);
  }
}

/**
 * `worker/entry.js` beside this module. Run from the TypeScript sources (tests with the `source`
 * condition), the compiled entry in `dist` is used: a `.ts` file cannot be forked on Node 20.
 */
function defaultWorkerEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const entry = join(dirname(here), '..', 'worker', 'entry.js');
  if (here.endsWith('.ts')) {
    return entry.replace(`${sep}src${sep}worker${sep}`, `${sep}dist${sep}worker${sep}`);
  }
  return entry;
}

function sumStats(all: readonly (StatsSnapshot | undefined)[]): StatsSnapshot | undefined {
  let sum: StatsSnapshot | undefined;
  for (const s of all) if (s !== undefined) sum = sum === undefined ? s : addSnapshots(sum, s);
  return sum;
}
