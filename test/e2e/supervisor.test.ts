/**
 * The master/worker supervisor as a user runs it (docs/supervisor.md): `workers: 2` gives two
 * worker processes that both serve, a graceful stop leaves nothing behind; every reload trigger
 * (SIGHUP, `uwsgi-ts reload CONFIG`, `--pidfile`, `touchReload`) swaps in a whole new generation
 * that serves the edited app and config, with listeners added and removed; and a reload into a
 * broken config or app fails while the old generation serves on (RELIABILITY.md invariant 8).
 */
import { existsSync } from 'node:fs';
import { utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../utils/cli.ts';
import { TRANSPORT } from '../utils/config.ts';
import { canConnect, freePort } from '../utils/net.ts';
import { HAS_NGINX } from '../utils/nginx.ts';
import { childrenOf, liveChildren, openFds, waitUntilGone } from '../utils/procs.ts';
import {
  backgroundLoad,
  fanOut,
  httpBase,
  httpGet,
  isExit,
  SUPERVISOR_APP,
  type Supervised,
  split,
  supervisorSuite,
  uwsgiGet,
  writeSupervisorConfig,
} from '../utils/supervisor.ts';

/** An app module in the test's dir: supervisor.mjs answering with `version`. */
async function writeVersionedApp(file: string, version: string): Promise<void> {
  await writeFile(
    file,
    `process.env.APP_VERSION = ${JSON.stringify(version)};\nexport { default } from ${JSON.stringify(SUPERVISOR_APP)};\n`,
  );
}

/**
 * Waits for the `reloaded` record of `generation` (after log index `from`), then checks that it
 * is a whole new set of workers, that the previous ones exit, and that only the new ones answer,
 * with `version`.
 */
async function expectNewGeneration(
  c: Supervised,
  from: number,
  generation: number,
  previous: readonly number[],
  version: string,
): Promise<number[]> {
  const reloaded = await c.logAfter(from, (r) => r.msg === 'reloaded');
  expect(reloaded).toMatchObject({ generation, workers: 2 });
  const next = c.generationPids(generation).sort((a, b) => a - b);
  expect(next).toHaveLength(2);
  for (const pid of next) expect(previous).not.toContain(pid);
  await waitUntilGone(previous, 5000);
  for (const pid of previous) {
    const exit = await c.logAfter(from, (r) => isExit(r) && r['workerPid'] === pid);
    expect(exit).toMatchObject({ code: 0, signal: null, reason: 'reload' });
  }
  expect(liveChildren(c.pid)).toEqual(next);
  const answers = await fanOut(20, 4, () => uwsgiGet(c.target('uwsgi', 'unix'), '/pid'));
  for (const a of answers) {
    expect(a.status).toBe(200);
    expect(a.version).toBe(version);
    expect(next).toContain(a.pid);
  }
  return next;
}

describe(`supervisor: workers and reloads (transport ${TRANSPORT ?? 'default'})`, () => {
  const suite = supervisorSuite('e2e-sup');

  it('workers: 2 are children of the master, both serve; SIGTERM exits 0 and leaves nothing', async () => {
    const dir = suite.dir();
    const config = await writeSupervisorConfig(dir, { workers: 2 });
    const c = await suite.start(config);

    // The ready record: listeners as bound, and the two worker PIDs, which are the master's
    // only children.
    expect(c.listeners).toEqual([
      { protocol: 'uwsgi', address: `unix:${join(dir, 'app.sock')}` },
      { protocol: 'http', address: expect.stringMatching(/^127\.0\.0\.1:[1-9]\d*$/) },
    ]);
    expect(c.ready).toMatchObject({ role: 'master', pid: c.pid, generation: 1 });
    // The transport the workers serve with (below), named in the master's ready record.
    expect(['fast', 'net']).toContain(c.ready['transport']);
    if (TRANSPORT && TRANSPORT !== 'auto') expect(c.ready['transport']).toBe(TRANSPORT);
    expect(c.firstWorkers).toHaveLength(2);
    expect(liveChildren(c.pid)).toEqual(c.firstWorkers);
    // Each worker serves the master's sockets (same addresses), with the transport asked for.
    for (const pid of c.firstWorkers) {
      const r = await c.waitForLog((x) => x.msg === 'worker serving' && x['pid'] === pid);
      expect(r['listeners']).toEqual(c.listeners);
      expect(r['transport']).toBe(c.ready['transport']);
    }

    // Requests spread over both workers (the kernel hands each connection to one of them);
    // 2 ms of synchronous work per request keeps one worker from taking everything.
    const front = HAS_NGINX ? await suite.nginx(c.address('uwsgi', 'unix')) : undefined;
    const get = front
      ? () => httpGet(front.url('/work?ms=2'))
      : () => uwsgiGet(c.target('uwsgi', 'unix'), '/work?ms=2');
    const { byPid, failed } = split(await fanOut(200, 8, get));
    const shares = [...byPid].map(([pid, n]) => `${pid}=${n}`).join(' ');
    console.log(
      `supervisor workers=2 split (${front ? 'nginx' : 'uwsgi direct'}, 200 requests, c8): ${shares} failed=${failed}`,
    );
    expect(failed).toBe(0);
    expect([...byPid.keys()].sort()).toEqual(c.firstWorkers);
    // And on the HTTP listener, which the same workers serve.
    const viaHttp = await httpGet(`${httpBase(c)}/pid`);
    expect(viaHttp.status).toBe(200);
    expect(c.firstWorkers).toContain(viaHttp.pid);

    expect(await c.stop('SIGTERM')).toEqual({ code: 0, signal: null });
    expect(existsSync(join(dir, 'app.sock'))).toBe(false);
    // Nothing left: the workers exited (reaped by the master, so no zombie under it either).
    await waitUntilGone(c.firstWorkers, 2000);
    for (const pid of c.firstWorkers) {
      const exit = await c.waitForLog((r) => isExit(r) && r['workerPid'] === pid);
      expect(exit).toMatchObject({ code: 0, signal: null, reason: 'stop' });
    }
  });

  it('reload by SIGHUP, `reload CONFIG`, `reload --pidfile` and touchReload: each a new generation', async () => {
    const dir = suite.dir();
    const app = join(dir, 'app.mjs');
    const touch = join(dir, 'touch-me');
    await writeVersionedApp(app, 'v1');
    await writeFile(touch, '');
    const base = {
      workers: 2,
      mounts: [{ path: '/', app }],
      control: 'ctl.sock',
      pidfile: 'master.pid',
      touchReload: 'touch-me',
      reloadMercyMs: 5000,
    } as const;
    const config = await writeSupervisorConfig(dir, base);
    const c = await suite.start(config);
    const unix = c.target('uwsgi', 'unix');
    // Requests the whole time: a reload costs none.
    const load = backgroundLoad(() => uwsgiGet(unix, '/pid'));
    const fds = openFds(c.pid);
    let pids = c.firstWorkers;

    // 1. SIGHUP, edited app.
    await writeVersionedApp(app, 'v2');
    let from = c.logs.length;
    process.kill(c.pid, 'SIGHUP');
    pids = await expectNewGeneration(c, from, 2, pids, 'v2');

    // 2. `uwsgi-ts reload CONFIG` (through the control socket), edited app and config: two
    // listeners added.
    await writeVersionedApp(app, 'v3');
    const port = await freePort();
    await writeSupervisorConfig(dir, {
      ...base,
      listeners: [
        { protocol: 'uwsgi', address: 'app.sock' },
        { protocol: 'http', address: '127.0.0.1:0' },
        { protocol: 'uwsgi', address: 'extra.sock' },
        { protocol: 'http', address: `127.0.0.1:${port}` },
      ],
    });
    from = c.logs.length;
    const byConfig = await runCli(['reload', config]);
    expect(byConfig, byConfig.stderr).toMatchObject({
      code: 0,
      stdout: 'reloaded: generation 3\n',
    });
    pids = await expectNewGeneration(c, from, 3, pids, 'v3');
    const extra = await uwsgiGet({ path: join(dir, 'extra.sock') }, '/pid');
    expect(extra).toMatchObject({ status: 200, version: 'v3' });
    expect(pids).toContain(extra.pid);
    expect(await httpGet(`http://127.0.0.1:${port}/pid`)).toMatchObject({
      status: 200,
      version: 'v3',
    });
    // The listener that was there before kept its port (same socket across generations).
    expect((await httpGet(`${httpBase(c)}/pid`)).version).toBe('v3');

    // 3. `uwsgi-ts reload --pidfile` (SIGHUP from the pidfile), the two listeners removed.
    await writeVersionedApp(app, 'v4');
    await writeSupervisorConfig(dir, base);
    from = c.logs.length;
    const byPidfile = await runCli(['reload', '--pidfile', join(dir, 'master.pid')]);
    expect(byPidfile.code, byPidfile.stderr).toBe(0);
    expect(byPidfile.stdout).toContain(`SIGHUP sent to ${c.pid}`);
    pids = await expectNewGeneration(c, from, 4, pids, 'v4');
    // Closed once the old generation is gone: the file removed, the port refused.
    await expect
      .poll(() => existsSync(join(dir, 'extra.sock')), { timeout: 5000, interval: 20 })
      .toBe(false);
    await expect
      .poll(() => canConnect({ host: '127.0.0.1', port }), { timeout: 5000, interval: 20 })
      .toBe(false);

    // 4. touchReload: a new mtime on the file.
    await writeVersionedApp(app, 'v5');
    from = c.logs.length;
    const later = new Date(Date.now() + 5000);
    await utimes(touch, later, later);
    const touched = await c.logAfter(from, (r) => r.msg === 'reloading');
    expect(touched['trigger']).toBe('touch');
    pids = await expectNewGeneration(c, from, 5, pids, 'v5');

    const { ok, failures } = await load.stop();
    // Four generations later the master holds what it held with the first (same listeners,
    // one IPC channel and one report pipe per worker): nothing leaked per reload.
    await expect.poll(() => openFds(c.pid), { timeout: 5000, interval: 20 }).toBe(fds);
    expect(failures, 'requests failed during the reloads').toEqual([]);
    expect(ok).toBeGreaterThan(0);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
    await waitUntilGone(pids, 2000);
    expect(existsSync(join(dir, 'master.pid'))).toBe(false);
  });

  it('a failed reload keeps the old generation: invalid YAML, an app that throws at import, one never ready', async () => {
    const dir = suite.dir();
    const base = {
      workers: 2,
      control: 'ctl.sock',
      env: { APP_VERSION: 'old' },
    } as const;
    const config = await writeSupervisorConfig(dir, base);
    const c = await suite.start(config);
    const ctl = join(dir, 'ctl.sock');
    const unix = c.target('uwsgi', 'unix');
    const old = c.firstWorkers;
    const fds = openFds(c.pid);
    const oldServes = async () => {
      expect(liveChildren(c.pid)).toEqual(old);
      for (const a of await fanOut(10, 2, () => uwsgiGet(unix, '/pid'))) {
        expect(a).toMatchObject({ status: 200, version: 'old' });
        expect(old).toContain(a.pid);
      }
    };
    const failedRecords = () =>
      c.records((r) => r.msg === 'reload failed: the old generation keeps serving');

    // 1. Invalid YAML (a tab where indentation goes): `reload CONFIG` cannot even read it and
    // says where; through the control socket the master refuses it with the same place.
    await writeFile(config, 'listeners:\n  - protocol: uwsgi\n\taddress: app.sock\nmounts: []\n');
    const byConfig = await runCli(['reload', config]);
    expect(byConfig.code).toBe(1);
    expect(byConfig.stderr).toMatch(new RegExp(`${escapeRegExp(config)}:3:\\d+`));
    const bySocket = await runCli(['reload', ctl]);
    expect(bySocket.code).toBe(1);
    expect(bySocket.stderr).toMatch(
      new RegExp(`reload failed: the config is invalid: ${escapeRegExp(config)}:3:\\d+`),
    );
    expect(failedRecords()).toEqual([
      expect.objectContaining({ level: 50, reason: 'the config is invalid' }),
    ]);
    // SIGHUP into the same file: one more failed record, nothing else changes.
    let from = c.logs.length;
    process.kill(c.pid, 'SIGHUP');
    await c.logAfter(from, (r) => r.msg === 'reload failed: the old generation keeps serving');
    await oldServes();

    // 2. An app that throws at import: the new workers fail their boot.
    await writeSupervisorConfig(dir, {
      ...base,
      mounts: [{ path: '/', app: 'supervisor-throws-at-import.mjs' }],
    });
    from = c.logs.length;
    const throws = await runCli(['reload', ctl]);
    expect(throws.code).toBe(1);
    expect(throws.stderr).toMatch(/reload failed: the new generation did not become ready/);
    expect(throws.stderr).toContain('this app throws at import');
    await expectNewWorkersGone(c, from);
    await oldServes();

    // 3. An app that never becomes ready: readyTimeoutMs (of the new config) decides.
    await writeSupervisorConfig(dir, {
      ...base,
      readyTimeoutMs: 1500,
      mounts: [{ path: '/', app: 'supervisor-never-ready.mjs' }],
    });
    from = c.logs.length;
    const t0 = performance.now();
    const never = await runCli(['reload', ctl]);
    const ms = performance.now() - t0;
    expect(never.code).toBe(1);
    expect(never.stderr).toMatch(/was not ready within 1500 ms/);
    expect(ms).toBeGreaterThanOrEqual(1500);
    expect(ms).toBeLessThan(1500 + 3000);
    await expectNewWorkersGone(c, from);
    await oldServes();
    expect(failedRecords()).toHaveLength(4);
    // The failed generations' channels and pipes are closed again.
    await expect.poll(() => openFds(c.pid), { timeout: 5000, interval: 20 }).toBe(fds);

    // The master is not wedged by failures: a good config reloads (the invalid file started
    // no generation; the app failures were generations 2 and 3: this is 4).
    await writeSupervisorConfig(dir, { ...base, env: { APP_VERSION: 'new' } });
    from = c.logs.length;
    process.kill(c.pid, 'SIGHUP');
    await expectNewGeneration(c, from, 4, old, 'new');
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  });
});

/** The workers a failed reload started (their `worker exited` records after `from`) are gone. */
async function expectNewWorkersGone(c: Supervised, from: number): Promise<void> {
  const failed = await c.logAfter(
    from,
    (r) => r.msg === 'reload failed: the old generation keeps serving',
  );
  const generation = failed['generation'] as number;
  const exited = c
    .records((r) => isExit(r) && r['generation'] === generation)
    .map((r) => r['workerPid'] as number);
  expect(exited).toHaveLength(2);
  await waitUntilGone(exited, 2000);
  expect(childrenOf(c.pid).filter((p) => p.state === 'Z')).toEqual([]);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
