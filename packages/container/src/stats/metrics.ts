/**
 * Prometheus metrics of a master and of an emperor, in the text exposition format. Workers keep
 * plain integer counters (shared/stats.ts); on a scrape the master has summed them already
 * (`MasterStats.lifetime`: the live workers' and every exited worker's last counters, so they
 * never go down when a worker is replaced), and here they become prom-client metric objects
 * that `AggregatorRegistry.aggregate` joins with the master's own and formats: one scrape for
 * the whole container. Names and labels: docs/operations.md.
 */
import promClient from 'prom-client';
import {
  LATENCY_BUCKETS_S,
  METHOD_CLASSES,
  type MountStatsSnapshot,
  STATUS_CLASSES,
  type StatsSnapshot,
} from '../shared/stats.ts';
import type { ContainerFacts, VassalFacts } from './document.ts';

const { AggregatorRegistry, Registry } = promClient;
export const METRICS_CONTENT_TYPE: string = Registry.PROMETHEUS_CONTENT_TYPE;

type Labels = Record<string, string | number>;
type Value = { value: number; labels: Labels; metricName?: string };
type MetricType = 'counter' | 'gauge' | 'histogram';
interface MetricJson {
  name: string;
  help: string;
  type: MetricType;
  aggregator: 'sum';
  values: Value[];
}

const PREFIX = 'uwsgi_ts_';

/** Collects the metric objects of one source (the request counters, the master's own...). */
class Source {
  readonly #metrics = new Map<string, MetricJson>();

  add(name: string, type: MetricType, help: string, values: Value[]): void {
    const full = PREFIX + name;
    let metric = this.#metrics.get(full);
    if (metric === undefined) {
      metric = { name: full, help, type, aggregator: 'sum', values: [] };
      this.#metrics.set(full, metric);
    }
    metric.values.push(...values);
  }

