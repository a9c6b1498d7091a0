/**
 * Live counters of one container (one worker), read as a plain snapshot: the master sums the
 * workers' snapshots for the stats server and the Prometheus endpoint (docs/operations.md).
 * Updating is a few integer increments on the request path; nothing here allocates per request.
 */

/** Status classes counted; `none`: the connection closed before any status went out. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'none'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** Method classes counted (anything else is `OTHER`, so a hostile method cannot add series). */
export const METHOD_CLASSES = [
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
  'OTHER',
] as const;
export type MethodClass = (typeof METHOD_CLASSES)[number];

/**
 * Upper bounds of the latency buckets, in seconds (Prometheus' `le`); one more bucket, +Inf,
 * follows. From 1 ms to 10 s: the container answers in microseconds, apps in milliseconds,
 * and `requestTimeoutMs` is seconds.
 */
export const LATENCY_BUCKETS_S = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;
const BUCKET_BOUNDS_US = LATENCY_BUCKETS_S.map((s) => s * 1e6);

export interface MountStatsSnapshot {
  /** Mount prefix as configured (`/api`, `/`); `null` for requests no mount matched. */
  readonly path: string | null;
  /** Requests routed to this mount since start. */
  readonly requests: number;
  /** Of those, requests currently being handled. */
  readonly inFlight: number;
  /** Handlers that threw or rejected (each answered 500, or its connection dropped). */
  readonly exceptions: number;
  /** Responses by class (container-generated ones included); `none`: closed without one. */
  readonly statuses: Readonly<Record<StatusClass, number>>;
  /** Finished requests by method class, then status class. */
  readonly methods: Readonly<Record<MethodClass, Readonly<Record<StatusClass, number>>>>;
  /**
   * Latency of finished requests: `counts[i]` of them took at most `LATENCY_BUCKETS_S[i]`
   * (and more than the bound before); the last entry counts the slower ones. Not cumulative.
   */
  readonly latency: { readonly counts: readonly number[]; readonly sumUs: number };
}

export interface StatsSnapshot {
  /** Milliseconds since the epoch when the container started. */
  readonly startedAt: number;
  /** Every request that reached dispatch (routed or not) since start. */
  readonly requests: number;
  /** Requests whose response has not finished or closed yet. */
  readonly inFlight: number;
  /** Handlers that threw or rejected, all mounts. */
  readonly exceptions: number;
  /** Bytes written to clients for dispatched requests (head and body, as sent on the socket). */
  readonly txBytes: number;
  /** Sum of the durations of finished requests (microseconds); with `requests - inFlight`, the mean. */
  readonly runningTimeUs: number;
  /** Open client connections across all listeners (uwsgi and http). */
  readonly connections: number;
  /** Connections accepted since start. */
  readonly connectionsTotal: number;
  /** Connections closed at accept because `maxConnections` was reached. */
  readonly connectionsRejected: number;
  /**
   * Idle connections (waiting for a request head, idle keep-alive, lingering) closed to make
   * room for a new one at the connection limit (`maxConnections` or the fd limit).
   */
  readonly connectionsShed: number;
  /** uwsgi connections closed for a framing error or a header/body deadline, without a response. */
  readonly protocolErrors: number;
  readonly mounts: readonly MountStatsSnapshot[];
  /** Requests no mount matched (404, or 503 when over `maxInFlight`). */
  readonly unrouted: MountStatsSnapshot;
}

class MountCounters {
  requests = 0;
  inFlight = 0;
  exceptions = 0;
  sumUs = 0;
  /** `[method * STATUS_CLASSES.length + status]`. */
  readonly byClass = new Array<number>(METHOD_CLASSES.length * STATUS_CLASSES.length).fill(0);
  readonly buckets = new Array<number>(LATENCY_BUCKETS_S.length + 1).fill(0);
  readonly path: string | null;

  constructor(path: string | null) {
    this.path = path;
  }

  snapshot(): MountStatsSnapshot {
    const statuses = zeroStatuses();
    const methods = {} as Record<MethodClass, Record<StatusClass, number>>;
    METHOD_CLASSES.forEach((method, m) => {
      const row = zeroStatuses();
      STATUS_CLASSES.forEach((status, s) => {
        const n = this.byClass[m * STATUS_CLASSES.length + s] as number;
        row[status] = n;
        statuses[status] += n;
      });
      methods[method] = row;
    });
    return {
      path: this.path,
      requests: this.requests,
      inFlight: this.inFlight,
      exceptions: this.exceptions,
      statuses,
      methods,
      latency: { counts: [...this.buckets], sumUs: this.sumUs },
    };
  }
}

/** Mutable counters; `snapshot()` copies them. */
export class Stats {
  readonly startedAt = Date.now();
  requests = 0;
  inFlight = 0;
  exceptions = 0;
  txBytes = 0;
  runningTimeUs = 0;
  connections = 0;
  connectionsTotal = 0;
  connectionsRejected = 0;
  connectionsShed = 0;
  protocolErrors = 0;
  /** Indexed like the configured mounts (the router's `RouteMatch.index`). */
  readonly #mounts: readonly MountCounters[];
  readonly #unrouted = new MountCounters(null);

  constructor(mountPaths: readonly string[]) {
    this.#mounts = mountPaths.map((path) => new MountCounters(path));
  }

