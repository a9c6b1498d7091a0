/**
 * RELIABILITY.md R6, R6b, R6c on one 2-core machine (section 4): graceful reloads of a master
 * with 2 workers under load, through a real nginx (`uwsgi_pass unix:`, a new uwsgi connection
 * per request) and on the HTTP listener with keep-alive clients; reloads into broken code and
 * into an invalid config. Each test prints one summary line and asserts after its clean-up.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { assertBuilt, type LogRecord, runCli } from '../utils/cli.ts';
import { HAS_NGINX } from '../utils/nginx.ts';
import { liveChildren, zombiesUnder } from '../utils/procs.ts';
import {
  type DrainReport,
  drainReport,
  every,
  nextOutcome,
  type ReloadOutcome,
  round,
  settle,
  sighup,
  summary,
} from './faults.ts';
import {
  HAS_WRK,
  latencyQuantileMs,
  non2xx,
  rps,
  socketErrors,
  startDriver,
  startWrk,
  type Wrk,
  type WrkResult,
  wrkClean,
  wrkFields,
} from './load.ts';
import { type Stack, type StackOptions, startStack } from './stack.ts';

const RELOAD_EVERY_MS = 3000;
const RELOADS = 10;
/** Load after the last fault, so its old generation drains under load too. */
const TAIL_MS = 3000;
const MERCY_MS = 5000;

let current: Stack | undefined;

afterEach(async () => {
  // A test that threw before its own teardown: stop everything by PID, remove the dir.
  const left = current;
  current = undefined;
  if (left !== undefined) await left.teardown();
});

/** Runs `body` on a fresh stack and tears it down; returns the result and the end problems. */
async function withStack<T>(
  options: StackOptions,
  body: (s: Stack) => Promise<T>,
): Promise<{ result: T; problems: string[] }> {
  assertBuilt();
  const s = await startStack(options);
  current = s;
  const result = await body(s);
  current = undefined;
  return { result, problems: await s.teardown() };
}

/** The state at the end of a reload test's load: drain, fds, zombies, live set. */
interface End {
  readonly drain: DrainReport;
  readonly fdDelta: number;
  readonly zombies: number;
  readonly live: number;
}

/** End-of-load checks shared by the reload tests: drain, live set, zombies, fds. */
async function afterLoad(s: Stack): Promise<End> {
  await settle(s, 2);
  const drain = drainReport(s, MERCY_MS);
  const fdDelta = await s.fdDelta();
  const zombies = zombiesUnder(s.masterPid).length;
  return { drain, fdDelta, zombies, live: liveChildren(s.masterPid).length };
}

/** The end state and the stack's teardown (`problems`) are clean. */
const endClean = (end: End, problems: readonly string[]): boolean =>
  end.drain.problems.length === 0 &&
  end.fdDelta <= 0 &&
  end.zombies === 0 &&
  end.live === 2 &&
  problems.length === 0;

/** The end state's fields of a summary line. */
const endFields = (end: End) => ({
  drain_max_ms: end.drain.maxMs,
  fd_delta: end.fdDelta,
  zombies: end.zombies,
});

/** Asserts what `endClean` checks. */
function expectCleanEnd(end: End, problems: readonly string[]): void {
  expect(problems).toEqual([]);
  expect(end.drain.problems).toEqual([]);
  expect(end.fdDelta).toBeLessThanOrEqual(0);
  expect(end.zombies).toBe(0);
  expect(end.live).toBe(2);
}

/** Asserts what `wrkClean` checks: every answer a 200, no socket error. */
function expectWrkClean(wrk: WrkResult): void {
  expect(wrk.statuses).toEqual({ '200': wrk.requests });
  expect(socketErrors(wrk), JSON.stringify(wrk)).toBe(0);
}

/** `wrk -c32` on nginx's `path` for `seconds`; the stack's teardown stops it if a test throws. */
function nginxWrk(s: Stack, path: string, seconds: number): Wrk {
  const wrk = startWrk({
    url: `${s.nginxOrigin}${path}`,
    connections: 32,
    seconds,
    dir: s.dir,
    pids: s.pids,
  });
  s.defer(() => wrk.stop());
  return wrk;
}

