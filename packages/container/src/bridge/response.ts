/**
 * The response side of the bridge (BRIDGE.md design A): a genuine `http.ServerResponse` written
 * straight onto the uwsgi connection's socket. Node produces the status line, headers and body;
 * this subclass only changes what a uwsgi front end cannot take:
 *
 * - no `Transfer-Encoding: chunked`, ever: nginx and Apache copy a uwsgi response body without
 *   decoding it, so clients would see chunk markers (PROTOCOL.md section 4, srvx#248);
 * - `Connection: close` and close-delimited bodies: front ends never reuse a uwsgi connection;
 * - a `Content-Length` whenever Node knows it (`res.end(body)` without earlier writes), so nginx
 *   can keep its client connection alive without re-chunking;
 * - hop-by-hop headers set by the app (Transfer-Encoding, Connection, Keep-Alive, Upgrade) are
 *   dropped at `setHeader` / `appendHeader` / `writeHead` (RELIABILITY.md A05); 101 Switching
 *   Protocols is therefore not supported on uwsgi listeners;
 * - `drain` of the socket reaches the response (a manually assigned socket misses the wiring
 *   `_http_server.js` does in connectionListenerInternal / socketOnDrain, srvx#208).
 *
 * The overriding methods are also pinned as own properties of each instance: Express 5 replaces
 * the prototype of every response it handles (`Object.setPrototypeOf(res, app.response)` in
 * application.js `handle`, with `app.response` inheriting straight from `http.ServerResponse`),
 * which would silently bypass prototype overrides. Their `super` calls are bound to this class
 * (method home object), and private fields belong to the instance, so both keep working after
 * the swap; brand checks use `#field in obj`, never `instanceof`.
 *
 * Node internals relied on (lib/_http_outgoing.js and lib/_http_server.js, Node 20):
 * - `_storeHeader`: with `useChunkedEncodingByDefault = true` and `_removedTE` (set by the public
 *   `removeHeader('transfer-encoding')`), an unknown length takes the close-delimited branch
 *   (`this._last = true`) instead of chunking, while a known `_contentLength` still becomes
 *   `Content-Length`. (`useChunkedEncodingByDefault = false` would drop Content-Length too.)
 * - `shouldKeepAlive = false` makes `_storeHeader` write `Connection: close`.
 * - `ServerResponse.writeHead` clears `_hasBody` for 204/304 and the constructor for HEAD, so no
 *   body bytes go out for them; `end()` and `_storeHeader` write the head with the first body
 *   chunk in one socket write (cork/uncork).
 * - `assignSocket` sets `socket._httpMessage` (which `_writeRaw` checks) and re-emits the
 *   socket's `close` as the response's `close` (onServerResponseClose -> emitCloseNT, guarded by
 *   `_closed`); `resOnFinish` emits `close` on the next tick after `finish`, reproduced here.
 * - `socket._httpMessage._headerSent`, read by `boundResponseState` for the HTTP listener's
 *   'clientError' handling (the same test node:http's own socketOnError makes).
 */
import {
  type IncomingMessage,
  type OutgoingHttpHeader,
  type OutgoingHttpHeaders,
  ServerResponse,
} from 'node:http';
import type { Socket } from 'node:net';

/** Response headers a uwsgi backend must not send: the front end owns the client connection. */
const HOP_BY_HOP = new Set(['transfer-encoding', 'connection', 'keep-alive', 'upgrade']);

/** Who hears of the response's 'finish' first (the protocol layer), without a listener. */
export interface ResponseOwner {
  responseFinished(): void;
}

type HeadersArg = OutgoingHttpHeaders | OutgoingHttpHeader[] | undefined;

/** `_http_outgoing.js` members used here; absent from @types/node. */
interface OutgoingInternals {
  _closed: boolean;
}

/** The overrides pinned on each instance (see the module comment). */
type PinnedMethod = 'setHeader' | 'appendHeader' | 'writeHead' | 'write';

