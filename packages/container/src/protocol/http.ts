/**
 * The plain HTTP listener: node:http (llhttp) parses, the shared dispatcher routes. Options are
 * set so that nothing weakens the parser or lets a slow client hold a socket forever
 * (RELIABILITY.md 1.2 and invariant 7): never `insecureHTTPParser`; `headersTimeout` from
 * `headerTimeoutMs`, `requestTimeout` from head + body deadlines (408), checked every second
 * instead of Node's default 30 s; `maxHeadersCount` from `maxVars`; `strictContentLength` on
 * every response; `maxBodySize` answered with 413 like the uwsgi listener.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { LimitsConfig } from '../config/types.ts';
import { respondOnBehalf } from '../dispatch/respond.ts';
import type { Dispatch } from '../dispatch/types.ts';
import type { Logger } from '../shared/log.ts';
import { listenServer } from '../transport/listen.ts';
import type { Listening, ListenOptions } from '../transport/types.ts';

export interface HttpListenerContext {
  readonly limits: LimitsConfig;
  readonly log: Logger;
  readonly dispatch: Dispatch;
  /**
   * Called for every accepted socket; return false to refuse it (closed at once), e.g. when
   * the container's `maxConnections` is reached.
   */
  readonly onConnection?: (socket: Socket) => boolean;
}

/** A bound HTTP listener. */
export interface HttpListening extends Listening {
  /**
   * Graceful mode: responses from now on carry `Connection: close`; a socket that stays idle for
   * `DRAIN_IDLE_MS` is closed. `close()` (stop accepting) is separate and closes no socket.
   */
  drain(): void;
  /** Destroys every socket of this listener. */
  destroyAll(): void;
}

/** Idle keep-alive time; Node's default, shorter than nginx's `keepalive_timeout` upstream. */
const KEEP_ALIVE_TIMEOUT_MS = 5000;

/**
 * Once the listener drains, how long a keep-alive socket may stay idle before it is closed.
 * Closing an idle keep-alive socket at once races with the client's next request on it: that
 * request meets a reset (ECONNRESET at the client, RELIABILITY.md R6b). A client that sends
 * within this time gets its answer with `Connection: close` instead, so only sockets nobody
 * uses are cut.
 */
const DRAIN_IDLE_MS = 1000;

/** How often Node checks `headersTimeout` / `requestTimeout` (its default is 30 s). */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;

export async function listenHttp(
  options: ListenOptions,
  ctx: HttpListenerContext,
): Promise<HttpListening> {
  const { limits, log } = ctx;
  const headMs = limits.headerTimeoutMs;
  const server: Server = createServer({
    insecureHTTPParser: false,
    headersTimeout: headMs,
    // 0 disables it; Node requires requestTimeout >= headersTimeout when both are set.
    requestTimeout: headMs > 0 && limits.bodyTimeoutMs > 0 ? headMs + limits.bodyTimeoutMs : 0,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
    noDelay: true,
  });
  server.maxHeadersCount = limits.maxVars;
  let draining = false;
  let listener = '';
  /** Set once the drain grace is over: from then on idle sockets may be closed. */
  let idleMayClose = false;
  let drainTimer: NodeJS.Timeout | undefined;
  // Fix (R6b: ECONNRESET on reload): node:http's close() (Node >= 19) calls
  // closeIdleConnections() before it stops listening, and drain() used to call it at once and
  // again after every response. Node counts as idle a socket accepted a moment ago whose request
  // is not read yet, and a keep-alive socket whose client is sending its next request right now:
  // both were destroyed with that request unread, which the client saw as ECONNRESET (129 in
  // 9 reloads at c16). Idle sockets are now closed by the drain rules only (drain()).
  const closeIdleConnections = server.closeIdleConnections.bind(server);
  server.closeIdleConnections = () => {
    if (idleMayClose) closeIdleConnections();
  };

  server.on('connection', (socket: Socket) => {
    if (ctx.onConnection !== undefined && !ctx.onConnection(socket)) socket.destroy();
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    res.strictContentLength = true;
    if (draining) res.shouldKeepAlive = false;
    if (!withinBodyLimit(req, res, limits.maxBodySize, log)) return;
    ctx.dispatch(req, res, {
      protocol: 'http',
      listener,
      remoteAddress: req.socket.remoteAddress,
    });
  });

  const bound = await listenServer(server, options);
  listener = bound.address;
  return {
    address: bound.address,
    close: () => bound.close(),
    drain() {
      if (draining) return;
      draining = true;
      // A keep-alive response under way now leaves its socket idle when it finishes: Node's
      // keep-alive timer (armed at 'finish' from this value) closes it after DRAIN_IDLE_MS
      // without a request. Sockets idle already are closed when the grace is over.
      server.keepAliveTimeout = DRAIN_IDLE_MS;
      drainTimer = setTimeout(() => {
        // From the check phase: a request that arrived while the loop was stalled is read (poll
        // phase) and its socket is busy before idle sockets are closed; from the timer itself
        // it would be destroyed unread.
        setImmediate(() => {
          idleMayClose = true;
          server.closeIdleConnections();
        });
      }, DRAIN_IDLE_MS);
      drainTimer.unref();
    },
    destroyAll() {
      clearTimeout(drainTimer);
      server.closeAllConnections();
    },
  };
}

/**
 * 413 for a declared Content-Length over the limit (before the body is read), and for a
 * chunked body once it grows past the limit: from then on the body is withheld from the app
 * entirely (not even its end), so a truncated upload is never mistaken for a complete one.
 */
function withinBodyLimit(
  req: IncomingMessage,
  res: ServerResponse,
  maxBodySize: number,
  log: Logger,
): boolean {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > maxBodySize) {
    log.info(
      { status: 413, url: req.url, contentLength: Number(declared) },
      'http request refused',
    );
    respondOnBehalf(res, 413);
    return false;
  }
  if (req.headers['transfer-encoding'] === undefined) return true;
  let seen = 0;
  let over = false;
  // llhttp's body callback (_http_common.js parserOnBody) calls `stream.push(chunk)` on the
  // request instance, so an own `push` sees every body byte before the app does.
  const push = req.push;
  req.push = function limitedPush(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (over) return true;
    if (chunk !== null && chunk !== undefined) {
      seen += (chunk as Uint8Array | string).length;
      if (seen > maxBodySize) {
        over = true;
        log.info({ status: 413, url: req.url, bytes: seen }, 'http request refused');
        respondOnBehalf(res, 413);
        return true;
      }
    }
    return push.call(this, chunk, encoding);
  };
  return true;
}
