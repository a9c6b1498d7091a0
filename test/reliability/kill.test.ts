/**
 * RELIABILITY.md R7 on one 2-core machine (section 4): SIGKILL a random worker every 3 s, 10
 * times, under load through nginx from a Node driver (no keep-alive, fixed concurrency 16) that
 * logs `t_start, t_end, status|errcode` per request. Every request carries `?id=N` and the app
 * appends `N PID` to a trace file before anything else, so each failure is tied to the worker
 * that had taken it and to the kill that ended that worker.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { assertBuilt, type LogRecord } from '../utils/cli.ts';
import { HAS_NGINX } from '../utils/nginx.ts';
import { liveChildren, zombiesUnder } from '../utils/procs.ts';
import { every, round, settle, summary } from './faults.ts';
import { latencyQuantileMs, quantile, startDriver } from './load.ts';
import { type Stack, startStack } from './stack.ts';

const KILL_EVERY_MS = 3000;
const KILLS = 10;
const TAIL_MS = 3000;
const CONCURRENCY = 16;

interface Kill {
  readonly pid: number;
  /** The killed worker's slot (`worker` in the master's records). */
  readonly slot: number;
  /** On the driver's clock. */
  readonly t: number;
  readonly epoch: number;
  /** Zombie children of the master just before this kill. */
  readonly zombiesBefore: number;
}

let current: Stack | undefined;

afterEach(async () => {
  const left = current;
  current = undefined;
  if (left !== undefined) await left.teardown();
});

