/**
 * The plain HTTP listener: node:http (llhttp) parses, the shared dispatcher routes. Options are
 * set so that nothing weakens the parser or lets a slow client hold a socket forever
 * (RELIABILITY.md 1.2 and invariant 7): never `insecureHTTPParser`; `headersTimeout` from
 * `headerTimeoutMs`, `requestTimeout` from head + body deadlines (408; a backstop), checked
 * every second instead of Node's default 30 s; `maxHeadersCount` from `maxVars`;
 * `strictContentLength` on every response. Bodies (http-body.ts): `maxBodySize` answered with
 * 413 like the uwsgi listener, the body deadline from the end of the head (408), chunked
 * requests dispatched once their first body bytes parsed. Pipelined responses queued behind
 * others are closed when their client leaves (http-pipeline.ts).
 *
 * Access log: dispatched requests are logged by dispatch. The answers given without dispatch get
 * one record each here: a connection refused at accept (`maxConnections`), 413 for a declared
 * body over `maxBodySize`, and what node:http itself answers (400 for a malformed request or a
 * missing Host, 408, 431, 417, a CONNECT closed unanswered). For those, the listener takes over
 * node:http's own handling ('clientError', 'checkContinue', 'checkExpectation', 'connect' and
 * `requireHostHeader`), doing what node:http does without them (lib/_http_server.js, Node 20)
 * and writing the record.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { boundResponseState } from '../bridge/response.ts';
import type { LimitsConfig } from '../config/types.ts';
import type { Dispatch, UpgradeDispatch } from '../dispatch/types.ts';
import {
  type AccessLog,
  accessRecord,
  type Logger,
  microsSince,
  type ShutdownState,
} from '../shared/log.ts';
import { rawHeaderCount } from '../shared/raw-headers.ts';
import { listenServer } from '../transport/listen.ts';
import type { Listening, ListenOptions } from '../transport/types.ts';
import { clientErrorAnswer, isRequestError } from './http-answers.ts';
import { HttpBodies } from './http-body.ts';
import { trackQueuedResponse } from './http-pipeline.ts';
import { doubledSpaceInRequestLine } from './http-request-line.ts';
import { routeUpgrades, WebSocketAwareRequest } from './upgrade-request.ts';

export interface HttpListenerContext {
  readonly limits: LimitsConfig;
  readonly log: Logger;
  readonly dispatch: Dispatch;
  /** Where the answers given here go (`log.access`; undefined: off). */
  readonly accessLog?: AccessLog | undefined;
  /**
   * Called for every accepted socket; return false to refuse it (closed at once), e.g. when
   * the container's `maxConnections` is reached.
   */
  readonly onConnection?: (socket: Socket) => boolean;
  /** Set when the container cuts off the connections left at the end of its stop. */
  readonly shutdown?: ShutdownState | undefined;
  /** WebSocket handshakes go here, not to `dispatch` (which refuses them when this is absent). */
  readonly upgrade?: UpgradeDispatch | undefined;
  /** Config `strictRequestLine` (default true): 400 for doubled spaces in the request line. */
  readonly strictRequestLine?: boolean | undefined;
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
    // Checked in `onRequest` instead, so that the 400 is logged (node:http answers it before any
    // event; same test and answer: parserOnIncoming).
    requireHostHeader: false,
    ...(ctx.upgrade === undefined ? {} : { IncomingMessage: WebSocketAwareRequest }),
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

  const access = ctx.accessLog;
  /** Logs `res`, answered here without dispatch, once it closed (as dispatch logs its own). */
  const logAnswer = (req: IncomingMessage, res: ServerResponse): void => {
    if (access === undefined) return;
    const started = performance.now();
    // Read now: a destroyed socket no longer knows its peer.
    const remoteAddress = req.socket.remoteAddress ?? null;
    const socket = res.socket;
    const bytesBefore = socket?.bytesWritten ?? 0;
    res.once('close', () => {
      // As dispatch's records (dispatch.ts `settle`): what reached the connection.
      const bytes = Math.max(0, (socket?.bytesWritten ?? 0) - bytesBefore);
      const aborted = !res.writableFinished || (socket?.errored ?? null) !== null;
      access.write(
        accessRecord(
          req.method ?? null,
          req.url ?? null,
          bytes > 0 && res.headersSent ? res.statusCode : 0,
          bytes,
          microsSince(started),
          null,
          remoteAddress,
          listener,
          aborted,
          aborted && ctx.shutdown?.forced === true ? 'shutdown' : null,
        ),
      );
    });
  };
  const bodies = new HttpBodies({ limits, log, dispatch: ctx.dispatch, logAnswer });
  /**
   * A record for a connection with no request object: refused, CONNECT, or what node:http
   * answers to a client error. durationUs 0: node:http does not say when such a request began.
   */
  const logWithoutRequest = (
    method: string | null,
    url: string | null,
    status: number,
    bytes: number,
    remoteAddress: string | undefined,
    error: 'refused' | 'protocol' | null,
  ): void => {
    access?.write(
      accessRecord(
        method,
        url,
        status,
        bytes,
        0,
        null,
        remoteAddress ?? null,
        listener,
        false,
        error,
      ),
    );
  };

  server.on('connection', (socket: Socket) => {
    if (ctx.onConnection !== undefined && !ctx.onConnection(socket)) {
      const peer = socket.remoteAddress;
      socket.destroy();
      logWithoutRequest(null, null, 0, 0, peer, 'refused');
    }
  });
  /**
   * HTTP/1.1 without Host: 400, `Connection: close`, as node:http's `requireHostHeader` (RFC 9112
   * section 3.2). True when answered.
   */
  const refusedWithoutHost = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (
      req.httpVersionMinor !== 1 ||
      req.httpVersionMajor !== 1 ||
      req.headers.host !== undefined
    ) {
      return false;
    }
    logAnswer(req, res);
    res.writeHead(400, ['Connection', 'close']);
    res.end();
    return true;
  };
  /**
   * A request line or head that RFC 9112 does not allow but llhttp passes: HTTP/0.9 (no version)
   * 400, a major version other than 1 505, two Host headers 400 (section 3.2), Transfer-Encoding
   * in HTTP/1.0 400 (faulty framing, section 6.1; llhttp decodes it as chunked), a doubled space
   * in the request line 400 (section 3; http-request-line.ts; unless `strictRequestLine` is
   * false). Answered with `Connection: close`, never dispatched. True when answered.
   */
  const strictRequestLine = ctx.strictRequestLine !== false;
  const refusedHead = (req: IncomingMessage, res: ServerResponse): boolean => {
    const status =
      req.httpVersionMajor !== 1
        ? req.httpVersionMajor > 1
          ? 505
          : 400
        : rawHeaderCount(req.rawHeaders, 'host') > 1 ||
            (req.httpVersionMinor === 0 &&
              rawHeaderCount(req.rawHeaders, 'transfer-encoding') > 0) ||
            (strictRequestLine && doubledSpaceInRequestLine(req))
          ? 400
          : 0;
    if (status === 0) return false;
    log.info({ status, url: req.url, httpVersion: req.httpVersion }, 'http request refused');
    logAnswer(req, res);
    res.shouldKeepAlive = false;
    res.writeHead(status, ['Connection', 'close']);
    res.end();
    return true;
  };
  /** The head checks, then the body limit, then dispatch; `invite`: `Expect: 100-continue`. */
  const handle = (req: IncomingMessage, res: ServerResponse, invite: boolean): void => {
    trackQueuedResponse(req.socket, res);
    res.strictContentLength = true;
    if (draining) res.shouldKeepAlive = false;
    if (refusedHead(req, res) || refusedWithoutHost(req, res)) return;
    // 100 only for a request that passed the head checks, whose body fits (else 413 from
    // `take`) and that reaches an app (dispatch writes it right before the call).
    bodies.take(req, res, {
      protocol: 'http',
      listener,
      remoteAddress: req.socket.remoteAddress,
      expectContinue: invite,
    });
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => handle(req, res, false));
  // `Expect: 100-continue`: what node:http does without this listener (parserOnIncoming), with
  // the 100 written only once the request is known to be taken.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => handle(req, res, true));
  // Any other expectation: 417, as node:http without this listener, and the connection closes
  // (the client may already be sending the body it announced).
  server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => {
    trackQueuedResponse(req.socket, res);
    if (refusedHead(req, res) || refusedWithoutHost(req, res)) return;
    logAnswer(req, res);
    res.shouldKeepAlive = false;
    res.writeHead(417, ['Connection', 'close']);
    res.end();
  });
  // WebSocket handshakes (only those: upgrade-request.ts) to their app's own server.
  if (ctx.upgrade !== undefined) routeUpgrades(server, ctx.upgrade, () => listener);
  // CONNECT: closed without an answer, as node:http without this listener.
  server.on('connect', (req: IncomingMessage, socket: Socket) => {
    const peer = socket.remoteAddress;
    socket.destroy();
    logWithoutRequest(req.method ?? null, req.url ?? null, 0, 0, peer, 'protocol');
  });
  // A request node:http could not parse, or whose head or body missed its deadline
  // (requestTimeout): its answer as in socketOnError (lib/_http_server.js, Node 20), logged.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    const pending = boundResponseState(socket);
    let status = 0;
    let bytes = 0;
    if (socket.writable && pending !== 'head-sent') {
      const answer = clientErrorAnswer(err.code);
      status = answer.status;
      bytes = answer.bytes.length;
      socket.write(answer.bytes);
    }
    const peer = socket.remoteAddress;
    socket.destroy(err);
    // A dispatched request in flight is logged by dispatch; a socket error (ECONNRESET) outside
    // a request is no request.
    // A chunked request held back from dispatch (http-body.ts) is logged here too.
    const undispatched = pending === 'head-pending' && bodies.waitingOn(socket);
    if ((pending === 'none' || undispatched) && (status !== 0 || isRequestError(err.code))) {
      logWithoutRequest(null, null, status, bytes, peer, status === 0 ? 'protocol' : null);
    }
  });

  const bound = await listenServer(server, options);
  listener = bound.address;
  // An error on the listening server (an accept failure such as EMFILE that reaches it) must not
  // stop the process: logged, and the server keeps serving.
  server.on('error', (err: NodeJS.ErrnoException) => {
    log.warn({ err, code: err.code, listener }, 'http listener error');
  });
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
 * An HTTP connection as the container tracks it. `idle`: no request of it is being handled:
 * it waits for its first request head (or the rest of one), or is an idle keep-alive
 * connection. node:http marks the response a socket is serving as `socket._httpMessage` (set
 * when a response is assigned to the socket, cleared when it finished; its own
 * `closeIdleConnections` reads the same mark), and drops `socket.parser` when the connection
 * was handed over (an upgrade, CONNECT).
 */
export class HttpConnection {
  readonly socket: Socket;
  constructor(socket: Socket) {
    this.socket = socket;
  }
  /** A graceful stop waits for every open HTTP connection (drain closes the idle ones). */
  get busy(): boolean {
    return true;
  }
  get idle(): boolean {
    const s = this.socket as Socket & { _httpMessage?: unknown; parser?: unknown };
    // A socket already destroyed (a deadline, a parse error) is closing: no room to win.
    return !s.destroyed && s.parser != null && s._httpMessage == null;
  }
  destroy(): void {
    this.socket.destroy();
  }
}
