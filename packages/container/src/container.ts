/**
 * One worker's engine and the composition root (STYLE.md section 6): config in, listeners + apps
 * running out. The only module that wires transport, protocol, dispatch, router and app together.
 * It binds its listeners itself or serves listening fds inherited from a master
 * (`ContainerOptions.inherited`, docs/supervisor.md); it never manages other processes.
 */
import type { Socket } from 'node:net';
import { dirname } from 'node:path';
import { Admission, type TrackedConnection } from './admission/admission.ts';
import { loadApp } from './app/loader.ts';
import type { LoadedApp, LoadedAppKind } from './app/types.ts';
import type { ContainerConfig, ListenerProtocol } from './config/types.ts';
import {
  createDispatch,
  describeInFlight,
  type InFlightRequest,
  type InFlightView,
} from './dispatch/dispatch.ts';
import { createUpgrades, type Upgrades } from './dispatch/upgrade.ts';
import { HttpConnection, type HttpListening, listenHttp } from './protocol/http.ts';
import { type ServeHooks, serveUwsgiConnection } from './protocol/uwsgi.ts';
import { createRouter } from './router/mounts.ts';
import { ContainerError } from './shared/errors.ts';
import {
  type AccessLog,
  accessLog,
  accessRecord,
  createLogger,
  flushLogger,
  type Logger,
  type ShutdownState,
} from './shared/log.ts';
import { Stats, type StatsSnapshot } from './shared/stats.ts';
import { parseListenAddress } from './transport/address.ts';
import { selectTransport } from './transport/index.ts';
import type { Connection, Listening, ListenOptions, Transport } from './transport/types.ts';

/**
 * Longest `close()` waits, after destroying the connections left at the end of a stop, for them
 * to close (their 'close' comes from the handles' close callbacks, in the same loop turn).
 */
const CLOSE_WAIT_MS = 1000;

export interface ContainerOptions {
  /** Logger to use; default: one built from `config.log` writing to `stdout`. */
  readonly logger?: Logger;
  /** Destination of the default logger; default `process.stdout`. */
  readonly stdout?: NodeJS.WritableStream & { readonly isTTY?: boolean | undefined };
  /**
   * Listening sockets bound by someone else (a supervisor), indexed like `config.listeners`:
   * where an entry is present, that listener serves the inherited fd (listen(2) on it, then
   * accept) instead of binding its address, and never removes a socket file. `address` is the
   * display form reported in `listeners` and the ready record.
   */
  readonly inherited?: readonly (InheritedListener | undefined)[];
  /**
   * Called after each request's response finished or its connection closed (a worker counts
   * them for `limits.maxRequests`). Keep it cheap: it runs once per request.
   */
  readonly onRequestDone?: () => void;
  /** Keep a registry of in-flight requests for `inFlightRequests()` (the harakiri watchdog). */
  readonly trackRequests?: boolean;
  /** `msg` of the record logged once serving; default `ready` (a worker logs `worker serving`). */
  readonly readyMessage?: string;
}

/** A listening fd handed down by a supervisor. */
export interface InheritedListener {
  readonly fd: number;
  /** `unix:/abs/app.sock` or `host:port`. */
  readonly address: string;
}

/** What `start()` and `close()` take. */
export interface StartOptions {
  /** Aborting it during start() fails start() (`UWSGI_ERR_ABORTED`) and releases everything. */
  readonly signal?: AbortSignal;
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
  /** Aborting it shortens the grace period to zero (a second signal). */
  readonly signal?: AbortSignal;
}

