/**
 * Live counters of one container, read as a plain snapshot (for the stats socket of a later
 * issue, tests and logs). Updating is a few integer increments on the request path.
 */

export interface MountStatsSnapshot {
  /** Mount prefix as configured (`/api`, `/`). */
  readonly path: string;
  /** Requests routed to this mount since start. */
  readonly requests: number;
  /** Of those, requests currently being handled. */
  readonly inFlight: number;
  /** Responses by class: `2xx`, `3xx`, `4xx`, `5xx` (container-generated ones included). */
  readonly statuses: Readonly<Record<StatusClass, number>>;
}

export interface StatsSnapshot {
  /** Milliseconds since the epoch when the container started. */
  readonly startedAt: number;
  /** Every request that reached dispatch (routed or not) since start. */
  readonly requests: number;
  /** Requests whose response has not finished or closed yet. */
  readonly inFlight: number;
  /** Open client connections across all listeners (uwsgi and http). */
  readonly connections: number;
  /** Connections accepted since start. */
  readonly connectionsTotal: number;
  /** Connections closed at accept because `maxConnections` was reached. */
  readonly connectionsRejected: number;
  /** uwsgi connections closed for a framing error or a header/body deadline, without a response. */
  readonly protocolErrors: number;
  readonly mounts: readonly MountStatsSnapshot[];
}

export type StatusClass = '1xx' | '2xx' | '3xx' | '4xx' | '5xx';

interface MountCounters {
  requests: number;
  inFlight: number;
  statuses: Record<StatusClass, number>;
}

/** Mutable counters; `snapshot()` copies them. */
export class Stats {
  readonly startedAt = Date.now();
  requests = 0;
  inFlight = 0;
  connections = 0;
  connectionsTotal = 0;
  connectionsRejected = 0;
  protocolErrors = 0;
  readonly #paths: readonly string[];
  /** Indexed like the configured mounts (the router's `RouteMatch.index`). */
  readonly #mounts: readonly MountCounters[];

  constructor(mountPaths: readonly string[]) {
    this.#paths = [...mountPaths];
    this.#mounts = mountPaths.map(() => ({
      requests: 0,
      inFlight: 0,
      statuses: { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 },
    }));
  }

  /** A request reached dispatch; `mount` is the mount's index, -1 when none matched. */
  requestStarted(mount: number): void {
    this.requests++;
    this.inFlight++;
    const counters = this.#mounts[mount];
    if (counters === undefined) return;
    counters.requests++;
    counters.inFlight++;
  }

  /** The request's response finished or its connection closed; `status` as logged. */
  requestFinished(mount: number, status: number): void {
    this.inFlight--;
    const counters = this.#mounts[mount];
    if (counters === undefined) return;
    counters.inFlight--;
    const cls = statusClass(status);
    if (cls !== undefined) counters.statuses[cls]++;
  }

  snapshot(): StatsSnapshot {
    return {
      startedAt: this.startedAt,
      requests: this.requests,
      inFlight: this.inFlight,
      connections: this.connections,
      connectionsTotal: this.connectionsTotal,
      connectionsRejected: this.connectionsRejected,
      protocolErrors: this.protocolErrors,
      mounts: this.#mounts.map((c, i) => ({
        path: this.#paths[i] as string,
        requests: c.requests,
        inFlight: c.inFlight,
        statuses: { ...c.statuses },
      })),
    };
  }
}

function statusClass(status: number): StatusClass | undefined {
  if (status >= 100 && status < 200) return '1xx';
  if (status >= 200 && status < 300) return '2xx';
  if (status >= 300 && status < 400) return '3xx';
  if (status >= 400 && status < 500) return '4xx';
  if (status >= 500 && status < 600) return '5xx';
  return undefined;
}
