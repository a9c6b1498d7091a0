/**
 * WebSocket handshakes on the HTTP listener (issue 12): routed by mount as dispatch routes
 * requests, then handed to the app the way node:http would have: `'upgrade'` (req, socket, head)
 * emitted on the app's own `http.Server` (`LoadedApp.server`), where `ws`
 * (`new WebSocketServer({ server })`), Socket.IO and @fastify/websocket listen.
 *
 * - Same routing as dispatch.ts: `req.url` relative to the mount, `req.originalUrl`,
 *   `req.baseUrl`, `req.uwsgi.{scriptName,pathInfo}`; over `maxInFlight` 503, no mount 404.
 * - Refused with `Connection: close` and the socket closed, never left hanging: HTTP/1.0 or a
 *   missing / repeated Host 400; a mount whose app has no `'upgrade'` listener (a bare
 *   `(req, res)` function, Express without ws, a fetch handler) 400, with one warning per mount;
 *   an `'upgrade'` listener that throws 500; no answer from the app within `requestTimeoutMs`
 *   504 (as dispatch's deadline).
 * - Accounting: the handshake is one request in the stats from hand-over until the app's first
 *   write (its status line: 101, or the app's own refusal) or the socket's close; an open
 *   WebSocket then holds a connection, not an in-flight request (`maxInFlight` is not spent on
 *   idle chat clients). The access log has one record per upgrade, written when the socket
 *   closes, as nginx logs a proxied WebSocket: the status answered, every byte written on the
 *   socket, the whole duration.
 * - Stop (`goingAway()`, the end of the container's grace period): every open WebSocket gets a
 *   server close frame, code 1001 Going Away (RFC 6455 section 7.4.1), then FIN; the socket is
 *   destroyed once the peer closed too, or after {@link GOING_AWAY_WAIT_MS}.
 */
import { type IncomingMessage, type Server, STATUS_CODES } from 'node:http';
import type { Server as NetServer, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { LimitsConfig } from '../config/types.ts';
import { mountRelativeUrl, type RouteMatch, type Router } from '../router/mounts.ts';
import {
  type AccessLog,
  accessLog,
  accessRecord,
  type Logger,
  microsSince,
  type ShutdownState,
} from '../shared/log.ts';
import { rawHeaderCount } from '../shared/raw-headers.ts';
import type { Stats } from '../shared/stats.ts';
import type { ContainerRequest, RequestOrigin, UpgradeDispatch } from './types.ts';

export interface UpgradeOptions {
  readonly router: Router;
  /** The app's own server per mount (`LoadedApp.server`), indexed like `router.mounts`. */
  readonly servers: readonly (NetServer | undefined)[];
  readonly limits: Pick<LimitsConfig, 'requestTimeoutMs' | 'maxInFlight'>;
  readonly log: Logger;
  /** One `"msg":"request"` record per upgrade (`log.access`). */
  readonly accessLog: boolean;
  readonly stats: Stats;
  /** Called once per handshake, when it is answered (as dispatch's `onDone`). */
  readonly onDone?: (() => void) | undefined;
  readonly shutdown?: ShutdownState | undefined;
}

export interface Upgrades {
  /** The HTTP listener's `'upgrade'` handler. */
  readonly dispatch: UpgradeDispatch;
  /**
   * Closes every open WebSocket with code 1001 (the end of a stop). Returns the sockets it is
   * closing: the caller leaves them to close on their own (destroyed within
   * {@link GOING_AWAY_WAIT_MS}) instead of destroying them now, which could drop the frame.
   */
  goingAway(): ReadonlySet<Socket>;
}

/** The unmasked server close frame: FIN + opcode 8, length 2, code 1001 (Going Away). */
export const CLOSE_GOING_AWAY = Buffer.from([0x88, 0x02, 0x03, 0xe9]);

/** After the 1001 frame and FIN, how long a socket may take to close before it is destroyed. */
export const GOING_AWAY_WAIT_MS = 500;

/** How long a refused handshake's socket may stay half-open after the answer. */
const REFUSED_LINGER_MS = 2000;

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})/;

