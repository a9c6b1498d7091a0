/**
 * Every Node internal the `fast` transport relies on, in one place: the shapes of the objects it
 * drives (declared with the Node source each member comes from; only the members used are
 * declared) and the start-up probe that checks all of them, so that `createFastTransport()`
 * (listen.ts) can return `{ unavailable }` when anything differs and the selector falls back to
 * the `net` transport. Each use elsewhere (listen.ts, socket.ts) is marked `INTERNAL:`.
 *
 * Sources are Node 20-24's: src/stream_wrap.cc (`WriteWrap`, `streamBaseState`, the
 * `LibuvStreamWrap` base of `Pipe` and `TCP`), src/stream_base.cc and src/stream_base.h (the read
 * and write methods, `onread`, `fd`, the state indices), src/pipe_wrap.cc, src/tcp_wrap.cc,
 * src/handle_wrap.cc (`close`), src/connection_wrap.cc (`onconnection`). Stable across the
 * Node 20, 22 and 24 lines (checked by the transport-fast tests on 20 and 24), but nothing
 * promises that: the probe is the safety net, the `net` transport the fallback.
 */
import { getSystemErrorMap } from 'node:util';
import type { FastSocket } from './socket.ts';

/** A write request object: must be a `WriteWrap` instance (src/stream_wrap.cc; C++ attaches its
 * state to it, src/stream_base.cc StreamBase::Write). */
export interface WriteReq {
  /** Called by C++ when an asynchronous write finished: `(status, handle, error)`
   * (src/stream_base.cc, WriteWrap::OnDone ->
   * ReportWritesToJSStreamListener::OnStreamAfterReqFinished). */
  oncomplete: (this: WriteReq, status: number) => void;
  owner: FastSocket | null;
  /** Whole request size, counted in `writableLength` until completion (like Writable). */
  bytes: number;
  /** Keeps written Buffers alive while libuv still points at them (C++ does not copy them). */
  data: unknown;
  /** User callbacks to run when this request completes, in write order. */
  callbacks: WriteCallback[] | null;
}

export type WriteCallback = (err?: Error | null) => void;

/** `LibuvStreamWrap` (src/stream_wrap.cc; base of `Pipe`, src/pipe_wrap.cc, and `TCP`,
 * src/tcp_wrap.cc) with the methods StreamBase::AddMethods installs (src/stream_base.cc), plus
 * the TCP-only members. */
export interface StreamHandle {
  /** Called by C++ with `this` = handle; byte count or error in `streamBaseState`. With a user
   * buffer, a Uint8Array returned from it is where the next read lands (src/stream_base.cc:
   * an accessor on the prototype, CallJSOnreadMethod; CustomBufferJSListener::OnStreamRead). */
  onread:
    | ((this: StreamHandle, arrayBuffer: ArrayBuffer | undefined) => Uint8Array | undefined)
    | null;
  /** uv_read_start / uv_read_stop; 0 or a negative libuv error (src/stream_wrap.cc). */
  readStart(): number;
  readStop(): number;
  /** Reads land in this buffer from offset 0 instead of a fresh ArrayBuffer per read
   * (src/stream_base.cc, UseUserBuffer pushes a CustomBufferJSListener). */
  useUserBuffer(buffer: Uint8Array): void;
  /** The writers (src/stream_base.cc, WriteBuffer, WriteString<enc>, Writev): 0 or a negative
   * libuv error; they try uv_try_write first and queue the rest, reporting the request size in
   * `streamBaseState[kBytesWritten]` and whether it was queued in `[kLastWriteWasAsync]`. */
  writeBuffer(req: WriteReq, data: Uint8Array): number;
  writeLatin1String(req: WriteReq, data: string): number;
  writeUtf8String(req: WriteReq, data: string): number;
  writeAsciiString(req: WriteReq, data: string): number;
  writeUcs2String(req: WriteReq, data: string): number;
  /** `chunks` is Buffers only when `allBuffers`, else `[chunk, encoding, chunk, encoding...]`. */
  writev(req: WriteReq, chunks: unknown[], allBuffers: boolean): number;
  /** uv_close; the callback becomes the handle's `onclose` (src/handle_wrap.cc, HandleWrap::Close,
   * HandleWrap::OnClose). */
  close(callback: () => void): void;
  /** The libuv stream's fd (src/stream_base.cc, GetFD accessor; LibuvStreamWrap::GetFD). */
  readonly fd: number;
  /** TCP only (src/tcp_wrap.cc): fill `out` with address, port, family. */
  getpeername?(out: AddressOut): number;
  getsockname?(out: AddressOut): number;
  setNoDelay?(enable: boolean): number;
  setKeepAlive?(enable: boolean, delaySeconds: number): number;
  [OWNER]?: FastSocket | undefined;
}

