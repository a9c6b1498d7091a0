/**
 * The operator endpoints of a master or an emperor, bound by that process (never by a worker,
 * so a busy or restarting worker never hides them):
 * - the stats server: raw (uWSGI's protocol: on connect, one JSON document, then close) or
 *   HTTP (`GET` of any path answers the document, as uWSGI's `stats-http`);
 * - the metrics endpoint: HTTP, `GET /metrics` in the Prometheus text format.
 * Bound with the listeners' code (a live unix socket is never stolen, a stale one is replaced).
 */
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../shared/log.ts';
import { listenServer } from '../transport/listen.ts';
import type { Listening } from '../transport/types.ts';
import { classifyStatsAddress } from './address.ts';
import { METRICS_CONTENT_TYPE } from './metrics.ts';

/** listen(2) backlog of the operator endpoints: scrapers and `top`, not traffic. */
const BACKLOG = 64;
/** An HTTP client of an operator endpoint gets this long for its request head (ms). */
const HEADERS_TIMEOUT_MS = 10_000;
/**
 * A client connection of an operator endpoint idle this long is closed (ms): a raw stats client
 * that never reads or never closes, an HTTP client that never reads its answer.
 */
const IDLE_TIMEOUT_MS = 5000;
/** Connections an operator endpoint serves at once; more are closed at accept. */
const MAX_CONNECTIONS = 64;

export interface OperatorEndpoint {
  /** Bound address (`host:port` with the real port, `unix:/path`). */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Serves `document()` on `address` (a `stats:` value, already checked by the config).
 * @throws ContainerError `UWSGI_ERR_LISTEN` when the address cannot be bound.
 */
export async function listenStats(
  address: string,
  document: () => Promise<unknown>,
  log: Logger,
): Promise<OperatorEndpoint> {
  const parsed = parse(address, false);
  const body = async (): Promise<string> => {
    try {
      return `${JSON.stringify(await document())}\n`;
    } catch (err) {
      log.warn({ err }, 'stats document failed');
      return `${JSON.stringify({ error: err instanceof Error ? err.message : String(err) })}\n`;
    }
  };
  let server: Server;
  if (parsed.http) {
    server = httpServer(async (method, _path) => {
      if (method !== 'GET' && method !== 'HEAD') return undefined;
      return { type: 'application/json', body: await body() };
    });
  } else {
    server = createNetServer((socket) => {
      socket.on('error', () => socket.destroy());
      socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
      // The client only reads: whatever it sends is ignored.
      socket.resume();
      void body().then((text) => {
        if (!socket.destroyed) socket.end(text);
      });
    });
  }
  return bind(server, parsed.target, log, 'stats server');
}

/**
 * Serves `metrics()` (Prometheus text) at `GET /metrics` on `address` (a `metrics:` value).
 * @throws ContainerError `UWSGI_ERR_LISTEN` when the address cannot be bound.
 */
export async function listenMetrics(
  address: string,
  metrics: () => Promise<string>,
  log: Logger,
): Promise<OperatorEndpoint> {
  const parsed = parse(address, true);
  const server = httpServer(async (method, path) => {
    if (path !== '/metrics') return { status: 404, type: 'text/plain', body: 'see /metrics\n' };
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    try {
      return { type: METRICS_CONTENT_TYPE, body: await metrics() };
    } catch (err) {
      log.warn({ err }, 'metrics collection failed');
      return { status: 500, type: 'text/plain', body: 'metrics collection failed\n' };
    }
  });
  return bind(server, parsed.target, log, 'metrics endpoint');
}

function parse(address: string, alwaysHttp: boolean) {
  // Addresses in a loaded config are absolute already; the base only matters for callers that
  // pass a raw one (tests).
  const parsed = classifyStatsAddress(address, process.cwd(), alwaysHttp);
  if ('invalid' in parsed) throw new Error(`invalid address "${address}": ${parsed.invalid}`);
  return parsed;
}

type Answer = { status?: number; type: string; body: string } | undefined;

/** A small HTTP server: `answer` returns undefined for a method it does not take (405). */
function httpServer(answer: (method: string, path: string) => Promise<Answer>): HttpServer {
  const server = createHttpServer((req, res) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    req.resume();
    void answer(method, path).then((result) => {
      if (result === undefined) {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
        res.end('method not allowed\n');
        return;
      }
      res.writeHead(result.status ?? 200, {
        'content-type': result.type,
        'content-length': Buffer.byteLength(result.body),
        'cache-control': 'no-store',
      });
      res.end(method === 'HEAD' ? undefined : result.body);
    });
  });
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = HEADERS_TIMEOUT_MS;
  server.timeout = IDLE_TIMEOUT_MS;
  server.keepAliveTimeout = IDLE_TIMEOUT_MS;
  return server;
}

async function bind(
  server: Server,
  target: Parameters<typeof listenServer>[1]['target'],
  log: Logger,
  what: string,
): Promise<OperatorEndpoint> {
  server.maxConnections = MAX_CONNECTIONS;
  // Every connection, so a stop closes them all (a raw client that keeps its end open would
  // otherwise keep the process alive).
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const listening: Listening = await listenServer(server, { target, backlog: BACKLOG });
  server.on('error', (err) => log.warn({ err }, `${what} error`));
  // Never keeps the process alive on its own (the master's life is its workers' and signals').
  server.unref();
  return {
    address: listening.address,
    close: async () => {
      const closed = listening.close();
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
}