/** `RELOADS` SIGHUPs `RELOAD_EVERY_MS` apart, then the tail of load; the count that reloaded. */
async function sighupReloads(s: Stack): Promise<number> {
  const seen = new Set<LogRecord>();
  const reloads = await every(RELOAD_EVERY_MS, RELOADS, () => sighup(s, seen));
  await delay(TAIL_MS);
  return reloads.filter((r) => r.ok).length;
}

/** The version and worker of one answer through nginx. */
async function probe(s: Stack): Promise<{ status: number; version: string; pid: number }> {
  const res = await fetch(`${s.nginxOrigin}/instant`);
  await res.arrayBuffer();
  return {
    status: res.status,
    version: res.headers.get('x-app-version') ?? '',
    pid: Number(res.headers.get('x-pid')),
  };
}

describe.skipIf(!HAS_NGINX || !HAS_WRK)('R6 graceful reload under load (2 workers)', () => {
  it('R6a: nginx, handler sleeping 0-200 ms, SIGHUP every 3 s', async () => {
    const { result, problems } = await withStack(
      { label: 'r6a', reloadMercyMs: MERCY_MS },
      async (s) => {
        const wrk = nginxWrk(s, '/sleep', 120);
        const reloaded = await sighupReloads(s);
        return { wrk: await wrk.stop(), reloaded, end: await afterLoad(s) };
      },
    );
    const { wrk, reloaded, end } = result;
    const pass = wrkClean(wrk) && reloaded === RELOADS && endClean(end, problems);
    summary(
      'R6a',
      'reload-under-load',
      {
        ...wrkFields(wrk),
        reloads: reloaded,
        p99_ms: round(wrk.p99Us / 1000),
        max_ms: round(wrk.maxUs / 1000),
        ...endFields(end),
      },
      pass,
    );
    expectCleanEnd(end, problems);
    expectWrkClean(wrk);
    expect(reloaded).toBe(RELOADS);
  });

  it("R6a': nginx, instant handler, SIGHUP every 3 s vs a no-reload window", async () => {
    const { result, problems } = await withStack(
      { label: 'r6a2', reloadMercyMs: MERCY_MS },
      async (s) => {
        await nginxWrk(s, '/instant', 2).result; // warm-up (JIT, nginx), not counted
        const quiet = await nginxWrk(s, '/instant', 10).result;
        const busy = nginxWrk(s, '/instant', 120);
        const reloaded = await sighupReloads(s);
        return { quiet, busy: await busy.stop(), reloaded, end: await afterLoad(s) };
      },
    );
    const { quiet, busy, reloaded, end } = result;
    const errors = non2xx(quiet.statuses) + non2xx(busy.statuses);
    const sockerr = socketErrors(quiet) + socketErrors(busy);
    const pass =
      busy.requests > 0 &&
      errors === 0 &&
      sockerr === 0 &&
      reloaded === RELOADS &&
      endClean(end, problems);
    // Throughput and latency are logged, not asserted (section 4: compare within a run only).
    summary(
      "R6a'",
      'reload-under-load-instant',
      {
        M: busy.requests,
        non2xx: errors,
        sockerr,
        reloads: reloaded,
        rps_reload: round(rps(busy)),
        rps_quiet: round(rps(quiet)),
        p99_ms_reload: round(busy.p99Us / 1000, 1),
        p99_ms_quiet: round(quiet.p99Us / 1000, 1),
        max_ms_reload: round(busy.maxUs / 1000, 1),
        ...endFields(end),
      },
      pass,
    );
    expectCleanEnd(end, problems);
    expect(busy.statuses).toEqual({ '200': busy.requests });
    expect(quiet.statuses).toEqual({ '200': quiet.requests });
    expect(sockerr, JSON.stringify({ quiet, busy })).toBe(0);
    expect(reloaded).toBe(RELOADS);
  });

  it('R6b: HTTP listener, keep-alive clients (c16), SIGHUP every 3 s', async () => {
    const { result, problems } = await withStack(
      { label: 'r6b', reloadMercyMs: MERCY_MS },
      async (s) => {
        // Half the requests sleep 0-200 ms, half are instant: sockets sit idle between
        // requests for very different shares of their time.
        const driver = startDriver({
          origin: s.httpOrigin,
          path: (i) => (i % 2 === 0 ? '/sleep' : '/instant'),
          concurrency: 16,
          keepAlive: true,
        });
        s.defer(() => driver.stop());
        const reloaded = await sighupReloads(s);
        const records = await driver.stop();
        return { records, reloaded, end: await afterLoad(s) };
      },
    );
    const { records, reloaded, end } = result;
    const answered = records.filter((r) => r.status !== undefined);
    const bad = answered.filter((r) => r.status !== 200);
    const errors = records.filter((r) => r.error !== undefined);
    const kinds = new Map<string, number>();
    for (const e of errors) {
      const kind = `${e.error}/${e.reused ? 'reused' : 'fresh'}${e.afterHead ? '/after-head' : ''}`;
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
    const pass =
      answered.length > 0 &&
      bad.length === 0 &&
      errors.length === 0 &&
      reloaded === RELOADS &&
      endClean(end, problems);
    summary(
      'R6b',
      'reload-keepalive-http',
      {
        M: records.length,
        non2xx: bad.length,
        sockerr: errors.length,
        sockerr_kinds:
          errors.length === 0 ? '-' : [...kinds].map(([k, n]) => `${k}:${n}`).join(','),
        conn_close_answers: answered.filter((r) => r.close).length,
        reloads: reloaded,
        p99_ms: round(latencyQuantileMs(answered, 0.99)),
        ...endFields(end),
      },
      pass,
    );
    expectCleanEnd(end, problems);
    expect(bad).toEqual([]);
    // Target 0: old workers answer `Connection: close` and close only sockets left idle.
    expect([...kinds]).toEqual([]);
    expect(reloaded).toBe(RELOADS);
  });

  it('R6c: reloads into broken code and invalid configs, alternating with good ones', async () => {
    type Step = 'good' | 'throws' | 'hangs' | 'yaml-syntax' | 'yaml-schema';
    const steps: Step[] = [
      'good',
      'throws',
      'good',
      'yaml-syntax',
      'good',
      'hangs',
      'good',
      'throws',
      'good',
      'yaml-schema',
    ];
    interface StepResult {
      step: Step;
      problems: string[];
      outcome?: ReloadOutcome;
      /** What `uwsgi-ts reload` printed (for the log). */
      said?: string;
    }
    // The `hangs` step costs this much; good steps must boot within it (a loaded CI box).
    const readyTimeoutMs = 8000;
    const { result, problems } = await withStack(
      { label: 'r6c', reloadMercyMs: MERCY_MS, readyTimeoutMs },
      async (s) => {
        const seen = new Set<LogRecord>();
        const wrk = nginxWrk(s, '/sleep', 180);
        let version = 1;
        const checkOldServes = async (before: number[], problems: string[]) => {
          const now = s.servingWorkers();
          if (before.length !== 2 || JSON.stringify(now) !== JSON.stringify(before)) {
            problems.push(`workers changed: ${before.join(',')} -> ${now.join(',')}`);
          }
          for (let i = 0; i < 4; i++) {
            const p = await probe(s);
            if (p.status !== 200 || p.version !== `v${version}` || !before.includes(p.pid)) {
              problems.push(`probe after a failed reload: ${JSON.stringify(p)}`);
            }
          }
        };
        const results = await every(RELOAD_EVERY_MS, steps.length, async (i) => {
          const step = steps[i]!;
          const out: StepResult = { step, problems: [] };
          const before = s.servingWorkers();
          const sentAt = Date.now();
          if (step === 'good') {
            version++;
            await s.writeApp({ version: `v${version}` });
            await s.writeConfig();
            const cli = await runCli(['reload', s.configPath], { timeoutMs: 30_000 });
            out.outcome = await nextOutcome(s, seen, sentAt);
            if (cli.code !== 0 || !/reloaded: generation \d+/.test(cli.stdout)) {
              out.problems.push(`reload CONFIG: ${cli.code} ${cli.stdout} ${cli.stderr}`);
            }
            if (!out.outcome.ok) out.problems.push(`not reloaded: ${JSON.stringify(out.outcome)}`);
          } else if (step === 'throws' || step === 'hangs') {
            await s.writeApp(step);
            const cli = await runCli(['reload', s.configPath], { timeoutMs: 30_000 });
            out.outcome = await nextOutcome(s, seen, sentAt);
            const reason = step === 'throws' ? /broken build/ : /not ready within/;
            out.said = `reload CONFIG -> ${cli.code}: ${cli.stderr.trim()}`;
            if (cli.code !== 1 || !reason.test(cli.stderr)) {
              out.problems.push(`reload CONFIG into ${step}: ${cli.code} ${cli.stderr}`);
            }
            if (out.outcome.ok || !reason.test(String(out.outcome.record['error']))) {
              out.problems.push(`master outcome: ${JSON.stringify(out.outcome.record)}`);
            }
            await checkOldServes(before, out.problems);
          } else {
            // The app stays good: only the config is broken.
            await s.writeConfig(
              step === 'yaml-syntax'
                ? 'listeners:\n\t- protocol: uwsgi\n  address: app.sock\n'
                : `${JSON.stringify({ workers: 'four', listeners: [], mounts: [] })}\n`,
            );
            // The CLI reads CONFIG itself to find the control socket: it fails with the reason.
            const byConfig = await runCli(['reload', s.configPath], { timeoutMs: 30_000 });
            const where = /uwsgi-ts\.yaml:\d+:\d+/;
            if (byConfig.code !== 1 || !where.test(byConfig.stderr)) {
              out.problems.push(`reload CONFIG: ${byConfig.code} ${byConfig.stderr}`);
            }
            // Through the control socket the master re-reads it and refuses the reload.
            const bySocket = await runCli(['reload', s.controlPath], { timeoutMs: 30_000 });
            out.outcome = await nextOutcome(s, seen, sentAt);
            out.said = `reload CONFIG -> ${byConfig.code}: ${byConfig.stderr.trim()} | reload SOCKET -> ${bySocket.code}: ${bySocket.stderr.trim()}`;
            if (bySocket.code !== 1 || !/config is invalid/.test(bySocket.stderr)) {
              out.problems.push(`reload SOCKET: ${bySocket.code} ${bySocket.stderr}`);
            }
            if (!where.test(bySocket.stderr)) {
              out.problems.push(`no file:line:col in ${bySocket.stderr}`);
            }
            if (out.outcome.ok) out.problems.push(`reloaded an invalid config`);
            await checkOldServes(before, out.problems);
          }
          s.recordWorkers();
          return out;
        });
        await delay(TAIL_MS);
        const wrkResult = await wrk.stop();
        const end = await afterLoad(s);
        const last = await probe(s);
        if (last.version !== `v${version}`) {
          results.push({ step: 'good', problems: [`serving ${JSON.stringify(last)} at the end`] });
        }
        return { wrk: wrkResult, results, version, end };
      },
    );
    const { wrk, results, end } = result;
    for (const r of results) if (r.said !== undefined) console.log(`R6c ${r.step}: ${r.said}`);
    const failedReloads = results.filter((r) => r.outcome !== undefined && !r.outcome.ok).length;
    const goodReloads = results.filter((r) => r.outcome?.ok === true).length;
    const stepProblems = results.flatMap((r) => r.problems.map((p) => `${r.step}: ${p}`));
    const pass =
      wrkClean(wrk) &&
      stepProblems.length === 0 &&
      goodReloads === steps.filter((x) => x === 'good').length &&
      failedReloads === steps.length - goodReloads &&
      endClean(end, problems);
    summary(
      'R6c',
      'reload-into-broken',
      {
        ...wrkFields(wrk),
        reloads_ok: goodReloads,
        reloads_failed: failedReloads,
        p99_ms: round(wrk.p99Us / 1000),
        ...endFields(end),
      },
      pass,
    );
    expectCleanEnd(end, problems);
    expect(stepProblems).toEqual([]);
    expectWrkClean(wrk);
    expect(goodReloads).toBe(5);
    expect(failedReloads).toBe(5);
  });
});