/** What `getpeername` / `getsockname` fill in (src/tcp_wrap.cc, AddressToJS). */
export interface AddressOut {
  address?: string;
  port?: number;
  family?: string;
}

/** The listening handle of a `net.Server` (`Pipe` or `TCP` in SERVER mode): C++ calls its
 * `onconnection(status, clientHandle)` per accepted connection (src/connection_wrap.cc,
 * ConnectionWrap::OnConnection). */
export interface ServerHandle {
  onconnection: (status: number, client: StreamHandle | undefined) => void;
}

/** What the probe found: everything the transport needs beyond the handles themselves. */
export interface Internals {
  /** stream_wrap.WriteWrap (src/stream_wrap.cc). */
  readonly WriteWrap: new () => WriteReq;
  /** stream_wrap.streamBaseState (src/stream_wrap.cc; fields in src/stream_base.h,
   * StreamBaseStateFields): read counts and write results of the last call. */
  readonly state: Int32Array;
  readonly kReadBytesOrError: number;
  readonly kBytesWritten: number;
  readonly kLastWriteWasAsync: number;
  /** [Pipe, TCP] (src/pipe_wrap.cc, src/tcp_wrap.cc): `instanceof` checks only. */
  readonly handleClasses: ReadonlyArray<abstract new (...args: never[]) => unknown>;
  /** libuv error numbers, from the public errno map (`util.getSystemErrorMap()`). */
  readonly UV_EOF: number;
  readonly UV_ECANCELED: number;
}

/** The socket shim that owns a handle, stored on the handle for the shared callbacks. */
export const OWNER = Symbol('uwsgi-ts.fast.owner');

const HANDLE_METHODS = [
  'readStart',
  'readStop',
  'useUserBuffer',
  'writeBuffer',
  'writeLatin1String',
  'writeUtf8String',
  'writeAsciiString',
  'writeUcs2String',
  'writev',
  'close',
] as const;

let internals: Internals | undefined;
let probeFailure: string | undefined;

/**
 * The internals, or why they cannot be used here. Probing happens once per process; later calls
 * return the same verdict.
 */
export function loadInternals(): Internals | string {
  if (internals === undefined && probeFailure === undefined) {
    const result = probe();
    if (typeof result === 'string') probeFailure = result;
    else internals = result;
  }
  return internals ?? probeFailure ?? 'probe failed';
}

/**
 * Reads the internals once. INTERNAL: `process.binding()` still serves `stream_wrap`,
 * `pipe_wrap` and `tcp_wrap` on Node 20-24 (they are on its allow list, lib/internal/bootstrap/
 * realm.js) without a runtime warning; only `--pending-deprecation` turns it into a one-time
 * DEP0111 warning (lib/internal/bootstrap/node.js wraps it with `deprecate`). We set
 * `process.noDeprecation` for the duration of these three synchronous calls only, so users never
 * see a warning caused by the container; the cost is that a later `process.binding()` call in
 * user code under `--pending-deprecation` will not warn either (the wrapper warns once). With the
 * permission model (`--permission`) `process.binding` throws ERR_ACCESS_DENIED: reported as
 * unavailable. There is no other way to obtain `WriteWrap` and `streamBaseState`: `net` keeps
 * them in internal modules.
 */
