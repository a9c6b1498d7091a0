/**
 * procfs for the supervisor e2e and reliability suites: a process's state and parent, the
 * children of a master, zombies, waiting until processes are gone, fd counts, RSS and CPU time;
 * and recorders of every process a test started (PID + start time, so a recycled PID is never
 * taken for ours), which kill by recorded PID only and report what outlived their test
 * (RELIABILITY.md section 4, NGINX Unit's `_check_fds`/`_check_processes` idea).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

export interface ProcStat {
  readonly pid: number;
  readonly ppid: number;
  /** `R`, `S`, `D`, `Z` ... */
  readonly state: string;
  /** Clock ticks after boot (field 22): PID + start time name one process for good. */
  readonly startTime: number;
  /** utime + stime, in clock ticks. */
  readonly cpuTicks: number;
}

/** `/proc/<pid>/stat`, or undefined when there is no such process. */
export function procStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may hold anything: the fields start after the last ')'.
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    state: f[0] ?? '?',
    ppid: Number(f[1]),
    cpuTicks: Number(f[11]) + Number(f[12]),
    startTime: Number(f[19]),
  };
}

/** Alive = it exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z';
}

export function isZombie(pid: number): boolean {
  return procStat(pid)?.state === 'Z';
}

/** Every process whose parent is `pid` (zombies included: check their `state`). */
export function childrenOf(pid: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = procStat(Number(name));
    if (s?.ppid === pid) out.push(s);
  }
  return out;
}

/** Zombie children of `pid` right now. */
export function zombiesUnder(pid: number): ProcStat[] {
  return childrenOf(pid).filter((c) => c.state === 'Z');
}

/** Live (non-zombie) children's PIDs, sorted. */
export function liveChildren(pid: number): number[] {
  return childrenOf(pid)
    .filter((c) => c.state !== 'Z')
    .map((c) => c.pid)
    .sort((a, b) => a - b);
}

/**
 * Live children of `pid` from `/proc/<pid>/task/<pid>/children` (the main thread's, which is
 * where Node forks): one small read, cheap enough to sample every few milliseconds.
 */
export function childPids(pid: number): number[] {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8');
  } catch {
    return [];
  }
  return text
    .split(' ')
    .filter((x) => x !== '')
    .map(Number)
    .filter((p) => procStat(p)?.state !== 'Z');
}

/**
 * Waits until none of `pids` has a /proc entry any more (a zombie still has one: it counts as
 * left over). Polls every 20 ms; rejects after `timeoutMs` naming what is left and its state.
 * Resolves with the time it took.
 */
export async function waitUntilGone(pids: readonly number[], timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const left = pids.map((p) => procStat(p)).filter((s): s is ProcStat => s !== undefined);
    if (left.length === 0) return performance.now() - started;
    if (performance.now() - started > timeoutMs) {
      throw new Error(
        `still there after ${timeoutMs} ms: ${left.map((s) => `${s.pid} (state ${s.state}, ppid ${s.ppid})`).join(', ')}`,
      );
    }
    await delay(20);
  }
}

/**
 * Dead = no /proc entry, or a zombie whose parent is init (PID 1): an orphan that exited and
 * waits for init to reap it. This machine's init reaps on a timer (about every 2 s, measured),
 * not at SIGCHLD, so an orphan's death is seen as `Z` under PID 1 for up to that long; a zombie
 * under any other parent is one our process failed to reap, and counts as alive here.
 */
export function isDead(pid: number): boolean {
  const s = procStat(pid);
  return s === undefined || (s.state === 'Z' && s.ppid === 1);
}

/** Like `waitUntilGone`, for `isDead` (orphans: see there). Resolves with the time it took. */
export async function waitUntilDead(pids: readonly number[], timeoutMs: number): Promise<number> {
  const started = performance.now();
  for (;;) {
    const left = pids.filter((p) => !isDead(p));
    if (left.length === 0) return performance.now() - started;
    if (performance.now() - started > timeoutMs) {
      const desc = left
        .map((p) => procStat(p))
        .map((s) => `${s?.pid} (${s?.state}, ppid ${s?.ppid})`);
      throw new Error(`still alive after ${timeoutMs} ms: ${desc.join(', ')}`);
    }
    await delay(20);
  }
}

