/**
 * Per-connection deadlines without a `Timeout` per connection.
 *
 * Every connection of a listener has a head deadline, most get a linger bound, each request a
 * response deadline. With `setTimeout` that is a `Timeout` object per deadline: an allocation,
 * an async_hooks init, an insertion into Node's timer list and an unlink on `clearTimeout`,
 * for a deadline that almost never fires (behind nginx a request is over in well under a
 * millisecond). Because every entry of one queue has the same duration, deadlines are
 * reached in insertion order: a FIFO is already sorted. So a queue is an intrusive doubly
 * linked list (the links live on the entry itself: nothing is allocated per add) and one
 * timer per queue, armed for the oldest entry. Adding to a non-empty queue or removing an
 * entry is a few field writes; a removed head leaves the timer armed, and when it fires it
 * only re-arms for the new oldest entry. The precision is the same as a `setTimeout` per
 * entry: an entry expires at its own deadline, not at a sweep granularity.
 */

/** The fields an entry carries for the queue it is in; an entry is in at most one queue. */
export interface DeadlineEntry {
  deadlineQueue: DeadlineQueue<DeadlineEntry> | null;
  deadlinePrev: DeadlineEntry | null;
  deadlineNext: DeadlineEntry | null;
  /** `performance.now()`-based time at which the entry expires. */
  deadlineAt: number;
}

/** A FIFO of entries that expire `ms` after they were added. */
export class DeadlineQueue<T extends DeadlineEntry> {
  readonly ms: number;
  readonly #onExpire: (entry: T) => void;
  #head: T | null = null;
  #tail: T | null = null;
  #timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (`performance.now()` scale), or Infinity when unarmed. */
  #armedFor = Number.POSITIVE_INFINITY;

  /**
   * @param ms duration of every entry, > 0
   * @param onExpire runs for each entry whose deadline passed, after it left the queue
   */
  constructor(ms: number, onExpire: (entry: T) => void) {
    this.ms = ms;
    this.#onExpire = onExpire;
  }

  /** Puts `entry` at the tail (removing it from any queue it is in first). */
  add(entry: T, now: number = performance.now()): void {
    if (entry.deadlineQueue !== null) entry.deadlineQueue.remove(entry);
    entry.deadlineQueue = this as unknown as DeadlineQueue<DeadlineEntry>;
    entry.deadlineAt = now + this.ms;
    entry.deadlinePrev = this.#tail;
    entry.deadlineNext = null;
    if (this.#tail === null) this.#head = entry;
    else this.#tail.deadlineNext = entry;
    this.#tail = entry;
    if (this.#armedFor === Number.POSITIVE_INFINITY) this.#arm(entry.deadlineAt, now);
  }

  /** Takes `entry` out; a no-op when it is not in this queue. */
  remove(entry: T): void {
    if (entry.deadlineQueue !== (this as unknown as DeadlineQueue<DeadlineEntry>)) return;
    const prev = entry.deadlinePrev as T | null;
    const next = entry.deadlineNext as T | null;
    if (prev === null) this.#head = next;
    else prev.deadlineNext = next;
    if (next === null) this.#tail = prev;
    else next.deadlinePrev = prev;
    entry.deadlineQueue = null;
    entry.deadlinePrev = null;
    entry.deadlineNext = null;
  }

  /** Stops the timer and forgets every entry (nothing expires). */
  clear(): void {
    let entry = this.#head;
    while (entry !== null) {
      const next = entry.deadlineNext as T | null;
      entry.deadlineQueue = null;
      entry.deadlinePrev = null;
      entry.deadlineNext = null;
      entry = next;
    }
    this.#head = null;
    this.#tail = null;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
  }

  #arm(at: number, now: number): void {
    this.#armedFor = at;
    // Rounded up: a timer that fired a fraction of a millisecond early would re-arm for ~0 ms.
    const delay = Math.max(1, Math.ceil(at - now));
    // Unreferenced: the connections themselves keep the process alive, a pending deadline must
    // not (a closed container with a queued, already-removed head would otherwise linger).
    this.#timer = setTimeout(() => this.#fire(), delay).unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#armedFor = Number.POSITIVE_INFINITY;
    const now = performance.now();
    let entry = this.#head;
    while (entry !== null && entry.deadlineAt <= now) {
      this.remove(entry);
      // An expiry handler may add or remove entries (even this one again): re-read the head.
      this.#onExpire(entry);
      entry = this.#head;
    }
    if (entry !== null && this.#armedFor === Number.POSITIVE_INFINITY) {
      this.#arm(entry.deadlineAt, now);
    }
  }
}