export class UwsgiServerResponse extends ServerResponse {
  #needDrain = false;
  /** The socket's 'drain' is listened to from the first refused write on (most never are). */
  #drainHooked = false;
  readonly #owner: ResponseOwner | undefined;

  constructor(req: IncomingMessage, owner?: ResponseOwner) {
    super(req);
    this.#owner = owner;
    // See the module comment: never chunk, Content-Length when known, else close-delimited.
    this.useChunkedEncodingByDefault = true;
    this.removeHeader('transfer-encoding');
    this.shouldKeepAlive = false;
    // A length mismatch becomes an error in the app instead of a short or overlong body
    // (RELIABILITY.md A04, CVE-2024-24795). The connection closes after the response anyway, so
    // nothing can desync, but the app learns about its bug.
    this.strictContentLength = true;
    // Shared listeners (`this` is the emitter) rather than closures: one response per request.
    this.on('finish', UwsgiServerResponse.#onFinish);
    // Survive a prototype swap (module comment): four stores of shared functions, no closures.
    // (Typed loosely: the methods return the polymorphic `this`, which TS cannot see through.)
    const own = UwsgiServerResponse.prototype;
    const self = this as unknown as Record<PinnedMethod, unknown>;
    self.setHeader = own.setHeader;
    self.appendHeader = own.appendHeader;
    self.writeHead = own.writeHead;
    self.write = own.write;
  }

  /**
   * Binds the response to the connection's socket. Its 'drain' is forwarded once a write was
   * refused (see `write`).
   */
  attach(socket: Socket): void {
    this.assignSocket(socket);
  }

  static readonly #onFinish = function onFinish(this: UwsgiServerResponse): void {
    // _http_server.js resOnFinish: process.nextTick(emitCloseNT, res).
    process.nextTick(UwsgiServerResponse.#emitCloseNT, this);
    this.#owner?.responseFinished();
  };

  static #emitCloseNT(res: UwsgiServerResponse): void {
    res.#emitClose();
  }

  /** `this` is the socket; `_httpMessage` is the response `assignSocket` bound to it. */
  static readonly #onSocketDrain = function onSocketDrain(
    this: Socket & { _httpMessage?: unknown },
  ): void {
    const res = this._httpMessage;
    // A brand check, not instanceof: the app may have replaced the prototype (module comment).
    if (typeof res !== 'object' || res === null || !(#needDrain in res)) return;
    // As _http_server.js socketOnDrain: only a response that saw write() return false, and
    // only until it finished.
    if (res.#needDrain && !res.writableEnded) {
      res.#needDrain = false;
      res.emit('drain');
    }
  };

  override setHeader(name: string, value: number | string | readonly string[]): this {
    if (isHopByHop(name)) return this;
    return super.setHeader(name, value);
  }

  override appendHeader(name: string, value: string | readonly string[]): this {
    if (isHopByHop(name)) return this;
    return super.appendHeader(name, value);
  }

  override writeHead(
    statusCode: number,
    reasonOrHeaders?: string | HeadersArg,
    headers?: HeadersArg,
  ): this {
    if (typeof reasonOrHeaders === 'string') {
      return super.writeHead(statusCode, reasonOrHeaders, withoutHopByHop(headers));
    }
    return super.writeHead(statusCode, withoutHopByHop(reasonOrHeaders ?? headers));
  }

  override write(
    chunk: unknown,
    encodingOrCallback?: BufferEncoding | ((error: Error | null | undefined) => void),
    callback?: (error: Error | null | undefined) => void,
  ): boolean {
    const ok =
      typeof encodingOrCallback === 'function'
        ? super.write(chunk, encodingOrCallback)
        : encodingOrCallback === undefined
          ? super.write(chunk, callback)
          : super.write(chunk, encodingOrCallback, callback);
    if (!ok) {
      this.#needDrain = true;
      const socket = this.socket;
      if (!this.#drainHooked && socket !== null) {
        this.#drainHooked = true;
        socket.on('drain', UwsgiServerResponse.#onSocketDrain);
      }
    }
    return ok;
  }

  #emitClose(): void {
    const self = this as unknown as OutgoingInternals;
    if (self._closed) return;
    self._closed = true;
    this.destroyed = true;
    this.emit('close');
  }
}

function isHopByHop(name: string): boolean {
  if (typeof name !== 'string') return false;
  // Only names of a hop-by-hop length are lower-cased and looked up (no string per header).
  const n = name.length;
  return (n === 7 || n === 10 || n === 17) && HOP_BY_HOP.has(name.toLowerCase());
}

/** Copies `headers` without hop-by-hop names, in any of the shapes writeHead accepts. */
function withoutHopByHop(headers: HeadersArg): HeadersArg {
  if (headers === undefined || headers === null) return headers;
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      // [[name, value], ...]
      return (headers as unknown as [string, OutgoingHttpHeader][]).filter(
        ([name]) => !isHopByHop(name),
      ) as unknown as OutgoingHttpHeader[];
    }
    // [name, value, name, value, ...]; an odd length is left for Node to reject.
    if (headers.length % 2 !== 0) return headers;
    const out: OutgoingHttpHeader[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      if (!isHopByHop(String(headers[i]))) out.push(headers[i] as string, headers[i + 1] as string);
    }
    return out;
  }
  let copy: OutgoingHttpHeaders | undefined;
  for (const name of Object.keys(headers)) {
    if (isHopByHop(name)) {
      copy ??= { ...headers };
      delete copy[name];
    }
  }
  return copy ?? headers;
}

