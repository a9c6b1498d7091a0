/**
 * RELIABILITY.md R11 on one 2-core machine (section 4): one worker whose handler holds each
 * request 100 ms, `limits.maxInFlight: 8`, and 256 concurrent clients through nginx for 20 s
 * (wrk and the Node driver of load.ts, below). Expected: the excess is answered 503 at
 * once instead of queueing, the app never holds more than 8 requests, no socket errors, the
 * admitted requests' p99 stays within 50 ms of the handler's own 100 ms, and the master's RSS
 * grows by less than 50 MiB.
 *
 * Load: wrk (-t1) holds 240 of the 256 clients; the Node driver holds 16 and times each of its
 * requests, since wrk reports one latency distribution for all answers and R11's figure is the
 * admitted requests' alone. (A Node driver for all 256 costs enough CPU on 2 cores to add its
 * own queue: p99 200-250 ms with the worker's timers 7 ms late at p99.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { assertBuilt } from '../utils/cli.ts';
import { HAS_NGINX } from '../utils/nginx.ts';
import { rssMb } from '../utils/procs.ts';
import { round, settle, summary } from './faults.ts';
import { HAS_WRK, latencyQuantileMs, socketErrors, startDriver, startWrk } from './load.ts';
import { type Stack, startStack } from './stack.ts';

const HANDLER_MS = 100;
const MAX_IN_FLIGHT = 8;
const CONCURRENCY = 256;
const SECONDS = 20;
/** Of the 256 clients, the ones timed one by one (the Node driver); wrk runs the rest. */
const PROBES = 16;
/** RELIABILITY.md R11: p99 of admitted requests within this of the handler's own time. */
const P99_OVER_HANDLER_MS = 50;
const MASTER_RSS_GROWTH_MB = 50;
/** Far below what a queue would give (about 3 s), far above R11's 150 ms. */
const NO_QUEUE_MS = 1000;

let current: Stack | undefined;

afterEach(async () => {
  const left = current;
  current = undefined;
  if (left !== undefined) await left.teardown();
});

describe.skipIf(!HAS_NGINX || !HAS_WRK)('R11 overload (1 worker, maxInFlight 8)', () => {
  it('R11: 256 clients on a 100 ms handler: the excess gets 503, admitted p99 stays bounded', async () => {
    assertBuilt();
    const s = await startStack({
      label: 'r11',
      workers: 1,
      limits: { maxInFlight: MAX_IN_FLIGHT },
    });
    current = s;
    await settle(s, 1);
    const masterRssBefore = rssMb(s.masterPid) ?? 0;

    const wrk = startWrk({
      url: `${s.nginxOrigin}/wait?ms=${HANDLER_MS}`,
      connections: CONCURRENCY - PROBES,
      seconds: SECONDS,
      dir: s.dir,
      pids: s.pids,
    });
    s.defer(() => wrk.stop());
    const driver = startDriver({
      origin: s.nginxOrigin,
      path: () => `/wait?ms=${HANDLER_MS}`,
      concurrency: PROBES,
      keepAlive: true,
    });
    s.defer(() => driver.stop());
    let masterRssMax = masterRssBefore;
    const until = Date.now() + SECONDS * 1000;
    while (Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      masterRssMax = Math.max(masterRssMax, rssMb(s.masterPid) ?? 0);
    }
    const records = await driver.stop();
    const load = await wrk.result;
    // Once the last admitted requests are done: until then this is one of the excess (503).
    let answer = await fetch(`${s.httpOrigin}/max-active`);
    for (let i = 0; answer.status === 503 && i < 50; i++) {
      await answer.arrayBuffer();
      await new Promise((resolve) => setTimeout(resolve, HANDLER_MS));
      answer = await fetch(`${s.httpOrigin}/max-active`);
    }
    const maxActive = (await answer.json()) as {
      maxActive: number;
      waits: number;
      latenessP99Ms: number;
    };
    current = undefined;
    const problems = await s.teardown();

    const admitted = records.filter((r) => r.status === 200);
    const shed = records.filter((r) => r.status === 503);
    const other = records.filter((r) => r.status !== 200 && r.status !== 503);
    const p99 = latencyQuantileMs(admitted, 0.99);
    const shedP99 = latencyQuantileMs(shed, 0.99);
    const rssGrowth = masterRssMax - masterRssBefore;
    const loadOther = Object.entries(load.statuses)
      .filter(([code]) => code !== '200' && code !== '503')
      .reduce((n, [, count]) => n + count, 0);
    const pass =
      admitted.length > 0 &&
      socketErrors(load) === 0 &&
      loadOther === 0 &&
      shed.length > 0 &&
      other.length === 0 &&
      maxActive.maxActive <= MAX_IN_FLIGHT &&
      p99 < HANDLER_MS + P99_OVER_HANDLER_MS &&
      rssGrowth < MASTER_RSS_GROWTH_MB &&
      problems.length === 0;
    summary(
      'R11',
      'overload',
      {
        wrk_M: load.requests,
        wrk_200: load.statuses['200'] ?? 0,
        wrk_503: load.statuses['503'] ?? 0,
        wrk_other: loadOther,
        wrk_sockerr: socketErrors(load),
        probe_M: records.length,
        admitted: admitted.length,
        shed_503: shed.length,
        other: other.length,
        max_active: maxActive.maxActive,
        admitted_p50_ms: round(latencyQuantileMs(admitted, 0.5)),
        admitted_p99_ms: round(p99),
        admitted_max_ms: round(latencyQuantileMs(admitted, 1)),
        shed_p99_ms: round(shedP99),
        app_waits: maxActive.waits,
        worker_timer_late_p99_ms: round(maxActive.latenessP99Ms),
        target: `p99<${HANDLER_MS + P99_OVER_HANDLER_MS}`,
        master_rss_growth_mb: round(rssGrowth, 1),
      },
      pass,
    );
    for (const r of other.slice(0, 5)) console.log(`R11 other: ${JSON.stringify(r)}`);

    expect(problems).toEqual([]);
    expect(other).toEqual([]);
    expect(socketErrors(load)).toBe(0);
    expect(loadOther).toBe(0);
    expect(shed.length).toBeGreaterThan(0);
    expect(admitted.length).toBeGreaterThan(0);
    // The cap itself: the app never held more than maxInFlight requests at once.
    expect(maxActive.maxActive).toBeLessThanOrEqual(MAX_IN_FLIGHT);
    // No queue: a FIFO of the 248 excess clients at 8 per 100 ms would hold an admitted request
    // about 3 s. How close p99 comes to R11's 50 ms is a figure for the log (the summary line's
    // PASS), not an assertion: house rule, and it follows the machine's load.
    expect(p99).toBeLessThan(NO_QUEUE_MS);
    expect(rssGrowth).toBeLessThan(MASTER_RSS_GROWTH_MB);
  });
});
