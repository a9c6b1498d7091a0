/**
 * Respawn backoff of one worker slot (pure: the caller owns the clock and the timer).
 *
 * A worker that was serving (ready for at least `minServingMs`) and then died is respawned at
 * once, however often it happens (an operator's kill, a crash in one request: the slot should
 * serve again as soon as possible, RELIABILITY.md R7). A quick death (before ready, or within
 * `minServingMs` of it: a crash loop, R8) waits: 0.5 s, then doubling, capped at 30 s. A worker
 * that stayed up `resetAfterMs` resets the count.
 */
export interface BackoffOptions {
  readonly firstMs?: number;
  readonly maxMs?: number;
  readonly resetAfterMs?: number;
  readonly minServingMs?: number;
}

export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_MAX_MS = 30_000;
export const BACKOFF_RESET_MS = 30_000;
/** Ready this long = it was serving, not looping (uWSGI's forkbomb check uses 1 s too). */
export const BACKOFF_MIN_SERVING_MS = 1000;

export class Backoff {
  readonly #firstMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;
  readonly #minServingMs: number;
  /** Deaths in the current run of quick deaths. */
  #failures = 0;

  constructor(options: BackoffOptions = {}) {
    this.#firstMs = options.firstMs ?? BACKOFF_FIRST_MS;
    this.#maxMs = options.maxMs ?? BACKOFF_MAX_MS;
    this.#resetAfterMs = options.resetAfterMs ?? BACKOFF_RESET_MS;
    this.#minServingMs = options.minServingMs ?? BACKOFF_MIN_SERVING_MS;
  }

  /**
   * Delay before respawning a worker that lived `uptimeMs` in all and was ready for
   * `servingMs` of it (undefined: it never became ready).
   */
  next(uptimeMs: number, servingMs: number | undefined): number {
    if (uptimeMs >= this.#resetAfterMs) this.#failures = 0;
    if (servingMs !== undefined && servingMs >= this.#minServingMs) return 0;
    this.#failures++;
    return Math.min(this.#maxMs, this.#firstMs * 2 ** (this.#failures - 1));
  }
}