  #counters(mount: number): MountCounters {
    return this.#mounts[mount] ?? this.#unrouted;
  }

  /** A request reached dispatch; `mount` is the mount's index, -1 when none matched. */
  requestStarted(mount: number): void {
    this.requests++;
    this.inFlight++;
    const counters = this.#counters(mount);
    counters.requests++;
    counters.inFlight++;
  }

  /**
   * The request's response finished or its connection closed: `status` as logged (0: none
   * went out), its duration and the bytes written for it.
   */
  requestFinished(
    mount: number,
    status: number,
    method: string | undefined,
    durationUs: number,
    bytes: number,
  ): void {
    this.inFlight--;
    this.txBytes += bytes;
    this.runningTimeUs += durationUs;
    const counters = this.#counters(mount);
    counters.inFlight--;
    counters.sumUs += durationUs;
    const cell = methodIndex(method) * STATUS_CLASSES.length + statusIndex(status);
    counters.byClass[cell] = (counters.byClass[cell] as number) + 1;
    let bucket = 0;
    while (bucket < BUCKET_BOUNDS_US.length && durationUs > (BUCKET_BOUNDS_US[bucket] as number)) {
      bucket++;
    }
    counters.buckets[bucket] = (counters.buckets[bucket] as number) + 1;
  }

  /** A handler threw or rejected. */
  exception(mount: number): void {
    this.exceptions++;
    this.#counters(mount).exceptions++;
  }

  snapshot(): StatsSnapshot {
    return {
      startedAt: this.startedAt,
      requests: this.requests,
      inFlight: this.inFlight,
      exceptions: this.exceptions,
      txBytes: this.txBytes,
      runningTimeUs: this.runningTimeUs,
      connections: this.connections,
      connectionsTotal: this.connectionsTotal,
      connectionsRejected: this.connectionsRejected,
      connectionsShed: this.connectionsShed,
      protocolErrors: this.protocolErrors,
      mounts: this.#mounts.map((c) => c.snapshot()),
      unrouted: this.#unrouted.snapshot(),
    };
  }
}

function zeroStatuses(): Record<StatusClass, number> {
  return { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, none: 0 };
}

/** Index into `STATUS_CLASSES`; anything outside 100-599 (0: no response) is `none`. */
function statusIndex(status: number): number {
  return status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : 5;
}

/** Index into `METHOD_CLASSES`. */
function methodIndex(method: string | undefined): number {
  switch (method) {
    case 'GET':
      return 0;
    case 'HEAD':
      return 1;
    case 'POST':
      return 2;
    case 'PUT':
      return 3;
    case 'PATCH':
      return 4;
    case 'DELETE':
      return 5;
    case 'OPTIONS':
      return 6;
    default:
      return 7;
  }
}

/**
 * `a + b`: counters and gauges summed, mounts merged by path (two generations may mount
 * different paths), `startedAt` the earliest.
 */
export function addSnapshots(a: StatsSnapshot, b: StatsSnapshot): StatsSnapshot {
  const mounts = new Map<string | null, MountStatsSnapshot>();
  for (const m of [...a.mounts, ...b.mounts]) {
    const seen = mounts.get(m.path);
    mounts.set(m.path, seen === undefined ? m : addMounts(seen, m));
  }
  return {
    startedAt: Math.min(a.startedAt, b.startedAt),
    requests: a.requests + b.requests,
    inFlight: a.inFlight + b.inFlight,
    exceptions: a.exceptions + b.exceptions,
    txBytes: a.txBytes + b.txBytes,
    runningTimeUs: a.runningTimeUs + b.runningTimeUs,
    connections: a.connections + b.connections,
    connectionsTotal: a.connectionsTotal + b.connectionsTotal,
    connectionsRejected: a.connectionsRejected + b.connectionsRejected,
    connectionsShed: a.connectionsShed + b.connectionsShed,
    protocolErrors: a.protocolErrors + b.protocolErrors,
    mounts: [...mounts.values()],
    unrouted: addMounts(a.unrouted, b.unrouted),
  };
}

/** The snapshot of a process that has exited: its counters stay, nothing is in flight or open. */
export function settledSnapshot(s: StatsSnapshot): StatsSnapshot {
  return {
    ...s,
    inFlight: 0,
    connections: 0,
    mounts: s.mounts.map((m) => ({ ...m, inFlight: 0 })),
    unrouted: { ...s.unrouted, inFlight: 0 },
  };
}

function addMounts(a: MountStatsSnapshot, b: MountStatsSnapshot): MountStatsSnapshot {
  const methods = {} as Record<MethodClass, Record<StatusClass, number>>;
  for (const method of METHOD_CLASSES)
    methods[method] = addStatuses(a.methods[method], b.methods[method]);
  return {
    path: a.path,
    requests: a.requests + b.requests,
    inFlight: a.inFlight + b.inFlight,
    exceptions: a.exceptions + b.exceptions,
    statuses: addStatuses(a.statuses, b.statuses),
    methods,
    latency: {
      counts: a.latency.counts.map((n, i) => n + (b.latency.counts[i] ?? 0)),
      sumUs: a.latency.sumUs + b.latency.sumUs,
    },
  };
}

function addStatuses(
  a: Readonly<Record<StatusClass, number>>,
  b: Readonly<Record<StatusClass, number>>,
): Record<StatusClass, number> {
  const out = zeroStatuses();
  for (const status of STATUS_CLASSES) out[status] = a[status] + b[status];
  return out;
}
