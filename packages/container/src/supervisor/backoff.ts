/**
 * Respawn backoff of one worker slot (pure: the caller owns the clock and the timer).
 *
 * The first death of a ready worker after a stable run is respawned at once (an operator's
 * kill, one crash: the slot should serve again as fast as possible). Deaths that follow within `resetAfterMs` of the
 * previous spawn are a crash loop: 0.5 s, then doubling, capped at 30 s. A worker that stayed up
 * `resetAfterMs` resets the count.
 */
export interface BackoffOptions {
  readonly firstMs?: number;
  readonly maxMs?: number;
  readonly resetAfterMs?: number;
}

export const BACKOFF_FIRST_MS = 500;
export const BACKOFF_MAX_MS = 30_000;
export const BACKOFF_RESET_MS = 30_000;

export class Backoff {
  readonly #firstMs: number;
  readonly #maxMs: number;
  readonly #resetAfterMs: number;
  /** Deaths in the current run of quick deaths. */
  #failures = 0;

  constructor(options: BackoffOptions = {}) {
    this.#firstMs = options.firstMs ?? BACKOFF_FIRST_MS;
    this.#maxMs = options.maxMs ?? BACKOFF_MAX_MS;
    this.#resetAfterMs = options.resetAfterMs ?? BACKOFF_RESET_MS;
  }

  /**
   * Delay before respawning a worker that lived `uptimeMs` and then died; one that died before
   * it was ever ready (a boot crash) is not respawned at once.
   */
  next(uptimeMs: number, wasReady = true): number {
    if (uptimeMs >= this.#resetAfterMs) this.#failures = 0;
    this.#failures++;
    if (!wasReady && this.#failures === 1) this.#failures++;
    if (this.#failures === 1) return 0;
    return Math.min(this.#maxMs, this.#firstMs * 2 ** (this.#failures - 2));
  }

  /** Quick deaths so far (0 after a stable run). */
  get failures(): number {
    return this.#failures;
  }

  reset(): void {
    this.#failures = 0;
  }
}