export function createUpgrades(options: UpgradeOptions): Upgrades {
  const { router, servers, stats, log } = options;
  const shared: Shared = {
    stats,
    log,
    onDone: options.onDone,
    shutdown: options.shutdown,
    accessLog: options.accessLog ? accessLog(log) : undefined,
    timeoutMs: options.limits.requestTimeoutMs,
    open: new Set(),
  };
  const maxInFlight = options.limits.maxInFlight;
  const warned = new Set<number>();

  const dispatch: UpgradeDispatch = (req, socket, head, origin) => {
    const originalUrl = req.url ?? '/';
    const overloaded = maxInFlight > 0 && stats.inFlight >= maxInFlight;
    const match = overloaded ? undefined : router.match(originalUrl);
    const up = new Upgrade(shared, req, socket, origin, originalUrl, match);
    if (match === undefined) {
      up.refuse(overloaded ? 503 : 404);
      return;
    }
    if (req.httpVersion !== '1.1' || rawHeaderCount(req.rawHeaders, 'host') !== 1) {
      up.refuse(400);
      return;
    }
    const server = servers[match.index];
    if (server === undefined || server.listenerCount('upgrade') === 0) {
      if (!warned.has(match.index)) {
        warned.add(match.index);
        log.warn(
          { mount: match.mount.path, url: originalUrl, listener: origin.listener },
          'websocket upgrade refused (400): the app has no upgrade listener on its http.Server ' +
            '(export the server, or listen() on it, with ws or Socket.IO attached)',
        );
      }
      up.refuse(400);
      return;
    }
    const request = req as ContainerRequest;
    request.originalUrl = originalUrl;
    request.baseUrl = match.scriptName;
    request.url = mountRelativeUrl(match);
    request.uwsgi = { scriptName: match.scriptName, pathInfo: match.pathInfo };
    up.handOver(server as Server, head);
  };

  return {
    dispatch,
    goingAway() {
      const closing = new Set(shared.open);
      for (const socket of closing) {
        socket.end(CLOSE_GOING_AWAY);
        setTimeout(() => socket.destroy(), GOING_AWAY_WAIT_MS).unref();
      }
      return closing;
    },
  };
}

interface Shared {
  readonly stats: Stats;
  readonly log: Logger;
  readonly onDone: (() => void) | undefined;
  readonly shutdown: ShutdownState | undefined;
  readonly accessLog: AccessLog | undefined;
  readonly timeoutMs: number;
  readonly open: Set<Socket>;
}

type WriteArgs = Parameters<Socket['write']>;
type EndArgs = Parameters<Socket['end']>;

