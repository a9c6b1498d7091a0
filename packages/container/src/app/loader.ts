/**
 * Turns an app module into a `NodeHandler`, whatever shape the module exports (BRIDGE.md
 * "Finding the app in a module"; srvx's loader order, Passenger's reverse port binding).
 *
 * Discovery order, unless `mount.export` names the export or `mount.kind` forces a kind:
 * 1. a `fetch` export, or a default export with a `fetch()` method (Hono apps) -> fetch handler;
 * 2. a default Koa app -> `app.callback()`;
 * 3. a default Fastify instance -> `await app.ready()`, then `app.routing` (its request handler);
 * 4. an exported `http.Server` / `https.Server` (default or named) -> its `request` listeners;
 * 5. a default function (Express apps are functions) -> `(req, res)` handler;
 * 6. a `handler` export (function, or any of the shapes above);
 * 7. last, a server the module `listen()`s on while it is being imported: `listen()` is
 *    intercepted for the duration of the import, the port is never bound, and the server's
 *    `request` listeners become the handler.
 *
 * CommonJS modules load through `import()` too: Node exposes `module.exports` as the default
 * export (and statically detectable `exports.x` as named exports), so `module.exports = app`
 * is a default export here.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { pathToFileURL } from 'node:url';
import type { MountConfig } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';
import type { FetchHandler, LoadedApp, NodeHandler } from './types.ts';

export interface LoadAppOptions {
  /**
   * Origin given to fetch handlers for requests that carry no Host header (and no uwsgi
   * SERVER_NAME). Default `http://localhost`.
   */
  readonly fetchBaseUrl?: string;
  /** Receives errors thrown by fetch handlers (they answer 500). */
  readonly onFetchError?: (err: unknown) => void;
}

/** The shapes `loadApp` accepts, in discovery order; quoted by `UWSGI_ERR_APP_EXPORT`. */
export const ACCEPTED_APP_SHAPES: readonly string[] = Object.freeze([
  'a `fetch` export, or a default export with a fetch() method (fetch handler, e.g. a Hono app)',
  'a default Koa app',
  'a default Fastify instance',
  'an exported http.Server or https.Server with a request listener',
  'a default (req, res) function (e.g. an Express app)',
  'a `handler` export',
  'a server the module listen()s on while it is imported',
]);

type Found =
  | { readonly kind: 'fetch'; readonly shape: string; readonly fetch: FetchHandler }
  | {
      readonly kind: 'node';
      readonly shape: string;
      readonly handler: NodeHandler;
      readonly fastify?: FastifyLike;
      /** The http.Server the handler emits `request` on (exported servers, Fastify's). */
      readonly server?: net.Server;
      /** A bare function: ranks after exported servers (discovery steps 4 and 5). */
      readonly plainFunction?: boolean;
    };

interface FastifyLike {
  ready(): PromiseLike<unknown>;
  routing: NodeHandler;
  close(): PromiseLike<unknown>;
  server?: unknown;
}

interface KoaLike {
  callback(): NodeHandler;
}

/**
 * Loads the app module of `mount` and returns its request handler.
 *
 * @throws ContainerError `UWSGI_ERR_APP_LOAD` (with `cause`) when the import throws or a
 *   Fastify instance fails `ready()`; `UWSGI_ERR_APP_EXPORT` when nothing in the module is
 *   usable (the message lists `ACCEPTED_APP_SHAPES` and what the module did export).
 */
