/**
 * The validated, frozen container configuration. YAML keys map 1:1 onto these fields
 * (camelCase). Defaults live in `schema.ts` (the single source of defaults); by the time a
 * `ContainerConfig` exists every optional field with a default has been filled in.
 */
import type { LogConfig } from '../shared/log.ts';

/** Declared in `shared/log.ts` (the logger reads it; shared/ imports nothing above it). */
export type { LogConfig };

export type ListenerProtocol = 'uwsgi' | 'http';

export interface ListenerConfig {
  /** `uwsgi` (nginx `uwsgi_pass`, Apache mod_proxy_uwsgi, lighttpd, uWSGI router) or plain `http`. */
  readonly protocol: ListenerProtocol;
  /**
   * `host:port` (TCP; `[::1]:port` for IPv6; port 0 = ephemeral) or a unix socket path
   * (absolute after loading: relative paths are resolved against the config file's directory).
   */
  readonly address: string;
  /** Unix socket file mode, octal string such as `"0660"` (default `"0660"`). Ignored for TCP. */
  readonly mode: string;
  /** listen(2) backlog (uWSGI `listen`); default 1024, clamped by the kernel's somaxconn. */
  readonly backlog: number;
  /** Owner of a unix socket file: user name or numeric uid (uWSGI `chown-socket`). */
  readonly owner?: string | number;
  /** Group of a unix socket file: group name or numeric gid. */
  readonly group?: string | number;
}

export type AppKind = 'auto' | 'node' | 'fetch';

export interface MountConfig {
  /** URL prefix, starts with `/`; one trailing slash is ignored; `/` is the catch-all. */
  readonly path: string;
  /** App module path, absolute after loading (relative paths resolve against the config dir). */
  readonly app: string;
  /** Named export to use instead of discovery (default: discovery, see app/loader.ts). */
  readonly export?: string;
  /** Force the handler kind; `auto` (default) discovers it from the module's exports. */
  readonly kind: AppKind;
  /**
   * For fetch handlers: `full` (default) gives `request.url` the full external URL including the
   * mount prefix; `relative` strips the prefix (like `req.url` for Node handlers).
   */
  readonly fetchUrl: 'full' | 'relative';
}

export interface LimitsConfig {
  /** Largest uwsgi vars block accepted (uWSGI `buffer-size`); default 65535 (the protocol maximum). */
  readonly bufferSize: number;
  /** Largest number of vars in one packet; default 1000. */
  readonly maxVars: number;
  /** Largest request body in bytes; larger CONTENT_LENGTH gets 413 before the body is read. Default 104857600 (100 MiB). */
  readonly maxBodySize: number;
  /** Total deadline for receiving the request head (uwsgi header + vars, or HTTP head) in ms; default 10000. */
  readonly headerTimeoutMs: number;
  /** Total deadline for receiving the declared request body in ms; default 60000. */
  readonly bodyTimeoutMs: number;
  /** Per-request deadline in ms: 504 if no response headers were sent by then, else the connection is closed. 0 = off. Default 60000. */
  readonly requestTimeoutMs: number;
  /**
   * Most open client connections across all listeners (less when the fd limit leaves fewer);
   * at the limit idle connections are shed oldest first, else a new one is closed at once.
   * Default 10000.
   */
  readonly maxConnections: number;
  /** File descriptors kept free below RLIMIT_NOFILE; connections get the rest. Default 64. */
  readonly reservedFds: number;
  /** Most requests in flight per worker; excess gets 503 at once. 0 = off (default). */
  readonly maxInFlight: number;
  /** Event loop blocked this long (ms): 504 to in-flight clients, worker killed. 0 = off (default). */
  readonly harakiriMs: number;
  /** Requests after which a worker is replaced gracefully. 0 = off (default). */
  readonly maxRequests: number;
  /** Random 0..N added to `maxRequests` per worker. Default 0. */
  readonly maxRequestsJitter: number;
  /** Age (ms) after which a worker is replaced gracefully. 0 = off (default). */
  readonly maxLifetimeMs: number;
  /** RSS (MiB) over which a worker is replaced gracefully. 0 = off (default). */
  readonly reloadOnRssMb: number;
  /** RSS (MiB) over which a worker is killed at once. 0 = off (default). */
  readonly evilReloadOnRssMb: number;
}

export type TransportKind = 'auto' | 'fast' | 'net';

export interface ContainerConfig {
  /** Absolute path of the file the config was read from, or undefined for in-memory configs. */
  readonly file?: string;
  readonly listeners: readonly ListenerConfig[];
  readonly mounts: readonly MountConfig[];
  readonly limits: LimitsConfig;
  readonly log: LogConfig;
  /** uwsgi listener implementation: `auto` (default) prefers `fast` when available, else `net`. */
  readonly transport: TransportKind;
  /**
   * Health-check path answered `200 ok` by uwsgi listeners themselves, without http objects,
   * routing or an app (GET/HEAD with that exact path, no body). Absent (default): off.
   */
  readonly health?: string;
  /**
   * Refuse (400) uwsgi requests without REQUEST_METHOD or a path instead of serving them as
   * `GET` / `/` as uWSGI does (with one warning per listener). Default false.
   */
  readonly strictVars: boolean;
  /**
   * HTTP listeners refuse (400) a request line with more than one space between its parts;
   * false serves it as nginx does (RFC 9112 section 3 allows either). Default true.
   */
  readonly strictRequestLine: boolean;
  /** Grace period for in-flight requests on stop, ms; default 30000 (uWSGI `reload-mercy`). */
  readonly shutdownTimeoutMs: number;
  /** Worker processes, or `auto` (available parallelism). Default 1. */
  readonly workers: number | 'auto';
  /** Time a new worker has to become ready, ms; default 30000. */
  readonly readyTimeoutMs: number;
  /** Grace for the old workers' in-flight requests on reload or recycle, ms; default 30000. */
  readonly reloadMercyMs: number;
  /** Absolute path of the master's pidfile. Absent (default): none. */
  readonly pidfile?: string;
  /** Absolute path of the master's control socket. Absent (default): none. */
  readonly control?: string;
  /**
   * Stats server address (`http://` prefix: over HTTP), unix paths absolute. Absent (default):
   * off.
   */
  readonly stats?: string;
  /** Prometheus endpoint address (HTTP), unix paths absolute. Absent (default): off. */
  readonly metrics?: string;
  /** Lifecycle events kept per worker slot; default 10. */
  readonly restartHistory: number;
  /** Absolute path of a file whose mtime change triggers a graceful reload. Absent: off. */
  readonly touchReload?: string;
  /** Environment of the worker processes, over the inherited one. Default `{}`. */
  readonly env: Readonly<Record<string, string>>;
}
