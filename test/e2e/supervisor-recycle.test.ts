/**
 * Recycling and overload (docs/supervisor.md "Recycling"; RELIABILITY.md R10, R11): maxRequests
 * and reloadOnRssMb replace workers gracefully, one at a time and new first, without failing a
 * request; evilReloadOnRssMb SIGKILLs within a second of crossing; maxInFlight answers the excess
 * with an immediate 503.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { LogRecord } from '../utils/cli.ts';
import { TRANSPORT } from '../utils/config.ts';
import { HAS_NGINX } from '../utils/nginx.ts';
import { childPids, liveChildren, waitUntilGone } from '../utils/procs.ts';
import {
  backgroundLoad,
  control,
  fanOut,
  httpBase,
  httpGet,
  isExit,
  type PidAnswer,
  type Supervised,
  split,
  supervisorSuite,
  uwsgiGet,
  writeSupervisorConfig,
} from '../utils/supervisor.ts';

/**
 * Recycles in the master's log never overlap: after `recycling worker` for slot N, the next one
 * comes only once slot N's replacement is ready. Returns the recycled worker PIDs in order.
 */
function expectSerialRecycles(records: readonly LogRecord[]): number[] {
  let active: number | undefined;
  const recycled: number[] = [];
  for (const r of records) {
    if (r.msg === 'recycling worker') {
      expect(active, `recycle of worker ${String(r['worker'])} while another one runs`).toBe(
        undefined,
      );
      active = r['worker'] as number;
      recycled.push(r['workerPid'] as number);
    } else if (r.msg === 'worker ready' && r['worker'] === active) {
      active = undefined;
    }
  }
  return recycled;
}

/** Samples the master's live children every 5 ms until stopped; returns the fewest seen. */
function sampleChildren(masterPid: number): { stop(): number } {
  let fewest = Number.POSITIVE_INFINITY;
  const timer = setInterval(() => {
    fewest = Math.min(fewest, childPids(masterPid).length);
  }, 5);
  return {
    stop() {
      clearInterval(timer);
      return fewest;
    },
  };
}

/** Requests through nginx when there is one, else straight to the unix uwsgi socket. */
async function frontOf(
  suite: ReturnType<typeof supervisorSuite>,
  c: Supervised,
): Promise<(path: string) => Promise<PidAnswer>> {
  if (!HAS_NGINX) return (path) => uwsgiGet(c.target('uwsgi', 'unix'), path);
  const nginx = await suite.nginx(c.address('uwsgi', 'unix'));
  return (path) => httpGet(nginx.url(path));
}

