/**
 * procfs checks for the reliability suite (RELIABILITY.md section 4, NGINX Unit's
 * `_check_fds`/`_check_processes` idea): process state, parent, start time (so a recycled PID
 * is never mistaken for one of ours), children, zombies, open fds.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  /** `R`, `S`, `D`, `Z`, ... */
  readonly state: string;
  /** Clock ticks after boot (field 22): with the PID, names one process for good. */
  readonly startTime: number;
  readonly comm: string;
}

/** `/proc/<pid>/stat`, or undefined when the process is gone. */
export function procInfo(pid: number): ProcInfo | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm is in parentheses and may hold spaces or parentheses: split after the last ')'.
  const close = stat.lastIndexOf(')');
  const comm = stat.slice(stat.indexOf('(') + 1, close);
  const f = stat.slice(close + 2).split(' ');
  return {
    pid,
    comm,
    state: f[0] ?? '?',
    ppid: Number(f[1]),
    startTime: Number(f[19]),
  };
}

/** Every process visible in /proc. */
export function allProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info !== undefined) out.push(info);
  }
  return out;
}

export function childrenOf(pid: number): ProcInfo[] {
  return allProcesses().filter((p) => p.ppid === pid);
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A process the test started: its PID and start time, and what it was. */
export interface Recorded {
  readonly pid: number;
  readonly startTime: number;
  readonly what: string;
}

/**
 * Every process a test starts, recorded by PID and start time, so that the end of the test can
 * assert that none of them is still alive (or a zombie) and kill the leftovers by PID only.
 */
export class PidRegistry {
  readonly #byPid = new Map<number, Recorded>();

  /** Records `pid` if it is alive now (a process already gone cannot leak). */
  add(pid: number, what: string): void {
    if (this.#byPid.has(pid)) return;
    const info = procInfo(pid);
    if (info === undefined) return;
    this.#byPid.set(pid, { pid, startTime: info.startTime, what });
  }

  get size(): number {
    return this.#byPid.size;
  }

  /** Recorded processes that still exist (zombies included, with their state). */
  alive(): (Recorded & { state: string })[] {
    const out: (Recorded & { state: string })[] = [];
    for (const r of this.#byPid.values()) {
      const info = procInfo(r.pid);
      if (info !== undefined && info.startTime === r.startTime)
        out.push({ ...r, state: info.state });
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

/** Zombie children of `pid` right now. */
export function zombiesUnder(pid: number): ProcInfo[] {
  return childrenOf(pid).filter((p) => p.state === 'Z');
}
