/**
 * One uwsgi connection, one request (PROTOCOL.md sections 1, 4, 8; RELIABILITY.md 1.1, 2):
 *
 *   header + vars (PacketDecoder, total header deadline) -> request description (codec
 *   varsToRequest) -> genuine IncomingMessage / ServerResponse (bridge/) -> dispatch
 *   -> body bytes with back-pressure (total body deadline) -> response -> close.
 *
 * Outcomes that never reach an app:
 * - framing errors (short header, vars overrun, datasize over `bufferSize`, too many vars, an
 *   HTTP request on the uwsgi socket), a stalled head, an unsupported modifier1: one log record
 *   with code, peer and sizes, then close without a response: the front end answers 502, which
 *   is what a broken upstream should look like (uWSGI does the same);
 * - a parseable head that is not a valid request (datasize 0, a method that is no token, bad
 *   CONTENT_LENGTH; no method or no path under `strictVars`): 400; CONTENT_LENGTH over
 *   `maxBodySize`: 413 before any body byte is used. Without `strictVars`, a request missing
 *   REQUEST_METHOD or its path (an nginx `location` whose own `uwsgi_param` replaced the stock
 *   params) is served as `GET` / `/`, as uWSGI does, with one warning per listener and part;
 * - HTTP_TRANSFER_ENCODING ending in `chunked` without CONTENT_LENGTH: uWSGI's http router relays
 *   a chunked client body so, still chunked. The framing is decoded from the stream
 *   (chunked.ts) and the app gets the body, bounded by `maxBodySize`; malformed chunking -> 400,
 *   over the limit -> 413 (when the response has not started; else the connection is closed),
 *   trailers are dropped, and the app's request sees `aborted` as when a client leaves
 *   mid-upload. Any other transfer coding without CONTENT_LENGTH cannot be framed: 411 before
 *   calling the app. nginx de-chunks and sends CONTENT_LENGTH with the stock params; lighttpd
 *   and Apache never send the var without it;
 * - modifier1 100 (ping): pong, then close. modifier1 30 is served as 0: mounts are matched on
 *   REQUEST_URI, so its SCRIPT_NAME stripping has nothing to act on. Every other modifier1 is
 *   refused as above (PROTOCOL.md section 2 "unknown modifier1": close).
 *
 * Exactly one request per connection: the body is CONTENT_LENGTH bytes, and whatever follows is
 * read and thrown away, never parsed as a packet (unbit/uwsgi#2336, RELIABILITY.md U14/U27).
 * Closing: once an app's response has finished and the declared body has been read (an app
 * that answers early has the rest drained, bounded by the body deadline), the connection is
 * ended (the container's own 400/413/pong end at once, see respondRaw);
 * on the net transport that is a FIN, and the socket is destroyed when the peer closes (bounded).
 * Closing with unread input would send RST, which can destroy response bytes the front end has
 * not read yet.
 *
 * Access log: a dispatched request is logged by dispatch. Of the outcomes above, 400/411/413 get
 * one record here when they are written, and a connection closed after at least one byte without
 * a request dispatched or an answer written gets one with `status` 0 when it closes (`error:
 * "protocol"` when the container gave up on it, `aborted` when the peer left or the container
 * cut it off at a forced stop, with `error: "shutdown"` then). Health answers
 * and pongs get none, nor does a connection that never sent a byte.
 */

import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';
import {
  type DecoderHandler,
  type DefaultedPart,
  encodePong,
  MODIFIER1,
  PacketDecoder,
  type PacketHeader,
  UwsgiError,
  type UwsgiRequest,
  type UwsgiVars,
  type VarsToRequestOptions,
  varsToRequest,
} from '@uwsgi-ts/codec';
import {
  abortedError,
  type BodySource,
  dumpUnreadBody,
  reportPeer,
  UwsgiIncomingMessage,
} from '../bridge/incoming.ts';
import { type ResponseOwner, UwsgiServerResponse } from '../bridge/response.ts';
import type { LimitsConfig } from '../config/types.ts';
import { respondOnBehalf } from '../dispatch/respond.ts';
import type { Dispatch, RequestOrigin } from '../dispatch/types.ts';
import { type DeadlineEntry, DeadlineQueue } from '../shared/deadlines.ts';
import {
  type AccessError,
  type AccessLog,
  accessRecord,
  type Logger,
  microsSince,
  type ShutdownState,
} from '../shared/log.ts';
import type { Stats } from '../shared/stats.ts';
import type { Connection, ReadSink } from '../transport/types.ts';
import { ChunkedDecoder, ChunkedError, type ChunkedSink } from './chunked.ts';
import { healthAnswer, healthAnswerPacket, healthPathBytes } from './health.ts';

