/**
 * The composition root (STYLE.md section 6): config in, listeners + apps running out. The only
 * module that wires transport -> protocol -> bridge -> router -> app together.
 */
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { loadApp } from './app/loader.ts';
import type { LoadedApp, LoadedAppKind } from './app/types.ts';
import type { ContainerConfig, ListenerProtocol } from './config/types.ts';
import { createDispatch } from './dispatch/dispatch.ts';
import { type HttpListening, listenHttp } from './protocol/http.ts';
import { type ServedConnection, type ServeHooks, serveUwsgiConnection } from './protocol/uwsgi.ts';
import { createRouter } from './router/mounts.ts';
import { createLogger, flushLogger, type Logger } from './shared/log.ts';
import { Stats, type StatsSnapshot } from './shared/stats.ts';
import { parseListenAddress } from './transport/address.ts';
import { selectTransport } from './transport/index.ts';
import type { Connection, Listening, Transport } from './transport/types.ts';

export interface ContainerOptions {
  /** Logger to use; default: one built from `config.log` writing to `stdout`. */
  readonly logger?: Logger;
  /** Destination of the default logger; default `process.stdout`. */
  readonly stdout?: NodeJS.WritableStream & { readonly isTTY?: boolean | undefined };
}

export interface ListenerInfo {
  readonly protocol: ListenerProtocol;
  /** `unix:/abs/app.sock` or `host:port` with the actual port. */
  readonly address: string;
}

export interface MountInfo {
  /** Mount prefix as configured. */
  readonly path: string;
  /** Absolute path of the app module. */
  readonly app: string;
  readonly kind: LoadedAppKind;
}

export interface CloseOptions {
  /** Grace period for in-flight requests; default `config.shutdownTimeoutMs`. */
  readonly timeoutMs?: number;
}

export interface Container {
  /**
   * Loads every app, binds every listener, then logs `"msg":"ready"`. Idempotent: later calls
   * return the same promise. On failure everything already bound or loaded is released.
   * @throws ContainerError `UWSGI_ERR_APP_LOAD`, `UWSGI_ERR_APP_EXPORT`, `UWSGI_ERR_LISTEN`,
   *   `UWSGI_ERR_MOUNT_CONFLICT`, `UWSGI_ERR_TRANSPORT_UNAVAILABLE`.
   */
  start(): Promise<void>;
  /**
   * Graceful stop: stop accepting, let in-flight requests finish for up to `timeoutMs`, then
   * destroy what is left and release the apps. Idempotent and awaitable: every call returns
   * the same promise; a later call with a smaller `timeoutMs` shortens the grace period.
   */
  close(options?: CloseOptions): Promise<void>;
  /** Bound listeners, after `start()` resolved; empty before. */
  readonly listeners: readonly ListenerInfo[];
  /** Loaded mounts, after `start()` resolved; empty before. */
  readonly mounts: readonly MountInfo[];
  readonly logger: Logger;
  /** Live counters (requests, in flight, per mount, connections). */
  stats(): StatsSnapshot;
}

/** Creates a container for a validated config (see `readConfig` / `parseConfig`). */
export function createContainer(
  config: ContainerConfig,
  options: ContainerOptions = {},
): Container {
  return new ContainerImpl(config, options);
}

class ContainerImpl implements Container {
  readonly logger: Logger;
  listeners: readonly ListenerInfo[] = [];
  mounts: readonly MountInfo[] = [];
  readonly #config: ContainerConfig;
  readonly #stats: Stats;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #bound: Array<Listening> = [];
  #http: HttpListening[] = [];
  #apps: LoadedApp[] = [];
  /** Open uwsgi connections. */
  readonly #uwsgi = new Set<ServedConnection>();
  /** Open HTTP sockets. */
  readonly #httpSockets = new Set<Socket>();
  /** Re-checks the shutdown condition; set while close() waits. */
  #onActivityChange: (() => void) | undefined;
  /** When close() stops waiting for in-flight requests (epoch ms). */
  #closeBy = Number.POSITIVE_INFINITY;
  /** Re-arms the grace timer after `#closeBy` moved; set while close() waits. */
  #onGraceChange: (() => void) | undefined;

  constructor(config: ContainerConfig, options: ContainerOptions) {
    this.#config = config;
    this.logger =
      options.logger ??
      createLogger(config.log, options.stdout === undefined ? {} : { stdout: options.stdout });
    this.#stats = new Stats(config.mounts.map((m) => m.path));
  }

  stats(): StatsSnapshot {
    return this.#stats.snapshot();
  }

