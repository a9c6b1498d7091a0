// CPU time of one process split into its main thread and the rest (V8 GC and compiler helper
// threads, libuv's pool, worker_threads such as a watchdog), from procfs. The process's own
// utime+stime also holds threads that have exited, so "others" is process minus main thread.
import { readFileSync } from 'node:fs';

function ticksOf(file) {
  try {
    const text = readFileSync(file, 'latin1');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): utime is field 14, stime 15.
    return Number(rest[11]) + Number(rest[12]);
  } catch {
    return undefined;
  }
}

/** `{ process, main }` utime+stime in clock ticks, or undefined once the process is gone. */
export function processAndMainThreadTicks(pid) {
  const all = ticksOf(`/proc/${pid}/stat`);
  const main = ticksOf(`/proc/${pid}/task/${pid}/stat`);
  if (all === undefined || main === undefined) return undefined;
  return { process: all, main };
}

/**
 * `{ voluntary, nonvoluntary }` context switches of a process's main thread, or undefined once
 * it is gone. A voluntary switch is a blocking wait (for a Node process mostly epoll_wait with
 * nothing ready), so voluntary switches per request tell how many requests one wakeup serves.
 */
export function mainThreadSwitches(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/status`, 'latin1');
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
    return {
      voluntary: field('voluntary_ctxt_switches'),
      nonvoluntary: field('nonvoluntary_ctxt_switches'),
    };
  } catch {
    return undefined;
  }
}
