/**
 * Admission of client connections across all listeners of one container (one worker), and
 * shedding at the connection limit (docs/operations.md "Connection limit and shedding").
 *
 * The limit is the smaller of `limits.maxConnections` and what the fd limit leaves: RLIMIT_NOFILE
 * less the fds the process holds besides connections (listeners, logs, IPC, the app's own)
 * less `limits.reservedFds`. Past the fd limit libuv accepts and closes connections by itself
 * and the container sees nothing; the reserve keeps accept(2) working while the container
 * decides. At the limit, a new connection is made room for as nginx does when its
 * `worker_connections` run out (it reuses idle keep-alive connections): idle connections are
 * closed, oldest first, a small batch at a time: connections still waiting for their request head,
 * idle keep-alive HTTP connections, and uwsgi connections lingering after their answer. Only
 * when none is idle is the new connection refused (closed at once). Each shed and refusal is
 * counted in stats, and one warning per {@link WARN_INTERVAL_MS} gives the counts.
 */
import type { Logger } from '../shared/log.ts';
import type { Stats } from '../shared/stats.ts';
import { openFdCount, openFileLimit } from './fds.ts';

/** What the container tracks of an open connection, whatever its listener. */
export interface TrackedConnection {
  /** A graceful stop waits for it. */
  readonly busy: boolean;
  /**
   * May be closed to make room: no request of it is being handled or answered (it waits for a
   * request head, is an idle keep-alive connection, or lingers after its answer).
   */
  readonly idle: boolean;
  /** Closes at once. */
  destroy(): void;
}

export interface AdmissionOptions {
  readonly maxConnections: number;
  readonly reservedFds: number;
  readonly stats: Stats;
  readonly log: Logger;
  /** The open-files limit; default read from procfs ({@link openFileLimit}). */
  readonly fdLimit?: number;
  /** Counts the process's open fds; default {@link openFdCount}. */
  readonly countFds?: () => number | undefined;
}

/**
 * Most idle connections closed for one new connection (nginx drains up to 32 at a time): a
 * batch leaves room for the next few accepts, so a flood does not scan the open set per accept.
 * Smaller limits shed smaller batches (1/32 of the limit, at least 1).
 */
export const SHED_BATCH = 32;

const batchFor = (limit: number): number =>
  Math.min(SHED_BATCH, Math.max(1, Math.floor(limit / SHED_BATCH)));

/** One warning per this interval at most; the next one gives the counts since. */
export const WARN_INTERVAL_MS = 10_000;

/** Least time between two counts of the open fds while at an fd-bound limit. */
const REMEASURE_MS = 1000;

export class Admission {
  /** Open connections, in accept order (oldest first). */
  readonly open = new Set<TrackedConnection>();
  /** Closed by shedding, not yet gone from `open` (their fds are already closed). */
  readonly #shedding = new Set<TrackedConnection>();
  readonly #options: AdmissionOptions;
  readonly #fdLimit: number;
  /** Fds held besides connections, as last counted. */
  #otherFds = 0;
  /** When `#remeasure` last counted (`performance.now()`). */
  #measuredAt = Number.NEGATIVE_INFINITY;
  #warnTimer: NodeJS.Timeout | undefined;
  #windowShed = 0;
  #windowRefused = 0;
  /** The state at the last shed or refusal, for the warning. */
  #last: { connections: number; limit: number; by: 'maxConnections' | 'openFiles' } | undefined;

  constructor(options: AdmissionOptions) {
    this.#options = options;
    this.#fdLimit = options.fdLimit ?? openFileLimit();
  }

