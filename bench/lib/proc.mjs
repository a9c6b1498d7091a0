// Process helpers for the benchmarks: spawn with tracking (every child is stopped by its own pid
// on exit), CPU time of a process tree from procfs, readiness polling, free ports.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/** Kernel clock ticks per second for utime/stime in /proc/<pid>/stat (USER_HZ, 100 on Linux). */
export const CLK_TCK = 100;

const tracked = new Set();

/**
 * Spawns a child and records it; `stopAll()` ends every recorded child that is still running.
 * stdout/stderr are collected (bounded) for error messages and ready-line detection.
 */
export function spawnTracked(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  const rec = { child, name: options.name ?? command, stdout: '', stderr: '', exited: false };
  const keep = (key) => (chunk) => {
    rec[key] += chunk.toString('utf8');
    if (rec[key].length > 1 << 20) rec[key] = rec[key].slice(-(1 << 19));
  };
  child.stdout?.on('data', keep('stdout'));
  child.stderr?.on('data', keep('stderr'));
  rec.exit = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      rec.exited = true;
      tracked.delete(rec);
      resolve({ code, signal });
    });
    child.on('error', (err) => {
      rec.exited = true;
      tracked.delete(rec);
      rec.stderr += String(err);
      resolve({ code: null, signal: null, error: err });
    });
  });
  tracked.add(rec);
  return rec;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the child has exited. */
export async function stop(rec, graceMs = 5000) {
  if (rec.exited) return;
  rec.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    if (!rec.exited) rec.child.kill('SIGKILL');
  }, graceMs);
  await rec.exit;
  clearTimeout(timer);
}

export async function stopAll() {
  await Promise.all([...tracked].map((rec) => stop(rec)));
}

/** Stops every tracked child on Ctrl-C / SIGTERM, then exits with the conventional status. */
export function stopAllOnSignals() {
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      for (const rec of tracked) if (!rec.exited) rec.child.kill('SIGKILL');
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    });
  }
}

function readStat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // comm (field 2) may contain spaces and parentheses: split after the last ')'.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return { ppid: Number(rest[1]), ticks: utime + stime, stime };
  } catch {
    return undefined;
  }
}

/** The pid and all its live descendants. */
export function processTree(rootPid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(name);
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out = [];
  const todo = [rootPid];
  while (todo.length > 0) {
    const pid = todo.pop();
    out.push(pid);
    for (const c of children.get(pid) ?? []) todo.push(c);
  }
  return out;
}

/** utime + stime (clock ticks) summed over the given pids' current trees. */
export function cpuTicks(rootPids) {
  return cpuTicksSplit(rootPids).ticks;
}

/** `cpuTicks()` and, of it, the kernel's share (stime), in clock ticks. */
export function cpuTicksSplit(rootPids) {
  let ticks = 0;
  let stime = 0;
  for (const root of rootPids) {
    for (const pid of processTree(root)) {
      const st = readStat(pid);
      ticks += st?.ticks ?? 0;
      stime += st?.stime ?? 0;
    }
  }
  return { ticks, stime };
}

/** Polls `probe` (sync or async, truthy = ready) every `intervalMs`, at most `tries` times. */
export async function poll(probe, { tries = 100, intervalMs = 100, what = 'condition' } = {}) {
  let lastErr;
  for (let i = 0; i < tries; i++) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      lastErr = err;
    }
    await delay(intervalMs);
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${lastErr.message}` : ''}`);
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for programs that cannot report theirs). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * One HTTP/1.0 request over a fresh connection; resolves `{ status, head, body }` (raw, no
 * parsing beyond the status; `head` is the status line and headers).
 */
export function rawHttpGet(port, path, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks = [];
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error('timeout')));
    // No half-close: nginx takes EOF from the client as an abort (499, no response) when the
    // upstream has not answered yet. HTTP/1.0 without keep-alive: nginx closes after the response.
    sock.on('connect', () => sock.write(`GET ${path} HTTP/1.0\r\nHost: bench\r\n\r\n`));
    sock.on('data', (c) => chunks.push(c));
    sock.on('error', reject);
    sock.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      const i = text.indexOf('\r\n\r\n');
      resolve({
        status: m ? Number(m[1]) : 0,
        head: i >= 0 ? text.slice(0, i) : text,
        body: i >= 0 ? text.slice(i + 4) : '',
      });
    });
  });
}

/** Every JSON record of a log file, in file order (a line still being written is skipped). */
export function logRecords(file) {
  const out = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // A line being written.
    }
  }
  return out;
}
