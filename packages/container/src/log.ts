/**
 * The container's logger: pino, JSON lines by default (one object per line on stdout, what log
 * shippers and the e2e tests read), pino-pretty for humans on a TTY. Library code never writes
 * to the console; everything goes through an injected `Logger`.
 */
import { pino } from 'pino';
import pretty from 'pino-pretty';
import type { LogConfig } from './config/types.ts';

/** The logger type used across the container (a pino logger or any child of one). */
export type Logger = pino.Logger;

export interface CreateLoggerOptions {
  /** Destination; default `process.stdout`. */
  readonly stdout?: NodeJS.WritableStream & { readonly isTTY?: boolean | undefined };
}

/**
 * Builds the root logger for `log`. `format: 'auto'` is pretty only when the destination is a
 * TTY. pino-pretty runs as a synchronous stream in this process, not as a worker-thread
 * transport: no extra thread per container, and the last lines before an exit are not lost.
 * JSON lines go through a {@link LineWriter}, so `accessLogger()` can batch access records.
 */
export function createLogger(log: LogConfig, options: CreateLoggerOptions = {}): Logger {
  const stdout = options.stdout ?? process.stdout;
  const isPretty = log.format === 'pretty' || (log.format === 'auto' && stdout.isTTY === true);
  const base = { level: log.level, base: { pid: process.pid } };
  if (isPretty) {
    return pino(base, pretty({ destination: stdout, sync: true, colorize: stdout.isTTY === true }));
  }
  const writer = new LineWriter(stdout);
  const logger = pino(base, writer);
  writers.set(logger, { writer, level: log.level });
  return logger;
}

/**
 * The logger for `"msg":"request"` access records: a `component: 'access'` child of `logger`,
 * with the same output. When `logger` came from `createLogger` with JSON output, its lines are
 * batched and written at most every {@link FLUSH_MS} (or per {@link BATCH_CHARS}) instead of
 * with a write(2) per request, which was a fifth of a request's cost behind nginx (docs/
 * fast-transport.md, "Container per-request cost"). Every other record flushes the batch before
 * it is written, so the output keeps the order of the calls; `flushLogger()` (the container's
 * `close()`) and process exit write out what is left. What a crash can lose is the access
 * records of the last {@link FLUSH_MS}, never a warning or an error.
 */
export function accessLogger(logger: Logger): Logger {
  const known = writers.get(logger);
  if (known === undefined) return logger.child({ component: 'access' });
  // Same serialisation as the child would produce: base bindings, then the child's.
  return pino(
    { level: known.level, base: { pid: process.pid, component: 'access' } },
    { write: (line: string) => known.writer.writeDeferred(line) },
  );
}

/** Writes out access records still batched for `logger` (no-op for other loggers). */
export function flushLogger(logger: Logger): void {
  writers.get(logger)?.writer.flush();
}

const writers = new WeakMap<Logger, { writer: LineWriter; level: LogConfig['level'] }>();

/** Writers holding a batch, for the process 'exit' hook (removed again once flushed). */
const batching = new Set<LineWriter>();
let exitHooked = false;

function flushAll(): void {
  for (const writer of batching) writer.flush();
}

/**
 * A pino destination over a writable stream. `write` passes a line on at once (after any
 * batched lines); `writeDeferred` appends to a batch written {@link FLUSH_MS} later, or at once
 * when it reaches {@link BATCH_CHARS}.
 */
class LineWriter {
  readonly #out: NodeJS.WritableStream;
  #batch = '';
  #timer: NodeJS.Timeout | undefined;
  readonly #onTimer = () => {
    this.#timer = undefined;
    this.flush();
  };

  constructor(out: NodeJS.WritableStream) {
    this.#out = out;
  }

  write(line: string): boolean {
    if (this.#batch !== '') this.flush();
    return this.#out.write(line);
  }

  writeDeferred(line: string): boolean {
    if (this.#batch === '') {
      batching.add(this);
      if (!exitHooked) {
        // One listener per process, whatever the number of loggers: 'exit' handlers run
        // synchronously, and a synchronous stdout (file, pipe, TTY on Linux) takes the batch.
        exitHooked = true;
        process.once('exit', flushAll);
      }
      // Unreferenced: a pending batch must not keep a finished process alive; 'exit' flushes it.
      this.#timer = setTimeout(this.#onTimer, FLUSH_MS).unref();
    }
    this.#batch += line;
    if (this.#batch.length >= BATCH_CHARS) this.flush();
    return true;
  }

  flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    batching.delete(this);
    const batch = this.#batch;
    if (batch === '') return;
    this.#batch = '';
    this.#out.write(batch);
  }
}

/** Longest an access record waits in a batch (ms). */
const FLUSH_MS = 100;

/** Batch size that is written at once (characters; an access record is ~250). */
const BATCH_CHARS = 64 * 1024;