  /** Counts the fds held besides connections (call once the listeners are bound). */
  measure(): void {
    const count = (this.#options.countFds ?? openFdCount)();
    if (count === undefined) return;
    this.#otherFds = Math.max(0, count - this.#live());
  }

  /** The connection limit now, and what sets it. */
  limit(): { readonly limit: number; readonly by: 'maxConnections' | 'openFiles' } {
    const { maxConnections, reservedFds } = this.#options;
    const room = this.#fdLimit - this.#otherFds - reservedFds;
    return room < maxConnections
      ? { limit: Math.max(1, room), by: 'openFiles' }
      : { limit: maxConnections, by: 'maxConnections' };
  }

  /**
   * For a connection just accepted (its fd is open): true admits it (counted; `add()` it
   * next), false refuses it (the caller closes it at once). At the limit, idle connections are
   * shed first.
   */
  admit(): boolean {
    const stats = this.#options.stats;
    const live = this.#live();
    let { limit, by } = this.limit();
    // Near the fd limit (within twice the reserve, whatever sets the limit now), the fds the
    // app opened since the last count matter: recounted, at most once per REMEASURE_MS.
    const nearFds = live + this.#otherFds + 2 * this.#options.reservedFds >= this.#fdLimit;
    if (nearFds && this.#remeasure(live)) ({ limit, by } = this.limit());
    if (live >= limit) {
      const needed = live - limit + 1;
      const shed = this.#shed(needed - 1 + batchFor(limit));
      if (shed < needed) {
        // The idle ones found are closed all the same (they make room for the next accepts).
        stats.connectionsRejected++;
        this.#note(shed, 1, live - shed, limit, by);
        return false;
      }
      this.#note(shed, 0, live, limit, by);
    }
    stats.connections++;
    stats.connectionsTotal++;
    return true;
  }

  add(conn: TrackedConnection): void {
    this.open.add(conn);
  }

  /** A connection closed (admitted ones only). */
  remove(conn: TrackedConnection): void {
    this.open.delete(conn);
    this.#shedding.delete(conn);
    this.#options.stats.connections--;
  }

  /** Logs the counts not reported yet and stops the warning timer. */
  close(): void {
    clearTimeout(this.#warnTimer);
    this.#warnTimer = undefined;
    this.#flush();
  }

  #live(): number {
    return this.#options.stats.connections - this.#shedding.size;
  }

  /** Recounts the fds held besides connections, at most once per {@link REMEASURE_MS}. */
  #remeasure(live: number): boolean {
    const now = performance.now();
    if (now - this.#measuredAt < REMEASURE_MS) return false;
    const count = (this.#options.countFds ?? openFdCount)();
    this.#measuredAt = now;
    if (count === undefined) return false;
    // Less the live connections and the one being admitted.
    this.#otherFds = Math.max(0, count - live - 1);
    return true;
  }

  /** Closes up to `want` idle connections, oldest first; returns how many. */
  #shed(want: number): number {
    let shed = 0;
    for (const conn of this.open) {
      if (shed >= want) break;
      if (!conn.idle || this.#shedding.has(conn)) continue;
      this.#shedding.add(conn);
      conn.destroy();
      shed++;
    }
    this.#options.stats.connectionsShed += shed;
    return shed;
  }

  /** Counts for the warning: the first at once, then one per interval with the counts since. */
  #note(
    shed: number,
    refused: number,
    connections: number,
    limit: number,
    by: 'maxConnections' | 'openFiles',
  ): void {
    this.#windowShed += shed;
    this.#windowRefused += refused;
    this.#last = { connections, limit, by };
    if (this.#warnTimer !== undefined) return;
    this.#flush();
    const tick = (): void => {
      if (this.#windowShed + this.#windowRefused === 0) {
        this.#warnTimer = undefined;
        return;
      }
      this.#flush();
      this.#warnTimer = setTimeout(tick, WARN_INTERVAL_MS).unref();
    };
    this.#warnTimer = setTimeout(tick, WARN_INTERVAL_MS).unref();
  }

  #flush(): void {
    const last = this.#last;
    if (last === undefined || this.#windowShed + this.#windowRefused === 0) return;
    const { stats, log, maxConnections } = this.#options;
    log.warn(
      {
        connections: last.connections,
        limit: last.limit,
        limitBy: last.by,
        maxConnections,
        ...(Number.isFinite(this.#fdLimit) ? { openFilesLimit: this.#fdLimit } : {}),
        shed: this.#windowShed,
        refused: this.#windowRefused,
        shedTotal: stats.connectionsShed,
        refusedTotal: stats.connectionsRejected,
      },
      'connection limit reached',
    );
    this.#windowShed = 0;
    this.#windowRefused = 0;
  }
}
