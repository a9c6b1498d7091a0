/**
 * The last lifecycle events of one worker slot or one vassal (restart history): when, what and
 * why, for the stats document, `uwsgi-ts top` and `uwsgi-ts emperor status`.
 */

export interface LifecycleEvent {
  /** ISO 8601 time of the event. */
  readonly at: string;
  /** What happened: `spawned`, `ready`, `exited`, `recycling`, `crashed`, `reloaded`... */
  readonly event: string;
  /** Why, in words: `crash (signal SIGKILL)`, `harakiri: GET /slow`, `max-requests`... */
  readonly detail?: string;
  /** The process the event is about, when there is one. */
  readonly pid?: number;
}

/** Default of `restartHistory`: events kept per worker slot and per vassal. */
export const DEFAULT_HISTORY_SIZE = 10;

/** A bounded list of events, oldest first. */
export class History {
  readonly #events: LifecycleEvent[] = [];
  readonly #size: number;

  constructor(size = DEFAULT_HISTORY_SIZE) {
    this.#size = Math.max(1, size);
  }

  record(event: string, detail?: string, pid?: number): void {
    this.#events.push({
      at: new Date().toISOString(),
      event,
      ...(detail === undefined ? {} : { detail }),
      ...(pid === undefined ? {} : { pid }),
    });
    if (this.#events.length > this.#size) this.#events.shift();
  }

  /** A copy, oldest first. */
  list(): LifecycleEvent[] {
    return [...this.#events];
  }
}
