/**
 * The stats documents, in uWSGI's field names and meanings (core/master_utils.c for a container,
 * the emperor's stats for an emperor) so tools written for uWSGI's stats server (uwsgitop, the
 * uWSGI inputs of telegraf, netdata and metricbeat) read them unchanged; what uWSGI has no field
 * for sits beside, in snake_case too (docs/operations.md lists both). Pure: the caller gathers
 * the facts.
 */
import { readFileSync } from 'node:fs';
import type { LifecycleEvent } from '../shared/history.ts';
import type { MountStatsSnapshot, StatsSnapshot } from '../shared/stats.ts';
import { LATENCY_BUCKETS_S, Stats } from '../shared/stats.ts';
import type { QueueReading } from './listen-queue.ts';

/** `version` of the documents: this package's. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

/** Process facts every document starts with. */
export function processFacts(): {
  version: string;
  pid: number;
  uid: number;
  gid: number;
  cwd: string;
} {
  return {
    version: VERSION,
    pid: process.pid,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    cwd: process.cwd(),
  };
}

export interface ListenerFacts {
  readonly protocol: string;
  readonly address: string;
  readonly backlog: number;
  readonly reading: QueueReading | undefined;
}

/** One live worker as the master sees it (supervisor/master.ts `stats()`). */
export interface WorkerFacts {
  readonly id: number;
  readonly pid: number;
  readonly generation: number;
  readonly state: string;
  /** Still in the serving generation (false: draining after a reload or recycle). */
  readonly current: boolean;
  readonly requests: number;
  readonly rss: number | undefined;
  readonly vsz: number | undefined;
  /** Milliseconds since the epoch when it was forked. */
  readonly spawnedAt: number;
  readonly stats: StatsSnapshot | undefined;
  /** It answered the stats request (false: its event loop is blocked; `stats` is its last report). */
  readonly responsive: boolean;
  /** Its slot's record (supervisor/slots.ts). */
  readonly slot: {
    readonly respawns: number;
    readonly harakiris: number;
    readonly history: readonly LifecycleEvent[];
    /** The slot's exited processes' counters, summed. */
    readonly retired: {
      readonly requests: number;
      readonly finished: number;
      readonly exceptions: number;
      readonly txBytes: number;
      readonly runningTimeUs: number;
    };
  };
}

export interface ContainerFacts {
  readonly generation: number;
  readonly startedAt: number;
  /** The live workers' counters summed. */
  readonly total: StatsSnapshot | undefined;
  /** Since the master started: the live workers' and every exited worker's last counters. */
  readonly lifetime: StatsSnapshot | undefined;
  readonly workers: readonly WorkerFacts[];
  readonly exits: Readonly<Record<string, number>>;
  readonly listeners: readonly ListenerFacts[];
  /** Times the master's sampler found a listen queue full (uWSGI `listen_queue_errors`). */
  readonly listenQueueErrors: number;
  readonly mounts: readonly { readonly path: string; readonly app: string }[];
}

