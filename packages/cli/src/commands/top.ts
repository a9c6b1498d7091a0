/**
 * `uwsgi-ts top ADDRESS`: a live view of a container's or an emperor's stats server, refreshed
 * every second: workers (or vassals) with req/s, latency, RSS, status and their last restart
 * and why, the mounts, and the newest lifecycle events. `q` (or Ctrl-C) quits. When stdout is
 * not a terminal it prints plain frames instead (one per refresh, or one with `--once`).
 */

import { setTimeout as delay } from 'node:timers/promises';
import { createLogUpdate } from 'log-update';
import { type CliIo, write } from '../io.ts';
import { fetchStats } from '../top/client.ts';
import { renderScreen } from '../top/render.ts';
import { describeError } from './config-errors.ts';

export interface TopOptions {
  readonly intervalMs: number;
  /** Frames to print before exiting; undefined: until `q` or a signal. */
  readonly count: number | undefined;
}

export async function top(address: string, options: TopOptions, io: CliIo): Promise<number> {
  const tty = io.stdout.isTTY === true;
  // Longer than the master waits for a blocked worker (1 s): the screen that shows it is busy.
  const timeoutMs = options.intervalMs + 3000;
  let previous: { doc: Record<string, unknown>; at: number } | undefined;
  const frame = async (): Promise<{ text: string; ok: boolean }> => {
    const at = Date.now();
    try {
      const doc = await fetchStats(address, timeoutMs);
      const text = renderScreen({ doc, at }, previous, columns(io));
      previous = { doc, at };
      return { text, ok: true };
    } catch (err) {
      previous = undefined;
      return { text: `cannot read stats from ${address}: ${describeError(err)}`, ok: false };
    }
  };

  if (!tty) {
    let failed = false;
    for (let i = 0; options.count === undefined || i < options.count; i++) {
      if (i > 0 && !(await pause(options.intervalMs, io.signal))) break;
      const { text, ok } = await frame();
      failed = !ok;
      await write(ok ? io.stdout : io.stderr, `${text}\n\n`);
    }
    return failed ? 1 : 0;
  }

  const screen = createLogUpdate(io.stdout, { showCursor: false });
  const quit = new AbortController();
  // Keys only from a terminal (raw mode: `q` arrives without Enter).
  const keys = io.stdin?.isTTY === true ? io.stdin : undefined;
  const onKey = (data: Buffer | string) => {
    const key = data.toString();
    if (key === 'q' || key === 'Q' || key === '\u0003') quit.abort();
  };
  if (keys?.setRawMode !== undefined) {
    keys.setRawMode(true);
    keys.on('data', onKey);
    keys.resume();
  }
  io.signal?.addEventListener('abort', () => quit.abort(), { once: true });
  try {
    for (let i = 0; options.count === undefined || i < options.count; i++) {
      if (i > 0 && !(await pause(options.intervalMs, quit.signal))) break;
      const { text } = await frame();
      if (quit.signal.aborted) break;
      screen(`${fit(text, io)}\n\nq quits`);
    }
  } finally {
    screen.done();
    if (keys?.setRawMode !== undefined) {
      keys.off('data', onKey);
      keys.setRawMode(false);
      keys.pause();
    }
  }
  return 0;
}

/** The frame cut to the terminal's height: log-update would drop its first lines instead. */
function fit(text: string, io: CliIo): string {
  const rows = (io.stdout as { rows?: number }).rows;
  const lines = text.split('\n');
  if (typeof rows !== 'number' || rows < 6 || lines.length <= rows - 2) return text;
  const keep = rows - 3;
  return [
    ...lines.slice(0, keep),
    `... ${lines.length - keep} more lines (a taller terminal shows them)`,
  ].join('\n');
}

function columns(io: CliIo): number {
  const cols = (io.stdout as { columns?: number }).columns;
  return typeof cols === 'number' && cols > 20 ? cols : 160;
}

/** Waits `ms`; false when `signal` aborted first. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  try {
    await delay(ms, undefined, signal === undefined ? {} : { signal });
    return true;
  } catch {
    return false;
  }
}
