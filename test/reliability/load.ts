/**
 * Load generators for the reliability suite (RELIABILITY.md section 4):
 * - `runWrk`: `wrk -t1` with a Lua script that counts statuses in `response()` and prints them,
 *   the socket errors and latency percentiles as one JSON line from `done()`;
 * - `runDriver`: a Node client at fixed concurrency, one record per request (`t0`, `t1`, status
 *   or error code, worker PID from `x-pid`), keep-alive or one connection per request, so
 *   failures can be tied to fault times.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import type { PidRegistry } from '../utils/procs.ts';

export const WRK_BIN = process.env['WRK_BIN'] ?? '/usr/bin/wrk';
export const HAS_WRK = existsSync(WRK_BIN);

const WRK_SCRIPT = `-- uwsgi-ts reliability: statuses per code, socket errors, latency (test/reliability/load.ts)
statuses = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do
      total[k] = (total[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(total) do
    table.insert(parts, string.format('"%s":%d', k, v))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50Us":%d,"p99Us":%d,"maxUs":%d,"statuses":{%s}}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, table.concat(parts, ",")))
end
`;

export interface WrkResult {
  readonly requests: number;
  readonly durationUs: number;
  /** wrk's socket errors. */
  readonly connect: number;
  readonly read: number;
  readonly write: number;
  readonly timeout: number;
  /** Responses with a status > 399, as wrk counts them. */
  readonly status: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  /** Responses per status code, counted by the Lua `response()`. */
  readonly statuses: Readonly<Record<string, number>>;
}

export const socketErrors = (r: WrkResult): number => r.connect + r.read + r.write + r.timeout;
export const non2xx = (statuses: Readonly<Record<string, number>>): number =>
  Object.entries(statuses).reduce((n, [code, count]) => (/^2\d\d$/.test(code) ? n : n + count), 0);
export const rps = (r: WrkResult): number => r.requests / (r.durationUs / 1e6);
/** wrk sent requests, and every one was answered 2xx without a socket error. */
export const wrkClean = (r: WrkResult): boolean =>
  r.requests > 0 && non2xx(r.statuses) === 0 && socketErrors(r) === 0;
/** A wrk run's `M`, `non2xx` and `sockerr` fields of a summary line. */
export const wrkFields = (r: WrkResult) => ({
  M: r.requests,
  non2xx: non2xx(r.statuses),
  sockerr: socketErrors(r),
});

export interface WrkOptions {
  readonly url: string;
  readonly connections: number;
  /** wrk's `-d`; `stop()` (SIGINT: wrk prints its summary) may end it earlier. */
  readonly seconds: number;
  /** Where the Lua script is written. */
  readonly dir: string;
  readonly pids: PidRegistry;
  /** wrk's per-request timeout (counted as a socket error); default 5 s. */
  readonly timeoutSeconds?: number;
}

export interface Wrk {
  readonly result: Promise<WrkResult>;
  /** Ends the run now (SIGINT) and resolves with its result. */
  stop(): Promise<WrkResult>;
}

/** Starts `wrk -t1`; `result` is the Lua script's result line, parsed. */
export function startWrk(options: WrkOptions): Wrk {
  const script = join(options.dir, 'count.lua');
  if (!existsSync(script)) writeFileSync(script, WRK_SCRIPT);
  const args = [
    '-t1',
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    `--timeout`,
    `${options.timeoutSeconds ?? 5}s`,
    '--latency',
    '-s',
    script,
    options.url,
  ];
  const child = spawn(WRK_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid !== undefined) options.pids.add(child.pid, 'wrk');
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  // Bounded: wrk stops itself after -d; SIGKILL well after that.
  const killer = setTimeout(() => child.kill('SIGKILL'), (options.seconds + 30) * 1000);
  const result = new Promise<WrkResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(killer);
      const line = out.split('\n').find((l) => l.startsWith('WRK_RESULT '));
      if (code !== 0 || line === undefined) {
        reject(new Error(`wrk failed (exit ${String(code)}):\n${out}\n${err}`));
      } else {
        resolve(JSON.parse(line.slice('WRK_RESULT '.length)) as WrkResult);
      }
    });
  });
  return {
    result,
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
      return result;
    },
  };
}