/** The container's stats document. */
export function containerDocument(facts: ContainerFacts): Record<string, unknown> {
  const sockets = facts.listeners.map((l) => ({
    name: l.address,
    proto: l.protocol,
    queue: l.reading?.queue ?? 0,
    max_queue: l.reading?.maxQueue ?? l.backlog,
    shared: 0,
    can_offload: 0,
  }));
  const total = facts.total;
  const lifetime = facts.lifetime;
  const workers = facts.workers.filter((w) => w.current).map((w) => workerDocument(w, facts));
  const draining = facts.workers.filter((w) => !w.current).map((w) => workerDocument(w, facts));
  return {
    ...processFacts(),
    listen_queue: sockets.reduce((n, s) => n + s.queue, 0),
    listen_queue_errors: facts.listenQueueErrors,
    signal_queue: 0,
    load: total?.inFlight ?? 0,
    locks: [],
    sockets,
    workers,
    // Ours, beside uWSGI's. Counters since the master started (every worker that ever ran);
    // gauges (in flight, connections) of the live workers.
    server: 'uwsgi-ts',
    generation: facts.generation,
    started_at: Math.floor(facts.startedAt / 1000),
    requests: lifetime?.requests ?? 0,
    in_flight: total?.inFlight ?? 0,
    exceptions: lifetime?.exceptions ?? 0,
    tx: lifetime?.txBytes ?? 0,
    connections: total?.connections ?? 0,
    connections_total: lifetime?.connectionsTotal ?? 0,
    connections_rejected: lifetime?.connectionsRejected ?? 0,
    connections_shed: lifetime?.connectionsShed ?? 0,
    protocol_errors: lifetime?.protocolErrors ?? 0,
    worker_exits: facts.exits,
    mounts: facts.mounts.map((configured) => {
      const m = lifetime?.mounts.find((s) => s.path === configured.path);
      return mountDocument(m ?? emptyMount(configured.path), configured.app);
    }),
    unrouted: mountDocument(lifetime?.unrouted ?? emptyMount(null), null),
    latency_buckets_s: LATENCY_BUCKETS_S,
    draining,
  };
}

function workerDocument(w: WorkerFacts, facts: ContainerFacts): Record<string, unknown> {
  const s = w.stats;
  const r = w.slot.retired;
  const inFlight = s?.inFlight ?? 0;
  // uWSGI's per-worker counters are the slot's, across respawns; `delta_requests` this process's.
  const finished = r.finished + (s === undefined ? 0 : s.requests - s.inFlight);
  const runningTime = r.runningTimeUs + (s?.runningTimeUs ?? 0);
  const last = w.slot.history.findLast((e) => e.event === 'exited');
  return {
    id: w.id,
    pid: w.pid,
    accepting: w.state === 'ready' ? 1 : 0,
    requests: r.requests + w.requests,
    delta_requests: w.requests,
    exceptions: r.exceptions + (s?.exceptions ?? 0),
    harakiri_count: w.slot.harakiris,
    signals: 0,
    signal_queue: 0,
    // A worker that cannot answer the master is busy, whatever its last report said.
    status: w.state === 'ready' ? (inFlight > 0 || !w.responsive ? 'busy' : 'idle') : w.state,
    rss: w.rss ?? 0,
    vsz: w.vsz ?? 0,
    running_time: runningTime,
    last_spawn: Math.floor(w.spawnedAt / 1000),
    respawn_count: w.slot.respawns,
    tx: r.txBytes + (s?.txBytes ?? 0),
    avg_rt: finished > 0 ? Math.round(runningTime / finished) : 0,
    apps: (s?.mounts ?? []).map((m, i) => ({
      id: i,
      modifier1: 0,
      mountpoint: m.path ?? '',
      startup_time: 0,
      requests: m.requests,
      exceptions: m.exceptions,
      chdir: '',
      // By path: a draining worker's generation may mount other paths than the config now.
      app: facts.mounts.find((configured) => configured.path === m.path)?.app ?? null,
    })),
    cores: [
      {
        id: 0,
        requests: w.requests,
        static_requests: 0,
        routed_requests: 0,
        offloaded_requests: 0,
        write_errors: 0,
        read_errors: 0,
        in_request: inFlight > 0 ? 1 : 0,
        vars: [],
        req_info: {},
      },
    ],
    // Ours.
    generation: w.generation,
    state: w.state,
    in_flight: inFlight,
    responsive: w.responsive,
    last_exit: last === undefined ? null : last,
    history: w.slot.history,
  };
}

/** A mount no request has reached yet (its counters all zero). */
function emptyMount(path: string | null): MountStatsSnapshot {
  const empty = new Stats(path === null ? [] : [path]).snapshot();
  return empty.mounts[0] ?? empty.unrouted;
}