/** Open file descriptors of a process, for before/after leak checks. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident set size in MiB (procfs VmRSS), undefined when gone. */
export function rssMb(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) / 1024;
  } catch {
    return undefined;
  }
}

/** USER_HZ: 100 on every Linux this runs on (sysconf(_SC_CLK_TCK)). */
export const CLOCK_TICKS_PER_SECOND = 100;

/**
 * The processes one test file started, each as PID + start time. `sweep()` (afterEach) waits a
 * little for them to go, then SIGKILLs the survivors by recorded PID and returns them: a test
 * that left a process behind fails, and the next test starts clean.
 */
export class ProcessRecorder {
  readonly #recorded = new Map<number, number>();

  /** Records `pid` if it is alive now (a process already gone needs no cleanup). */
  record(pid: number): void {
    if (this.#recorded.has(pid)) return;
    const s = procStat(pid);
    if (s !== undefined && s.state !== 'Z') this.#recorded.set(pid, s.startTime);
  }

  /** Recorded processes still alive (same PID and start time, not a zombie). */
  alive(): number[] {
    const out: number[] = [];
    for (const [pid, start] of this.#recorded) {
      const s = procStat(pid);
      if (s !== undefined && s.startTime === start && s.state !== 'Z') out.push(pid);
    }
    return out;
  }

  /**
   * Waits up to `graceMs` for every recorded process to be gone; SIGKILLs the rest (by PID,
   * start time checked) and returns their PIDs. The records are kept: `alive()` at the end of a
   * file covers every process the file started.
   */
  async sweep(graceMs = 3000): Promise<number[]> {
    const until = performance.now() + graceMs;
    while (this.alive().length > 0 && performance.now() < until) await delay(20);
    const left = this.alive();
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone in between.
      }
    }
    return left;
  }
}

/** A process the test started: its PID and start time, and what it was. */
export interface Recorded {
  readonly pid: number;
  readonly startTime: number;
  readonly what: string;
}

/**
 * Every process a reliability test starts, recorded by PID and start time with what it was, so
 * that the end of the test can assert that none of them is still alive (or a zombie) and kill
 * the leftovers by PID only.
 */
export class PidRegistry {
  readonly #byPid = new Map<number, Recorded>();

  /** Records `pid` if it is alive now (a process already gone cannot leak). */
  add(pid: number, what: string): void {
    if (this.#byPid.has(pid)) return;
    const s = procStat(pid);
    if (s === undefined) return;
    this.#byPid.set(pid, { pid, startTime: s.startTime, what });
  }

  get size(): number {
    return this.#byPid.size;
  }

  /** Recorded processes that still exist (zombies included, with their state). */
  alive(): (Recorded & { state: string })[] {
    const out: (Recorded & { state: string })[] = [];
    for (const r of this.#byPid.values()) {
      const s = procStat(r.pid);
      if (s !== undefined && s.startTime === r.startTime) out.push({ ...r, state: s.state });
    }
    return out;
  }

  /** Polls (bounded) until no recorded process exists; returns those left. */
  async waitAllGone(timeoutMs = 10_000): Promise<(Recorded & { state: string })[]> {
    const until = Date.now() + timeoutMs;
    let left = this.alive();
    while (left.length > 0 && Date.now() < until) {
      await delay(50);
      left = this.alive();
    }
    return left;
  }

  /** SIGKILL every recorded process still alive (clean-up after a failed test). */
  killLeftovers(): void {
    for (const r of this.alive()) {
      try {
        process.kill(r.pid, 'SIGKILL');
      } catch {
        // Gone in between.
      }
    }
  }
}
