/**
 * What the master remembers of each worker slot across its processes (uWSGI keeps the same in
 * its per-worker shared memory): how many processes it has had, how many harakiri kills, when
 * the current one was forked, and the restart history. Slots are numbered 1..workers and keep
 * their number across respawns, recycles and reloads.
 */
import { History, type LifecycleEvent } from '../shared/history.ts';
import type { StatsSnapshot } from '../shared/stats.ts';
import type { ExitReason, HarakiriReport } from '../worker/ipc.ts';
import { describeExit, type WorkerExit, type WorkerProcess } from './worker-process.ts';

export interface SlotView {
  /** Processes started in this slot after its first one (uWSGI `respawn_count`). */
  readonly respawns: number;
  /** Workers of this slot killed by harakiri or a missed heartbeat (uWSGI `harakiri_count`). */
  readonly harakiris: number;
  /** Oldest first. */
  readonly history: readonly LifecycleEvent[];
  /** The counters of the slot's processes that have exited, summed (uWSGI keeps them per slot). */
  readonly retired: RetiredCounters;
}

export interface RetiredCounters {
  readonly requests: number;
  /** Of those, finished (for the mean response time). */
  readonly finished: number;
  readonly exceptions: number;
  readonly txBytes: number;
  readonly runningTimeUs: number;
}

interface Slot {
  spawns: number;
  harakiris: number;
  readonly history: History;
  retired: RetiredCounters;
}

export class Slots {
  readonly #slots = new Map<number, Slot>();
  #historySize: number;
  /** Worker exits by reason since the master started (Prometheus `..._worker_restarts_total`). */
  readonly exits = new Map<ExitReason, number>();

  constructor(historySize: number) {
    this.#historySize = historySize;
  }

  /** `restartHistory` after a reload: applies to slots created from now on. */
  set historySize(size: number) {
    this.#historySize = size;
  }

  #slot(id: number): Slot {
    let slot = this.#slots.get(id);
    if (slot === undefined) {
      slot = {
        spawns: 0,
        harakiris: 0,
        history: new History(this.#historySize),
        retired: { requests: 0, finished: 0, exceptions: 0, txBytes: 0, runningTimeUs: 0 },
      };
      this.#slots.set(id, slot);
    }
    return slot;
  }

  spawned(worker: WorkerProcess, why: string): void {
    const slot = this.#slot(worker.id);
    slot.spawns++;
    slot.history.record('spawned', `${why}, generation ${worker.generation}`, worker.pid);
  }

  ready(worker: WorkerProcess): void {
    this.#slot(worker.id).history.record(
      'ready',
      `in ${Date.now() - worker.spawnedAt} ms`,
      worker.pid,
    );
  }

  recycling(worker: WorkerProcess, reason: ExitReason): void {
    this.#slot(worker.id).history.record('recycling', reason, worker.pid);
  }

  crashed(worker: WorkerProcess, message: string): void {
    this.#slot(worker.id).history.record('crashed', message, worker.pid);
  }

  harakiri(worker: WorkerProcess, report: HarakiriReport): void {
    const first = report.requests[0];
    const request = first === undefined ? 'no request in flight' : `${first.method} ${first.url}`;
    this.#slot(worker.id).history.record(
      'harakiri',
      `${request} (event loop blocked ${report.blockedMs} ms)`,
      worker.pid,
    );
  }

  exited(worker: WorkerProcess, exit: WorkerExit, reason: ExitReason): void {
    const slot = this.#slot(worker.id);
    if (reason === 'harakiri' || reason === 'heartbeat') slot.harakiris++;
    this.exits.set(reason, (this.exits.get(reason) ?? 0) + 1);
    const error = reason === 'crash' ? worker.crashError?.message : undefined;
    slot.history.record(
      'exited',
      `${reason} (${describeExit(exit)})${error === undefined ? '' : `: ${error}`}`,
      worker.pid,
    );
  }

  /** A process of slot `id` is gone for good: its last counters join the slot's. */
  retire(id: number, last: StatsSnapshot): void {
    const slot = this.#slot(id);
    const r = slot.retired;
    slot.retired = {
      requests: r.requests + last.requests,
      finished: r.finished + last.requests - last.inFlight,
      exceptions: r.exceptions + last.exceptions,
      txBytes: r.txBytes + last.txBytes,
      runningTimeUs: r.runningTimeUs + last.runningTimeUs,
    };
  }

  view(id: number): SlotView {
    const slot = this.#slot(id);
    return {
      respawns: Math.max(0, slot.spawns - 1),
      harakiris: slot.harakiris,
      history: slot.history.list(),
      retired: slot.retired,
    };
  }
}