  list(): MetricJson[] {
    return [...this.#metrics.values()];
  }
}

const mountLabel = (m: MountStatsSnapshot): string => m.path ?? '';

/** The request counters of one snapshot (the container's since its master started). */
function requestMetrics(s: StatsSnapshot): MetricJson[] {
  const src = new Source();
  const mounts = [...s.mounts, s.unrouted];
  src.add(
    'requests_total',
    'counter',
    'Finished requests by mount (empty: no mount matched), method class and status class (none: closed before a status).',
    mounts.flatMap((m) =>
      METHOD_CLASSES.flatMap((method) =>
        STATUS_CLASSES.flatMap((status) => {
          const value = m.methods[method][status];
          return value === 0 ? [] : [{ value, labels: { mount: mountLabel(m), method, status } }];
        }),
      ),
    ),
  );
  src.add(
    'requests_in_flight',
    'gauge',
    'Requests being handled, by mount.',
    mounts.map((m) => ({ value: m.inFlight, labels: { mount: mountLabel(m) } })),
  );
  src.add(
    'exceptions_total',
    'counter',
    'App handlers that threw or rejected, by mount.',
    mounts.map((m) => ({ value: m.exceptions, labels: { mount: mountLabel(m) } })),
  );
  src.add(
    'request_duration_seconds',
    'histogram',
    'Time from dispatch to the end of the response, by mount.',
    mounts.flatMap((m) => histogram(m)),
  );
  src.add('tx_bytes_total', 'counter', 'Bytes written to clients for requests.', [
    { value: s.txBytes, labels: {} },
  ]);
  src.add('open_connections', 'gauge', 'Open client connections.', [
    { value: s.connections, labels: {} },
  ]);
  src.add('connections_total', 'counter', 'Client connections accepted.', [
    { value: s.connectionsTotal, labels: {} },
  ]);
  src.add(
    'connections_rejected_total',
    'counter',
    'Connections closed at accept because maxConnections was reached.',
    [{ value: s.connectionsRejected, labels: {} }],
  );
  src.add(
    'connections_shed_total',
    'counter',
    'Idle connections closed to make room at the connection limit (maxConnections or the fd limit).',
    [{ value: s.connectionsShed, labels: {} }],
  );
  src.add(
    'protocol_errors_total',
    'counter',
    'uwsgi connections closed for a framing error or a deadline, without a response.',
    [{ value: s.protocolErrors, labels: {} }],
  );
  return src.list();
}

function histogram(m: MountStatsSnapshot): Value[] {
  const mount = mountLabel(m);
  const metricName = `${PREFIX}request_duration_seconds`;
  const values: Value[] = [];
  let cumulative = 0;
  m.latency.counts.forEach((count, i) => {
    cumulative += count;
    const le = i < LATENCY_BUCKETS_S.length ? String(LATENCY_BUCKETS_S[i]) : '+Inf';
    values.push({ value: cumulative, labels: { le, mount }, metricName: `${metricName}_bucket` });
  });
  values.push({ value: m.latency.sumUs / 1e6, labels: { mount }, metricName: `${metricName}_sum` });
  values.push({ value: cumulative, labels: { mount }, metricName: `${metricName}_count` });
  return values;
}

/** The master's own view: workers, restarts, listen queues. */
function masterMetrics(facts: ContainerFacts): MetricJson[] {
  const src = new Source();
  const current = facts.workers.filter((w) => w.current);
  src.add(
    'worker_restarts_total',
    'counter',
    'Worker processes that exited, by reason (crash, harakiri, heartbeat, max-requests, max-lifetime, rss, evil-rss, reload, reload-failed, boot, stop).',
    Object.entries(facts.exits).map(([reason, value]) => ({ value, labels: { reason } })),
  );
  src.add(
    'worker_rss_bytes',
    'gauge',
    'Resident set size of each worker of the serving generation, by slot.',
    current.map((w) => ({ value: w.rss ?? 0, labels: { worker: w.id } })),
  );
  src.add(
    'worker_requests',
    'gauge',
    'Requests served by the current process of each slot (resets when the slot gets a new process).',
    current.map((w) => ({ value: w.requests, labels: { worker: w.id } })),
  );
  const states = new Map<string, number>();
  for (const w of facts.workers) {
    const state = w.current ? w.state : 'draining';
    states.set(state, (states.get(state) ?? 0) + 1);
  }
  src.add(
    'workers',
    'gauge',
    'Worker processes by state (starting, ready, stopping; draining: of an older generation).',
    [...states].map(([state, value]) => ({ value, labels: { state } })),
  );
  src.add(
    'listen_queue',
    'gauge',
    'Connections waiting in the kernel accept queue, by listener.',
    facts.listeners.map((l) => ({ value: l.reading?.queue ?? 0, labels: { socket: l.address } })),
  );
  src.add(
    'listen_queue_max',
    'gauge',
    'Accept queue size (listen backlog), by listener.',
    facts.listeners.map((l) => ({
      value: l.reading?.maxQueue ?? l.backlog,
      labels: { socket: l.address },
    })),
  );
  src.add(
    'listen_queue_errors_total',
    'counter',
    "Times the master's once-a-second sample found a listen queue full.",
    [{ value: facts.listenQueueErrors, labels: {} }],
  );
  src.add('generation', 'gauge', 'Generation number of the serving workers.', [
    { value: facts.generation, labels: {} },
  ]);
  src.add('start_time_seconds', 'gauge', 'When the master started (seconds since the epoch).', [
    { value: facts.startedAt / 1000, labels: {} },
  ]);
  return src.list();
}

/**
 * The container's metrics text: the request counters since the master started (`lifetime`),
 * and the master's own.
 */
export async function containerMetrics(facts: ContainerFacts): Promise<string> {
  const sources = [masterMetrics(facts)];
  if (facts.lifetime !== undefined) {
    // Gauges of the live workers, counters since the master started.
    const live = facts.total;
    sources.push(
      requestMetrics({
        ...facts.lifetime,
        connections: live?.connections ?? 0,
        mounts: facts.lifetime.mounts.map((m) => ({
          ...m,
          inFlight: live?.mounts.find((l) => l.path === m.path)?.inFlight ?? 0,
        })),
        unrouted: { ...facts.lifetime.unrouted, inFlight: live?.unrouted.inFlight ?? 0 },
      }),
    );
  }
  return AggregatorRegistry.aggregate(sources).metrics();
}

/** The emperor's metrics text. */
export async function emperorMetrics(vassals: readonly VassalFacts[]): Promise<string> {
  const src = new Source();
  const states = new Map<string, number>();
  for (const v of vassals) states.set(v.state, (states.get(v.state) ?? 0) + 1);
  src.add(
    'emperor_vassals',
    'gauge',
    'Vassals by state (starting, serving, reloading, backoff, invalid, stopping, stopped).',
    [...states].map(([state, value]) => ({ value, labels: { state } })),
  );
  src.add(
    'emperor_vassal_exits_total',
    'counter',
    'Vassal processes that exited, by vassal and reason (crash, heartbeat, ready-timeout, stop).',
    vassals.flatMap((v) =>
      Object.entries(v.exits).map(([reason, value]) => ({
        value,
        labels: { vassal: v.name, reason },
      })),
    ),
  );
  src.add(
    'emperor_vassal_spawns_total',
    'counter',
    'Vassal processes started, by vassal.',
    vassals.map((v) => ({ value: v.spawns, labels: { vassal: v.name } })),
  );
  src.add(
    'emperor_vassal_requests',
    'gauge',
    "Requests served by each vassal's current process (as of its last heartbeat).",
    vassals.map((v) => ({ value: v.requests, labels: { vassal: v.name } })),
  );
  return AggregatorRegistry.aggregate([src.list()]).metrics();
}