export interface Container {
  /**
   * Loads every app, binds every listener, then logs `"msg":"ready"`. Idempotent: later calls
   * return the same promise. On failure everything already bound or loaded is released.
   * @throws ContainerError `UWSGI_ERR_APP_LOAD`, `UWSGI_ERR_APP_EXPORT`, `UWSGI_ERR_LISTEN`,
   *   `UWSGI_ERR_MOUNT_CONFLICT`, `UWSGI_ERR_TRANSPORT_UNAVAILABLE`.
   */
  start(options?: StartOptions): Promise<void>;
  /**
   * Stops accepting on every listener (a unix socket file bound here is removed; inherited
   * sockets stay open in the process that bound them) and tells HTTP keep-alive clients to
   * close; open connections and in-flight requests live on. `close()` does this first.
   */
  stopAccepting(): Promise<void>;
  /** In-flight requests, when created with `trackRequests`; empty otherwise. */
  inFlightRequests(): InFlightRequest[];
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
  /** The uwsgi transport serving (`fast`, `net`), after `start()`; undefined without uwsgi listeners. */
  readonly transport: string | undefined;
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
  transport: string | undefined;
  readonly #config: ContainerConfig;
  readonly #options: ContainerOptions;
  readonly #stats: Stats;
  readonly #registry: Set<InFlightView> | undefined;
  #stopAccepting: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #bound: Array<Listening> = [];
  #http: HttpListening[] = [];
  #apps: LoadedApp[] = [];
  /**
   * Open connections of every listener (oldest first; upgraded WebSockets included), the
   * connection limit and shedding.
   */
  readonly #admission: Admission;
  /** WebSocket handshakes of the HTTP listeners and the open WebSockets (closed with 1001). */
  #upgrades: Upgrades | undefined;
  /** Re-checks the shutdown condition; set while close() waits. */
  #onActivityChange: (() => void) | undefined;
  /** When close() stops waiting for in-flight requests (epoch ms). */
  #closeBy = Number.POSITIVE_INFINITY;
  /** Re-arms the grace timer after `#closeBy` moved; set while close() waits. */
  #onGraceChange: (() => void) | undefined;
  /** Read by dispatch and the listeners when they log a request the stop cut off. */
  readonly #shutdown: ShutdownState = { forced: false };
  /** Set while `#release()` waits for the connections it destroyed to close. */
  #onConnectionClosed: (() => void) | undefined;

