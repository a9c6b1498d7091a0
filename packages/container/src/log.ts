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
 */
export function createLogger(log: LogConfig, options: CreateLoggerOptions = {}): Logger {
  const stdout = options.stdout ?? process.stdout;
  const isPretty = log.format === 'pretty' || (log.format === 'auto' && stdout.isTTY === true);
  const base = { level: log.level, base: { pid: process.pid } };
  if (isPretty) {
    return pino(base, pretty({ destination: stdout, sync: true, colorize: stdout.isTTY === true }));
  }
  return pino(base, stdout);
}