describe.skipIf(!HAS_NGINX)('R7 worker SIGKILL under load (2 workers)', () => {
  it('R7: kill -9 a random worker every 3 s, 10 times', async () => {
    assertBuilt();
    const s = await startStack({ label: 'r7', trace: true });
    current = s;
    const slotOf = (pid: number): number =>
      Number(s.records('worker ready').find((r) => r['workerPid'] === pid)?.['worker'] ?? 0);

    const driver = startDriver({
      origin: s.nginxOrigin,
      path: () => '/sleep',
      concurrency: CONCURRENCY,
      keepAlive: false,
    });
    s.defer(() => driver.stop());
    const kills = await every(KILL_EVERY_MS, KILLS, async (): Promise<Kill> => {
      const zombiesBefore = zombiesUnder(s.masterPid).length;
      // A worker that serves (ready): one still booting has no requests to lose. Both slots may
      // be empty for a while (respawn backoff): wait, bounded, for one to be ready.
      let ready = s.servingWorkers();
      for (let i = 0; ready.length === 0 && i < 300; i++) {
        await delay(100);
        ready = s.servingWorkers();
      }
      const pid = ready[Math.floor(Math.random() * ready.length)];
      if (pid === undefined) throw new Error('no ready worker to kill for 30 s');
      s.pids.add(pid, 'worker');
      const kill = { pid, slot: slotOf(pid), t: driver.now(), epoch: Date.now(), zombiesBefore };
      process.kill(pid, 'SIGKILL');
      return kill;
    });
    await delay(TAIL_MS);
    const records = await driver.stop();
    await settle(s, 2);
    s.recordWorkers();
    const fdDelta = await s.fdDelta();
    const zombies = zombiesUnder(s.masterPid).length;
    const live = liveChildren(s.masterPid).length;
    const trace = parseTrace(await readFile(s.tracePath, 'utf8'));
    const nginxLog = await s.nginx.errorLog();
    const readyRecords = s.records('worker ready');
    const throttled = s.records('worker respawn throttled');
    current = undefined;
    const problems = await s.teardown();

    // Failures: each must have been in flight at a kill, on the worker that kill ended.
    const failures = records.filter((r) => r.status !== 200);
    let unexplained = 0;
    let misattributed = 0;
    let untraced = 0;
    const perKill = new Map<Kill, number>();
    const notes: string[] = [];
    for (const f of failures) {
      const straddled = kills.filter((k) => f.t0 <= k.t && k.t <= f.t1);
      const takenBy = trace.get(f.id);
      const by = takenBy === undefined ? straddled[0] : straddled.find((k) => k.pid === takenBy);
      if (straddled.length === 0) {
        unexplained++;
        notes.push(`failure not in flight at any kill: ${JSON.stringify(f)}`);
      } else if (by === undefined) {
        misattributed++;
        notes.push(
          `failure taken by ${String(takenBy)}, not a killed worker: ${JSON.stringify(f)}`,
        );
      } else {
        if (takenBy === undefined) untraced++;
        perKill.set(by, (perKill.get(by) ?? 0) + 1);
      }
    }
    // Requests in flight on the killed worker at each kill (traced): the failures' ceiling.
    const inFlightOn = (k: Kill) =>
      records.filter((r) => r.t0 <= k.t && k.t <= r.t1 && trace.get(r.id) === k.pid).length;
    const connectFailures = (nginxLog.match(/connect\(\) to unix:\S+ failed/g) ?? []).length;

    // Respawn: the replacement of each kill's slot (first `worker ready` of that slot after it).
    const respawns = kills.map((k) => {
      const ready = readyRecords.find(
        (r: LogRecord) => r['worker'] === k.slot && Number(r['time']) >= k.epoch,
      );
      const delayed = throttled.find(
        (r: LogRecord) => r['worker'] === k.slot && Number(r['time']) >= k.epoch,
      );
      const delayMs =
        delayed !== undefined &&
        (ready === undefined || Number(delayed['time']) <= Number(ready['time']))
          ? Number(delayed['delayMs'])
          : 0;
      return {
        spawnToReady: ready === undefined ? Number.POSITIVE_INFINITY : Number(ready['ms']),
        killToReady:
          ready === undefined ? Number.POSITIVE_INFINITY : Number(ready['time']) - k.epoch,
        backoff: delayMs,
      };
    });
    const spawnToReady = respawns.map((r) => r.spawnToReady);
    const killToReady = respawns.map((r) => r.killToReady);
    // Kill to ready minus the documented backoff and the boot: how fast the master noticed.
    const notice = respawns.map((r) => r.killToReady - r.backoff - r.spawnToReady);
    const zombieSamples = kills.reduce((n, k) => n + k.zombiesBefore, 0);
    const answered = records.filter((r) => r.status === 200);

    const pass =
      kills.length === KILLS &&
      answered.length > 0 &&
      unexplained === 0 &&
      misattributed === 0 &&
      connectFailures === 0 &&
      // Every kill got a replacement that became ready, with no backoff (a serving worker is
      // replaced at once). How fast is a figure for the log and bench/, not an assertion (house
      // rule: no timed assertions in tests; the boot time follows the machine's load). Target
      // on a quiet 2-core machine: p50 < 300 ms, max < 1 s (RELIABILITY.md R7).
      spawnToReady.every(Number.isFinite) &&
      respawns.every((r) => r.backoff === 0) &&
      zombies === 0 &&
      zombieSamples === 0 &&
      fdDelta <= 0 &&
      live === 2 &&
      problems.length === 0;
    summary(
      'R7',
      'worker-kill',
      {
        M: records.length,
        kills: kills.length,
        failed: failures.length,
        failed_per_kill: kills.map((k) => perKill.get(k) ?? 0).join('/'),
        inflight_on_killed: kills.map(inFlightOn).join('/'),
        untraced,
        unexplained,
        misattributed,
        nginx_connect_fail: connectFailures,
        spawn_ready_target: 'p50<300,max<1000',
        spawn_ready_p50_ms: quantile(spawnToReady, 0.5),
        spawn_ready_max_ms: Math.max(...spawnToReady),
        kill_ready_p50_ms: quantile(killToReady, 0.5),
        kill_ready_max_ms: Math.max(...killToReady),
        backoff_ms: respawns.map((r) => r.backoff).join('/'),
        notice_max_ms: round(Math.max(...notice)),
        p99_ms: round(latencyQuantileMs(answered, 0.99)),
        zombies,
        fd_delta: fdDelta,
      },
      pass,
    );
    for (const note of notes.slice(0, 10)) console.log(`R7 ${note}`);

    expect(problems).toEqual([]);
    expect(kills.length).toBe(KILLS);
    expect(notes).toEqual([]);
    expect(connectFailures).toBe(0);
    expect(spawnToReady.every(Number.isFinite)).toBe(true);
    expect(respawns.map((r) => r.backoff)).toEqual(respawns.map(() => 0));
    expect(zombies).toBe(0);
    expect(zombieSamples).toBe(0);
    expect(fdDelta).toBeLessThanOrEqual(0);
    expect(live).toBe(2);
  });
});

/** `ID PID` lines -> id -> pid. */
function parseTrace(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const [id, pid] = line.split(' ');
    if (id !== undefined && pid !== undefined) out.set(Number(id), Number(pid));
  }
  return out;
}