  constructor(config: ContainerConfig, options: ContainerOptions) {
    this.#config = config;
    this.#options = options;
    this.#registry = options.trackRequests === true ? new Set() : undefined;
    this.logger =
      options.logger ??
      createLogger(config.log, options.stdout === undefined ? {} : { stdout: options.stdout });
    this.#stats = new Stats(config.mounts.map((m) => m.path));
    this.#admission = new Admission({
      maxConnections: config.limits.maxConnections,
      reservedFds: config.limits.reservedFds,
      stats: this.#stats,
      log: this.logger,
    });
  }

  stats(): StatsSnapshot {
    return this.#stats.snapshot();
  }

  inFlightRequests(): InFlightRequest[] {
    return this.#registry === undefined ? [] : describeInFlight(this.#registry);
  }

  start(options: StartOptions = {}): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new ContainerError('UWSGI_ERR_CLOSED', 'the container is closed'));
    }
    this.#starting ??= this.#start(options.signal).catch(async (err: unknown) => {
      await this.#release();
      throw err;
    });
    return this.#starting;
  }

  async #start(signal: AbortSignal | undefined): Promise<void> {
    const checkAborted = () => {
      if (signal?.aborted === true) {
        throw new ContainerError('UWSGI_ERR_ABORTED', 'start() was aborted', {
          cause: signal.reason,
        });
      }
    };
    checkAborted();
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
      checkAborted();
    }
    const dispatch = createDispatch({
      router,
      handlers: loaded.map((app) => app.handler),
      limits: config.limits,
      log,
      accessLog: config.log.access,
      stats: this.#stats,
      onDone: this.#options.onRequestDone,
      registry: this.#registry,
      shutdown: this.#shutdown,
    });
    const upgrades = createUpgrades({
      router,
      servers: loaded.map((app) => app.server),
      limits: config.limits,
      log,
      accessLog: config.log.access,
      stats: this.#stats,
      onDone: this.#options.onRequestDone,
      shutdown: this.#shutdown,
    });
    this.#upgrades = upgrades;
    // The listeners' own answers and refusals (dispatch logs through its own writer).
    const access: AccessLog | undefined = config.log.access ? accessLog(log) : undefined;

    const baseDir = config.file === undefined ? process.cwd() : dirname(config.file);
    let transport: Transport | undefined;
    const listeners: ListenerInfo[] = [];
    for (const [index, listener] of config.listeners.entries()) {
      checkAborted();
      const inherited = this.#options.inherited?.[index];
      // An inherited fd is reported by the address the master bound (listen.ts uses it).
      const listenOptions: ListenOptions =
        inherited === undefined
          ? {
              target: parseListenAddress(listener.address, { mode: listener.mode, baseDir }),
              backlog: listener.backlog,
            }
          : {
              target: { kind: 'fd', fd: inherited.fd },
              backlog: listener.backlog,
              address: inherited.address,
            };
      if (listener.protocol === 'uwsgi') {
        transport ??= selectTransport(config.transport, log);
        const ctx = {
          listener: '',
          limits: config.limits,
          log,
          dispatch,
          stats: this.#stats,
          accessLog: access,
          health: config.health,
          strictVars: config.strictVars,
          shutdown: this.#shutdown,
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
          accessLog: access,
          onConnection: (socket) => this.#acceptHttp(socket),
          shutdown: this.#shutdown,
          upgrade: upgrades.dispatch,
          strictRequestLine: config.strictRequestLine,
        });
        this.#bound.push(bound);
        this.#http.push(bound);
        listeners.push({ protocol: 'http', address: bound.address });
      }
    }
    checkAborted();
    // The fds held besides connections (listeners, logs, IPC, the apps' own): what the fd
    // limit leaves for connections.
    this.#admission.measure();
    this.listeners = Object.freeze(listeners);
    this.transport = transport?.name;
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
      this.#options.readyMessage ?? 'ready',
    );
  }

  #released(conn: TrackedConnection): void {
    this.#admission.remove(conn);
    this.#onActivityChange?.();
    this.#onConnectionClosed?.();
  }

  /** Shared by every uwsgi connection (no closures per connection). */
  readonly #uwsgiHooks: ServeHooks = {
    onIdle: () => this.#onActivityChange?.(),
    onClose: (served) => this.#released(served),
  };

  /** The connection limit spans all listeners (admission.ts: shed idle ones, else refuse). */
  #acceptUwsgi(conn: Connection, ctx: Parameters<typeof serveUwsgiConnection>[1]): void {
    if (!this.#admission.admit()) {
      conn.socket.destroy();
      // No client address: the peer of a uwsgi connection is the front end, not the client.
      ctx.accessLog?.write(
        accessRecord(null, null, 0, 0, 0, null, null, ctx.listener, false, 'refused'),
      );
      return;
    }
    this.#admission.add(serveUwsgiConnection(conn, ctx, this.#uwsgiHooks));
  }

  #acceptHttp(socket: Socket): boolean {
    if (!this.#admission.admit()) return false;
    const conn = new HttpConnection(socket);
    this.#admission.add(conn);
    socket.once('close', () => this.#released(conn));
    return true;
  }

  stopAccepting(): Promise<void> {
    this.#stopAccepting ??= (async () => {
      await this.#starting?.catch(() => undefined);
      await Promise.all(this.#bound.map((l) => l.close()));
      for (const http of this.#http) http.drain();
    })();
    return this.#stopAccepting;
  }

  close(options: CloseOptions = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? this.#config.shutdownTimeoutMs;
    const { signal } = options;
    if (signal !== undefined) {
      if (signal.aborted) this.#shortenGrace(Date.now());
      else signal.addEventListener('abort', () => this.#shortenGrace(Date.now()), { once: true });
    }
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
    await this.stopAccepting();
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

  /** Resolves once every connection has closed, or after {@link CLOSE_WAIT_MS}. */
  #connectionsClosed(): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.#admission.open.size > 0) return;
        clearTimeout(timer);
        this.#onConnectionClosed = undefined;
        resolve();
      };
      const timer = setTimeout(() => {
        this.#onConnectionClosed = undefined;
        resolve();
      }, CLOSE_WAIT_MS);
      this.#onConnectionClosed = check;
      check();
    });
  }

  #busy(): boolean {
    for (const conn of this.#admission.open) if (conn.busy) return true;
    return false;
  }

  /**
   * Destroys every connection, closes every listener and app. The requests cut off here are
   * logged (`error: "shutdown"`) as their connections close, which happens a little later (the
   * handles' close callbacks): waited for, so that their records are out before close()
   * resolves and the worker exits.
   */
  async #release(): Promise<void> {
    await Promise.all(this.#bound.map((l) => l.close()));
    this.#shutdown.forced = true;
    // Open WebSockets get a close frame (1001) and close within GOING_AWAY_WAIT_MS on their own.
    const goingAway = this.#upgrades?.goingAway();
    for (const conn of this.#admission.open) {
      if (conn instanceof HttpConnection && goingAway?.has(conn.socket) === true) continue;
      conn.destroy();
    }
    for (const http of this.#http) http.destroyAll();
    await this.#connectionsClosed();
    this.#admission.close();
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
