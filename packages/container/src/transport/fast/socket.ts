/**
 * The `fast` transport's connection (listen.ts makes one per accepted handle): `FastSocket` is at
 * once the `Connection` and the socket shim handed to `IncomingMessage`/`ServerResponse`. Reads
 * land in one static buffer (or, for a body the sink keeps, in buffers of its own), writes go
 * through the handle's own write calls, and `end()` closes the handle once libuv took every byte.
 * Every Node internal used here is declared in `internals.ts`; each use is marked `INTERNAL:`.
 */
import { EventEmitter } from 'node:events';
import { readSync } from 'node:fs';
import type { Socket } from 'node:net';
import { getDefaultHighWaterMark } from 'node:stream';
import { getSystemErrorName } from 'node:util';
import { ContainerError } from '../../shared/errors.ts';
import type { Connection, ReadSink } from '../types.ts';
import {
  type AddressOut,
  type Internals,
  OWNER,
  type StreamHandle,
  type WriteCallback,
  type WriteReq,
} from './internals.ts';

// ---------------------------------------------------------------------------------------------
// Reads: one static buffer for every connection of the process
// ---------------------------------------------------------------------------------------------

/**
 * Every read of every connection lands here (`transientReads: true`) unless the sink announced a
 * body it keeps (`keepReads`): reads are delivered synchronously, one connection at a time, and
 * the sink copies what it keeps. 64 KiB holds a whole request head (vars are at most 65535 + 4
 * bytes) in most cases.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

/**
 * Kept reads (`Connection.keepReads`): a request body the sink keeps is read into buffers of its
 * own and handed over without a copy. The first is 64 KiB (one read's worth), each next one
 * twice the previous, up to 1 MiB: what a connection allocates stays within about twice
 * what it actually received plus 64 KiB, so a declared CONTENT_LENGTH alone (a slow or lying
 * client) cannot make it reserve memory; a 1 MiB body takes 5 buffers instead of 16 copies.
 */
const KEEP_BUFFER_FIRST = 64 * 1024;
const KEEP_BUFFER_MAX = 1024 * 1024;

/**
 * Smaller hints are ignored: `Buffer.from` copies chunks under 4 KiB into Node's shared pool,
 * cheaper than an allocation of their own.
 */
const KEEP_MIN = 4 * 1024;

/**
 * Adaptive guard for the synchronous read in the accept callback: when the request is not there
 * yet the read fails with EAGAIN, which costs an exception. After a miss the next `skip`
 * connections go straight to readStart; every miss doubles `skip` (up to 64), every hit resets it.
 */
const tryRead = { skip: 0, backoff: 0 };

function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const name = getSystemErrorName(errno);
  const err: NodeJS.ErrnoException = new Error(`${syscall} ${name}`);
  err.errno = errno;
  err.code = name;
  err.syscall = syscall;
  return err;
}

function streamError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Peer facts assigned by the bridge (REMOTE_ADDR...); undefined ones fall back to getpeername. */
interface RemoteOverride {
  address: string | undefined;
  port: number | undefined;
  family: string | undefined;
}

interface QueuedWrite {
  chunk: string | Uint8Array;
  encoding: BufferEncoding | undefined;
  callback: WriteCallback | undefined;
}

const DEFAULT_HWM = getDefaultHighWaterMark(false);

/** Largest Buffer body merged with a string head into one write (see `#flushCorked`). */
const MERGE_BODY_MAX = 4096;

