/**
 * The narrow interface between a uwsgi listener implementation ("transport") and everything
 * above it (protocol/uwsgi.ts, bridge/, router/, app/). Two transports implement it:
 *
 * - `net`  (transport/net.ts): node:net servers and sockets, public API only.
 * - `fast` (transport/fast/): Node's stream handles directly, with a thin socket shim
 *   (issue 4); falls back to `net` when feature detection fails.
 *
 * The protocol layer never imports a transport module: it receives `Connection` objects.
 */
import type { Socket } from 'node:net';

/** Where to listen, after parsing a listener address (transport/address.ts). */
export type ListenTarget =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string; readonly mode: number }
  /** An already-bound listening fd inherited from a supervisor (worker processes). */
  | { readonly kind: 'fd'; readonly fd: number };

export interface ListenOptions {
  readonly target: ListenTarget;
  /** listen(2) backlog. */
  readonly backlog: number;
  /** Display address of an inherited fd (`unix:/abs.sock`, `host:port`); default `fd:N`. */
  readonly address?: string;
}

/** Receives what a connection reads. */
export interface ReadSink {
  /**
   * Bytes received. When `Connection.transientReads` is true, `chunk` is a view on a buffer the
   * transport reuses as soon as this call returns: copy anything kept beyond it. The sink reads
   * `transientReads` during this call: a transport may change it from one chunk to the next
   * (see `Connection.keepReads`).
   */
  onData(chunk: Uint8Array): void;
  /** The peer half-closed its side (EOF). The connection stays writable. */
  onEnd(): void;
  /** A read error (ECONNRESET, ...). The transport destroys the connection afterwards. */
  onError(err: Error): void;
  /**
   * The connection is gone: called once, just before the socket emits `close` (so before any
   * `close` listener of the socket, such as the response's). Only after `start()`.
   */
  onClose?(): void;
}

/** One accepted connection. */
export interface Connection {
  /**
   * The socket the bridge gives to `ServerResponse.assignSocket()` and `IncomingMessage`: a real
   * `net.Socket` on the `net` transport, a shim that provides the members http uses on `fast`.
   * It emits `close` exactly once when the connection is gone, and `drain` after back-pressure.
   * `end()` flushes pending writes then closes; `destroy()` closes at once.
   */
  readonly socket: Socket;
  /** See `ReadSink.onData`: valid for the chunk being delivered, may differ per chunk. */
  readonly transientReads: boolean;
  /**
   * Optional hint from the sink: it will keep about the next `bytes` bytes it receives (a request
   * body of known length). A transport that reuses its read buffer may read them into memory it
   * gives away instead, delivering those chunks with `transientReads` false, so the sink keeps
   * them without a copy. Only a hint: more or fewer bytes may arrive; 0 withdraws it.
   */
  keepReads?(bytes: number): void;
  /**
   * Starts delivering reads to `sink`. May call `sink.onData` synchronously (the fast transport
   * answers from the accept callback when the request has already arrived).
   * @throws ContainerError `UWSGI_ERR_TRANSPORT_STATE` when called a second time.
   */
  start(sink: ReadSink): void;
  /** Stop reading (request-body back-pressure); `resume()` restarts it. */
  pause(): void;
  resume(): void;
}

/** A bound, accepting listener. */
export interface Listening {
  /** Display form: `unix:/abs/path.sock` or `127.0.0.1:3031` (actual port when 0 was asked). */
  readonly address: string;
  /** Stop accepting (the socket file of a unix listener is removed); open connections live on. */
  close(): Promise<void>;
}

export interface Transport {
  readonly name: 'net' | 'fast';
  listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listening>;
}
