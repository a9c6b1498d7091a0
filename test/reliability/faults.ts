/**
 * Faults and their accounting for the reliability suite: reloads (SIGHUP or `uwsgi-ts reload`)
 * with their logged outcome, the old generations' drain times from the master's records, and
 * the one-line summaries the suite prints (RELIABILITY.md section 4).
 */
import { setTimeout as delay } from 'node:timers/promises';
import type { LogRecord } from '../utils/cli.ts';
import { liveChildren } from '../utils/procs.ts';
import type { Stack } from './stack.ts';

export interface ReloadOutcome {
  readonly ok: boolean;
  readonly record: LogRecord;
  /** Epoch ms the reload was asked for. */
  readonly sentAt: number;
}

const isOutcome = (r: LogRecord): boolean =>
  r.msg === 'reloaded' || (r.msg ?? '').startsWith('reload failed');

/**
 * Waits for the master's next reload outcome (`reloaded` or `reload failed ...`) not in `seen`
 * (shared across a test, so each outcome is consumed once).
 */
export async function nextOutcome(
  stack: Stack,
  seen: Set<LogRecord>,
  sentAt: number,
  timeoutMs = 15_000,
): Promise<ReloadOutcome> {
  const record = await stack.waitFor((r) => isOutcome(r) && !seen.has(r), timeoutMs);
  seen.add(record);
  return { ok: record.msg === 'reloaded', record, sentAt };
}

/** SIGHUP to the master, then its outcome. */
export async function sighup(stack: Stack, seen: Set<LogRecord>): Promise<ReloadOutcome> {
  const sentAt = Date.now();
  process.kill(stack.masterPid, 'SIGHUP');
  const outcome = await nextOutcome(stack, seen, sentAt);
  stack.recordWorkers();
  return outcome;
}

/**
 * Runs `fault` `count` times, `everyMs` apart (the first `everyMs` after the call); a slow fault
 * delays the next one rather than overlapping it. Returns what each call returned.
 */
export async function every<T>(
  everyMs: number,
  count: number,
  fault: (i: number) => Promise<T>,
): Promise<T[]> {
  const out: T[] = [];
  let next = Date.now() + everyMs;
  for (let i = 0; i < count; i++) {
    await delay(Math.max(0, next - Date.now()));
    out.push(await fault(i));
    next = Math.max(next + everyMs, Date.now());
  }
  return out;
}

export interface DrainReport {
  /** Old workers that exited because a reload retired them. */
  readonly exited: number;
  /** Longest time from a `reloaded` record to the exit of a worker it retired. */
  readonly maxMs: number;
  readonly problems: string[];
}

/**
 * From the master's records: every worker of a generation that a successful reload replaced
 * exited (reason `reload`, code 0) within `reloadMercyMs` of that reload's `reloaded` record,
 * and no worker of an old generation is alive now.
 */
export function drainReport(stack: Stack, reloadMercyMs: number): DrainReport {
  const problems: string[] = [];
  const reloaded = stack.records('reloaded').sort((a, b) => Number(a['time']) - Number(b['time']));
  const ready = stack.records('worker ready');
  const exits = stack.records('worker exited');
  let maxMs = 0;
  let exited = 0;
  for (const exit of exits.filter((e) => e['reason'] === 'reload')) {
    exited++;
    const generation = Number(exit['generation']);
    const by = reloaded.find((r) => Number(r['generation']) > generation);
    if (by === undefined) {
      problems.push(`worker ${String(exit['workerPid'])} exited for a reload no record names`);
      continue;
    }
    const ms = Number(exit['time']) - Number(by['time']);
    maxMs = Math.max(maxMs, ms);
    if (ms > reloadMercyMs)
      problems.push(`worker ${String(exit['workerPid'])} drained in ${ms} ms`);
    if (exit['code'] !== 0 || exit['signal'] !== null) {
      problems.push(`old worker ${String(exit['workerPid'])} ended ${JSON.stringify(exit)}`);
    }
  }
  // Every worker that was ready in a generation a reload replaced must have exited.
  const current = Math.max(0, ...reloaded.map((r) => Number(r['generation'])));
  const live = new Set(liveChildren(stack.masterPid));
  for (const r of ready) {
    const generation = Number(r['generation']);
    if (generation < current && live.has(Number(r['workerPid']))) {
      problems.push(`worker ${String(r['workerPid'])} of generation ${generation} still alive`);
    }
  }
  // Generations that served: the first one and every one a reload switched to.
  const served = new Set([
    Number(stack.container.ready['generation']),
    ...reloaded.map((r) => Number(r['generation'])),
  ]);
  const retired = ready.filter((r) => {
    const generation = Number(r['generation']);
    return served.has(generation) && generation < current;
  }).length;
  if (exited < retired) problems.push(`${retired} workers retired, only ${exited} reload exits`);
  return { exited, maxMs, problems };
}

/**
 * Waits (bounded) until the master's live children are exactly `workers` ready workers of the
 * serving generation (old generations gone, throttled respawns done).
 */
export async function settle(stack: Stack, workers: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const live = liveChildren(stack.masterPid).length;
    if (live === workers && stack.servingWorkers().length === workers) return;
    await delay(50);
  }
}

/** `R6a reload-under-load: M=19204 non2xx=0 ... PASS` (printed and returned). */
export function summary(
  id: string,
  name: string,
  fields: Record<string, string | number>,
  pass: boolean,
): string {
  const parts = Object.entries(fields).map(([k, v]) => `${k}=${v}`);
  const line = `${id} ${name}: ${parts.join(' ')} ${pass ? 'PASS' : 'FAIL'}`;
  console.log(line);
  return line;
}

export const round = (n: number, digits = 0): number => {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
};