export async function loadApp(
  mount: MountConfig,
  options: LoadAppOptions = {},
): Promise<LoadedApp> {
  const url = pathToFileURL(mount.app).href;
  const { namespace, servers } = await importIntercepted(url, mount.app);
  const found = discover(mount, namespace, servers);
  // Where WebSocket handshakes go (`LoadedApp.server`): the server the handler came from, else
  // the one the module listen()ed on during import (`http.createServer(app)` beside
  // `new WebSocketServer({ server })`, @hono/node-server's serve() with @hono/node-ws).
  const server =
    (found.kind === 'node' ? found.server : undefined) ?? servers.find((s) => isHttpServer(s));
  const withServer = server === undefined ? {} : { server };

  if (found.kind === 'fetch') {
    const listenerOptions = {
      fetchUrl: mount.fetchUrl,
      ...(options.fetchBaseUrl === undefined ? {} : { baseUrl: options.fetchBaseUrl }),
      ...(options.onFetchError === undefined ? {} : { onError: options.onFetchError }),
    };
    // Loaded on first use: @hono/node-server costs 60-100 ms of a worker's boot, and most
    // containers mount no fetch app.
    const { createFetchListener } = await import('./fetch.ts');
    return {
      handler: createFetchListener(found.fetch, listenerOptions),
      kind: 'fetch',
      shape: found.shape,
      ...withServer,
    };
  }
  const fastify = found.fastify;
  if (fastify === undefined) {
    return { handler: found.handler, kind: 'node', shape: found.shape, ...withServer };
  }
  try {
    await fastify.ready();
  } catch (cause) {
    throw new ContainerError(
      'UWSGI_ERR_APP_LOAD',
      `app ${mount.app}: Fastify ready() failed: ${messageOf(cause)}`,
      { cause },
    );
  }
  return {
    // `routing` is Fastify's own request listener (the one it gives http.createServer), so
    // hooks, 404 handling and its close-time 503 behave as under fastify.listen().
    handler: (req, res) => fastify.routing(req, res),
    kind: 'node',
    shape: found.shape,
    ...withServer,
    async close() {
      await fastify.close();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Import with listen() interception

/** Servers that called listen() during one import; keyed by module URL (imports are cached). */
const listenedByUrl = new Map<string, readonly net.Server[]>();

/** Serialises imports: the listen() patch is process-global. */
let importChain: Promise<unknown> = Promise.resolve();

/** Marks the async context of the import in progress, so unrelated listen() calls pass through. */
const importContext = new AsyncLocalStorage<string>();

async function importIntercepted(
  url: string,
  file: string,
): Promise<{ namespace: Record<string, unknown>; servers: readonly net.Server[] }> {
  const run = importChain.then(() => importOnce(url, file));
  importChain = run.catch(() => undefined);
  return run;
}

async function importOnce(
  url: string,
  file: string,
): Promise<{ namespace: Record<string, unknown>; servers: readonly net.Server[] }> {
  const servers: net.Server[] = [];
  // net.Server.prototype.listen is the one listen() that http, https and net servers share
  // (http.Server inherits it). Only http/https servers started from inside this import's async
  // context are intercepted: the container's own listeners, or a TCP side server of the app,
  // still bind for real.
  const original = net.Server.prototype.listen;
  const patched = function listen(this: net.Server, ...args: unknown[]): net.Server {
    if (importContext.getStore() !== url || !isHttpServer(this)) {
      return (original as (...a: unknown[]) => net.Server).apply(this, args);
    }
    servers.push(this);
    pretendListening(this, args);
    return this;
  };
  net.Server.prototype.listen = patched as typeof original;
  let namespace: Record<string, unknown>;
  try {
    namespace = (await importContext.run(url, () => import(url))) as Record<string, unknown>;
  } catch (cause) {
    throw new ContainerError(
      'UWSGI_ERR_APP_LOAD',
      `cannot load app ${file}: ${loadFailure(file, cause)}`,
      {
        cause,
      },
    );
  } finally {
    net.Server.prototype.listen = original;
    // run() enabled async_hooks for the whole process (an init hook on every nextTick, Timeout,
    // handle and promise, ~1 µs per request behind nginx); disabling turns the hook off again
    // unless the app uses an AsyncLocalStorage of its own. The next import's run() re-enables.
    importContext.disable();
  }
  // A module already imported is not evaluated again (a second mount of the same file): reuse
  // what its first evaluation listen()ed on.
  if (servers.length > 0) listenedByUrl.set(url, servers);
  return { namespace, servers: listenedByUrl.get(url) ?? servers };
}

/**
 * Makes an intercepted listen() look successful: the callback and `listening` run on the next
 * tick, as after a real bind, and `address()` reports what was asked for, so that apps logging
 * `server.address().port` or awaiting `listening` during import neither crash nor hang.
 */
function pretendListening(server: net.Server, args: readonly unknown[]): void {
  const callback = args.findLast((a): a is () => void => typeof a === 'function');
  const address = requestedAddress(args);
  Object.defineProperty(server, 'address', {
    configurable: true,
    writable: true,
    value: () => address,
  });
  if (callback !== undefined) server.once('listening', callback);
  process.nextTick(() => server.emit('listening'));
}

function requestedAddress(args: readonly unknown[]): net.AddressInfo | string {
  let port: unknown = args[0];
  let host: unknown = typeof args[1] === 'string' ? args[1] : undefined;
  const first = args[0];
  if (typeof first === 'object' && first !== null) {
    const o = first as { port?: unknown; host?: unknown; path?: unknown };
    if (typeof o.path === 'string') return o.path;
    port = o.port;
    host = o.host;
  } else if (typeof first === 'string' && !/^\d+$/.test(first)) {
    return first; // listen(path): a unix socket
  }
  const h = typeof host === 'string' ? host : '::';
  return { address: h, family: net.isIPv4(h) ? 'IPv4' : 'IPv6', port: Number(port ?? 0) || 0 };
}

function isHttpServer(server: net.Server): boolean {
  return server instanceof http.Server || server instanceof https.Server;
}

// ---------------------------------------------------------------------------------------------
// Discovery

function discover(
  mount: MountConfig,
  namespace: Record<string, unknown>,
  servers: readonly net.Server[],
): Found {
  const def = unwrapDefault(namespace['default']);
  const want = mount.kind;

  if (mount.export !== undefined) {
    const name = mount.export;
    const value =
      name in namespace
        ? namespace[name]
        : isObjectLike(def)
          ? (def as Record<string, unknown>)[name]
          : undefined;
    if (value === undefined) {
      throw exportError(mount, namespace, `it has no export named ${JSON.stringify(name)}`);
    }
    const found = classify(value, `export ${JSON.stringify(name)}`, want, true);
    if (found === undefined) {
      throw exportError(
        mount,
        namespace,
        `export ${JSON.stringify(name)} (${typeName(value)}) is not a${want === 'auto' ? 'n app' : ` ${want} handler`}`,
      );
    }
    return found;
  }

  const namedFetch = namespace['fetch'];
  // A CommonJS `module.exports = { fetch() {} }` also shows `fetch` as a named export (Node's
  // cjs-module-lexer), detached from its object: call it as the default's method instead.
  const isDefaultMethod =
    isObjectLike(def) && (def as Record<string, unknown>)['fetch'] === namedFetch;
  if (want !== 'node' && typeof namedFetch === 'function' && !isDefaultMethod) {
    return {
      kind: 'fetch',
      shape: 'fetch export (fetch handler)',
      fetch: namedFetch as FetchHandler,
    };
  }
  const fromDefault = def === undefined ? undefined : classify(def, 'default export', want, false);
  if (fromDefault !== undefined && !(fromDefault.kind === 'node' && fromDefault.plainFunction)) {
    return fromDefault;
  }
  if (want !== 'fetch') {
    for (const [name, value] of Object.entries(namespace)) {
      if (
        name !== 'default' &&
        value instanceof net.Server &&
        isHttpServer(value) &&
        hasRequestListener(value)
      ) {
        return serverHandler(value, `export ${JSON.stringify(name)}`);
      }
    }
  }
  if (fromDefault !== undefined) return fromDefault;
  if (typeof def === 'function' && want === 'fetch') {
    return { kind: 'fetch', shape: 'default export (fetch handler)', fetch: def as FetchHandler };
  }
  const handler =
    namespace['handler'] ??
    (isObjectLike(def) ? (def as Record<string, unknown>)['handler'] : undefined);
  if (handler !== undefined) {
    const found = classify(handler, 'handler export', want, true);
    if (found !== undefined) return found;
  }
  if (want !== 'fetch') {
    const server = servers.find((s) => isHttpServer(s) && hasRequestListener(s));
    if (server !== undefined) return serverHandler(server, 'listen() on import');
  }
  throw exportError(mount, namespace, 'it exports no usable app');
}

/**
 * Decides what one exported value is. Functions are `(req, res)` handlers unless `want` is
 * `fetch`; then `fetchFunction` says whether a bare function counts as a fetch handler (true for
 * named exports; the default export is handled by the caller, after exported servers).
 */
function classify(
  value: unknown,
  where: string,
  want: MountConfig['kind'],
  fetchFunction: boolean,
): Found | undefined {
  if (!isObjectLike(value)) return undefined;
  const v = value as Record<string, unknown>;
  if (want !== 'node' && typeof v['fetch'] === 'function') {
    const method = v['fetch'] as (
      this: unknown,
      ...args: unknown[]
    ) => Response | Promise<Response>;
    return {
      kind: 'fetch',
      shape: `${where} .fetch() (fetch handler)`,
      fetch: (request, env) => method.call(value, request, env),
    };
  }
  if (want === 'fetch') {
    if (fetchFunction && typeof value === 'function') {
      return { kind: 'fetch', shape: `${where} (fetch handler)`, fetch: value as FetchHandler };
    }
    return undefined;
  }
  if (isKoa(v)) {
    return { kind: 'node', shape: `${where} (Koa app)`, handler: v.callback() };
  }
  if (isFastify(v)) {
    const server = v.server instanceof net.Server && isHttpServer(v.server) ? v.server : undefined;
    return {
      kind: 'node',
      shape: `${where} (Fastify instance)`,
      handler: v.routing,
      fastify: v,
      ...(server === undefined ? {} : { server }),
    };
  }
  if (value instanceof net.Server) {
    return isHttpServer(value) && hasRequestListener(value)
      ? serverHandler(value, where)
      : undefined;
  }
  if (typeof value === 'function') {
    const label = isExpress(v) ? 'Express app' : '(req, res) function';
    return {
      kind: 'node',
      shape: `${where} (${label})`,
      handler: value as NodeHandler,
      plainFunction: true,
    };
  }
  return undefined;
}

function serverHandler(server: net.Server, where: string): Found {
  // Emit rather than call the first listener: a server may have several `request` listeners
  // (http.createServer(app) plus server.on('request', ...)), and emit() runs them all in order.
  return {
    kind: 'node',
    shape: `${where} (${server instanceof https.Server ? 'https.Server' : 'http.Server'})`,
    server,
    handler: (req, res) => {
      server.emit('request', req, res);
    },
  };
}

function hasRequestListener(server: net.Server): boolean {
  return server.listenerCount('request') > 0;
}

function isKoa(v: Record<string, unknown>): v is Record<string, unknown> & KoaLike {
  return (
    typeof v['callback'] === 'function' &&
    typeof v['use'] === 'function' &&
    Array.isArray(v['middleware'])
  );
}

function isFastify(v: Record<string, unknown>): v is Record<string, unknown> & FastifyLike {
  return (
    typeof v['ready'] === 'function' &&
    typeof v['routing'] === 'function' &&
    typeof v['inject'] === 'function' &&
    typeof v['close'] === 'function'
  );
}

function isExpress(v: Record<string, unknown>): boolean {
  return (
    typeof v['handle'] === 'function' &&
    typeof v['use'] === 'function' &&
    typeof v['set'] === 'function'
  );
}

/**
 * Transpiled CommonJS (`exports.__esModule = true; exports.default = app`) arrives as
 * `{ default: { __esModule: true, default: app } }`: take the inner default.
 */
function unwrapDefault(value: unknown): unknown {
  if (isObjectLike(value)) {
    const v = value as Record<string, unknown>;
    if (v['__esModule'] === true && 'default' in v) return v['default'];
  }
  return value;
}

function isObjectLike(value: unknown): value is object {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return 'function';
  if (typeof value !== 'object') return typeof value;
  const ctor = (value as { constructor?: { name?: unknown } }).constructor;
  return typeof ctor?.name === 'string' && ctor.name !== 'Object' ? ctor.name : 'object';
}

function exportError(
  mount: MountConfig,
  namespace: Record<string, unknown>,
  why: string,
): ContainerError {
  const exported = Object.keys(namespace)
    .sort()
    .map((name) => `${name} (${typeName(namespace[name])})`)
    .join(', ');
  const kind = mount.kind === 'auto' ? '' : ` with kind ${mount.kind}`;
  return new ContainerError(
    'UWSGI_ERR_APP_EXPORT',
    `app ${mount.app}${kind}: ${why}. Exports: ${exported || 'none'}. Accepted shapes, in ` +
      `discovery order: ${ACCEPTED_APP_SHAPES.join('; ')}. Name one with "export:" in the mount.`,
  );
}

/**
 * Why an import failed, with `file:line:col` for a syntax error. CommonJS puts the place in
 * the error's stack ("/srv/app.cjs:2\n<source line>\n   ^^^"); an ES module's SyntaxError has
 * none, so the file is checked once with `node --check` (a child process, on this error path
 * only; nothing of the app runs). A syntax error in a module the app imports is said as such.
 */
function loadFailure(file: string, cause: unknown): string {
  if (!(cause instanceof SyntaxError)) return messageOf(cause);
  // A SyntaxError thrown while the app runs (JSON.parse at its top level) has a frame of user
  // code in its stack; one from parsing has Node's loader frames only.
  if (/^\s+at (?!node:)(?!.*\(node:).*$/m.test(cause.stack ?? '')) return cause.message;
  const at = syntaxErrorPlace(cause.stack ?? '') ?? checkSyntax(file);
  return at === undefined
    ? `SyntaxError in the app or a module it imports: ${cause.message}`
    : `SyntaxError at ${at}: ${cause.message}`;
}

/** `file:line:col` from V8's decorated header: "FILE:LINE", the source line, then the carets. */
function syntaxErrorPlace(text: string): string | undefined {
  const match = /^(.+):(\d+)\n.*\n( *)\^/.exec(text);
  if (match !== null) return `${match[1]}:${match[2]}:${(match[3] ?? '').length + 1}`;
  // "Unexpected end of input" has no caret: the line (the file's last) is the place.
  const line = /^(\/.+):(\d+)\n/.exec(text);
  return line === null ? undefined : `${line[1]}:${line[2]}`;
}

function checkSyntax(file: string): string | undefined {
  const result = spawnSync(process.execPath, ['--check', file], {
    encoding: 'utf8',
    timeout: 10_000,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return result.status === 0 ? undefined : syntaxErrorPlace(result.stderr ?? '');
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
