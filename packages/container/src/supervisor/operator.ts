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
import { containerMetrics, METRICS_CONTENT_TYPE } from '../stats/metrics.ts';
import { listenMetrics, listenStats, type OperatorEndpoint } from '../stats/server.ts';
import type { Master } from './master.ts';

/** How often the listen queues are sampled for `listen_queue_errors`. */
const SAMPLE_MS = 1000;

export class Operator {
  readonly #master: Master;
  readonly #log: Logger;
  #stats: { address: string; endpoint: OperatorEndpoint } | undefined;
  #metrics: { address: string; endpoint: OperatorEndpoint } | undefined;
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
  #gathering: Promise<{ facts: ContainerFacts }> | undefined;
  /** update() and close() one after another; nothing binds after close(). */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(master: Master, log: Logger) {
    this.#master = master;
    this.#log = log;
  }

  /** Binds what `config` asks for (and closes what it no longer asks for). */
  update(config: ContainerConfig): Promise<void> {
    const run = this.#queue.then(() => this.#update(config));
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #update(config: ContainerConfig): Promise<void> {
    if (this.#closed) return;
    if (config.stats !== this.#stats?.address) {
      await this.#stats?.endpoint.close();
      this.#stats = undefined;
      if (config.stats !== undefined) {
        const endpoint = await listenStats(config.stats, () => this.document(), this.#log);
        this.#stats = { address: config.stats, endpoint };
        this.#log.info({ stats: endpoint.address }, 'stats server listening');
      }
    }
    if (config.metrics !== this.#metrics?.address) {
      await this.#metrics?.endpoint.close();
      this.#metrics = undefined;
      if (config.metrics !== undefined) {
        const endpoint = await listenMetrics(
          config.metrics,
          async () => ({ type: METRICS_CONTENT_TYPE, body: await this.metrics() }),
          this.#log,
        );
        this.#metrics = { address: config.metrics, endpoint };
        this.#log.info({ metrics: endpoint.address }, 'metrics endpoint listening');
      }
    }
    const wanted = this.#stats !== undefined || this.#metrics !== undefined;
    if (wanted && this.#sampler === undefined) {
      this.#sampler = setInterval(() => void this.#sample(), SAMPLE_MS);
      this.#sampler.unref();
    } else if (!wanted && this.#sampler !== undefined) {
      clearInterval(this.#sampler);
      this.#sampler = undefined;
    }
  }

  /** Bound addresses, for the ready record. */
  addresses(): { stats?: string; metrics?: string } {
    return {
      ...(this.#stats === undefined ? {} : { stats: this.#stats.endpoint.address }),
      ...(this.#metrics === undefined ? {} : { metrics: this.#metrics.endpoint.address }),
    };
  }

  async document(): Promise<Record<string, unknown>> {
    return containerDocument((await this.#facts()).facts);
  }

  async metrics(): Promise<string> {
    return containerMetrics((await this.#facts()).facts);
  }

  close(): Promise<void> {
    this.#closed = true;
    const run = this.#queue.then(() => this.#close());
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async #close(): Promise<void> {
    if (this.#sampler !== undefined) clearInterval(this.#sampler);
    this.#sampler = undefined;
    await Promise.all([this.#stats?.endpoint.close(), this.#metrics?.endpoint.close()]);
    this.#stats = undefined;
    this.#metrics = undefined;
  }

  /** One gathering at a time: concurrent documents and scrapes share it (a flood asks once). */
  #facts(): Promise<{ facts: ContainerFacts }> {
    this.#gathering ??= this.#gather().finally(() => {
      this.#gathering = undefined;
    });
    return this.#gathering;
  }

  async #gather(): Promise<{ facts: ContainerFacts }> {
    const master = this.#master;
    // The queues after the workers' answers (which can take a second for a blocked one), so
    // they and `listen_queue_errors` are of the same moment.
    const stats = await master.stats();
    const listeners = await this.#listeners();
    const facts: ContainerFacts = {
      generation: stats.generation,
      startedAt: stats.startedAt,
      total: stats.total,
      lifetime: stats.lifetime,
      workers: stats.workers,
      exits: stats.exits,
      listeners,
      listenQueueErrors: this.#listenQueueErrors,
      mounts: master.config.mounts.map((m) => ({ path: m.path, app: m.app })),
    };
    return { facts };
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