export interface UwsgiListenerContext {
  /** Listener display address, for logs and the access log. */
  readonly listener: string;
  readonly limits: LimitsConfig;
  readonly log: Logger;
  readonly dispatch: Dispatch;
  readonly stats: Stats;
  /**
   * Where the answers given here go (`log.access`; undefined: off): 400/411/413, and one record
   * with `status` 0 for a connection that sent bytes but was neither answered nor dispatched.
   * Dispatched requests are logged by dispatch; health answers and pongs are not logged.
   */
  readonly accessLog?: AccessLog | undefined;
  /** Config `health`: the path answered here (health.ts), before any http object. */
  readonly health?: string | undefined;
  /** Config `strictVars`: refuse (400) a request without REQUEST_METHOD or a path. */
  readonly strictVars?: boolean | undefined;
  /** Set when the container cuts off the connections left at the end of its stop. */
  readonly shutdown?: ShutdownState | undefined;
}

/** A served connection, as the container tracks it for shutdown. */
export interface ServedConnection {
  /** True until the response (or the reason not to send one) is fully written. */
  readonly busy: boolean;
  /**
   * Nothing of it is being handled: it waits for its request head, or lingers after its answer
   * for the peer to close. The container may shed it at the connection limit.
   */
  readonly idle: boolean;
  /** Closes at once. */
  destroy(): void;
}

/**
 * How long a connection whose request and response are complete waits for the peer to close
 * before it is destroyed. Front ends close right after reading the response; this only bounds
 * peers that never do (nginx's `lingering_timeout` is the same 5 s idea).
 */
const LINGER_MS = 5000;

/** First bytes of an HTTP/1.x request line, to name the mistake of pointing HTTP at uwsgi. */
const HTTP_REQUEST_START = /^(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|TRACE|CONNECT|PRI) /;

/** Thrown from decoder callbacks to abandon a packet the container will not serve. */
class Refusal extends Error {
  override readonly name = 'Refusal';
}

type Phase = 'head' | 'body' | 'done' | 'closed';

export interface ServeHooks {
  /** Runs once when the socket has closed; `served` is the value serveUwsgiConnection returned. */
  readonly onClose?: (served: ServedConnection) => void;
  /** Runs once when the connection stops being `busy` (its answer is written). */
  readonly onIdle?: () => void;
}

/** Serves one accepted connection. */
export function serveUwsgiConnection(
  conn: Connection,
  ctx: UwsgiListenerContext,
  hooks: ServeHooks = {},
): ServedConnection {
  const exchange = new UwsgiExchange(conn, ctx, hooks);
  exchange.start();
  return exchange;
}

/**
 * What every connection of one listener context shares, made on its first connection: the
 * deadlines (head, body and linger, each a {@link DeadlineQueue}: one timer per queue instead
 * of a `Timeout` per connection; most connections never get near a deadline), the decoder
 * options and the health path's bytes.
 */
interface ContextState {
  readonly head: DeadlineQueue<UwsgiExchange> | undefined;
  readonly body: DeadlineQueue<UwsgiExchange> | undefined;
  readonly linger: DeadlineQueue<UwsgiExchange>;
  readonly decoderOptions: { readonly maxVarsSize: number; readonly maxVars: number };
  /** {@link healthPathBytes} of `health`; null when it is off or no request can match it. */
  readonly healthPath: Uint8Array | null;
  readonly requestOptions: VarsToRequestOptions;
  /** Parts a front end left out that this listener has warned about (once each). */
  readonly warnedDefaulted: Set<DefaultedPart>;
}

const stateByContext = new WeakMap<UwsgiListenerContext, ContextState>();

/**
 * The decoder's callbacks for one exchange: one small object with shared prototype methods
 * instead of four closures per connection.
 */
class DecoderCallbacks implements DecoderHandler {
  readonly ex: UwsgiExchange;
  constructor(ex: UwsgiExchange) {
    this.ex = ex;
  }
  onHeader(h: PacketHeader): void {
    this.ex.decodedHeader(h);
  }
  onVars(vars: UwsgiVars, h: PacketHeader): number | undefined {
    return this.ex.decodedVars(vars, h);
  }
  onBody(chunk: Uint8Array): void {
    this.ex.decodedBody(chunk);
  }
  onEnd(): void {
    this.ex.decodedEnd();
  }
}