/**
 * One accepted connection: the `Connection` and, at once, the socket shim handed to
 * `IncomingMessage`/`ServerResponse` (`conn.socket === conn`, saving an object per request).
 *
 * The shim provides what `_http_outgoing.js`, `_http_server.js` and `_http_incoming.js` (v20 and
 * v24) touch on a socket given by `assignSocket()` / `new IncomingMessage(socket)`:
 * `write(chunk, encoding, cb)` (false under back-pressure, then 'drain'), `cork`/`uncork` and
 * `_writableState.corked` (OutgoingMessage#end sets it to 1 and uncorks), `end`, `destroy`,
 * `destroyed`, `writable`, `writableLength`, `writableHighWaterMark`, `writableCorked`,
 * `errored`, `_hadError` (onFinish), `readable`, `readableHighWaterMark`, `pause`/`resume`
 * (IncomingMessage#_read), `setTimeout`, `_httpMessage`, `on/once/removeListener('close')`
 * (assignSocket, the request's abort signal). `server` stays undefined (v24 reads it with `?.`).
 * Events: 'data' is not emitted (reads go to the ReadSink); 'end' on EOF, 'drain', 'finish',
 * 'timeout', 'error' (only when someone listens: a lost peer must not crash the process) and
 * 'close' exactly once, from the handle's close callback.
 */
export class FastSocket extends EventEmitter implements Connection {
  /** False only while a chunk of a kept buffer is delivered (`keepReads`). */
  transientReads = true;
  /** Set by `ServerResponse#assignSocket`. */
  _httpMessage: unknown = null;
  readonly _writableState = { corked: 0 };
  _hadError = false;
  readonly writableHighWaterMark = DEFAULT_HWM;
  readonly readableHighWaterMark = DEFAULT_HWM;
  readonly connecting = false;
  readonly pending = false;
  readonly allowHalfOpen = true;
  /** Undefined like a socket accepted by a plain `net.Server` with no http options. */
  readonly server: undefined = undefined;

  destroyed = false;
  closed = false;
  readable = true;
  readableEnded = false;
  writable = true;
  writableEnded = false;
  writableFinished = false;
  errored: Error | null = null;
  bytesRead = 0;
  bytesWritten = 0;
  timeout: number | undefined = undefined;

  readonly #ix: Internals;
  readonly #handle: StreamHandle;
  readonly #isTcp: boolean;
  #sink: ReadSink | null = null;
  #reading = false;
  #paused = false;
  #corkQueue: QueuedWrite[] = [];
  #corkedBytes = 0;
  #pendingReqs = 0;
  #pendingBytes = 0;
  #lastReq: WriteReq | null = null;
  #needDrain = false;
  #handleClosed = false;
  #sinkFailed = false;
  #timer: NodeJS.Timeout | undefined;
  #remote: AddressOut | undefined;
  #remoteOverride: RemoteOverride | undefined;
  /** Bytes the sink said it keeps (`keepReads`) and that were not read yet. */
  #keepLeft = 0;
  /** Where kept reads land, from `#keepFill` on; null: reads land in READ_BUFFER. */
  #keepBuf: Buffer | null = null;
  #keepFill = 0;
  /** Size of the next kept buffer (doubles per buffer, see KEEP_BUFFER_FIRST). */
  #keepSize = KEEP_BUFFER_FIRST;
  /** A read target chosen while `onread` runs: returned to C++ instead of useUserBuffer(). */
  #retarget: Buffer | null = null;

  /** The socket whose read is being delivered from `onread`, if any. */
  static #delivering: FastSocket | null = null;

  constructor(ix: Internals, handle: StreamHandle, isTcp: boolean) {
    super();
    this.#ix = ix;
    this.#handle = handle;
    this.#isTcp = isTcp;
    handle[OWNER] = this;
  }

  get socket(): Socket {
    return this as unknown as Socket;
  }

  /**
   * The connection's file descriptor (-1 once destroyed): the harakiri watchdog writes its 504
   * straight to it (dispatch.ts `describe()` reads `socket._handle.fd` on a net socket and
   * `socket.fd` on this one). Without it every harakiri on a fast-transport uwsgi listener
   * closed the connection unanswered (nginx: 502) instead of the documented 504.
   */
  get fd(): number {
    return this.destroyed ? -1 : this.#handle.fd;
  }

  // ---- Connection -------------------------------------------------------------------------