/** One request as the Node driver saw it. */
export interface RequestRecord {
  readonly id: number;
  /** ms since the driver started (performance.now() based). */
  readonly t0: number;
  readonly t1: number;
  readonly status?: number;
  /** `err.code` (ECONNRESET, EPIPE...) or the message when there is none. */
  readonly error?: string;
  /** The socket had carried an earlier request (keep-alive reuse). */
  readonly reused: boolean;
  /** The error came after the response head (a cut body) rather than before it. */
  readonly afterHead?: boolean;
  readonly pid?: number;
  /** The response said `Connection: close`. */
  readonly close?: boolean;
}

export interface DriverOptions {
  /** Base URL without the query: `http://127.0.0.1:PORT`. */
  readonly origin: string;
  /** Path for request number `i`. */
  readonly path: (i: number) => string;
  readonly concurrency: number;
  readonly keepAlive: boolean;
  /** Per-request timeout, ms (counted as an error `TIMEOUT`). */
  readonly timeoutMs?: number;
}

export interface Driver {
  /** The driver's clock origin (performance.now() at start) as epoch ms. */
  readonly epochMs: number;
  /** ms on the driver's clock now. */
  now(): number;
  readonly records: RequestRecord[];
  /** Stops issuing requests and resolves once every one in flight has ended. */
  stop(): Promise<RequestRecord[]>;
}

/**
 * Starts `concurrency` loops, each issuing one request after the other until `stop()`. Every
 * request is appended to `records` when it ends. `?id=N` is added to each path, so the app's
 * trace can name the worker that took it.
 */
export function startDriver(options: DriverOptions): Driver {
  const agent = new http.Agent({
    keepAlive: options.keepAlive,
    maxSockets: options.concurrency,
    maxFreeSockets: options.concurrency,
  });
  const url = new URL(options.origin);
  const start = performance.now();
  const epochMs = Date.now();
  const now = () => performance.now() - start;
  const records: RequestRecord[] = [];
  let stopping = false;
  let next = 0;
  const timeoutMs = options.timeoutMs ?? 10_000;

  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const id = next++;
      const path = options.path(id);
      const t0 = now();
      let done = false;
      let head: http.IncomingMessage | undefined;
      const req = http.request({
        host: url.hostname,
        port: url.port,
        path: `${path}${path.includes('?') ? '&' : '?'}id=${id}`,
        agent,
        headers: options.keepAlive ? {} : { connection: 'close' },
      });
      const finish = (r: Omit<RequestRecord, 'id' | 't0' | 't1' | 'reused'>) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        records.push({ id, t0, t1: now(), reused: req.reusedSocket, ...r });
        resolve();
      };
      const timer = setTimeout(() => {
        req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' }));
      }, timeoutMs);
      req.on('response', (res) => {
        head = res;
        res.on('data', () => undefined);
        res.on('end', () =>
          finish({
            status: res.statusCode ?? 0,
            pid: Number(res.headers['x-pid']) || 0,
            close: /close/i.test(res.headers.connection ?? ''),
          }),
        );
        res.on('error', (err: NodeJS.ErrnoException) =>
          finish({ error: err.code ?? err.message, afterHead: true }),
        );
      });
      req.on('error', (err: NodeJS.ErrnoException) =>
        finish({ error: err.code ?? err.message, afterHead: head !== undefined }),
      );
      req.end();
    });

  const loops = Array.from({ length: options.concurrency }, async () => {
    while (!stopping) await one();
  });
  return {
    epochMs,
    now,
    records,
    async stop() {
      stopping = true;
      await Promise.all(loops);
      agent.destroy();
      return records;
    },
  };
}

/** The `q`-quantile (0..1) of the latencies (`t1 - t0`, ms) of `records`. */
export const latencyQuantileMs = (records: readonly RequestRecord[], q: number): number =>
  quantile(
    records.map((r) => r.t1 - r.t0),
    q,
  );

/** The `q`-quantile (0..1) of `values` (nearest rank); 0 for none. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? 0;
}