class UwsgiExchange
  implements ReadSink, ServedConnection, DeadlineEntry, BodySource, ResponseOwner, ChunkedSink
{
  deadlineQueue: DeadlineQueue<DeadlineEntry> | null = null;
  deadlinePrev: DeadlineEntry | null = null;
  deadlineNext: DeadlineEntry | null = null;
  deadlineAt = 0;
  readonly #conn: Connection;
  readonly #ctx: UwsgiListenerContext;
  readonly #hooks: ServeHooks;
  /** Made on first use: a health request answered from its bytes never needs one. */
  #decoder: PacketDecoder | undefined;
  readonly #shared: ContextState;
  #phase: Phase = 'head';
  #bytesIn = 0;
  /**
   * First bytes of the stream (latin1), to recognise HTTP sent to this socket; collected only
   * while the packet header is incomplete (an HTTP request line fails at its 4th byte, as an
   * unsupported modifier1), so a well-formed packet never pays for it.
   */
  #start = '';
  #req: UwsgiIncomingMessage | undefined;
  #res: UwsgiServerResponse | undefined;
  #origin: RequestOrigin | undefined;
  /** Body bytes are read and dropped: no request to feed (400/413) or the app destroyed it. */
  #discard = false;
  /** Declared body fully read, or the peer sent EOF: nothing more will be used. */
  #inputDone = false;
  #responded = false;
  /** Set by onVars: dispatch once the decoder's push() has returned. */
  #dispatchPending = false;
  /** Declared body bytes not received yet (sizes the transport's kept reads). */
  #bodyLeft = 0;
  /**
   * When the head started to arrive (`performance.now()`), for access records; 0 when the
   * connection's first read held the whole head (its answer came within that read).
   */
  #startedAt = 0;
  /** The container closes the connection without a response (#refuse, a failure of ours). */
  #gaveUp = false;
  /** A body relayed chunked (no CONTENT_LENGTH): its framing, decoded from the stream. */
  #chunked: ChunkedDecoder | undefined;

  static #stateFor(ctx: UwsgiListenerContext): ContextState {
    let found = stateByContext.get(ctx);
    if (found === undefined) {
      const { headerTimeoutMs, bodyTimeoutMs } = ctx.limits;
      found = {
        head:
          headerTimeoutMs > 0
            ? new DeadlineQueue<UwsgiExchange>(headerTimeoutMs, (ex) => ex.#onHeadTimeout())
            : undefined,
        body:
          bodyTimeoutMs > 0
            ? new DeadlineQueue<UwsgiExchange>(bodyTimeoutMs, (ex) => ex.#onBodyTimeout())
            : undefined,
        linger: new DeadlineQueue<UwsgiExchange>(LINGER_MS, (ex) => ex.destroy()),
        decoderOptions: { maxVarsSize: ctx.limits.bufferSize, maxVars: ctx.limits.maxVars },
        healthPath: ctx.health === undefined ? null : healthPathBytes(ctx.health),
        requestOptions: { strictVars: ctx.strictVars === true },
        warnedDefaulted: new Set(),
      };
      stateByContext.set(ctx, found);
    }
    return found;
  }

  constructor(conn: Connection, ctx: UwsgiListenerContext, hooks: ServeHooks) {
    this.#conn = conn;
    this.#ctx = ctx;
    this.#hooks = hooks;
    this.#shared = UwsgiExchange.#stateFor(ctx);
  }

  get busy(): boolean {
    return this.#phase !== 'closed' && !this.#responded;
  }

  get idle(): boolean {
    // A socket already destroyed (a deadline, a framing error) is closing: no room to win.
    if (this.#conn.socket.destroyed) return false;
    return this.#phase === 'head' || (this.#phase === 'done' && this.#responded);
  }

  start(): void {
    // The fast transport reads once synchronously in start(): when that read held the whole
    // head (nearly always behind nginx), the head deadline has nothing left to bound. Otherwise
    // it starts now, microseconds after accept (only that one read attempt has run).
    this.#conn.start(this);
    if (this.#phase === 'head') {
      const now = performance.now();
      this.#startedAt = now;
      // RELIABILITY.md invariant 3: a total deadline for the whole head, not a per-read idle
      // timer that a slow sender could extend forever (U28).
      this.#shared.head?.add(this, now);
    }
  }

  destroy(): void {
    this.#conn.socket.destroy();
  }

  // ReadSink ------------------------------------------------------------------------------

  onData(chunk: Uint8Array): void {
    if (this.#phase === 'closed') return;
    const before = this.#bytesIn;
    this.#bytesIn = before + chunk.length;
    // After the request: surplus (a pipelined packet, lingering body) is read and dropped.
    if (this.#phase === 'done') return;
    if (before === 0 && this.#shared.healthPath !== null && this.#answerHealth(chunk)) return;
    const decoder = this.#packetDecoder();
    try {
      decoder.push(chunk);
    } catch (err) {
      if (before < 8) this.#keepStart(chunk, before);
      this.#onDecodeFailure(err);
      return;
    }
    if (before < 8 && decoder.header === undefined) this.#keepStart(chunk, before);
    if (this.#dispatchPending) {
      this.#dispatchPending = false;
      const req = this.#req as UwsgiIncomingMessage;
      // The rest of the body will be kept (pushed to the request): a transport that reuses its
      // read buffer may read it into memory of its own instead of our copying every chunk.
      if (this.#bodyLeft > 0) this.#conn.keepReads?.(this.#bodyLeft);
      this.#ctx.dispatch(req, this.#res as UwsgiServerResponse, this.#origin as RequestOrigin);
    }
  }

  /**
   * The health path, answered from the packet's bytes when the first read holds the whole
   * packet: no vars are decoded and no strings made (health.ts `healthAnswerPacket`).
   * False: not a health request, or not one this can tell from the bytes alone; the decoder
   * then takes the chunk as usual (and answers health requests through `healthAnswer`).
   */
  #answerHealth(chunk: Uint8Array): boolean {
    const answer = healthAnswerPacket(chunk, this.#shared.healthPath, this.#ctx.limits);
    if (answer === undefined) return false;
    this.#clearTimer();
    this.#phase = 'done';
    this.#inputDone = true;
    this.#respondRaw(answer);
    return true;
  }

  #packetDecoder(): PacketDecoder {
    this.#decoder ??= new PacketDecoder(new DecoderCallbacks(this), this.#shared.decoderOptions);
    return this.#decoder;
  }

  /** Appends the stream's bytes `before`..7 from `chunk` to `#start`. */
  #keepStart(chunk: Uint8Array, before: number): void {
    const n = Math.min(chunk.length, 8 - before);
    // A plain loop: spreading a typed array goes through the iterator protocol.
    for (let i = 0; i < n; i++) this.#start += String.fromCharCode(chunk[i] as number);
  }

  // BodySource (the request's way back into the connection) ---------------------------------

  /** The app wants more body bytes. */
  resume(): void {
    if (this.#phase === 'body') this.#conn.resume();
  }

  /** The app destroyed the request: stop feeding it, keep the connection for the response. */
  discard(): void {
    this.#discard = true;
    this.#conn.keepReads?.(0);
    this.#conn.resume();
  }

  onEnd(): void {
    if (this.#phase === 'closed' || this.#phase === 'done') {
      // Half-close after a complete request: the response still goes out (U31).
      this.#inputDone = true;
      this.#maybeLinger();
      return;
    }
    try {
      this.#packetDecoder().end();
    } catch (err) {
      if (this.#phase === 'head') {
        if (this.#bytesIn === 0) {
          // U01: connect and close without a byte is not worth a warning.
          this.#ctx.log.debug({ listener: this.#ctx.listener }, 'uwsgi connection closed idle');
          this.destroy();
        } else {
          this.#onDecodeFailure(err);
        }
        return;
      }
      // EOF inside the declared body (U13): the app sees an aborted request, as with Node's
      // own server when a client disconnects mid-upload; nothing more can be sent usefully.
      // After the response it is ordinary: a front end that has its answer stops sending.
      const level = this.#responded ? 'debug' : 'info';
      this.#ctx.log[level](
        { ...this.#peer(), bytesIn: this.#bytesIn, code: codeOf(err) },
        'uwsgi request body truncated',
      );
      this.#inputDone = true;
      this.#abortRequest();
      this.destroy();
    }
  }

  onError(err: Error): void {
    this.#ctx.log.debug({ err, ...this.#peer() }, 'uwsgi connection error');
  }

  onClose(): void {
    this.#onSocketClose();
  }

  // Decoder callbacks (through DecoderCallbacks) ------------------------------------------

  decodedHeader(h: PacketHeader): void {
    const m1 = h.modifier1;
    if (m1 !== MODIFIER1.WSGI && m1 !== MODIFIER1.MANAGE_PATH_INFO && m1 !== MODIFIER1.PING) {
      throw new Refusal(`unsupported modifier1 ${m1}`);
    }
  }

  decodedVars(vars: UwsgiVars, h: PacketHeader): number | undefined {
    this.#clearTimer();
    this.#phase = 'body';
    if (h.modifier1 === MODIFIER1.PING) {
      this.#phase = 'done';
      this.#inputDone = true;
      this.#respondRaw(encodePong());
      return 0;
    }
    const health = this.#ctx.health;
    if (health !== undefined) {
      const answer = healthAnswer(vars, health);
      if (answer !== undefined) {
        this.#phase = 'done';
        this.#inputDone = true;
        this.#respondRaw(answer);
        return 0;
      }
    }
    let request: UwsgiRequest;
    try {
      request = varsToRequest(vars, this.#shared.requestOptions);
    } catch (err) {
      if (!(err instanceof UwsgiError)) throw err;
      // U05/U12: a readable head that is no valid request. The body length is unknown (a bad
      // CONTENT_LENGTH is one reason), so everything up to EOF is taken as body and dropped.
      this.#reject(400, err.message, err.code, fromVars(vars));
      this.#armBodyDeadline();
      return undefined;
    }
    if (request.defaulted.length > 0) this.#warnDefaulted(request.defaulted);
    let chunked = false;
    if (request.contentLength === 0) {
      const coding = transferCoding(request.headers);
      if (coding === 'chunked') {
        chunked = true;
      } else if (coding === 'other') {
        // The body exists but nothing frames it (module comment): refuse rather than drop it.
        // Whatever follows is read to EOF and dropped, as for a 400.
        this.#reject(
          411,
          'Transfer-Encoding without CONTENT_LENGTH and not ending in chunked: the body cannot be framed',
          undefined,
          fromRequest(request),
        );
        this.#armBodyDeadline();
        return undefined;
      }
    }
    const limits = this.#ctx.limits;
    if (request.contentLength > limits.maxBodySize) {
      this.#reject(
        413,
        `CONTENT_LENGTH ${request.contentLength} exceeds maxBodySize ${limits.maxBodySize}`,
        undefined,
        fromRequest(request),
      );
      this.#armBodyDeadline();
      return request.contentLength;
    }
    const socket = this.#conn.socket;
    reportPeer(socket, request.remoteAddress, request.remotePort);
    const req = new UwsgiIncomingMessage(socket, request, this);
    this.#req = req;
    const res = new UwsgiServerResponse(req, this);
    this.#res = res;
    res.attach(socket);
    this.#origin = {
      protocol: 'uwsgi',
      listener: this.#ctx.listener,
      remoteAddress: request.remoteAddress === '' ? undefined : request.remoteAddress,
      vars,
      scheme: request.scheme,
    };
    // Dispatch once push() has returned, so the app never runs inside the decoder.
    this.#dispatchPending = true;
    if (chunked) {
      // Every further byte goes through the chunked decoder; the body ends at its last chunk.
      this.#chunked = new ChunkedDecoder(limits.maxBodySize);
      this.#armBodyDeadline();
      return undefined;
    }
    if (request.contentLength === 0) {
      req.complete = true;
      req.push(null);
      return 0;
    }
    this.#bodyLeft = request.contentLength;
    this.#armBodyDeadline();
    return request.contentLength;
  }

  decodedBody(chunk: Uint8Array): void {
    const chunked = this.#chunked;
    if (chunked !== undefined) {
      this.#pushChunked(chunked, chunk);
      return;
    }
    this.#bodyLeft -= chunk.length;
    this.chunkData(chunk);
  }

  /** ChunkedSink, and the body bytes of a CONTENT_LENGTH body: to the app's request. */
  chunkData(chunk: Uint8Array): void {
    const req = this.#req;
    if (req === undefined || this.#discard) return;
    // net transport chunks are fresh Buffers per read, fast transport chunks of a kept read
    // (keepReads) views of a buffer handed over: both kept as views. A transport that reuses
    // its read buffer (transientReads, per chunk) needs a copy for anything kept past this call.
    const buf = this.#conn.transientReads
      ? Buffer.from(chunk)
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (!req.push(buf)) this.#conn.pause();
  }

  /** ChunkedSink: the last chunk and the trailers are in. */
  chunkedEnd(): void {
    this.decodedEnd();
  }

  #pushChunked(chunked: ChunkedDecoder, chunk: Uint8Array): void {
    if (chunked.done) return;
    try {
      chunked.push(chunk, this);
    } catch (err) {
      if (!(err instanceof ChunkedError)) throw err;
      this.#chunkedFailed(err);
    }
  }

  /**
   * Malformed chunking or a body over `maxBodySize`: the app's request is aborted (as when a
   * client leaves mid-upload) and, while the app has not started its response, the client gets
   * 400 or 413 in its place; otherwise the connection is closed.
   */
  #chunkedFailed(err: ChunkedError): void {
    // The rest of the input is read and dropped until EOF or the body deadline.
    this.#chunked = undefined;
    this.#discard = true;
    this.#conn.keepReads?.(0);
    if (this.#dispatchPending) {
      // Found bad in the bytes that came with the head: the app is never called.
      this.#dispatchPending = false;
      const req = this.#req as UwsgiIncomingMessage;
      this.#req = undefined;
      this.#res = undefined;
      this.#reject(err.status, err.message, undefined, {
        method: req.method ?? null,
        url: req.url ?? null,
        remoteAddress: this.#origin?.remoteAddress ?? null,
      });
      return;
    }
    this.#ctx.log.info(
      { status: err.status, reason: err.message, bytesIn: this.#bytesIn, ...this.#peer() },
      'uwsgi chunked body refused',
    );
    this.#abortRequest();
    // Through the app's response, so dispatch writes the one access record; destroyed instead
    // when the app's head went out already.
    const res = this.#res;
    if (res !== undefined) respondOnBehalf(res, err.status);
    this.#conn.resume();
  }

  decodedEnd(): void {
    if (this.#phase === 'closed') return;
    const chunked = this.#chunked;
    if (chunked !== undefined && !chunked.done) {
      // EOF before the last chunk: the body is truncated (U13).
      this.#ctx.log.info(
        { ...this.#peer(), bytesIn: this.#bytesIn, received: chunked.received },
        'uwsgi request body truncated',
      );
      this.#inputDone = true;
      this.#abortRequest();
      this.destroy();
      return;
    }
    this.#phase = 'done';
    this.#inputDone = true;
    this.#clearTimer();
    const req = this.#req;
    if (req !== undefined && !this.#discard && !req.complete) {
      req.complete = true;
      req.push(null);
    }
    // Keep reading: surplus bytes are dropped, and an unread receive queue at close means RST.
    this.#conn.resume();
    this.#maybeLinger();
  }

  // Responses and closing -----------------------------------------------------------------

  /** ResponseOwner: the response emitted 'finish'. */
  responseFinished(): void {
    this.#markResponded();
    // _http_server.js resOnFinish: an unread body is dumped so the request still ends.
    if (this.#req !== undefined) dumpUnreadBody(this.#req);
    this.#conn.resume();
    this.#maybeLinger();
  }

  /**
   * A response the container writes itself (400, 413, pong), ended at once: the body length may
   * be unknown (bad CONTENT_LENGTH), and a peer that reads to EOF (Apache, a raw client) must
   * not wait for a body it will never send. Input is still read and dropped until EOF or the
   * body deadline; on the net transport `end()` is a half-close, so nothing unread meets
   * close(2) while the peer is still sending.
   */
  #respondRaw(bytes: Uint8Array | string): void {
    this.#markResponded();
    this.#discard = true;
    this.#conn.socket.end(bytes);
    this.#conn.resume();
    this.#maybeLinger();
  }

  #reject(status: number, reason: string, code: string | undefined, head: KnownHead): void {
    this.#ctx.log.info(
      { status, reason, ...(code === undefined ? {} : { code }), ...this.#peer() },
      'uwsgi request refused',
    );
    const body = `${status} ${STATUS_CODES[status] ?? ''}\n`;
    const response =
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Content-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `Date: ${new Date().toUTCString()}\r\n` +
      'Connection: close\r\n\r\n' +
      body;
    this.#respondRaw(response);
    this.#recordAccess(head, status, Buffer.byteLength(response), false, null);
  }

  /** One access record for this connection (never for a dispatched request: dispatch logs it). */
  #recordAccess(
    head: KnownHead,
    status: number,
    bytes: number,
    aborted: boolean,
    error: AccessError | null,
  ): void {
    const access = this.#ctx.accessLog;
    if (access === undefined) return;
    access.write(
      accessRecord(
        head.method,
        head.url,
        status,
        bytes,
        this.#startedAt === 0 ? 0 : microsSince(this.#startedAt),
        null,
        head.remoteAddress,
        this.#ctx.listener,
        aborted,
        error,
      ),
    );
  }

  /**
   * One warning per listener and missing part: the front end's config is what needs fixing,
   * and every request of that location would otherwise repeat it.
   */
  #warnDefaulted(parts: readonly DefaultedPart[]): void {
    const warned = this.#shared.warnedDefaulted;
    const fresh = parts.filter((part) => !warned.has(part));
    if (fresh.length === 0) return;
    for (const part of fresh) warned.add(part);
    const missing = fresh.map((part) =>
      part === 'method'
        ? 'REQUEST_METHOD (served as GET)'
        : 'REQUEST_URI and PATH_INFO (served as /)',
    );
    this.#ctx.log.warn(
      { listener: this.#ctx.listener, missing: fresh.map((part) => MISSING_VARS[part]) },
      `uwsgi request without ${missing.join(', ')}: the front end's location sets uwsgi_param ` +
        'without "include uwsgi_params" (nginx drops the inherited params then); add it, or ' +
        'set strictVars: true to refuse such requests with 400',
    );
  }

  #markResponded(): void {
    if (this.#responded) return;
    this.#responded = true;
    this.#hooks.onIdle?.();
  }

  /**
   * Response written and input complete: end the connection. `end()` waits for pending writes;
   * on the net transport it is a half-close (FIN) and the socket closes when the peer's EOF
   * arrives, bounded here; a transport whose `end()` closes outright is done at once. Never
   * earlier: the write side is shut only after the declared body was read, since a transport
   * may close the descriptor on `end()`, and unread input at close(2) sends RST.
   */
  #maybeLinger(): void {
    if (!this.#responded || !this.#inputDone || this.#phase === 'closed') return;
    const socket = this.#conn.socket;
    if (!socket.writableEnded) socket.end();
    // A transport whose end() closes the connection (fast: once every write is done, which it
    // is after 'finish') has nothing to wait for: its 'close' follows for sure.
    if ((this.#phase as Phase) === 'closed' || socket.destroyed) return;
    this.#shared.linger.add(this);
  }

  #armBodyDeadline(): void {
    this.#clearTimer();
    this.#shared.body?.add(this);
  }

  #onHeadTimeout(): void {
    if (this.#phase !== 'head') return;
    if (this.#bytesIn === 0) {
      this.#ctx.log.debug({ listener: this.#ctx.listener }, 'uwsgi connection closed idle');
    } else {
      this.#refuse('header deadline exceeded', undefined);
    }
    this.destroy();
  }

  #onBodyTimeout(): void {
    if (this.#phase !== 'body') return;
    if (this.#responded && (this.#req === undefined || this.#discard)) {
      // A 400/413 was sent and the peer kept the connection open: nothing more to wait for.
      this.destroy();
      return;
    }
    this.#ctx.stats.protocolErrors++;
    this.#ctx.log.warn(
      { ...this.#peer(), bytesIn: this.#bytesIn, timeoutMs: this.#ctx.limits.bodyTimeoutMs },
      'uwsgi request body deadline exceeded',
    );
    this.#abortRequest();
    this.destroy();
  }

  #onDecodeFailure(err: unknown): void {
    if (this.#phase === 'closed') return;
    if (!(err instanceof UwsgiError) && !(err instanceof Refusal)) {
      // Thrown inside a decoder callback: a bug of ours, or an app 'data' listener that
      // req.push() ran synchronously. Only this connection is lost, the process carries on.
      this.#gaveUp = true;
      this.#ctx.log.error({ err, ...this.#peer() }, 'uwsgi connection failed');
      this.#abortRequest();
      this.destroy();
      return;
    }
    const reason = HTTP_REQUEST_START.test(this.#start) ? 'HTTP sent to uwsgi socket' : err.message;
    this.#refuse(reason, err instanceof UwsgiError ? err.code : undefined);
    this.#abortRequest();
    this.destroy();
  }

  /** REJ: one record with the reason, code, peer and sizes; the caller closes. */
  #refuse(reason: string, code: string | undefined): void {
    this.#gaveUp = true;
    this.#ctx.stats.protocolErrors++;
    const header = this.#decoder?.header;
    this.#ctx.log.warn(
      {
        reason,
        ...(code === undefined ? {} : { code }),
        ...this.#peer(),
        bytesIn: this.#bytesIn,
        ...(header === undefined ? {} : { modifier1: header.modifier1, datasize: header.datasize }),
        maxVarsSize: this.#ctx.limits.bufferSize,
      },
      'uwsgi request rejected',
    );
  }

  #abortRequest(): void {
    const req = this.#req;
    if (req === undefined || req.destroyed) return;
    if (!req.complete) req.destroy(abortedError());
  }

  #onSocketClose(): void {
    if (this.#phase === 'closed') return;
    this.#phase = 'closed';
    this.#clearTimer();
    const req = this.#req;
    if (req === undefined && !this.#responded && this.#bytesIn > 0) {
      // Bytes came, but no request was dispatched and no answer went out: refused here (a
      // framing error, the head deadline) or the peer left mid-head. Idle connections (no byte)
      // are no request and get no record.
      const error = this.#gaveUp ? 'protocol' : this.#ctx.shutdown?.forced ? 'shutdown' : null;
      this.#recordAccess(UNKNOWN_HEAD, 0, 0, !this.#gaveUp, error);
    }
    if (req !== undefined && !req.destroyed) {
      // As _http_server.js abortIncoming: a request whose exchange did not finish learns that
      // its client is gone ('aborted' if its body was incomplete, then 'close').
      if (!req.complete) req.destroy(abortedError());
      else if (!this.#responded) req.destroy();
    }
    const wasBusy = !this.#responded;
    this.#responded = true;
    if (wasBusy) this.#hooks.onIdle?.();
    this.#hooks.onClose?.(this);
  }

  #clearTimer(): void {
    this.deadlineQueue?.remove(this);
  }

  #peer(): { peer: string; listener: string } {
    const socket = this.#conn.socket;
    // Before reportPeer() these are the front end's address (undefined on unix sockets).
    const address = socket.remoteAddress;
    return {
      peer: address === undefined ? 'unix' : `${address}:${socket.remotePort}`,
      listener: this.#ctx.listener,
    };
  }
}

