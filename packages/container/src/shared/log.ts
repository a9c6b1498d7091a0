/**
 * The container's logger: pino, JSON lines by default (one object per line on stdout, what log
 * shippers and the e2e tests read), pino-pretty for humans on a TTY. Library code never writes
 * to the console; everything goes through an injected `Logger`.
 */
import { closeSync, fstatSync, openSync, readlinkSync, writeSync } from 'node:fs';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { AccessFormat, formatMicros, jsonString } from './access-format.ts';
import { forgetSocketStat } from './stat-buffer.ts';

export { formatMicros };

/** The `log:` section of the config (re-exported by `config/types.ts`). */
export interface LogConfig {
  /** One JSON line per request. Default true. */
  readonly access: boolean;
  /** `auto` (default): pretty on a TTY, JSON lines otherwise. */
  readonly format: 'auto' | 'json' | 'pretty';
  /** pino level; default `info`. */
  readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Absolute path of a log file (appended; SIGUSR1 reopens it). Absent (default): stdout. */
  readonly file?: string;
}

/** The logger type used across the container (a pino logger or any child of one). */
export type Logger = pino.Logger;

/**
 * The environment variable that names a vassal (set by the emperor, inherited by the vassal's
 * workers); its value is the `vassal` field of every record.
 */
export const VASSAL_ENV = 'UWSGI_TS_VASSAL';

export interface CreateLoggerOptions {
  /** Destination; default `process.stdout` (or `log.file` when the config sets one). */
  readonly stdout?: NodeJS.WritableStream & { readonly isTTY?: boolean | undefined };
  /**
   * Several processes write to the same stdout (a master and its workers): keep every batched
   * write within PIPE_BUF (4096 bytes), which the kernel writes to a pipe in one piece, so lines
   * of different processes never interleave.
   */
  readonly sharedOutput?: boolean;
  /** Fields on every record (e.g. `{ worker: 2 }`); `pid` is always there. */
  readonly bindings?: Readonly<Record<string, string | number>>;
}

/**
 * A log file opened for appending, written synchronously (a crash loses nothing) and reopened
 * on `reopenLogFiles()` (SIGUSR1 after logrotate moved it). O_APPEND makes each write land at
 * the end even when several processes share the file.
 */
class LogFile {
  readonly path: string;
  readonly isTTY = false;
  #fd: number;

  constructor(path: string) {
    this.path = path;
    this.#fd = openSync(path, 'a', 0o640);
    logFiles.add(this);
  }

