/**
 * The process's file descriptor budget, read from procfs (Linux). Elsewhere both answers are
 * "unknown" and only `limits.maxConnections` bounds connections.
 *
 * Node raises the soft RLIMIT_NOFILE to the hard limit at startup, so the soft value read here
 * is what accept(2) runs into: past it libuv accepts and closes connections itself (its reserve
 * fd trick), and the container never sees them.
 */
import { readdirSync, readFileSync } from 'node:fs';

/** The soft limit on open files (`Max open files` in /proc/self/limits); Infinity if unknown. */
export function openFileLimit(): number {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'latin1');
  } catch {
    return Number.POSITIVE_INFINITY;
  }
  const line = /^Max open files\s+(\S+)/m.exec(text);
  const soft = line?.[1];
  if (soft === undefined || soft === 'unlimited') return Number.POSITIVE_INFINITY;
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : Number.POSITIVE_INFINITY;
}

/**
 * Open fds of this process (entries of /proc/self/fd, less the one the listing itself holds);
 * undefined if unknown. Costs a directory read: call it rarely.
 */
export function openFdCount(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length - 1;
  } catch {
    return undefined;
  }
}