/** The vars a front end left out, by the part that was filled in for them. */
const MISSING_VARS: Readonly<Record<DefaultedPart, string>> = {
  method: 'REQUEST_METHOD',
  path: 'REQUEST_URI',
};

/** What an access record says of a request the container answered itself. */
interface KnownHead {
  readonly method: string | null;
  readonly url: string | null;
  /** REMOTE_ADDR: the client as the front end reported it (never the front end's own peer). */
  readonly remoteAddress: string | null;
}

/** No vars were decoded (a framing error, the head deadline, the peer gone mid-head). */
const UNKNOWN_HEAD: KnownHead = { method: null, url: null, remoteAddress: null };

function fromRequest(request: UwsgiRequest): KnownHead {
  return {
    method: request.method,
    url: request.url,
    remoteAddress: request.remoteAddress === '' ? null : request.remoteAddress,
  };
}

/**
 * Method, target and client of vars that are no valid request (400), as far as they are there:
 * REQUEST_METHOD, REQUEST_URI (else PATH_INFO with `?QUERY_STRING`), REMOTE_ADDR; raw, first
 * value of each; absent or empty -> null.
 */
function fromVars(vars: UwsgiVars): KnownHead {
  let method: string | undefined;
  let uri: string | undefined;
  let pathInfo: string | undefined;
  let query: string | undefined;
  let remoteAddress: string | undefined;
  for (const [name, value] of vars) {
    if (name === 'REQUEST_METHOD') method ??= value;
    else if (name === 'REQUEST_URI') uri ??= value;
    else if (name === 'PATH_INFO') pathInfo ??= value;
    else if (name === 'QUERY_STRING') query ??= value;
    else if (name === 'REMOTE_ADDR') remoteAddress ??= value;
  }
  let url = uri === '' ? undefined : uri;
  if (url === undefined && pathInfo !== undefined && pathInfo !== '') {
    url = query === undefined || query === '' ? pathInfo : `${pathInfo}?${query}`;
  }
  return {
    method: method === undefined || method === '' ? null : method,
    url: url ?? null,
    remoteAddress: remoteAddress === undefined || remoteAddress === '' ? null : remoteAddress,
  };
}

