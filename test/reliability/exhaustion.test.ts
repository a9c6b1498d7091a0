/**
 * Exhaustion (issue 12, RELIABILITY.md U29): one worker under `ulimit -n 1024` while an attacker
 * holds 2,000 idle connections for 15 s (1,000 silent on a uwsgi TCP listener, 500 silent and
 * 500 idle keep-alive after one request on the HTTP listener), reopening each one the container
 * closes, and a canary keeps requesting through nginx (`uwsgi_pass`, one new uwsgi connection
 * per request).
 *
 * Before: the worker ran out of fds, libuv accepted and closed the excess by itself, the canary
 * got 502 for 10 s (until the header deadline closed the idle connections) and nothing was
 * logged. Expected now: the container sheds idle connections below the fd limit (admission.ts),
 * the canary's errors stay under 1% (target 0), every connection the attacker saw closed is a
 * counted shed or refusal, the warnings add up to the counters, and the worker's fds come back
 * to their baseline. The header deadline is 60 s, so no close here comes from it.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { sendControl } from '@uwsgi-ts/container';
import { afterEach, describe, expect, it } from 'vitest';
import { assertBuilt, type LogRecord } from '../utils/cli.ts';
import { HAS_NGINX } from '../utils/nginx.ts';
import { openFds } from '../utils/procs.ts';
import { round, settle, summary } from './faults.ts';
import { startDriver } from './load.ts';
import { type Stack, startStack } from './stack.ts';

const OPEN_FILES = 1024;
const UWSGI_SILENT = 1000;
const HTTP_SILENT = 500;
const HTTP_KEEP_ALIVE = 500;
const ATTACK_MS = 15_000;
/** The goal: canary errors under 1% (target 0). */
const MAX_CANARY_ERROR_RATE = 0.01;

let current: Stack | undefined;

afterEach(async () => {
  const left = current;
  current = undefined;
  if (left !== undefined) await left.teardown();
});

type Kind = 'uwsgi-silent' | 'http-silent' | 'http-keep-alive';

interface Attacker {
  /** Connections the server closed (each one is reopened while the attack runs). */
  readonly serverCloses: () => number;
  readonly connectErrors: () => number;
  readonly open: () => number;
  /** Stops reopening; resolves once every reopen under way has connected or failed. */
  settle(): Promise<void>;
  /** Closes every connection from this side; resolves once all are closed. */
  stop(): Promise<void>;
}

/** Holds `count` idle connections of each kind, reopening each one the server closes. */
function attack(
  targets: { readonly uwsgiPort: number; readonly httpPort: number },
  counts: Readonly<Record<Kind, number>>,
): Attacker {
  const sockets = new Set<Socket>();
  let serverCloses = 0;
  let connectErrors = 0;
  let connecting = 0;
  let running = true;
  let onSettled: (() => void) | undefined;
  const open = (kind: Kind): void => {
    const port = kind === 'uwsgi-silent' ? targets.uwsgiPort : targets.httpPort;
    const socket = connect({ host: '127.0.0.1', port });
    let connected = false;
    let ours = false;
    connecting++;
    sockets.add(socket);
    socket.setNoDelay(true);
    socket.on('connect', () => {
      connected = true;
      connecting--;
      if (connecting === 0) onSettled?.();
      if (kind === 'http-keep-alive') socket.write('GET /instant HTTP/1.1\r\nHost: a\r\n\r\n');
    });
    socket.on('data', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      sockets.delete(socket);
      if (!connected) {
        connecting--;
        connectErrors++;
        if (connecting === 0) onSettled?.();
      } else if (!ours) {
        serverCloses++;
      }
      if (running) setImmediate(() => open(kind));
    });
    (socket as Socket & { closeOurs?: () => void }).closeOurs = () => {
      ours = true;
      socket.destroy();
    };
  };
  for (const [kind, count] of Object.entries(counts) as [Kind, number][]) {
    for (let i = 0; i < count; i++) open(kind);
  }
  return {
    serverCloses: () => serverCloses,
    connectErrors: () => connectErrors,
    open: () => sockets.size,
    settle() {
      running = false;
      return connecting === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            onSettled = resolve;
          });
    },
    async stop() {
      running = false;
      const closing = [...sockets].map((s) => (s.closed ? undefined : once(s, 'close')));
      for (const s of sockets) (s as Socket & { closeOurs: () => void }).closeOurs();
      await Promise.all(closing);
    },
  };
}

/**
 * `{"cmd":"stats"}` on the master's control socket: every worker's counters since start, and the
 * connections open now.
 */
async function controlStats(stack: Stack): Promise<Record<string, number>> {
  const answer = (await sendControl(stack.controlPath, 'stats', 5000)) as {
    stats?: { lifetime?: Record<string, number>; total?: Record<string, number> };
  };
  const { lifetime, total } = answer.stats ?? {};
  if (lifetime === undefined || total === undefined) {
    throw new Error(`control stats: ${JSON.stringify(answer)}`);
  }
  return { ...lifetime, connections: total['connections'] ?? 0 };
}