  start(sink: ReadSink): void {
    if (this.#sink !== null) {
      throw new ContainerError('UWSGI_ERR_TRANSPORT_STATE', 'Connection.start() called twice');
    }
    this.#sink = sink;
    if (this.destroyed) return;
    const handle = this.#handle;
    handle.onread = FastSocket.#onRead;
    handle.useUserBuffer(READ_BUFFER);
    if (!this.#paused && this.#trySyncRead()) return;
    this.#startReading();
  }

  pause(): this {
    this.#paused = true;
    if (this.#reading) {
      this.#reading = false;
      if (!this.destroyed) this.#handle.readStop();
    }
    return this;
  }

  resume(): this {
    this.#paused = false;
    this.#startReading();
    return this;
  }

  isPaused(): boolean {
    return this.#paused;
  }

  /**
   * The sink keeps the next ~`bytes` bytes (a request body): read them into buffers of their
   * own (growing, see KEEP_BUFFER_FIRST) and deliver views of them with `transientReads` false.
   * Saves the sink's copy of every read and most allocations. Reads larger than 64 KiB follow,
   * as the target is the whole free part of the buffer.
   */
  keepReads(bytes: number): void {
    if (this.destroyed || this.readableEnded) return;
    this.#keepLeft = bytes >= KEEP_MIN ? bytes : 0;
    if (this.#keepLeft === 0) {
      if (this.#keepBuf !== null) {
        this.#keepBuf = null;
        this.#setReadTarget(READ_BUFFER);
      }
      return;
    }
    if (this.#keepBuf === null) this.#setReadTarget(this.#newKeepBuffer());
  }

  #newKeepBuffer(): Buffer {
    // Not zero-filled: every byte handed over is written by read(2) first; only the unread tail
    // of a body cut short stays uninitialised, reachable through `.buffer` alone (as with Node's
    // pooled `Buffer.allocUnsafe`).
    const size = this.#keepSize;
    this.#keepSize = Math.min(size * 2, KEEP_BUFFER_MAX);
    const buf = Buffer.allocUnsafeSlow(Math.min(this.#keepLeft, size));
    this.#keepBuf = buf;
    this.#keepFill = 0;
    return buf;
  }

  /** INTERNAL: `useUserBuffer` pushes a new stream listener on the handle each call (freed with
   * the handle), so it is called at most when kept reads start outside `onread`; from `onread`
   * the next target is its return value (src/stream_base.cc, CustomBufferJSListener::
   * OnStreamRead takes a returned buffer as the next read buffer). */
  #setReadTarget(target: Buffer): void {
    if (FastSocket.#delivering === this) this.#retarget = target;
    else if (!this.destroyed) this.#handle.useUserBuffer(target);
  }

  // ---- reads ------------------------------------------------------------------------------

  /**
   * One read(2) on the accepted fd before any epoll round trip: behind nginx the request is
   * usually in the socket buffer by the time the connection is accepted, so the response can be
   * written from this very callback. INTERNAL: relies on `handle.fd` (the libuv stream's fd),
   * on that fd being non-blocking (libuv accepts with accept4(SOCK_NONBLOCK) on Linux and sets
   * O_NONBLOCK elsewhere, src/unix/core.c uv__accept; a blocking fd would stall the event loop
   * here) and on libuv not reading from it until `readStart()`. A plain `read(2)` through
   * `fs.readSync` is the only synchronous read available (the handle API has none). Returns
   * true when the connection needs no `readStart()` (it ended, failed, or the sink paused it).
   */
  #trySyncRead(): boolean {
    if (tryRead.skip > 0) {
      tryRead.skip--;
      return false;
    }
    const fd = this.#handle.fd;
    if (typeof fd !== 'number' || fd < 0) return false;
    let nread: number;
    try {
      nread = readSync(fd, READ_BUFFER, 0, READ_BUFFER.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN' || code === 'EWOULDBLOCK') {
        tryRead.backoff = tryRead.backoff === 0 ? 1 : Math.min(tryRead.backoff * 2, 64);
        tryRead.skip = tryRead.backoff;
        return false;
      }
      this.#fail(err as Error);
      return true;
    }
    tryRead.backoff = 0;
    if (nread === 0) {
      this.#onEof();
      return true;
    }
    this.#onBytes(READ_BUFFER.subarray(0, nread), true);
    return this.destroyed || this.writableEnded || this.#paused;
  }

  #startReading(): void {
    if (this.#reading || this.#paused || this.#sink === null) return;
    if (this.destroyed || this.readableEnded) return;
    const err = this.#handle.readStart();
    if (err !== 0) {
      this.#fail(errnoError(err, 'read'));
      return;
    }
    this.#reading = true;
  }

  /** INTERNAL: C++ calls `handle.onread` with the count in `streamBaseState[kReadBytesOrError]`
   * and, with `useUserBuffer`, the bytes at offset 0 of that buffer (src/stream_base.cc,
   * CustomBufferJSListener). The return value is the next read target when it changes. */
  static readonly #onRead = function onRead(this: StreamHandle): Uint8Array | undefined {
    const socket = this[OWNER];
    if (socket === undefined) return undefined;
    const nread = socket.#ix.state[socket.#ix.kReadBytesOrError] ?? 0;
    if (nread > 0) return socket.#onReadBytes(nread);
    if (nread === socket.#ix.UV_EOF) socket.#onEof();
    else if (nread < 0) socket.#fail(errnoError(nread, 'read'));
    return undefined;
  };

  /** A read of `nread` bytes landed in the current target (READ_BUFFER or the kept buffer from
   * `#keepFill` on): deliver it, and return the next target if it is not the same region. */
  #onReadBytes(nread: number): Buffer | undefined {
    FastSocket.#delivering = this;
    this.#retarget = null;
    try {
      this.#deliverRead(this.#keepBuf, nread);
    } finally {
      FastSocket.#delivering = null;
    }
    const next = this.#retarget;
    this.#retarget = null;
    return next ?? undefined;
  }

  #deliverRead(kept: Buffer | null, nread: number): void {
    if (kept === null) {
      this.#onBytes(READ_BUFFER.subarray(0, nread), true);
    } else {
      const start = this.#keepFill;
      const end = start + nread;
      this.#keepFill = end;
      this.#keepLeft = this.#keepLeft > nread ? this.#keepLeft - nread : 0;
      // The next target is settled before the sink runs, so a keepReads() from it wins.
      if (end < kept.length) {
        this.#retarget = kept.subarray(end);
      } else if (this.#keepLeft >= KEEP_MIN) {
        this.#retarget = this.#newKeepBuffer();
      } else {
        this.#keepBuf = null;
        this.#keepLeft = 0;
        this.#retarget = READ_BUFFER;
      }
      this.#onBytes(kept.subarray(start, end), false);
    }
  }