function probe(): Internals | string {
  if (process.platform === 'win32') return 'stream handles on Windows are named pipes/IOCP';
  const binding = (process as unknown as { binding?: (name: string) => unknown }).binding;
  if (typeof binding !== 'function') return 'process.binding() is not available';
  let streamWrap: Record<string, unknown>;
  let pipeWrap: Record<string, unknown>;
  let tcpWrap: Record<string, unknown>;
  // `--no-deprecation` defines the property read-only (and already silences the warning).
  let silenced = false;
  if (process.noDeprecation !== true) {
    try {
      process.noDeprecation = true;
      silenced = true;
    } catch {
      // Read-only and not true: nothing we may change; at worst one DEP0111 line is printed.
    }
  }
  try {
    streamWrap = binding.call(process, 'stream_wrap') as Record<string, unknown>;
    pipeWrap = binding.call(process, 'pipe_wrap') as Record<string, unknown>;
    tcpWrap = binding.call(process, 'tcp_wrap') as Record<string, unknown>;
  } catch (err) {
    return `process.binding() refused: ${(err as { code?: string }).code ?? String(err)}`;
  } finally {
    // Without the flag the property is absent: leave it so.
    if (silenced) delete (process as { noDeprecation?: boolean }).noDeprecation;
  }
  const { WriteWrap, streamBaseState: state } = streamWrap;
  if (typeof WriteWrap !== 'function') return 'stream_wrap.WriteWrap is missing';
  if (!(state instanceof Int32Array)) return 'stream_wrap.streamBaseState is not an Int32Array';
  const index = (name: string): number | string => {
    const value = streamWrap[name];
    return typeof value === 'number' &&
      Number.isInteger(value) &&
      value >= 0 &&
      value < state.length
      ? value
      : `stream_wrap.${name} is missing or out of range`;
  };
  const kReadBytesOrError = index('kReadBytesOrError');
  const kBytesWritten = index('kBytesWritten');
  const kLastWriteWasAsync = index('kLastWriteWasAsync');
  if (typeof kReadBytesOrError === 'string') return kReadBytesOrError;
  if (typeof kBytesWritten === 'string') return kBytesWritten;
  if (typeof kLastWriteWasAsync === 'string') return kLastWriteWasAsync;
  const handleClasses: Array<abstract new (...args: never[]) => unknown> = [];
  for (const [module, name] of [
    [pipeWrap, 'Pipe'],
    [tcpWrap, 'TCP'],
  ] as const) {
    const ctor = module[name];
    if (typeof ctor !== 'function') return `${name} handle class is missing`;
    const proto = (ctor as { prototype: Record<string, unknown> }).prototype;
    for (const method of HANDLE_METHODS) {
      if (typeof proto[method] !== 'function') return `${name}.prototype.${method} is missing`;
    }
    // `onread` is an accessor on LibuvStreamWrap.prototype that C++ reads on every read.
    if (!('onread' in proto)) return `${name}.prototype.onread is missing`;
    handleClasses.push(ctor as abstract new (...args: never[]) => unknown);
  }
  // libuv error numbers by name, through the public errno map (UV_EOF is -4095 on every platform
  // libuv supports, but the map is the authority).
  let UV_EOF: number | undefined;
  let UV_ECANCELED: number | undefined;
  for (const [errno, [name]] of getSystemErrorMap()) {
    if (name === 'EOF') UV_EOF = errno;
    else if (name === 'ECANCELED') UV_ECANCELED = errno;
  }
  if (UV_EOF === undefined || UV_ECANCELED === undefined) return 'UV_EOF/UV_ECANCELED unknown';
  return {
    WriteWrap: WriteWrap as new () => WriteReq,
    state,
    kReadBytesOrError,
    kBytesWritten,
    kLastWriteWasAsync,
    handleClasses,
    UV_EOF,
    UV_ECANCELED,
  };
}
