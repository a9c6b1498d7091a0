/**
 * The watchdog thread of a worker process (a `worker_threads` Worker started by
 * worker/entry.ts). It runs beside the main thread, so it still runs when the main thread's
 * event loop is blocked (a busy loop, a sync call), which is exactly when the worker can neither
 * answer nor log by itself (shared/SUPERVISOR.md section 2).
 *
 * - Harakiri: the main thread bumps `beats[0]` every {@link BEAT_MS}; no change for
 *   `harakiriMs` means the loop is blocked. The watchdog then (and only then) connects an
 *   inspector session to the main thread, pauses it, reads the blocked JavaScript stack and
 *   the in-flight requests (evaluated in the paused frame), writes a complete 504 straight to
 *   each connection whose response head was not sent, reports to the master on the report pipe,
 *   and SIGKILLs its own process.
 * - Orphan guard: when the master is gone (`process.ppid` changed: the worker was reparented),
 *   the worker SIGKILLs itself, even with its main thread blocked.
 *
 * Everything here writes with `fs.writeSync`: `console.log` would go through the blocked main
 * thread.
 */
import { writeSync } from 'node:fs';
import { Session } from 'node:inspector';
import { workerData } from 'node:worker_threads';
import { type HarakiriReport, IN_FLIGHT_GLOBAL, type WatchdogData } from './ipc.ts';

/** Longest wait for the inspector pause; a blocking native call never pauses. */
const PAUSE_TIMEOUT_MS = 500;

interface InFlightDescription {
  method: string;
  url: string;
  mount: string | null;
  ageMs: number;
  headersSent: boolean;
  fd: number;
}

const data = workerData as WatchdogData;
const beats = new Int32Array(data.beats);
let last = Atomics.load(beats, 0);
let lastChange = Date.now();
let fired = false;
/** When the master was first seen gone (0: it is there). */
let orphanSince = 0;
/**
 * An orphaned worker gets this long to stop gracefully (worker/entry.ts gives in-flight requests
 * 800 ms) before the watchdog kills it: 0 orphans within 2 s of the master's death.
 */
const ORPHAN_KILL_MS = 1200;
const pollMs = data.harakiriMs > 0 ? Math.min(50, Math.max(10, data.harakiriMs / 20)) : 100;

setInterval(() => {
  const now = Date.now();
  if (process.ppid !== data.masterPid) {
    if (orphanSince === 0) orphanSince = now;
    else if (now - orphanSince >= ORPHAN_KILL_MS) process.kill(process.pid, 'SIGKILL');
  }
  if (data.harakiriMs === 0 || fired) return;
  const beat = Atomics.load(beats, 0);
  if (beat !== last) {
    last = beat;
    lastChange = now;
    return;
  }
  if (now - lastChange >= data.harakiriMs) {
    fired = true;
    fire(now - lastChange);
  }
}, pollMs);

function fire(blockedMs: number): void {
  const session = new Session();
  let done = false;
  const finish = (
    stack: string[] | undefined,
    requests: InFlightDescription[] | undefined,
    note?: string,
  ) => {
    if (done) return;
    done = true;
    const answered: HarakiriReport['requests'][number][] = [];
    for (const r of requests ?? []) {
      let how: '504' | 'closed' = 'closed';
      if (!r.headersSent && r.fd >= 0) {
        try {
          writeSync(r.fd, GATEWAY_TIMEOUT);
          how = '504';
        } catch {
          // The peer is gone or the socket is full: the kill closes it.
        }
      }
      answered.push({
        method: r.method,
        url: r.url,
        mount: r.mount,
        ageMs: r.ageMs,
        answered: how,
      });
    }
    const report: HarakiriReport = {
      type: 'harakiri',
      harakiriMs: data.harakiriMs,
      blockedMs,
      requests: answered,
      ...(stack === undefined ? {} : { stack }),
      ...(note === undefined ? {} : { note }),
    };
    try {
      writeSync(data.reportFd, `${JSON.stringify(report)}\n`);
    } catch {
      // The master is gone: nothing to report to.
    }
    process.kill(process.pid, 'SIGKILL');
  };
  const timer = setTimeout(
    () =>
      finish(
        undefined,
        undefined,
        `the main thread did not pause within ${PAUSE_TIMEOUT_MS} ms (a blocking native call?): no stack, in-flight clients not answered`,
      ),
    PAUSE_TIMEOUT_MS,
  );
  try {
    session.connectToMainThread();
    const scripts = new Map<string, string>();
    session.on('Debugger.scriptParsed', (m) => {
      scripts.set(m.params.scriptId, m.params.url);
    });
    session.on('Debugger.paused', (m) => {
      const frames = m.params.callFrames;
      const stack = frames.slice(0, 20).map((f) => {
        const url = f.url || scripts.get(f.location.scriptId) || '<anonymous>';
        const name = f.functionName === '' ? '<anonymous>' : f.functionName;
        return `${name} (${url}:${f.location.lineNumber + 1}:${(f.location.columnNumber ?? 0) + 1})`;
      });
      const top = frames[0];
      if (top === undefined) {
        clearTimeout(timer);
        finish(stack, undefined, 'no JavaScript frame');
        return;
      }
      session.post(
        'Debugger.evaluateOnCallFrame',
        {
          callFrameId: top.callFrameId,
          expression: `(() => { const f = globalThis[Symbol.for(${JSON.stringify(IN_FLIGHT_GLOBAL)})]; return typeof f === 'function' ? JSON.stringify(f()) : '[]'; })()`,
          returnByValue: true,
          silent: true,
        },
        (err, result) => {
          clearTimeout(timer);
          let requests: InFlightDescription[] | undefined;
          try {
            const value = result?.result?.value;
            if (err === null && typeof value === 'string') {
              requests = JSON.parse(value) as InFlightDescription[];
            }
          } catch {
            requests = undefined;
          }
          finish(
            stack,
            requests,
            requests === undefined ? 'in-flight requests unknown' : undefined,
          );
        },
      );
    });
    session.post('Debugger.enable', () => {
      session.post('Debugger.pause');
    });
  } catch (err) {
    clearTimeout(timer);
    finish(undefined, undefined, `inspector unavailable: ${String(err)}`);
  }
}

const BODY = '504 Gateway Timeout\n';
/** A complete response: the client (or the front end) reads a 504, not a reset. */
const GATEWAY_TIMEOUT =
  'HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=utf-8\r\n' +
  `Content-Length: ${BODY.length}\r\nConnection: close\r\n\r\n${BODY}`;