  #onBytes(chunk: Buffer, transient: boolean): void {
    if (this.destroyed) return;
    this.bytesRead += chunk.length;
    this.#timer?.refresh();
    const sink = this.#sink;
    if (sink === null) return;
    this.transientReads = transient;
    sink.onData(chunk);
    this.transientReads = true;
  }

  #onEof(): void {
    // libuv stops reading by itself after EOF (uv__stream_eof).
    this.#reading = false;
    if (this.readableEnded || this.destroyed) return;
    this.readable = false;
    this.readableEnded = true;
    this.#sink?.onEnd();
    if (!this.destroyed) this.emit('end');
  }

  // ---- writes -----------------------------------------------------------------------------

  write(
    chunk: string | Uint8Array,
    encoding?: BufferEncoding | WriteCallback,
    callback?: WriteCallback,
  ): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (typeof chunk !== 'string' && !(chunk instanceof Uint8Array)) {
      throw Object.assign(new TypeError('The "chunk" argument must be a string or Uint8Array'), {
        code: 'ERR_INVALID_ARG_TYPE',
      });
    }
    // Writable's order: ending first, then destroyed; only a live socket emits the error.
    if (this.writableEnded || this.destroyed) {
      const err = this.writableEnded
        ? streamError('ERR_STREAM_WRITE_AFTER_END', 'write after end')
        : streamError('ERR_STREAM_DESTROYED', 'write after destroy');
      if (callback) process.nextTick(callback, err);
      if (!this.destroyed) process.nextTick(() => this.#emitError(err));
      return false;
    }
    this.#timer?.refresh();
    if (this._writableState.corked > 0) {
      this.#corkQueue.push({ chunk, encoding, callback });
      this.#corkedBytes += chunk.length;
    } else {
      this.#dispatch(chunk, encoding, callback);
    }
    const ok = this.#pendingBytes + this.#corkedBytes < this.writableHighWaterMark;
    if (!ok) this.#needDrain = true;
    return ok;
  }

  cork(): void {
    this._writableState.corked++;
  }

  uncork(): void {
    const state = this._writableState;
    if (state.corked === 0) return;
    state.corked--;
    if (state.corked === 0) this.#flushCorked();
  }

  end(
    chunk?: string | Uint8Array | (() => void),
    encoding?: BufferEncoding | (() => void),
    callback?: () => void,
  ): this {
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (chunk !== undefined && chunk !== null && !this.writableEnded) {
      this.write(chunk, encoding);
    }
    if (callback) {
      if (this.writableFinished) process.nextTick(callback);
      else this.once('finish', callback);
    }
    if (this.writableEnded || this.destroyed) return this;
    this.writableEnded = true;
    this.writable = false;
    // Writable#end uncorks fully, so does ServerResponse#end before calling us.
    if (this._writableState.corked > 0) {
      this._writableState.corked = 0;
      this.#flushCorked();
    }
    this.#maybeFinish();
    return this;
  }

  destroySoon(): void {
    this.end();
  }

  /**
   * Closes at once; writes still queued in libuv are cancelled. With `err`, `errored` is set and
   * 'error' emitted (when listened to) before 'close'.
   */
  destroy(err?: Error | null): this {
    if (this.destroyed) return this;
    this.#teardown(err ?? null);
    return this;
  }

  #flushCorked(): void {
    const queue = this.#corkQueue;
    if (queue.length === 0) return;
    this.#corkQueue = [];
    this.#corkedBytes = 0;
    if (this.destroyed) {
      for (const entry of queue) {
        if (entry.callback) {
          process.nextTick(entry.callback, streamError('ERR_STREAM_DESTROYED', 'destroyed'));
        }
      }
      return;
    }
    if (queue.length === 1) {
      const only = queue[0]!;
      this.#dispatch(only.chunk, only.encoding, only.callback);
      return;
    }
    if (queue.length === 2) {
      // ServerResponse's usual pair: its head (a latin1 string) and a small Buffer body. One
      // latin1 string write instead of a writev of mixed chunks (for which C++ mallocs storage
      // and converts the string anyway): latin1 maps bytes to chars one to one, so the body
      // goes out byte-exact.
      const [head, body] = queue as [QueuedWrite, QueuedWrite];
      if (
        head.encoding === 'latin1' &&
        typeof head.chunk === 'string' &&
        body.chunk instanceof Buffer &&
        body.chunk.length <= MERGE_BODY_MAX
      ) {
        const callbacks: WriteCallback[] = [];
        if (head.callback) callbacks.push(head.callback);
        if (body.callback) callbacks.push(body.callback);
        const req = this.#request();
        const merged = head.chunk + body.chunk.toString('latin1');
        this.#afterDispatch(req, this.#handle.writeLatin1String(req, merged), callbacks);
        return;
      }
    }
    let allBuffers = true;
    for (const entry of queue) {
      if (typeof entry.chunk === 'string') {
        allBuffers = false;
        break;
      }
    }
    const chunks: unknown[] = [];
    const callbacks: WriteCallback[] = [];
    for (const entry of queue) {
      if (entry.chunk.length === 0) {
        if (entry.callback) callbacks.push(entry.callback);
        continue;
      }
      chunks.push(entry.chunk);
      // INTERNAL: writev takes [chunk, encoding] pairs unless all chunks are buffers.
      if (!allBuffers) chunks.push(entry.encoding ?? 'utf8');
      if (entry.callback) callbacks.push(entry.callback);
    }
    if (chunks.length === 0) {
      this.#afterSyncWrite(callbacks);
      return;
    }
    const req = this.#request();
    req.data = chunks;
    this.#afterDispatch(req, this.#handle.writev(req, chunks, allBuffers), callbacks);
  }

  /** The spare write request: C++ touches the object only when a write goes asynchronous, so
   * one instance serves every synchronous write (src/stream_base.cc, StreamBase::Write). */
  static #spare: WriteReq | null = null;

  #request(): WriteReq {
    let req = FastSocket.#spare;
    if (req === null) {
      // INTERNAL: the request must be a stream_wrap.WriteWrap (C++ attaches its state to it).
      req = new this.#ix.WriteWrap();
      req.oncomplete = FastSocket.#onWriteComplete;
      req.owner = null;
      req.bytes = 0;
      req.data = null;
      req.callbacks = null;
      FastSocket.#spare = req;
    }
    return req;
  }

  #dispatch(
    chunk: string | Uint8Array,
    encoding: BufferEncoding | undefined,
    callback: WriteCallback | undefined,
  ): void {
    if (chunk.length === 0) {
      // Nothing to send (ServerResponse#end writes '' with its finish callback): the callback
      // still runs in order, after every write before it.
      this.#afterSyncWrite(callback ? [callback] : null);
      return;
    }
    const handle = this.#handle;
    const req = this.#request();
    let status: number;
    // INTERNAL: the write calls return 0 or a negative libuv error; they try the write at once
    // (uv_try_write) and queue the rest, reporting `streamBaseState[kBytesWritten]` (request
    // size) and `[kLastWriteWasAsync]` (1 if queued, `oncomplete` will follow).
    if (typeof chunk !== 'string') {
      req.data = chunk;
      status = handle.writeBuffer(req, chunk);
    } else {
      switch (encoding) {
        case undefined:
        case 'utf8':
        case 'utf-8':
          status = handle.writeUtf8String(req, chunk);
          break;
        case 'latin1':
        case 'binary':
          status = handle.writeLatin1String(req, chunk);
          break;
        case 'ascii':
          status = handle.writeAsciiString(req, chunk);
          break;
        case 'ucs2':
        case 'ucs-2':
        case 'utf16le':
        case 'utf-16le':
          status = handle.writeUcs2String(req, chunk);
          break;
        default: {
          const bytes = Buffer.from(chunk, encoding);
          req.data = bytes;
          status = handle.writeBuffer(req, bytes);
        }
      }
    }
    this.#afterDispatch(req, status, callback ? [callback] : null);
  }

  #afterDispatch(req: WriteReq, status: number, callbacks: WriteCallback[] | null): void {
    const ix = this.#ix;
    const bytes = ix.state[ix.kBytesWritten] ?? 0;
    const queued = ix.state[ix.kLastWriteWasAsync] !== 0;
    if (status !== 0) {
      // The request object may have been attached to and disposed of: never reuse it.
      FastSocket.#spare = null;
      req.data = null;
      const err = errnoError(status, 'write');
      if (callbacks) for (const cb of callbacks) process.nextTick(cb, err);
      this.#fail(err);
      return;
    }
    this.bytesWritten += bytes;
    if (!queued) {
      req.data = null;
      this.#afterSyncWrite(callbacks);
      return;
    }
    FastSocket.#spare = null;
    req.owner = this;
    req.bytes = bytes;
    req.callbacks = callbacks;
    this.#pendingReqs++;
    this.#pendingBytes += bytes;
    this.#lastReq = req;
  }

  /** Callbacks of a write that completed at once run on nextTick (Writable does the same), or
   * after the last queued write when some are still in flight, to keep their order. */
  #afterSyncWrite(callbacks: WriteCallback[] | null): void {
    if (callbacks !== null) {
      const last = this.#lastReq;
      if (this.#pendingReqs > 0 && last !== null) {
        if (last.callbacks === null) last.callbacks = callbacks;
        else last.callbacks.push(...callbacks);
      } else {
        for (const cb of callbacks) process.nextTick(cb, null);
      }
    }
    // A write refused while corked (ServerResponse corks every write until nextTick) may flush
    // without ever going asynchronous: 'drain' is still owed, and must not fire inside write().
    if (this.#needDrain && this.#pendingBytes + this.#corkedBytes === 0) {
      this.#needDrain = false;
      process.nextTick(() => {
        if (!this.destroyed) this.emit('drain');
      });
    }
    this.#maybeFinish();
  }

  /** INTERNAL: C++ calls `req.oncomplete(status, handle, error)` with `this` = req when a
   * queued write finished; `status` is UV_ECANCELED for writes dropped by close. */
  static readonly #onWriteComplete = function onWriteComplete(this: WriteReq, status: number) {
    const socket = this.owner;
    const callbacks = this.callbacks;
    this.owner = null;
    this.callbacks = null;
    this.data = null;
    if (socket === null) return;
    socket.#pendingReqs--;
    socket.#pendingBytes -= this.bytes;
    if (socket.#lastReq === this) socket.#lastReq = null;
    if (status < 0) {
      const err =
        status === socket.#ix.UV_ECANCELED && socket.destroyed
          ? streamError('ERR_STREAM_DESTROYED', 'socket destroyed before the write completed')
          : errnoError(status, 'write');
      if (callbacks) for (const cb of callbacks) cb(err);
      socket.#fail(err);
      return;
    }
    if (callbacks) for (const cb of callbacks) cb(null);
    if (socket.destroyed) return;
    socket.#timer?.refresh();
    if (socket.#needDrain && socket.#pendingBytes + socket.#corkedBytes === 0) {
      socket.#needDrain = false;
      socket.emit('drain');
    }
    socket.#maybeFinish();
  };

  /** After `end()`, once libuv has taken every byte: 'finish', then close the handle. No
   * shutdown(2) and no wait for the peer's EOF: nginx reads a uwsgi response until close, and
   * the protocol layer calls end() only after reading the whole declared body (closing with
   * unread input would make the kernel send RST). */
  #maybeFinish(): void {
    if (!this.writableEnded || this.writableFinished || this.destroyed) return;
    if (this.#pendingReqs > 0 || this.#corkQueue.length > 0) return;
    this.writableFinished = true;
    this.emit('finish');
    this.#teardown(null);
  }

  // ---- teardown ---------------------------------------------------------------------------

  /** A transport failure (read error, write EPIPE/ECONNRESET): the sink hears it first, then
   * the socket is destroyed with it. */
  #fail(err: Error): void {
    if (this.destroyed) return;
    const sink = this.#sink;
    if (sink !== null && !this.#sinkFailed) {
      this.#sinkFailed = true;
      sink.onError(err);
    }
    this.#teardown(err);
  }

  #teardown(err: Error | null): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    this.#reading = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (err !== null) this.errored = err;
    this.#keepBuf = null;
    this.#keepLeft = 0;
    const queued = this.#corkQueue;
    if (queued.length > 0) {
      this.#corkQueue = [];
      this.#corkedBytes = 0;
      const destroyed = streamError('ERR_STREAM_DESTROYED', 'destroyed');
      for (const entry of queued) if (entry.callback) process.nextTick(entry.callback, destroyed);
    }
    const handle = this.#handle;
    if (!this.#handleClosed) {
      this.#handleClosed = true;
      // INTERNAL: HandleWrap#close runs uv_close (the fd is closed now; queued writes complete
      // with UV_ECANCELED) and calls back once libuv has released the handle.
      handle.close(FastSocket.#onHandleClose);
    }
    if (err !== null) process.nextTick(() => this.#emitError(err));
  }

  /** INTERNAL: HandleWrap#close stores the callback as the handle's `onclose` and calls it
   * with `this` = the handle once libuv released it (src/handle_wrap.cc, OnClose): one shared
   * function instead of a closure per connection. */
  static readonly #onHandleClose = function onHandleClose(this: StreamHandle): void {
    const socket = this[OWNER];
    // Assigned, not deleted: `delete` turns the handle into a slow dictionary-mode object.
    this[OWNER] = undefined;
    if (socket === undefined) return;
    socket.closed = true;
    socket.#sink?.onClose?.();
    socket.emit('close', socket.errored !== null);
  };

  #emitError(err: Error): void {
    this._hadError = true;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  // ---- net.Socket odds and ends -----------------------------------------------------------

  get writableLength(): number {
    return this.#pendingBytes + this.#corkedBytes;
  }

  get writableNeedDrain(): boolean {
    return this.#needDrain;
  }

  get writableCorked(): number {
    return this._writableState.corked;
  }

  get readyState(): string {
    if (this.destroyed) return 'closed';
    if (this.readableEnded) return this.writableEnded ? 'closed' : 'writeOnly';
    return this.writableEnded ? 'readOnly' : 'open';
  }

  /** Inactivity timeout as net.Socket: 'timeout' after `msecs` without reads or writes; the
   * socket is not closed by it. 0 disables. */
  setTimeout(msecs: number, callback?: () => void): this {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.timeout = msecs;
    if (msecs > 0 && !this.destroyed) {
      this.#timer = setTimeout(() => this.emit('timeout'), msecs).unref();
    }
    if (callback) {
      if (msecs > 0) this.once('timeout', callback);
      else this.removeListener('timeout', callback);
    }
    return this;
  }

  setNoDelay(noDelay = true): this {
    if (this.#isTcp && !this.destroyed) this.#handle.setNoDelay?.(noDelay);
    return this;
  }

  setKeepAlive(enable = false, initialDelayMs = 0): this {
    if (this.#isTcp && !this.destroyed) {
      this.#handle.setKeepAlive?.(enable, Math.floor(initialDelayMs / 1000));
    }
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  #peer(): AddressOut {
    if (this.#remote === undefined) {
      const out: AddressOut = {};
      if (this.#isTcp && !this.destroyed) this.#handle.getpeername?.(out);
      this.#remote = out;
    }
    return this.#remote;
  }

  /** The TCP peer (the front end) or undefined on a unix socket. The bridge may assign the
   * real client's REMOTE_ADDR/REMOTE_PORT here (BRIDGE.md, request side). */
  get remoteAddress(): string | undefined {
    return this.#remoteOverride?.address ?? this.#peer().address;
  }

  set remoteAddress(value: string | undefined) {
    this.#override().address = value;
  }

  get remotePort(): number | undefined {
    return this.#remoteOverride?.port ?? this.#peer().port;
  }

  set remotePort(value: number | undefined) {
    this.#override().port = value;
  }

  get remoteFamily(): string | undefined {
    return this.#remoteOverride?.family ?? this.#peer().family;
  }

  set remoteFamily(value: string | undefined) {
    this.#override().family = value;
  }

  #override(): RemoteOverride {
    this.#remoteOverride ??= { address: undefined, port: undefined, family: undefined };
    return this.#remoteOverride;
  }

  address(): AddressOut {
    const out: AddressOut = {};
    if (this.#isTcp && !this.destroyed) this.#handle.getsockname?.(out);
    return out;
  }

  get localAddress(): string | undefined {
    return this.address().address;
  }

  get localPort(): number | undefined {
    return this.address().port;
  }
}