function codeOf(err: unknown): string | undefined {
  return err instanceof UwsgiError ? err.code : undefined;
}

/**
 * The request's transfer coding when CONTENT_LENGTH does not frame the body (the codec dropped
 * `transfer-encoding` when it does): `chunked` when the last coding is chunked (RFC 9112 section
 * 6.3: then the chunked framing delimits the body, whatever codings come before it), `other` for
 * any other coding but `identity` (a body is there and nothing delimits it), `none` otherwise.
 */
function transferCoding(headers: UwsgiRequest['headers']): 'none' | 'chunked' | 'other' {
  let codings = 0;
  let chunkedCount = 0;
  let last = '';
  for (let i = 0; i < headers.length; i++) {
    const header = headers[i] as [string, string];
    if (header[0] !== 'transfer-encoding') continue;
    for (const raw of header[1].toLowerCase().split(',')) {
      const coding = raw.trim();
      if (coding === '' || coding === 'identity') continue;
      codings++;
      if (coding === 'chunked') chunkedCount++;
      last = coding;
    }
  }
  if (codings === 0) return 'none';
  // Chunked twice is malformed (RFC 9112 section 6.1): nothing can say which framing holds.
  return last === 'chunked' && chunkedCount === 1 ? 'chunked' : 'other';
}