/** One handshake, then its WebSocket, until the socket closes. */
class Upgrade {
  readonly #shared: Shared;
  readonly #req: IncomingMessage;
  readonly #socket: Socket;
  readonly #origin: RequestOrigin;
  readonly #originalUrl: string;
  readonly #mountPath: string | null;
  readonly #mountIndex: number;
  readonly #started = performance.now();
  readonly #bytesBefore: number;
  /** The status the socket was answered with; 0 until then. */
  #status = 0;
  #answered = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    shared: Shared,
    req: IncomingMessage,
    socket: Socket,
    origin: RequestOrigin,
    originalUrl: string,
    match: RouteMatch | undefined,
  ) {
    this.#shared = shared;
    this.#req = req;
    this.#socket = socket;
    this.#origin = origin;
    this.#originalUrl = originalUrl;
    this.#mountPath = match?.mount.path ?? null;
    this.#mountIndex = match?.index ?? -1;
    this.#bytesBefore = socket.bytesWritten;
    shared.stats.requestStarted(this.#mountIndex);
    // node:http removed its own 'error' listener when the socket left the parser: an error on
    // it (ECONNRESET from a client that vanished) must not reach the process.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      shared.log.debug({ err, code: err.code, url: originalUrl }, 'upgraded socket error');
    });
    socket.once('close', () => this.#closed());
  }

  /** Emits `'upgrade'` on the app's server; the first bytes the app writes give the status. */
  handOver(server: Server, head: Buffer): void {
    const socket = this.#socket;
    const sniff = (chunk: unknown) => {
      delete (socket as Partial<Socket>).write;
      delete (socket as Partial<Socket>).end;
      this.#answer(statusOf(chunk), byteLength(chunk));
    };
    socket.write = function write(this: Socket, ...args: WriteArgs): boolean {
      sniff(args[0]);
      return this.write(...args);
    } as Socket['write'];
    socket.end = function end(this: Socket, ...args: EndArgs): Socket {
      // Always through sniff (it removes both overrides): `end(callback)` writes nothing.
      sniff(typeof args[0] === 'function' ? undefined : args[0]);
      return this.end(...args);
    } as Socket['end'];
    const timeoutMs = this.#shared.timeoutMs;
    if (timeoutMs > 0) {
      this.#timer = setTimeout(() => {
        this.#shared.log.warn(
          { url: this.#originalUrl, mount: this.#mountPath, timeoutMs },
          'upgrade timeout: the app did not answer the handshake',
        );
        this.refuse(504);
      }, timeoutMs);
      this.#timer.unref();
    }
    try {
      server.emit('upgrade', this.#req, socket, head);
    } catch (err) {
      this.#shared.stats.exception(this.#mountIndex);
      this.#shared.log.error({ err, url: this.#originalUrl, mount: this.#mountPath }, 'app error');
      this.refuse(500);
    }
  }

  /** Answers `status` with `Connection: close` unless the app answered, then closes. */
  refuse(status: number): void {
    const socket = this.#socket;
    if (this.#answered) {
      socket.destroy();
      return;
    }
    delete (socket as Partial<Socket>).write;
    delete (socket as Partial<Socket>).end;
    const body = `${status} ${STATUS_CODES[status] ?? 'Error'}\n`;
    const answer =
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\nConnection: close\r\n` +
      `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    this.#answer(status, answer.length);
    // Read and drop what the client still sends, so that closing does not reset the answer.
    socket.resume();
    socket.end(answer);
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  }

  /** The handshake is answered: the request is counted, a 101 is an open WebSocket. */
  #answer(status: number, bytes: number): void {
    if (this.#answered) return;
    this.#answered = true;
    this.#status = status;
    clearTimeout(this.#timer);
    this.#finish(bytes);
    if (status === 101 && !this.#socket.destroyed) this.#shared.open.add(this.#socket);
  }

  /** The stats' request: `bytes`, the handshake answer (the WebSocket's frames are not counted). */
  #finish(bytes: number): void {
    const { stats, onDone } = this.#shared;
    stats.requestFinished(
      this.#mountIndex,
      this.#status,
      this.#req.method,
      microsSince(this.#started),
      bytes,
    );
    onDone?.();
  }

  #closed(): void {
    const shared = this.#shared;
    const socket = this.#socket;
    clearTimeout(this.#timer);
    shared.open.delete(socket);
    if (!this.#answered) {
      this.#answered = true;
      this.#finish(0);
    }
    const status = this.#status;
    const aborted = status === 0 || socket.errored !== null;
    shared.accessLog?.write(
      accessRecord(
        this.#req.method ?? null,
        this.#originalUrl,
        status,
        Math.max(0, socket.bytesWritten - this.#bytesBefore),
        microsSince(this.#started),
        this.#mountPath,
        this.#origin.remoteAddress ?? null,
        this.#origin.listener,
        aborted || shared.shutdown?.forced === true,
        shared.shutdown?.forced === true ? 'shutdown' : null,
      ),
    );
  }
}

/** The status of an HTTP response head at the start of `chunk`; 0 when it is none. */
function statusOf(chunk: unknown): number {
  const text =
    typeof chunk === 'string'
      ? chunk.slice(0, 16)
      : chunk instanceof Uint8Array
        ? Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(16, chunk.byteLength)).toString(
            'latin1',
          )
        : '';
  const match = STATUS_LINE.exec(text);
  return match === null ? 0 : Number(match[1]);
}

function byteLength(chunk: unknown): number {
  if (typeof chunk === 'string') return Buffer.byteLength(chunk);
  return chunk instanceof Uint8Array ? chunk.byteLength : 0;
}