describe.skipIf(!HAS_NGINX)('exhaustion (1 worker, ulimit -n 1024)', () => {
  it('2,000 idle connections: idle ones are shed, the canary through nginx keeps working, fds come back', async () => {
    assertBuilt();
    const s = await startStack({
      label: 'exhaustion',
      workers: 1,
      openFiles: OPEN_FILES,
      tcpUwsgi: true,
      limits: { headerTimeoutMs: 60_000 },
    });
    current = s;
    await settle(s, 1);
    const [worker] = s.servingWorkers();
    if (worker === undefined) throw new Error('no serving worker');
    const fdBaseline = openFds(worker);
    // Open before the attack (the stack's own keep-alive canary): idle, so they may be shed too.
    const openBefore = (await controlStats(s))['connections'] ?? 0;
    const uwsgiTarget = s.container.target('uwsgi', 'tcp');
    const httpTarget = s.container.target('http', 'tcp');
    if (!('port' in uwsgiTarget) || !('port' in httpTarget)) throw new Error('no TCP listeners');

    const driver = startDriver({
      origin: s.nginxOrigin,
      path: () => '/instant',
      concurrency: 4,
      keepAlive: true,
      timeoutMs: 5000,
    });
    s.defer(() => driver.stop());
    const attacker = attack(
      { uwsgiPort: uwsgiTarget.port, httpPort: httpTarget.port },
      {
        'uwsgi-silent': UWSGI_SILENT,
        'http-silent': HTTP_SILENT,
        'http-keep-alive': HTTP_KEEP_ALIVE,
      },
    );
    s.defer(() => attacker.stop());
    let fdMax = fdBaseline;
    const until = Date.now() + ATTACK_MS;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 250));
      fdMax = Math.max(fdMax, openFds(worker));
    }
    // The canary first: each of its requests is a new connection that may shed more.
    const records = await driver.stop();
    await attacker.settle();
    // Every close the server made reaches the attacker a moment after the counter moved, and a
    // busy worker's counters reach the master late (its last heartbeat until it answers): read
    // both until they agree (no new connection comes, so neither moves any more).
    const accounted = (st: Record<string, number>) =>
      (st['connectionsShed'] ?? 0) + (st['connectionsRejected'] ?? 0);
    const agree = (st: Record<string, number>) =>
      attacker.serverCloses() <= accounted(st) &&
      accounted(st) <= attacker.serverCloses() + openBefore;
    let stats = await controlStats(s);
    for (let i = 0; i < 100 && !agree(stats); i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      stats = await controlStats(s);
    }
    const serverCloses = attacker.serverCloses();
    const held = attacker.open();
    await attacker.stop();
    const fdDelta = await (async () => {
      let fds = openFds(worker);
      for (let i = 0; i < 100 && fds > fdBaseline; i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        fds = openFds(worker);
      }
      return fds - fdBaseline;
    })();
    current = undefined;
    const problems = await s.teardown();
    const warnings = s.container.logs.filter(
      (r: LogRecord) => r.msg === 'connection limit reached',
    );
    const warnedShed = warnings.reduce((n, r) => n + Number(r['shed'] ?? 0), 0);
    const warnedRefused = warnings.reduce((n, r) => n + Number(r['refused'] ?? 0), 0);

    const errors = records.filter((r) => r.status !== 200);
    const errorRate = records.length === 0 ? 1 : errors.length / records.length;
    const shed = stats['connectionsShed'] ?? 0;
    const refused = stats['connectionsRejected'] ?? 0;
    const pass =
      problems.length === 0 &&
      records.length > 0 &&
      errorRate < MAX_CANARY_ERROR_RATE &&
      shed + refused - serverCloses >= 0 &&
      shed + refused - serverCloses <= openBefore &&
      warnedShed === shed &&
      fdDelta <= 0;
    summary(
      'U29',
      'exhaustion',
      {
        canary: records.length,
        canary_errors: errors.length,
        canary_error_pct: round(errorRate * 100, 3),
        canary_p99_ms: round(
          [...records].map((r) => r.t1 - r.t0).sort((a, b) => a - b)[
            Math.floor(records.length * 0.99)
          ] ?? 0,
        ),
        shed,
        refused,
        server_closes: serverCloses,
        open_before: openBefore,
        attacker_connect_errors: attacker.connectErrors(),
        attacker_held_at_end: held,
        warnings: warnings.length,
        warned_shed: warnedShed,
        worker_fd_baseline: fdBaseline,
        worker_fd_max: fdMax,
        worker_fd_delta_after: fdDelta,
        limit: Number(warnings[0]?.['limit'] ?? 0),
      },
      pass,
    );
    for (const r of errors.slice(0, 5)) console.log(`U29 canary error: ${JSON.stringify(r)}`);

    expect(problems).toEqual([]);
    expect(records.length).toBeGreaterThan(0);
    expect(errorRate).toBeLessThan(MAX_CANARY_ERROR_RATE);
    // The attack did reach the limit, and the fds never did.
    expect(shed).toBeGreaterThan(0);
    expect(fdMax).toBeLessThan(OPEN_FILES);
    // Every close the attacker saw is a counted shed or refusal, and every shed or refusal is
    // one of them or one of the connections open before; the warnings add up.
    expect(shed + refused - serverCloses).toBeGreaterThanOrEqual(0);
    expect(shed + refused - serverCloses).toBeLessThanOrEqual(openBefore);
    expect(warnedShed).toBe(shed);
    expect(warnedRefused).toBe(refused);
    expect(fdDelta).toBeLessThanOrEqual(0);
  });
});
