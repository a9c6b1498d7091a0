/**
 * Spare vassal processes: `spareVassals` processes forked ahead of need (Node started,
 * vassal/entry.js loaded: about 150 ms of a vassal's boot on a 2-core machine) that wait for a
 * `start` message. A new or respawned vassal takes one instead of forking, and the pool refills
 * once that vassal's boot has ended, so the replacement does not compete for CPU with it.
 * A spare is a vassal process like any other (detached, own group): if the emperor dies it
 * loses its IPC channel and ends its group (vassal/entry.ts), and the emperor's stop kills it.
 */
import type { ChildProcess } from 'node:child_process';
import type { Logger } from '../shared/log.ts';
import { type ForkOptions, forkVassal, killGroup } from './vassal-process.ts';

/** The pool fills this long after the emperor started (its first vassals boot meanwhile). */
export const SPARE_START_MS = 1000;
/** ... and refills this long after a vassal's boot ended (ready or failed). */
export const SPARE_AFTER_BOOT_MS = 50;
/** ... or at the latest this long after a spare was taken (a boot that neither ends nor fails). */
export const SPARE_REFILL_MS = 5000;

export class SparePool {
  readonly #size: number;
  readonly #fork: ForkOptions;
  readonly #log: Logger;
  readonly #spares = new Set<ChildProcess>();
  #timer: NodeJS.Timeout | undefined;
  #due = 0;
  #closed = false;

  constructor(size: number, fork: ForkOptions, log: Logger) {
    this.#size = size;
    this.#fork = fork;
    this.#log = log;
  }

  get size(): number {
    return this.#spares.size;
  }

  /** Fills the pool after `delayMs` (or sooner, if a fill is due sooner). */
  schedule(delayMs = SPARE_START_MS): void {
    if (this.#closed || this.#spares.size >= this.#size) return;
    const due = Date.now() + delayMs;
    if (this.#timer !== undefined && this.#due <= due) return;
    clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#fill();
    }, delayMs);
    this.#timer.unref();
  }

  /** A live spare, now the caller's (its exit is no longer watched here); undefined if none. */
  take(): ChildProcess | undefined {
    for (const spare of this.#spares) {
      this.#spares.delete(spare);
      spare.removeAllListeners('exit');
      if (spare.connected && spare.exitCode === null && spare.signalCode === null) {
        this.schedule(SPARE_REFILL_MS);
        return spare;
      }
      killGroup(spare.pid);
    }
    this.schedule(SPARE_REFILL_MS);
    return undefined;
  }

  /** Kills every spare; nothing is forked any more. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const spare of this.#spares) {
      spare.removeAllListeners('exit');
      killGroup(spare.pid);
    }
    this.#spares.clear();
  }

  #fill(): void {
    while (!this.#closed && this.#spares.size < this.#size) {
      let spare: ChildProcess;
      try {
        spare = forkVassal(this.#fork);
      } catch (err) {
        // E2BIG and the like: the next take() forks on demand (and fails the same way, visibly).
        this.#log.warn({ event: 'spare-failed', err }, 'cannot fork a spare vassal process');
        return;
      }
      this.#spares.add(spare);
      this.#log.info({ event: 'spare', vassalPid: spare.pid }, 'spare vassal process forked');
      spare.once('exit', (code, signal) => {
        // Not refilled here: a spare that cannot even start would be forked in a loop. The
        // next take() refills.
        this.#spares.delete(spare);
        killGroup(spare.pid);
        this.#log.warn({ event: 'spare-exited', code, signal }, 'spare vassal process exited');
      });
    }
  }
}
