/**
 * The master's operator endpoints (`stats:`, `metrics:`) and the once-a-second listen-queue
 * sample behind `listen_queue_errors` (uWSGI logs and counts a full queue the same way). Runs
 * in the master only when one of the two is configured; a reload that changes an address
 * rebinds it.
 */
import type { ContainerConfig } from '../config/types.ts';
import type { Logger } from '../shared/log.ts';
import { type ContainerFacts, containerDocument, type ListenerFacts } from '../stats/document.ts';
import {
  type QueueReading,
  readListenQueues,
  socketInode,
  somaxconn,
} from '../stats/listen-queue.ts';
import { containerMetrics } from '../stats/metrics.ts';
import { listenMetrics, listenStats, type OperatorEndpoint } from '../stats/server.ts';
import type { Master } from './master.ts';

/** How often the listen queues are sampled for `listen_queue_errors`. */
const SAMPLE_MS = 1000;

type Kind = 'stats' | 'metrics';

export class Operator {
  readonly #master: Master;
  readonly #log: Logger;
  /** The bound endpoints, by kind, with the configured address each was bound for. */
  readonly #endpoints: { [K in Kind]?: { address: string; endpoint: OperatorEndpoint } } = {};
  #sampler: NodeJS.Timeout | undefined;
  #listenQueueErrors = 0;
  /** Sockets found full at the last sample: one warning per episode, not one per second. */
  readonly #full = new Set<string>();
  /**
   * The last kernel reading and when it was taken: a stats document or a scrape reuses the
   * sampler's (at most SAMPLE_MS old) instead of running `ss` again; one read at a time.
   */
  #readings: { at: number; map: Map<string, QueueReading> } | undefined;
  #reading: Promise<Map<string, QueueReading>> | undefined;
  #gathering: Promise<ContainerFacts> | undefined;
  /** update() and close() one after another; nothing binds after close(). */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(master: Master, log: Logger) {
    this.#master = master;
    this.#log = log;
  }

  /** Binds what `config` asks for (and closes what it no longer asks for). */
  update(config: ContainerConfig): Promise<void> {
    return this.#serially(() => this.#update(config));
  }

  close(): Promise<void> {
    this.#closed = true;
    return this.#serially(() => this.#close());
  }

  /** Bound addresses, for the ready record. */
  addresses(): { stats?: string; metrics?: string } {
    const { stats, metrics } = this.#endpoints;
    return {
      ...(stats === undefined ? {} : { stats: stats.endpoint.address }),
      ...(metrics === undefined ? {} : { metrics: metrics.endpoint.address }),
    };
  }

  async document(): Promise<Record<string, unknown>> {
    return containerDocument(await this.#facts());
  }

  async metrics(): Promise<string> {
    return containerMetrics(await this.#facts());
  }

  #serially(step: () => Promise<void>): Promise<void> {
    const run = this.#queue.then(step);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #update(config: ContainerConfig): Promise<void> {
    if (this.#closed) return;
    await this.#rebind('stats', config.stats);
    await this.#rebind('metrics', config.metrics);
    const wanted = this.#endpoints.stats !== undefined || this.#endpoints.metrics !== undefined;
    if (wanted && this.#sampler === undefined) {
      this.#sampler = setInterval(() => void this.#sample(), SAMPLE_MS);
      this.#sampler.unref();
    } else if (!wanted && this.#sampler !== undefined) {
      clearInterval(this.#sampler);
      this.#sampler = undefined;
    }
  }

  /** The `kind` endpoint on `address` (none when undefined), rebound only when it changed. */
  async #rebind(kind: Kind, address: string | undefined): Promise<void> {
    const bound = this.#endpoints[kind];
    if (address === bound?.address) return;
    await bound?.endpoint.close();
    delete this.#endpoints[kind];
    if (address === undefined) return;
    const endpoint =
      kind === 'stats'
        ? await listenStats(address, () => this.document(), this.#log)
        : await listenMetrics(address, () => this.metrics(), this.#log);
    this.#endpoints[kind] = { address, endpoint };
    this.#log.info(
      { [kind]: endpoint.address },
      kind === 'stats' ? 'stats server listening' : 'metrics endpoint listening',
    );
  }

  async #close(): Promise<void> {
    if (this.#sampler !== undefined) clearInterval(this.#sampler);
    this.#sampler = undefined;
    await Promise.all([this.#rebind('stats', undefined), this.#rebind('metrics', undefined)]);
  }

  /** One gathering at a time: concurrent documents and scrapes share it (a flood asks once). */
  #facts(): Promise<ContainerFacts> {
    this.#gathering ??= this.#gather().finally(() => {
      this.#gathering = undefined;
    });
    return this.#gathering;
  }

  async #gather(): Promise<ContainerFacts> {
    const master = this.#master;
    // The queues after the workers' answers (which can take a second for a blocked one), so
    // they and `listen_queue_errors` are of the same moment.
    const stats = await master.stats();
    const listeners = await this.#listeners();
    return {
      ...stats,
      listeners,
      listenQueueErrors: this.#listenQueueErrors,
      mounts: master.config.mounts.map((m) => ({ path: m.path, app: m.app })),
    };
  }

  async #queues(maxAgeMs: number): Promise<Map<string, QueueReading>> {
    const cached = this.#readings;
    if (cached !== undefined && Date.now() - cached.at <= maxAgeMs) return cached.map;
    this.#reading ??= readListenQueues()
      .catch(() => new Map<string, QueueReading>())
      .then((map) => {
        this.#readings = { at: Date.now(), map };
        this.#reading = undefined;
        return map;
      });
    return this.#reading;
  }

  /** The listeners with their queues, from a kernel reading at most `maxAgeMs` old. */
  async #listeners(maxAgeMs = (SAMPLE_MS * 3) / 2): Promise<ListenerFacts[]> {
    const sockets = this.#master.listenerSockets();
    const readings = await this.#queues(maxAgeMs);
    return Promise.all(
      sockets.map(async (s) => {
        // Read each time (one readlink): a reload may close a listener and reuse its fd number.
        const inode = await socketInode(s.fd);
        const reading = inode === undefined ? undefined : readings.get(inode);
        return {
          protocol: s.protocol,
          address: s.address,
          backlog: s.backlog,
          // /proc/net/tcp has no backlog: the kernel applies min(backlog, somaxconn).
          reading:
            reading === undefined || reading.maxQueue !== undefined
              ? reading
              : { queue: reading.queue, maxQueue: Math.min(s.backlog, somaxconn()) },
        };
      }),
    );
  }

  async #sample(): Promise<void> {
    let listeners: ListenerFacts[];
    try {
      // Fresh unless a document or a scrape just read the queues.
      listeners = await this.#listeners(SAMPLE_MS / 4);
    } catch {
      return;
    }
    for (const l of listeners) {
      const max = l.reading?.maxQueue;
      const full =
        l.reading !== undefined && max !== undefined && max > 0 && l.reading.queue >= max;
      if (!full) {
        this.#full.delete(l.address);
        continue;
      }
      this.#listenQueueErrors++;
      if (!this.#full.has(l.address)) {
        this.#full.add(l.address);
        this.#log.warn(
          { listener: l.address, queue: l.reading?.queue, maxQueue: max },
          'listen queue full: connections wait or are refused (more workers, or a larger backlog)',
        );
      }
    }
  }
}