  start(): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new Error('container is closed'));
    }
    this.#starting ??= this.#start().catch(async (err: unknown) => {
      await this.#release();
      throw err;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const config = this.#config;
    const log = this.logger;
    const router = createRouter(config.mounts);
    const loaded: LoadedApp[] = [];
    for (const mount of config.mounts) {
      const app = await loadApp(mount, {
        onFetchError: (err) => log.error({ err, mount: mount.path }, 'app error'),
      });
      loaded.push(app);
      this.#apps.push(app);
      log.debug({ mount: mount.path, app: mount.app, shape: app.shape }, 'app loaded');
    }
    const dispatch = createDispatch({
      router,
      handlers: loaded.map((app) => app.handler),
      limits: config.limits,
      log,
      accessLog: config.log.access,
      stats: this.#stats,
    });

    const baseDir = config.file === undefined ? process.cwd() : dirname(config.file);
    let transport: Transport | undefined;
    const listeners: ListenerInfo[] = [];
    for (const listener of config.listeners) {
      const target = parseListenAddress(listener.address, { mode: listener.mode, baseDir });
      const listenOptions = { target, backlog: listener.backlog };
      if (listener.protocol === 'uwsgi') {
        transport ??= selectTransport(config.transport, log);
        const ctx = {
          listener: '',
          limits: config.limits,
          log,
          dispatch,
          stats: this.#stats,
          health: config.health,
        };
        const bound = await transport.listen(listenOptions, (conn) => this.#acceptUwsgi(conn, ctx));
        ctx.listener = bound.address;
        this.#bound.push(bound);
        listeners.push({ protocol: 'uwsgi', address: bound.address });
      } else {
        const bound = await listenHttp(listenOptions, {
          limits: config.limits,
          log,
          dispatch,
          onConnection: (socket) => this.#acceptHttp(socket),
        });
        this.#bound.push(bound);
        this.#http.push(bound);
        listeners.push({ protocol: 'http', address: bound.address });
      }
    }
    this.listeners = Object.freeze(listeners);
    this.mounts = Object.freeze(
      config.mounts.map((mount, i) => ({
        path: mount.path,
        app: mount.app,
        kind: loaded[i]?.kind ?? 'node',
      })),
    );
    log.info(
      {
        listeners: this.listeners,
        mounts: this.mounts,
        ...(transport === undefined ? {} : { transport: transport.name }),
      },
      'ready',
    );
  }

  /** `maxConnections` spans all listeners: over it, a new connection is closed at once. */
  #admit(): boolean {
    if (this.#stats.connections >= this.#config.limits.maxConnections) {
      this.#stats.connectionsRejected++;
      this.logger.debug(
        { maxConnections: this.#config.limits.maxConnections },
        'connection refused: maxConnections reached',
      );
      return false;
    }
    this.#stats.connections++;
    this.#stats.connectionsTotal++;
    return true;
  }

  #released(): void {
    this.#stats.connections--;
    this.#onActivityChange?.();
  }

  /** Shared by every uwsgi connection (no closures per connection). */
  readonly #uwsgiHooks: ServeHooks = {
    onIdle: () => this.#onActivityChange?.(),
    onClose: (served) => {
      this.#uwsgi.delete(served);
      this.#released();
    },
  };

  #acceptUwsgi(conn: Connection, ctx: Parameters<typeof serveUwsgiConnection>[1]): void {
    if (!this.#admit()) {
      conn.socket.destroy();
      return;
    }
    this.#uwsgi.add(serveUwsgiConnection(conn, ctx, this.#uwsgiHooks));
  }

  #acceptHttp(socket: Socket): boolean {
    if (!this.#admit()) return false;
    this.#httpSockets.add(socket);
    socket.once('close', () => {
      this.#httpSockets.delete(socket);
      this.#released();
    });
    return true;
  }

  close(options: CloseOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.#config.shutdownTimeoutMs;
    if (this.#closing === undefined) {
      this.#closeBy = Date.now() + timeoutMs;
      this.#closing = this.#close(timeoutMs);
    } else if (options.timeoutMs !== undefined) {
      // A later call can only shorten the grace period (a second SIGTERM means "now").
      this.#shortenGrace(Date.now() + options.timeoutMs);
    }
    return this.#closing;
  }

  #shortenGrace(closeBy: number): void {
    if (closeBy >= this.#closeBy) return;
    this.#closeBy = closeBy;
    this.#onGraceChange?.();
  }

  async #close(timeoutMs: number): Promise<void> {
    // A start() in progress finishes (or fails and releases) first.
    await this.#starting?.catch(() => undefined);
    const log = this.logger;
    if (this.#bound.length > 0) log.info({ timeoutMs }, 'stopping');
    await Promise.all(this.#bound.map((l) => l.close()));
    for (const http of this.#http) http.drain();
    const drained = await this.#waitIdle();
    if (!drained) {
      log.warn(
        { inFlight: this.#stats.inFlight, connections: this.#stats.connections },
        'shutdown timeout: closing remaining connections',
      );
    }
    await this.#release();
    if (this.listeners.length > 0) log.info('stopped');
    // Batched access records (log.ts) are out before close() resolves.
    flushLogger(log);
  }

  /** Resolves true once nothing is busy, false when the grace period (`#closeBy`) ran out. */
  #waitIdle(): Promise<boolean> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const check = () => {
        if (this.#busy()) return;
        finish(true);
      };
      const finish = (idle: boolean) => {
        if (timer !== undefined) clearTimeout(timer);
        this.#onActivityChange = undefined;
        this.#onGraceChange = undefined;
        resolve(idle);
      };
      const arm = () => {
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(() => finish(false), Math.max(0, this.#closeBy - Date.now()));
      };
      this.#onActivityChange = () => {
        // Idle HTTP keep-alive sockets that became idle after drain() was called.
        for (const http of this.#http) http.drain();
        check();
      };
      this.#onGraceChange = arm;
      arm();
      check();
    });
  }

  #busy(): boolean {
    if (this.#httpSockets.size > 0) return true;
    for (const served of this.#uwsgi) if (served.busy) return true;
    return false;
  }

  /** Destroys every connection, closes every listener and app. */
  async #release(): Promise<void> {
    await Promise.all(this.#bound.map((l) => l.close()));
    for (const served of this.#uwsgi) served.destroy();
    for (const http of this.#http) http.destroyAll();
    for (const socket of this.#httpSockets) socket.destroy();
    const apps = this.#apps;
    this.#apps = [];
    await Promise.all(
      apps.map(async (app) => {
        try {
          await app.close?.();
        } catch (err) {
          this.logger.warn({ err }, 'app close failed');
        }
      }),
    );
  }
}