describe(`supervisor: recycling and overload (transport ${TRANSPORT ?? 'default'})`, () => {
  const suite = supervisorSuite('e2e-supr');

  it('maxRequests: 20 replaces each worker after 20 requests, one at a time, new first, 0 failures', async () => {
    const config = await writeSupervisorConfig(suite.dir(), {
      workers: 2,
      limits: { maxRequests: 20 },
      reloadMercyMs: 5000,
    });
    const c = await suite.start(config);
    const get = await frontOf(suite, c);
    const first = c.firstWorkers;
    const children = sampleChildren(c.pid);
    const answers: PidAnswer[] = [];
    const recycledBoth = () =>
      first.every((pid) => c.records((r) => isExit(r) && r['workerPid'] === pid).length > 0);
    // Batches of 4 concurrent requests until both first workers were recycled (bounded in
    // time: a replacement must boot before the old worker goes).
    const until = Date.now() + 20_000;
    while (!recycledBoth() && Date.now() < until) {
      answers.push(...(await fanOut(4, 4, () => get('/pid'))));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const fewest = children.stop();
    const { byPid, failed } = split(answers);
    console.log(
      `supervisor maxRequests=20: ${answers.length} requests, ${failed} failed, per worker ${[...byPid].map(([p, n]) => `${p}=${n}`).join(' ')}, fewest live workers ${fewest}`,
    );
    expect(recycledBoth()).toBe(true);
    expect(failed).toBe(0);
    for (const pid of first) {
      expect(byPid.get(pid) ?? 0).toBeGreaterThanOrEqual(20);
      const exit = await c.waitForLog((r) => isExit(r) && r['workerPid'] === pid);
      expect(exit).toMatchObject({ code: 0, signal: null, reason: 'max-requests' });
    }
    const recycled = expectSerialRecycles(c.logs);
    for (const pid of first) expect(recycled).toContain(pid);
    expect(
      c.records((r) => r.msg === 'recycling worker').every((r) => r['reason'] === 'max-requests'),
    ).toBe(true);
    // Never fewer than the configured two (the replacement is ready before the old one stops).
    expect(fewest).toBeGreaterThanOrEqual(2);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  });

  it('reloadOnRssMb: workers over the soft limit are replaced gracefully, one at a time, 0 failures', async () => {
    const config = await writeSupervisorConfig(suite.dir(), {
      workers: 2,
      limits: { reloadOnRssMb: 150 },
      reloadMercyMs: 5000,
    });
    const c = await suite.start(config);
    const get = await frontOf(suite, c);
    const first = c.firstWorkers;
    const children = sampleChildren(c.pid);
    const load = backgroundLoad(() => get('/pid'));
    // Both first workers over 150 MiB (each /alloc lands on one of them; bounded).
    const over = new Set<number>();
    for (let i = 0; i < 20 && over.size < 2; i++) {
      for (const a of await fanOut(2, 2, () => get('/alloc?toMb=180'))) {
        expect(a.status).toBe(200);
        if (a.pid !== undefined && first.includes(a.pid)) over.add(a.pid);
      }
    }
    expect([...over].sort((a, b) => a - b)).toEqual(first);
    for (const pid of first) {
      const exit = await c.waitForLog((r) => isExit(r) && r['workerPid'] === pid, 15_000);
      expect(exit).toMatchObject({ code: 0, signal: null, reason: 'rss' });
    }
    await waitUntilGone(first, 2000);
    const fewest = children.stop();
    const { ok, failures } = await load.stop();
    console.log(
      `supervisor reloadOnRssMb=150: both workers recycled, ${ok} requests meanwhile, ${failures.length} failed, fewest live workers ${fewest}`,
    );
    expect(failures, 'requests failed during RSS recycling').toEqual([]);
    const recycled = expectSerialRecycles(c.logs);
    for (const pid of first) expect(recycled).toContain(pid);
    expect(fewest).toBeGreaterThanOrEqual(2);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  });

  it('evilReloadOnRssMb: SIGKILL within ~1 s of crossing the hard limit, the other worker untouched', async () => {
    const config = await writeSupervisorConfig(suite.dir(), {
      workers: 2,
      limits: { evilReloadOnRssMb: 150 },
    });
    const c = await suite.start(config);
    const unix = c.target('uwsgi', 'unix');
    const from = c.logs.length;
    const sent = Date.now();
    // Its answer races the kill (the master samples every 500 ms): a lost answer is allowed,
    // and then the time the request was sent stands in for the crossing (a stricter bound).
    const alloc = await uwsgiGet(unix, '/alloc?toMb=165').catch(() => undefined);
    const record = await c.logAfter(
      from,
      (r) => r.msg === 'worker over evilReloadOnRssMb: killing it',
    );
    const victim = record['workerPid'] as number;
    if (alloc !== undefined) expect(alloc).toMatchObject({ status: 200, pid: victim });
    expect(record).toMatchObject({ level: 40, limitMb: 150 });
    expect(record['rssMb'] as number).toBeGreaterThan(150);
    const crossedAt = (JSON.parse(alloc?.body.toString() ?? '{}') as { crossedAt?: number })
      .crossedAt;
    const ms = (record['time'] as number) - (crossedAt ?? sent);
    console.log(`supervisor evilReloadOnRssMb=150: killed ${ms} ms after crossing`);
    // "Within ~1 s": the master samples every 500 ms, so 500 ms plus the wake-up of a timer on
    // a loaded 2-core machine (seen up to 1020 ms with other suites running); 1500 ms still
    // fails a sampler that misses a tick or samples once a second.
    expect(ms).toBeLessThan(1500);
    const exit = await c.logAfter(from, (r) => isExit(r) && r['workerPid'] === victim);
    expect(exit).toMatchObject({ signal: 'SIGKILL', reason: 'evil-rss' });
    const replaced = await c.logAfter(
      from,
      (r) => r.msg === 'worker ready' && r['worker'] === exit['worker'],
    );
    const other = c.firstWorkers.filter((p) => p !== victim);
    expect(liveChildren(c.pid)).toEqual(
      [...other, replaced['workerPid'] as number].sort((a, b) => a - b),
    );
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  });

  it('R11 maxInFlight: 2: the excess gets 503 at once while two slow requests run', async () => {
    const dir = suite.dir();
    const config = await writeSupervisorConfig(dir, {
      workers: 1,
      control: 'ctl.sock',
      limits: { maxInFlight: 2 },
    });
    const c = await suite.start(config);
    const unix = c.target('uwsgi', 'unix');
    const slow = [uwsgiGet(unix, '/slow?ms=2500'), uwsgiGet(unix, '/slow?ms=2500')];
    // Both in flight (the worker's own count, through the master's control socket).
    await expect
      .poll(
        async () => {
          const { answer } = await control(join(dir, 'ctl.sock'), 'stats');
          return (answer['stats'] as { total?: { inFlight?: number } }).total?.inFlight;
        },
        { timeout: 10_000, interval: 20 },
      )
      .toBe(2);
    const timed = async (one: () => Promise<PidAnswer>) => {
      const t = performance.now();
      const a = await one();
      return { status: a.status, ms: performance.now() - t };
    };
    const excess = await Promise.all([
      ...Array.from({ length: 6 }, () => timed(() => uwsgiGet(unix, '/pid'))),
      timed(() => httpGet(`${httpBase(c)}/pid`)),
    ]);
    console.log(
      `supervisor maxInFlight=2: excess answered ${excess.map((e) => `${e.status}/${Math.round(e.ms)}ms`).join(' ')}`,
    );
    for (const e of excess) {
      expect(e.status).toBe(503);
      expect(e.ms).toBeLessThan(500);
    }
    for (const a of await Promise.all(slow)) expect(a.status).toBe(200);
    expect((await uwsgiGet(unix, '/pid')).status).toBe(200);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  });
});