function returnThis(this: ServerResponse): ServerResponse {
  return this;
}

/**
 * Replaces the writing methods of this one response with inert ones (own properties, which also
 * shadow the overrides `UwsgiServerResponse` pins on its instances). After the container has
 * answered for an app, a late `writeHead` / `setHeader` would throw ERR_HTTP_HEADERS_SENT and a
 * late `write` / `end` fail with ERR_STREAM_WRITE_AFTER_END (lib/_http_outgoing.js and
 * lib/_http_server.js, Node 20) inside an unrelated app callback, taking the process down.
 * The list is the writing surface of `OutgoingMessage` / `ServerResponse` in Node 20
 * (`setHeaders` since 18.15, `appendHeader` since 18.3).
 */
export function sealResponse(res: ServerResponse): void {
  const inert: PropertyDescriptorMap = {
    writeHead: { value: returnThis },
    setHeader: { value: returnThis },
    setHeaders: { value: returnThis },
    appendHeader: { value: returnThis },
    removeHeader: { value: () => undefined },
    flushHeaders: { value: () => undefined },
    writeContinue: { value: () => undefined },
    writeProcessing: { value: () => undefined },
    addTrailers: { value: () => undefined },
    // false: a streaming app waits for a 'drain' that never comes and sees 'close' instead of
    // spinning on a write that always "succeeds".
    write: { value: () => false },
    end: { value: returnThis },
  };
  for (const descriptor of Object.values(inert)) {
    descriptor.configurable = true;
    descriptor.writable = true;
  }
  Object.defineProperties(res, inert);
}

/**
 * The response node:http has bound to `socket`, as its default 'clientError' handling reads it
 * (lib/_http_server.js socketOnError, Node 20): `none` without one (`socket._httpMessage`, set by
 * `assignSocket` and cleared when a response finishes), `head-sent` once its head was written to
 * the socket (`_headerSent`, not `headersSent`: a head generated by `writeHead` but not flushed
 * yet still lets node:http write its 400/408), else `head-pending`. protocol/http.ts takes over
 * that handling to log the answers it gives.
 */
export function boundResponseState(socket: Socket): 'none' | 'head-pending' | 'head-sent' {
  const res = (socket as Socket & { _httpMessage?: { _headerSent?: unknown } | null })._httpMessage;
  if (res === undefined || res === null) return 'none';
  return res._headerSent === true ? 'head-sent' : 'head-pending';
}