  write(chunk: string | Uint8Array): boolean {
    if (typeof chunk === 'string') writeSync(this.#fd, chunk);
    else writeSync(this.#fd, chunk, 0, chunk.length);
    return true;
  }

  reopen(): void {
    const next = openSync(this.path, 'a', 0o640);
    const previous = this.#fd;
    this.#fd = next;
    closeSync(previous);
  }
}

const logFiles = new Set<LogFile>();

/**
 * Reopens every log file of this process (SIGUSR1): after logrotate renamed a file, records go
 * to a new file at the configured path. Returns how many were reopened.
 */
export function reopenLogFiles(): number {
  for (const file of logFiles) file.reopen();
  return logFiles.size;
}

/**
 * Builds the root logger for `log`. `format: 'auto'` is pretty only when the destination is a
 * TTY. pino-pretty runs as a synchronous stream in this process, not as a worker-thread
 * transport: no extra thread per container, and the last lines before an exit are not lost.
 * JSON lines go through a {@link LineWriter}, so `accessLog()` can batch access records.
 */
export function createLogger(log: LogConfig, options: CreateLoggerOptions = {}): Logger {
  const stdout =
    options.stdout ??
    (log.file === undefined
      ? process.stdout
      : (new LogFile(log.file) as unknown as NodeJS.WritableStream & { isTTY: boolean }));
  const isPretty = log.format === 'pretty' || (log.format === 'auto' && stdout.isTTY === true);
  // Under an emperor every record of a vassal (master and workers) names it.
  const vassal = process.env[VASSAL_ENV];
  const bindings = vassal === undefined ? options.bindings : { vassal, ...options.bindings };
  const base = {
    level: log.level,
    base: { pid: process.pid, ...bindings },
    serializers: { err: serializeError },
  };
  if (isPretty) {
    // Required on first use: pino-pretty costs 80-110 ms of a worker's boot, and JSON is the
    // format of every non-TTY output (workers, services, tests).
    const pretty = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    return pino(base, pretty({ destination: stdout, sync: true, colorize: stdout.isTTY === true }));
  }
  const writer = new LineWriter(
    stdout,
    options.sharedOutput === true && isPipe(stdout) ? PIPE_BUF : BATCH_BYTES,
  );
  const logger = pino(base, writer);
  writers.set(logger, { writer, level: log.level, bindings });
  return logger;
}

/**
 * One access record: a request dispatch settled, or an answer the container gave without
 * dispatch (a refused connection, a packet it could not read, 400/411/413... before the app).
 * Built by {@link accessRecord} only, so every record has the same fields in the same order.
 */
export interface AccessRecord {
  /** null when the container answered before it could read one (a framing error, a refusal). */
  readonly method: string | null;
  /** The full request target as received (before mount stripping); null as for `method`. */
  readonly url: string | null;
  /** The status of the response head written to the connection; 0 when no byte of it was. */
  readonly status: number;
  /** Response bytes written to the connection (head included). */
  readonly bytes: number;
  /** Time to the end of the response, in whole microseconds (logged as `durationMs`). */
  readonly durationUs: number;
  readonly mount: string | null;
  readonly remoteAddress: string | null;
  readonly listener: string;
  /** The connection closed (or a write to it failed) before the response finished. */
  readonly aborted: boolean;
  /**
   * Why the container closed the connection without a (complete) response (logged only when
   * not null); see {@link AccessError}.
   */
  readonly error: AccessError | null;
}

/**
 * `refused`: the connection was closed at accept (`limits.maxConnections` reached);
 * `protocol`: the container closed it without a response because it could not read a request
 * from it (a uwsgi framing error, an unsupported modifier1, the head deadline, an HTTP CONNECT);
 * `shutdown`: the container closed it at a forced stop (the grace period ran out, or a stop
 * without one) before its response had finished.
 */
export type AccessError = 'refused' | 'protocol' | 'shutdown';

/**
 * Shared by a container's dispatcher and listeners: set (never cleared) when the container
 * destroys the connections still open at the end of its stop, so the records of the requests
 * cut off say `error: "shutdown"`.
 */
export interface ShutdownState {
  forced: boolean;
}

/**
 * The one place the fields of an access record are listed (dispatch and the listeners' own
 * answers both build theirs here). Positional, so dispatch's call allocates the record and
 * nothing else, and every record has one shape.
 */
export function accessRecord(
  method: string | null,
  url: string | null,
  status: number,
  bytes: number,
  durationUs: number,
  mount: string | null,
  remoteAddress: string | null,
  listener: string,
  aborted: boolean,
  error: AccessError | null,
): AccessRecord {
  return { method, url, status, bytes, durationUs, mount, remoteAddress, listener, aborted, error };
}

/** Microseconds since `started` (a `performance.now()` reading), as access records take them. */
export function microsSince(started: number): number {
  return Math.round((performance.now() - started) * 1000);
}

/** Where dispatch and the listeners send one `"msg":"request"` record per request. */
export interface AccessLog {
  write(record: AccessRecord): void;
}

/**
 * The access log of `logger`: records with `component: 'access'` and `msg: 'request'`.
 *
 * When `logger` came from `createLogger` with JSON output, a record is written here, straight
 * to the line pino would print for `child({ component: 'access' }).info(record, 'request')`
 * (same keys, same order, `aborted` only when true, `error` only when set), as bytes into a
 * batch buffer (access-format.ts) written at most every {@link FLUSH_MS} (or per
 * {@link BATCH_BYTES}) instead of with a write(2) per request. Going through pino cost 4-5 µs
 * per request behind nginx (its generic serialiser, then a string batch converted on flush);
 * a line string built by a template and encoded into the batch cost ~6,600 instructions a
 * record, the bytes written in place ~1/3 of that (bench/README.md). Every other record flushes
 * the batch before it is written, so the output keeps the order of the calls; `flushLogger()`
 * (the container's `close()`) and process exit write out what is left. What a crash can lose is
 * the access records of the last {@link FLUSH_MS}, never a warning or an error. The logger's
 * level is read per record, so raising it above `info` at run time silences the access log as
 * it would with pino. Other loggers (pretty output, one a caller injected) get a pino child.
 */
export function accessLog(logger: Logger): AccessLog {
  const known = writers.get(logger);
  if (known === undefined) {
    const child = logger.child({ component: 'access' });
    return {
      write(r) {
        const fields: Record<string, unknown> = {
          method: r.method,
          url: r.url,
          status: r.status,
          bytes: r.bytes,
          durationMs: r.durationUs / 1000,
          mount: r.mount,
          remoteAddress: r.remoteAddress,
          listener: r.listener,
        };
        if (r.aborted) fields.aborted = true;
        if (r.error !== null) fields.error = r.error;
        child.info(fields, 'request');
      },
    };
  }
  const writer = known.writer;
  let extra = '';
  for (const [key, value] of Object.entries(known.bindings ?? {})) {
    extra += `,${jsonString(key)}:${typeof value === 'number' ? value : jsonString(value)}`;
  }
  const format = new AccessFormat(`,"pid":${process.pid}${extra},"component":"access"`);
  return {
    write(r) {
      // pino's own check (levelVal is the numeric level; info is 30).
      if (logger.levelVal > 30) return;
      const batch = writer.room(format.prepare(r, Date.now()));
      if (batch === null) writer.writeDeferred(format.take());
      else writer.commit(format.write(batch, writer.used));
    },
  };
}

/** Writes out access records still batched for `logger` (no-op for other loggers). */
export function flushLogger(logger: Logger): void {
  writers.get(logger)?.writer.flush();
}

const writers = new WeakMap<
  Logger,
  {
    writer: LineWriter;
    level: LogConfig['level'];
    bindings: Readonly<Record<string, string | number>> | undefined;
  }
>();

/** Writers holding a batch, for the process 'exit' hook (removed again once flushed). */
const batching = new Set<LineWriter>();

function flushAll(): void {
  for (const writer of batching) writer.flush();
}

// One listener per process, whatever the number of loggers: 'exit' handlers run synchronously,
// and a synchronous stdout (file, pipe, TTY on Linux) takes what is batched. Installed here, once,
// rather than at the first batch: added lazily it reached EventEmitter#addListener after that
// call site had warmed up on the request path's emitters, and the extra receiver shape made its
// property loads generic (+555 instructions per request in a worker, bench/README.md
// "Instructions per request: the worker against the single-process run").
process.once('exit', flushAll);

/**
 * A pino destination over a writable stream. `write` passes a line on at once (after any
 * batched lines); `writeDeferred` appends (UTF-8) to a batch buffer written {@link FLUSH_MS}
 * later, or at once when the next line might not fit in {@link BATCH_BYTES}. Each batch is a
 * buffer of its own, handed to the stream as is (a stream may keep it until written).
 */
class LineWriter {
  readonly #out: NodeJS.WritableStream;
  /** Largest batch handed to one write. */
  readonly #limit: number;
  #batch: Buffer | null = null;
  #used = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #onTimer = () => {
    this.#timer = undefined;
    this.flush();
  };

  constructor(out: NodeJS.WritableStream, limit: number) {
    this.#out = out;
    this.#limit = limit;
  }

  write(line: string): boolean {
    if (this.#batch !== null) this.flush();
    return this.#out.write(line);
  }

  writeDeferred(line: string): boolean {
    // At most 3 bytes per UTF-16 code unit.
    const batch = this.room(line.length * 3);
    if (batch === null) {
      this.flush();
      return this.#out.write(line);
    }
    this.#used += batch.write(line, this.#used, 'utf8');
    return true;
  }

  /**
   * The batch, with room for `most` bytes from {@link used} on (the batch is written out first
   * when it has not); null when `most` is over the batch size. Bytes written there are added by
   * {@link commit}.
   */
  room(most: number): Buffer | null {
    if (most > this.#limit) return null;
    if (this.#batch !== null && this.#used + most > this.#limit) this.flush();
    let batch = this.#batch;
    if (batch === null) {
      batch = Buffer.allocUnsafeSlow(this.#limit);
      this.#batch = batch;
      this.#used = 0;
      batching.add(this);
      // Unreferenced: a pending batch must not keep a finished process alive; 'exit' flushes it.
      this.#timer = setTimeout(this.#onTimer, FLUSH_MS).unref();
    }
    return batch;
  }

  /** Bytes of the batch in use. */
  get used(): number {
    return this.#used;
  }

  /** The batch holds bytes up to `used` (after writing into {@link room}). */
  commit(used: number): void {
    this.#used = used;
  }

  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    batching.delete(this);
    const batch = this.#batch;
    if (batch === null) return;
    this.#batch = null;
    if (this.#used > 0) this.#out.write(batch.subarray(0, this.#used));
  }
}

/** Longest an access record waits in a batch (ms). */
const FLUSH_MS = 100;

/** Size of a batch buffer (bytes; an access record is ~250). */
const BATCH_BYTES = 64 * 1024;

/** Largest write(2) to a pipe that the kernel never splits (POSIX PIPE_BUF on Linux). */
const PIPE_BUF = 4096;

/**
 * Whether `out` is a pipe or socket, where writes over PIPE_BUF from several processes can
 * interleave. A regular file is not: one write(2) on a shared file description (an inherited
 * stdout redirected to a file, or `log.file` opened O_APPEND) lands whole, so batches stay large.
 */
function isPipe(out: NodeJS.WritableStream): boolean {
  const fd = (out as { fd?: unknown }).fd;
  if (typeof fd !== 'number') return !(out instanceof LogFile);
  // Linux: the fd's link names its kind without a stat (see shared/stat-buffer.ts).
  try {
    const link = readlinkSync(`/proc/self/fd/${fd}`);
    return link.startsWith('pipe:') || link.startsWith('socket:');
  } catch {
    // No procfs: stat it.
  }
  try {
    const st = fstatSync(fd);
    return st.isFIFO() || st.isSocket();
  } catch {
    return true;
  } finally {
    forgetSocketStat();
  }
}

/**
 * pino's error serializer, except for the message of a ContainerError that already says what
 * its cause was ("cannot load app x.mjs: ... missing ) ..."): pino would append the cause's
 * message again. Any other keeps pino's message with its causes; the stacks stay in `stack`.
 */
function serializeError(err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error);
  const cause = err instanceof Error ? err.cause : undefined;
  if (
    err instanceof Error &&
    err.name === 'ContainerError' &&
    cause instanceof Error &&
    err.message.includes(cause.message) &&
    out !== null &&
    typeof out === 'object'
  ) {
    (out as { message: string }).message = err.message;
  }
  return out;
}