function mountDocument(m: MountStatsSnapshot, app: string | null): Record<string, unknown> {
  const finished = m.requests - m.inFlight;
  return {
    path: m.path,
    app,
    requests: m.requests,
    in_flight: m.inFlight,
    exceptions: m.exceptions,
    statuses: m.statuses,
    avg_rt: finished > 0 ? Math.round(m.latency.sumUs / finished) : 0,
    latency_counts: m.latency.counts,
    p50_ms: quantileMs(m.latency.counts, 0.5),
    p99_ms: quantileMs(m.latency.counts, 0.99),
  };
}

/**
 * The bucket bound (ms) under which `q` of the requests finished: an upper estimate, as
 * Prometheus' histogram_quantile gives without interpolation; null without requests, and the
 * last bound when the quantile is in the +Inf bucket.
 */
export function quantileMs(counts: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    seen += counts[i] as number;
    if (seen >= rank) {
      const bound = LATENCY_BUCKETS_S[Math.min(i, LATENCY_BUCKETS_S.length - 1)] as number;
      return bound * 1000;
    }
  }
  return (LATENCY_BUCKETS_S[LATENCY_BUCKETS_S.length - 1] as number) * 1000;
}

export interface VassalFacts {
  readonly name: string;
  readonly file: string;
  readonly state: string;
  readonly pid: number | null;
  readonly generation: number;
  readonly workers: readonly number[];
  readonly requests: number;
  readonly loyal: boolean;
  readonly spawns: number;
  readonly firstSpawnAt: number | null;
  readonly startedAt: number | null;
  readonly readyAt: number | null;
  readonly loyalAt: number | null;
  readonly lastHeard: number | null;
  readonly fileModifiedAt: number | null;
  readonly throttledUntil: number | null;
  readonly failures: number;
  readonly firstFailureAt: number | null;
  readonly lastFailureAt: number | null;
  readonly lastError: string | null;
  readonly exits: Readonly<Record<string, number>>;
  readonly history: readonly LifecycleEvent[];
}

const seconds = (ms: number | null): number => (ms === null ? 0 : Math.floor(ms / 1000));

/** The emperor's stats document (`emperor`, `vassals[]`, `blacklist[]` as uWSGI's). */
export function emperorDocument(facts: {
  readonly watch: readonly string[];
  readonly spares: number;
  readonly vassals: readonly VassalFacts[];
}): Record<string, unknown> {
  return {
    ...processFacts(),
    emperor: facts.watch,
    emperor_tyrant: 0,
    throttle_level: Math.max(
      0,
      ...facts.vassals.map((v) => (v.throttledUntil === null ? 0 : v.failures)),
    ),
    vassals: facts.vassals.map((v) => ({
      id: v.name,
      pid: v.pid ?? 0,
      born: seconds(v.firstSpawnAt),
      last_mod: seconds(v.fileModifiedAt),
      last_heartbeat: seconds(v.lastHeard),
      loyal: v.loyal ? 1 : 0,
      ready: v.readyAt === null ? 0 : 1,
      accepting: v.state === 'serving' || v.state === 'reloading' ? 1 : 0,
      last_loyal: seconds(v.loyalAt),
      last_ready: seconds(v.readyAt),
      last_accepting: seconds(v.readyAt),
      first_run: seconds(v.firstSpawnAt),
      last_run: seconds(v.startedAt),
      cursed: 0,
      zerg: 0,
      on_demand: '',
      uid: 0,
      gid: 0,
      monitor: '',
      respawns: Math.max(0, v.spawns - 1),
      // Ours.
      file: v.file,
      state: v.state,
      generation: v.generation,
      workers: v.workers,
      requests: v.requests,
      throttled_until: v.throttledUntil === null ? null : seconds(v.throttledUntil),
      last_error: v.lastError,
      exits: v.exits,
      history: v.history,
    })),
    blacklist: facts.vassals
      .filter((v) => v.throttledUntil !== null)
      .map((v) => ({
        id: v.name,
        throttle_level: v.failures,
        attempt: v.failures,
        first_attempt: seconds(v.firstFailureAt),
        last_attempt: seconds(v.lastFailureAt),
        // Ours.
        until: seconds(v.throttledUntil),
      })),
    server: 'uwsgi-ts',
    spares: facts.spares,
  };
}
