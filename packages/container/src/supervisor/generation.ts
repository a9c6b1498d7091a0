/**
 * One generation of workers: `count` slots started from one config, each slot kept filled
 * (respawn with backoff) until the generation is retired by a reload or a stop. Replacing a
 * worker (recycling) starts the new one first and hands the old one back to drain.
 */
import type { ContainerConfig } from '../config/types.ts';
import type { Logger } from '../shared/log.ts';
import type { ExitReason } from '../worker/ipc.ts';
import type { Backoff } from './backoff.ts';
import { type WorkerEvents, WorkerProcess } from './worker-process.ts';

export interface GenerationContext {
  readonly number: number;
  /** Why this generation starts (`start`, `reload (SIGHUP)`...): its first workers' history. */
  readonly why: string;
  readonly config: ContainerConfig;
  readonly sockets: readonly { readonly fd: number; readonly address: string }[];
  readonly count: number;
  readonly entry: string;
  readonly env: NodeJS.ProcessEnv;
  /** Set when worker output must be piped to this stream instead of inherited. */
  readonly stdout?: NodeJS.WritableStream;
  readonly log: Logger;
  /** The backoff of slot `index` (kept by the master across generations). */
  backoff(index: number): Backoff;
  /** The master's handlers; the generation adds respawning on exit. */
  readonly events: WorkerEvents;
  /** False once the master stops: no more respawns. */
  respawnAllowed(): boolean;
}

interface Slot {
  readonly index: number;
  worker: WorkerProcess;
  respawn: NodeJS.Timeout | undefined;
}

export class Generation {
  readonly number: number;
  readonly #ctx: GenerationContext;
  readonly #slots: Slot[] = [];
  readonly #first: Promise<unknown>[] = [];
  #retired = false;
  /** Every first worker was ready: from now on dead workers are respawned. */
  #accepted = false;

  constructor(ctx: GenerationContext) {
    this.#ctx = ctx;
    this.number = ctx.number;
    for (let index = 0; index < ctx.count; index++) {
      const worker = this.#spawn(index, ctx.why);
      this.#slots.push({ index, worker, respawn: undefined });
      this.#first.push(worker.ready);
    }
  }

  /**
   * Resolves when every first worker is ready; rejects with the first failure. Until then a
   * worker that dies is not respawned: the generation as a whole failed.
   */
  async ready(): Promise<void> {
    await Promise.all(this.#first);
    this.#accepted = true;
  }

  workers(): WorkerProcess[] {
    return this.#slots.map((s) => s.worker).filter((w) => w.state !== 'exited');
  }

  has(worker: WorkerProcess): boolean {
    return this.#slots.some((s) => s.worker === worker);
  }

  /** Forks the worker of slot `index`; `why` goes to the master's `onSpawn` (restart history). */
  #spawn(index: number, why: string): WorkerProcess {
    const { config } = this.#ctx;
    const jitter = config.limits.maxRequestsJitter;
    const maxRequests =
      config.limits.maxRequests === 0
        ? 0
        : config.limits.maxRequests + Math.floor(Math.random() * (jitter + 1));
    const worker = new WorkerProcess(
      {
        id: index + 1,
        generation: this.number,
        config,
        sockets: this.#ctx.sockets,
        entry: this.#ctx.entry,
        env: this.#ctx.env,
        ...(this.#ctx.stdout === undefined ? {} : { stdout: this.#ctx.stdout }),
        maxRequests,
        readyTimeoutMs: config.readyTimeoutMs,
      },
      {
        ...this.#ctx.events,
        onReady: (worker, message) => {
          this.#ctx.events.onReady?.(worker, message);
          this.#ctx.log.info(
            {
              worker: worker.id,
              workerPid: worker.pid,
              generation: this.number,
              ms: Date.now() - worker.spawnedAt,
            },
            'worker ready',
          );
        },
        onExit: (worker, exit) => {
          this.#ctx.events.onExit?.(worker, exit);
          this.#onExit(worker);
        },
      },
    );
    this.#ctx.events.onSpawn?.(worker, why);
    return worker;
  }

  #onExit(worker: WorkerProcess): void {
    const slot = this.#slots.find((s) => s.worker === worker);
    if (slot === undefined || !this.#accepted || this.#retired) return;
    if (!this.#ctx.respawnAllowed()) return;
    this.#respawnLater(slot, worker);
  }

  #respawnLater(slot: Slot, dead: WorkerProcess): void {
    if (slot.respawn !== undefined) return;
    const now = Date.now();
    const serving = dead.readyAt === undefined ? undefined : now - dead.readyAt;
    const delayMs = this.#ctx.backoff(slot.index).next(now - dead.spawnedAt, serving);
    if (delayMs > 0) {
      this.#ctx.log.warn(
        {
          worker: slot.index + 1,
          generation: this.number,
          delayMs,
          until: new Date(Date.now() + delayMs).toISOString(),
        },
        'worker respawn throttled',
      );
    }
    // A timer, never a wait: the master's loop stays free during a crash loop.
    slot.respawn = setTimeout(() => {
      slot.respawn = undefined;
      if (this.#retired || !this.#ctx.respawnAllowed()) return;
      slot.worker = this.#spawn(slot.index, 'respawn');
    }, delayMs);
  }

  /**
   * Takes `worker` out of its slot (it crashed and drains on its own) and fills the slot again.
   * False when the worker is not one of this generation's.
   */
  detach(worker: WorkerProcess): boolean {
    const slot = this.#slots.find((s) => s.worker === worker);
    if (slot === undefined || this.#retired) return false;
    this.#respawnLater(slot, worker);
    return true;
  }

  /**
   * Starts a replacement for `worker` and waits until it is ready; then the slot holds the new
   * worker and the old one is returned for the caller to drain. On failure the old worker keeps
   * its slot and undefined is returned.
   */
  async replace(worker: WorkerProcess, reason: ExitReason): Promise<WorkerProcess | undefined> {
    const slot = this.#slots.find((s) => s.worker === worker);
    if (slot === undefined || this.#retired) return undefined;
    const next = this.#spawn(slot.index, `recycle (${reason})`);
    try {
      await next.ready;
    } catch (err) {
      this.#ctx.log.error(
        { worker: worker.id, reason, err },
        'replacement worker failed: keeping the old one',
      );
      next.kill('boot');
      return undefined;
    }
    if (this.#retired || slot.worker !== worker) {
      next.stop(0, 'stop');
      return undefined;
    }
    slot.worker = next;
    return worker;
  }

  /** No more respawns; returns the live workers for the caller to drain. */
  retire(): WorkerProcess[] {
    this.#retired = true;
    for (const slot of this.#slots) {
      if (slot.respawn !== undefined) clearTimeout(slot.respawn);
      slot.respawn = undefined;
    }
    return this.workers();
  }

  /** Retires, stops every worker with `timeoutMs` of grace and waits for them to exit. */
  async stop(timeoutMs: number, reason: ExitReason): Promise<void> {
    const workers = this.retire();
    for (const worker of workers) worker.stop(timeoutMs, reason);
    await Promise.all(workers.map((w) => w.exited));
  }
}
