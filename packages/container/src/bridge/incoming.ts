/**
 * The request side of the bridge (BRIDGE.md design A): a genuine `http.IncomingMessage`
 * subclass filled from a uwsgi request description instead of llhttp. Apps, middleware and
 * frameworks see the class they expect (`instanceof`, `headers`, `rawHeaders`, `headersDistinct`,
 * stream semantics), with nothing re-parsed.
 *
 * Node internals relied on (lib/_http_incoming.js, Node 20):
 * - `_addHeaderLines(raw, n)` stores `rawHeaders` and the count the lazy `headers` /
 *   `headersDistinct` getters walk, so duplicates are joined by Node's own `_addHeaderLine`
 *   rules (cookie `; `, set-cookie array, most `, `, singletons such as host first-wins).
 * - `_consuming` and `_readableState.readingMore`, which `IncomingMessage._read` flips on the
 *   first read and `_http_server.js` resOnFinish checks before `_dump()`ing an unread body;
 *   `dumpUnreadBody` repeats that check (with `_readableState.resumeScheduled`) and `_dump()`.
 *
 * `_read` and `_destroy` are pinned as own properties of each instance: Express 5 replaces the
 * prototype of every request it handles (`Object.setPrototypeOf(req, app.request)` in
 * application.js `handle`, with `app.request` inheriting straight from `http.IncomingMessage`),
 * which would bring back IncomingMessage's own `_read` (resuming a socket the protocol layer
 * owns) and `_destroy` (destroying the socket, and with it the app's 413). They keep working
 * after the swap: `super` resolves through the methods' home object (this class's prototype),
 * and private fields live on the instance.
 */
import { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

/** The parts of a decoded uwsgi request the bridge needs (a subset of codec `UwsgiRequest`). */
export interface IncomingHead {
  readonly method: string;
  /** Raw request target: REQUEST_URI, else PATH_INFO + `?` + QUERY_STRING. */
  readonly url: string;
  /** `1.1`, `1.0` (SERVER_PROTOCOL without `HTTP/`). */
  readonly httpVersion: string;
  /** Lower-case names in packet order, duplicates kept. */
  readonly headers: ReadonlyArray<readonly [string, string]>;
}

/** How the request reaches back into the connection that feeds it. */
export interface BodySource {
  /** The app wants more body bytes: undo back-pressure. */
  resume(): void;
  /** The app destroyed the request: stop feeding it, but keep the connection for the response. */
  discard(): void;
}

/** Node-internal members used here (lib/_http_incoming.js); absent from @types/node. */
interface IncomingInternals {
  _addHeaderLines(headers: string[], n: number): void;
  _consuming: boolean;
  _readableState: { readingMore: boolean; resumeScheduled: boolean };
  _dump(): void;
}

/**
 * `http.IncomingMessage` over a uwsgi connection. The protocol layer pushes body bytes
 * (`push(chunk)`, `false` = pause the connection) and ends it with `push(null)` after setting
 * `complete`.
 *
 * `Expect: 100-continue` stays visible as a header but is never acted upon: the front end has
 * already read the body, and a `100 Continue` would corrupt the single response it relays.
 */
export class UwsgiIncomingMessage extends IncomingMessage {
  readonly #source: BodySource;

  constructor(socket: Socket, head: IncomingHead, source: BodySource) {
    super(socket);
    this.#source = source;
    this.method = head.method;
    this.url = head.url;
    const [major, minor] = parseHttpVersion(head.httpVersion);
    this.httpVersionMajor = major;
    this.httpVersionMinor = minor;
    this.httpVersion = `${major}.${minor}`;
    // `transfer-encoding` is here only when no CONTENT_LENGTH frames the body (the codec drops
    // the one nginx forwards after de-chunking): a chunked body the protocol layer decodes, which
    // the app must see as node:http shows one (body parsers look for it to know a body is there).
    const headers = head.headers;
    const raw: string[] = [];
    for (let i = 0; i < headers.length; i++) {
      const header = headers[i] as readonly [string, string];
      raw.push(header[0], header[1]);
    }
    (this as unknown as IncomingInternals)._addHeaderLines(raw, raw.length);
    // Survive a prototype swap (module comment): two stores of shared functions, no closures.
    const own = UwsgiIncomingMessage.prototype;
    this._read = own._read;
    this._destroy = own._destroy;
  }

  // Replaces IncomingMessage._read, which would resume `this.socket` directly (readStart); the
  // connection's reads are owned by the protocol layer, so ask it instead.
  override _read(): void {
    const self = this as unknown as IncomingInternals;
    if (!self._consuming) {
      self._readableState.readingMore = false;
      self._consuming = true;
    }
    this.#source.resume();
  }

  // Replaces IncomingMessage._destroy, which destroys the socket when the body was not read to
  // the end: that would also kill the response an app sends after rejecting a body (413 from a
  // body parser). Here the connection only stops feeding this request; it is closed after the
  // response, once the rest of the declared body has been drained.
  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    if (!this.readableEnded || !this.complete) {
      this.aborted = true;
      this.emit('aborted');
    }
    this.#source.discard();
    // As _http_incoming.js onError: an error is reported only to someone listening for it.
    process.nextTick(() => callback(this.listenerCount('error') > 0 ? err : null));
  }
}

