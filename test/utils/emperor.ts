/**
 * The emperor suites' shared pieces (docs/emperor.md): vassal files written the ways deploy
 * tools and editors write them, the emperor's lifecycle records, and "serving version N" probes
 * over a vassal's unix uwsgi socket.
 */
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { LogRecord } from './cli.ts';
import {
  type PidAnswer,
  renderSupervisorConfig,
  type SupervisorSpec,
  uwsgiGet,
} from './supervisor.ts';

/** A vassal serving `/pid` (supervisor.mjs, or `app`) on `<sock>` with APP_VERSION = version. */
export function vassalText(
  sock: string,
  version: string | number,
  spec: Omit<SupervisorSpec, 'listeners'> = {},
): string {
  return renderSupervisorConfig({
    workers: 1,
    access: false,
    ...spec,
    listeners: [{ protocol: 'uwsgi', address: sock }],
    env: { ...spec.env, APP_VERSION: String(version) },
  });
}

export type WriteMode = 'in-place' | 'rename';

/** Writes a vassal file in place, or as deploy tools do (a temp file renamed over it). */
export async function writeVassal(
  dir: string,
  name: string,
  text: string,
  mode: WriteMode = 'rename',
): Promise<string> {
  const file = join(dir, name);
  if (mode === 'in-place') {
    await writeFile(file, text);
  } else {
    const tmp = join(dir, `.${name}.tmp-${process.pid}`);
    await writeFile(tmp, text);
    await rename(tmp, file);
  }
  return file;
}

/** An emperor lifecycle record (`role: emperor`) of `event` for vassal `name`. */
export function isEvent(name: string | undefined, event: string): (r: LogRecord) => boolean {
  return (r) =>
    r['role'] === 'emperor' && r['event'] === event && (name === undefined || r['vassal'] === name);
}

/** Emperor records of `event` for `name` from index `from` on. */
export function events(
  logs: readonly LogRecord[],
  name: string,
  event: string,
  from = 0,
): LogRecord[] {
  return logs.slice(from).filter(isEvent(name, event));
}

/**
 * Spare vassal processes (`spareVassals`, docs/emperor.md) the emperor forked and no vassal has
 * taken yet: a taken spare's pid is the `vassalPid` of that vassal's `spawned` record.
 */
export function idleSpares(logs: readonly LogRecord[]): number[] {
  const taken = new Set(logs.filter(isEvent(undefined, 'spawned')).map((r) => r['vassalPid']));
  return logs
    .filter(isEvent(undefined, 'spare'))
    .map((r) => r['vassalPid'] as number)
    .filter((pid) => !taken.has(pid));
}

/**
 * Polls `/pid` on `sock` until it answers 200 with `version` (bounded by `timeoutMs`); resolves
 * with the answer and the time it took.
 */
export async function waitForVersion(
  sock: string,
  version: string | number,
  timeoutMs = 10_000,
): Promise<PidAnswer & { ms: number }> {
  const started = performance.now();
  let last = 'no answer';
  for (;;) {
    try {
      const a = await uwsgiGet({ path: sock }, '/pid', 2000);
      if (a.status === 200 && a.version === String(version)) {
        return { ...a, ms: performance.now() - started };
      }
      last = `status ${a.status}, version ${String(a.version)}`;
    } catch (err) {
      last = (err as Error).message;
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(`${sock} not serving version ${version} after ${timeoutMs} ms (${last})`);
    }
    await delay(10);
  }
}

/** Polls `probe` every 20 ms until it returns a value; rejects after `timeoutMs`. */
export async function waitFor<T>(
  probe: () => T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (performance.now() > until) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await delay(20);
  }
}

/** `pred`, for records at index `from` or later of `logs`. */
export function after(
  logs: readonly LogRecord[],
  from: number,
  pred: (r: LogRecord) => boolean,
): (r: LogRecord) => boolean {
  return (r) => pred(r) && logs.indexOf(r) >= from;
}