/**
 * What Node does for a request whose response has finished (lib/_http_server.js resOnFinish,
 * Node 20): a body the app never read (no `read()`, `pipe()`, `resume()` or `'data'` listener,
 * so `_consuming` is false and no resume is pending in `_readableState.resumeScheduled`) is
 * `_dump()`ed (lib/_http_incoming.js: drop `'data'` listeners, `resume()`), so the request
 * still ends and its bytes are pulled off the connection.
 */
export function dumpUnreadBody(req: IncomingMessage): void {
  const self = req as unknown as IncomingInternals;
  if (!self._consuming && !self._readableState.resumeScheduled) self._dump();
}

/**
 * Makes `socket.remoteAddress` / `remotePort` / `remoteFamily` report the client the front end
 * saw (REMOTE_ADDR / REMOTE_PORT) instead of the front end itself, for loggers, rate limiters
 * and `req.ip`. Sound because a uwsgi connection carries exactly one request: the socket is the
 * request's own. Own properties shadow net.Socket's prototype getters; nothing in net.js reads
 * them back.
 */
export function reportPeer(socket: Socket, address: string, port: number | undefined): void {
  if (address === '') return;
  const family = address.includes(':') ? 'IPv6' : 'IPv4';
  if (hasPeerSetters(socket)) {
    // The fast transport's shim has setters for exactly this: plain assignments, no shape
    // change (defineProperty on each connection cost ~1 µs and made the object slow).
    socket.remoteAddress = address;
    socket.remotePort = port;
    socket.remoteFamily = family;
    return;
  }
  for (const [key, value] of [
    ['remoteAddress', address],
    ['remotePort', port],
    ['remoteFamily', family],
  ] as const) {
    const own = Object.getOwnPropertyDescriptor(socket, key);
    if (own !== undefined && own.configurable !== true) continue;
    Object.defineProperty(socket, key, { value, configurable: true, enumerable: false });
  }
}

/** Per prototype: do `remoteAddress`, `remotePort` and `remoteFamily` all have setters? */
const peerSetters = new WeakMap<object, boolean>();

function hasPeerSetters(socket: Socket): socket is Socket & {
  remoteAddress: string;
  remotePort: number | undefined;
  remoteFamily: string;
} {
  const proto = Object.getPrototypeOf(socket) as object | null;
  if (proto === null) return false;
  let known = peerSetters.get(proto);
  if (known === undefined) {
    known = ['remoteAddress', 'remotePort', 'remoteFamily'].every(
      (key) => setterOf(proto, key) !== undefined,
    );
    peerSetters.set(proto, known);
  }
  return known;
}

function setterOf(proto: object | null, key: string): unknown {
  for (let p = proto; p !== null; p = Object.getPrototypeOf(p) as object | null) {
    const d = Object.getOwnPropertyDescriptor(p, key);
    if (d !== undefined) return d.set;
  }
  return undefined;
}

/** `1.1` / `HTTP/1.1` -> [1, 1]; anything unparseable is HTTP/1.0 (PROTOCOL.md section 8). */
function parseHttpVersion(version: string): [number, number] {
  // The two versions nginx and Apache send, without a regex match per request.
  if (version === '1.1' || version === 'HTTP/1.1') return [1, 1];
  if (version === '1.0' || version === 'HTTP/1.0') return [1, 0];
  const match = /^(?:HTTP\/)?(\d)\.(\d)$/.exec(version);
  if (match === null) return [1, 0];
  return [Number(match[1]), Number(match[2])];
}

/** The error an aborted body surfaces with, shaped as Node's (`connResetException('aborted')`). */
export function abortedError(): Error {
  return Object.assign(new Error('aborted'), { code: 'ECONNRESET' });
}
