/**
 * The emperor (docs/emperor.md) with real processes and real signals: vassals added, edited,
 * touched, broken, fixed and deleted on disk; the control socket; SIGHUP, SIGTERM and SIGKILL
 * of the emperor; vassal defaults, globs and the names that are not vassals. The long load and
 * storm tests (RELIABILITY.md R8, R12-R14) are in test/reliability/emperor.test.ts.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_BIN, type LogRecord, REPO_ROOT } from '../utils/cli.ts';
import { APPS_DIR } from '../utils/config.ts';
import {
  after,
  events,
  idleSpares,
  isEvent,
  vassalText,
  waitFor,
  waitForVersion,
  writeVassal,
} from '../utils/emperor.ts';
import { canConnect, freePort } from '../utils/net.ts';
import { isDead, liveChildren, procStat, waitUntilDead } from '../utils/procs.ts';
import { httpGet, type LoggedProcess, supervisorSuite, uwsgiGet } from '../utils/supervisor.ts';

const suite = supervisorSuite('e2e-emp');

function startEmperor(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): LoggedProcess {
  return suite.spawn(process.execPath, [CLI_BIN, 'emperor', ...args], env);
}

async function emperorCli(
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = suite.spawn(process.execPath, [CLI_BIN, 'emperor', ...args]);
  let stdout = '';
  p.child.stdout?.on('data', (d: Buffer | string) => {
    stdout += d.toString();
  });
  const { code } = await p.exited;
  return { code, stdout, stderr: p.stderr() };
}

/** Every vassal master and worker PID the logs named, and the vassal processes themselves. */
function vassalPids(logs: readonly LogRecord[]): number[] {
  const pids = new Set<number>();
  for (const r of logs) {
    if (typeof r['vassal'] === 'string' && r['role'] !== 'emperor' && typeof r.pid === 'number') {
      pids.add(r.pid);
    }
    if (typeof r['vassalPid'] === 'number') pids.add(r['vassalPid']);
  }
  return [...pids];
}

describe('emperor', () => {
  it('adds, reloads on a content change (not on touch), keeps serving through an invalid edit, and stops a deleted vassal with its group', async () => {
    const dir = suite.dir();
    const vassals = join(dir, 'vassals');
    await mkdir(vassals);
    const sock = join(dir, 'one.sock');
    const emperor = startEmperor([vassals]);
    await emperor.waitForLog(isEvent(undefined, 'started'));

    await writeVassal(vassals, 'one.yaml', vassalText(sock, 1));
    const ready = await emperor.waitForLog(isEvent('one.yaml', 'ready'));
    expect((await waitForVersion(sock, 1)).status).toBe(200);
    // Every record of the vassal's master and workers names it.
    const own = emperor.logs.filter(
      (r) => r['role'] === 'master' || typeof r['worker'] === 'number',
    );
    expect(own.length).toBeGreaterThan(0);
    for (const r of own) expect(r['vassal']).toBe('one.yaml');

    // A new text: a graceful reload of the same vassal process (same master PID).
    const mark = emperor.logs.length;
    await writeVassal(vassals, 'one.yaml', vassalText(sock, 2), 'in-place');
    await emperor.waitForLog(after(emperor.logs, mark, isEvent('one.yaml', 'reloaded')));
    expect((await waitForVersion(sock, 2)).status).toBe(200);
    expect(events(emperor.logs, 'one.yaml', 'reloaded', mark)[0]?.['vassalPid']).toBe(
      ready['vassalPid'],
    );

    // touch: same content, no reload (a rescan runs meanwhile: rescanMs 2000 by default).
    const afterEdit = emperor.logs.length;
    const now = new Date();
    await utimes(join(vassals, 'one.yaml'), now, new Date(now.getTime() + 5000));
    // An invalid edit: one record with the absolute path and position; the old config serves.
    await writeVassal(vassals, 'one.yaml', 'listeners:\n\t- bad: [\n');
    const invalid = await emperor.waitForLog(
      after(emperor.logs, afterEdit, isEvent('one.yaml', 'invalid')),
    );
    const issues = invalid['issues'] as {
      file: string;
      line: number;
      col: number;
      message: string;
    }[];
    expect(issues[0]?.file).toBe(join(vassals, 'one.yaml'));
    expect(issues[0]?.line).toBeGreaterThan(0);
    expect((await uwsgiGet({ path: sock }, '/pid')).version).toBe('2');
    expect(events(emperor.logs, 'one.yaml', 'reloading', afterEdit)).toEqual([]);
    expect(events(emperor.logs, 'one.yaml', 'invalid', afterEdit)).toHaveLength(1);

    // Delete: graceful stop, the socket file goes, every process of the vassal is gone (a spare
    // waiting for the next vassal stays).
    const spares = new Set(idleSpares(emperor.logs));
    const pids = vassalPids(emperor.logs).filter((pid) => !spares.has(pid));
    await rm(join(vassals, 'one.yaml'));
    await emperor.waitForLog(isEvent('one.yaml', 'stopped'));
    await waitUntilDead(pids, 5000);
    expect(existsSync(sock)).toBe(false);

    emperor.child.kill('SIGTERM');
    expect((await emperor.exited).code).toBe(0);
  });

  it('ignores hidden, temp and other files; follows symlinks; a glob filters names; vassal defaults with the VASSAL variable serve many from one template', async () => {
    const dir = suite.dir();
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    await mkdir(a);
    await mkdir(b);
    // The template: each vassal's socket is named after it; vassal files hold only their env.
    const defaults = join(dir, 'defaults.yaml');
    await writeFile(
      defaults,
      [
        'listeners:',
        `  - { protocol: uwsgi, address: "${dir}/\${VASSAL}.sock" }`,
        'mounts:',
        `  - { path: /, app: ${join(APPS_DIR, 'supervisor.mjs')} }`,
        'workers: 1',
        'log: { format: json, access: false }',
        '',
      ].join('\n'),
    );
    const only = (v: string) => `env: { APP_VERSION: "${v}" }\n`;
    await writeFile(join(a, 'web.yaml'), only('web'));
    await writeFile(join(a, '.hidden.yaml'), only('hidden'));
    await writeFile(join(a, 'web.yaml~'), only('backup'));
    await writeFile(join(a, 'web.yaml.tmp'), only('tmp'));
    await writeFile(join(a, 'notes.txt'), only('txt'));
    await writeFile(join(dir, 'target.yml'), only('linked'));
    await symlink(join(dir, 'target.yml'), join(a, 'link.yml'));
    await writeFile(join(b, 'api-1.yaml'), only('api'));
    await writeFile(join(b, 'other.yaml'), only('other'));

    const control = join(dir, 'emperor.sock');
    const emperor = startEmperor([
      a,
      join(b, 'api-*.yaml'),
      '--vassal-defaults',
      defaults,
      '--control',
      control,
    ]);
    await emperor.waitForLog(isEvent(undefined, 'started'));
    await emperor.waitForLog(isEvent('web.yaml', 'ready'));
    await emperor.waitForLog(isEvent('link.yml', 'ready'));
    await emperor.waitForLog(isEvent('api-1.yaml', 'ready'));
    expect((await uwsgiGet({ path: join(dir, 'web.sock') }, '/pid')).version).toBe('web');
    expect((await uwsgiGet({ path: join(dir, 'link.sock') }, '/pid')).version).toBe('linked');
    expect((await uwsgiGet({ path: join(dir, 'api-1.sock') }, '/pid')).version).toBe('api');

    const status = await emperorCli(['status', '--control', control, '--json']);
    expect(status.code).toBe(0);
    const names = (
      JSON.parse(status.stdout) as { vassals: { name: string; state: string }[] }
    ).vassals
      .map((v) => `${v.name}:${v.state}`)
      .sort();
    expect(names).toEqual(['api-1.yaml:serving', 'link.yml:serving', 'web.yaml:serving']);
    // Nothing was started for the names that are not vassals.
    const spawned = emperor.logs.filter(isEvent(undefined, 'spawned')).map((r) => r['vassal']);
    expect(spawned.sort()).toEqual(['api-1.yaml', 'link.yml', 'web.yaml']);

    // A change to the defaults reloads every vassal that uses them.
    const mark = emperor.logs.length;
    await writeFile(defaults, `${readFileSync(defaults, 'utf8')}shutdownTimeoutMs: 5000\n`);
    for (const name of ['web.yaml', 'link.yml', 'api-1.yaml']) {
      await emperor.waitForLog(after(emperor.logs, mark, isEvent(name, 'reloaded')));
    }
    emperor.child.kill('SIGTERM');
    expect((await emperor.exited).code).toBe(0);
  });

  it('throttles a crash loop without delaying another vassal, and restarts it at once when its file is fixed', async () => {
    const dir = suite.dir();
    const vassals = join(dir, 'vassals');
    await mkdir(vassals);
    const marker = join(dir, 'boot-exit');
    await writeFile(marker, '');
    const good = join(dir, 'good.sock');
    const bad = join(dir, 'bad.sock');
    const emperor = startEmperor([vassals]);
    await emperor.waitForLog(isEvent(undefined, 'started'));
    await writeVassal(
      vassals,
      'bad.yaml',
      vassalText(bad, 1, {
        mounts: [{ path: '/', app: 'supervisor-boot-exit.mjs' }],
        env: { BOOT_EXIT_MARKER: marker },
      }),
    );
    await emperor.waitForLog(isEvent('bad.yaml', 'throttled'));
    // Another vassal added meanwhile starts at once and serves.
    await writeVassal(vassals, 'good.yaml', vassalText(good, 7));
    await waitForVersion(good, 7);
    // Backoff grows: 0.5 s, 1 s, 2 s ... (waits are this vassal's timers).
    const delays = await waitFor(
      () => {
        const d = events(emperor.logs, 'bad.yaml', 'throttled').map((r) => r['delayMs'] as number);
        return d.length >= 3 ? d : undefined;
      },
      15_000,
      'three throttled records',
    );
    expect(delays.slice(0, 3)).toEqual([500, 1000, 2000]);
    const crashed = events(emperor.logs, 'bad.yaml', 'crashed')[0];
    expect(crashed?.['code']).toBe(1);

    // The fix (a new text, the marker gone): spawned at once, not after the throttle.
    await rm(marker);
    await writeVassal(
      vassals,
      'bad.yaml',
      vassalText(bad, 2, { mounts: [{ path: '/', app: 'supervisor-boot-exit.mjs' }] }),
    );
    await waitForVersion(bad, 2);
    expect((await uwsgiGet({ path: good }, '/pid')).version).toBe('7');
    emperor.child.kill('SIGTERM');
    expect((await emperor.exited).code).toBe(0);
  });

  it('control socket: status, reload NAME, stop NAME (stays down across rescans), start NAME; SIGHUP reloads every vassal', async () => {
    const dir = suite.dir();
    const vassals = join(dir, 'vassals');
    await mkdir(vassals);
    const control = join(dir, 'emperor.sock');
    const s1 = join(dir, 'v1.sock');
    const s2 = join(dir, 'v2.sock');
    await writeVassal(vassals, 'v1.yaml', vassalText(s1, 'a'));
    await writeVassal(vassals, 'v2.yaml', vassalText(s2, 'b'));
    const config = join(dir, 'emperor.yaml');
    await writeFile(
      config,
      `emperor:\n  watch: [vassals]\n  control: emperor.sock\n  rescanMs: 200\n`,
    );
    const emperor = startEmperor(['--config', config]);
    await emperor.waitForLog(isEvent('v1.yaml', 'ready'));
    await emperor.waitForLog(isEvent('v2.yaml', 'ready'));

    const reload = await emperorCli(['reload', 'v1.yaml', '--config', config]);
    expect(reload).toMatchObject({ code: 0 });
    expect(events(emperor.logs, 'v1.yaml', 'reloaded')).toHaveLength(1);
    const unknown = await emperorCli(['reload', 'nope.yaml', '--control', control]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no vassal "nope.yaml"');

    const stop = await emperorCli(['stop', 'v2.yaml', '--control', control]);
    expect(stop.code).toBe(0);
    expect(await canConnect({ path: s2 })).toBe(false);
    // Later scans (one proven by a new vassal it found) leave it down.
    await writeVassal(vassals, 'v3.yaml', vassalText(join(dir, 'v3.sock'), 'c'));
    await emperor.waitForLog(isEvent('v3.yaml', 'ready'));
    const table = await emperorCli(['status', '--control', control]);
    expect(table.stdout).toMatch(/v2\.yaml\s+stopped/);
    expect(table.stdout).toMatch(/v1\.yaml\s+serving/);
    expect(await emperorCli(['start', 'v2.yaml', '--control', control])).toMatchObject({ code: 0 });
    await waitForVersion(s2, 'b');

    const mark = emperor.logs.length;
    emperor.child.kill('SIGHUP');
    for (const name of ['v1.yaml', 'v2.yaml']) {
      await emperor.waitForLog(after(emperor.logs, mark, isEvent(name, 'reloaded')));
    }
    emperor.child.kill('SIGTERM');
    expect((await emperor.exited).code).toBe(0);
    expect(existsSync(control)).toBe(false);
  });

  it('no orphans: SIGKILL of the emperor ends every vassal, worker and app child; a new emperor takes the stale sockets over', async () => {
    const dir = suite.dir();
    const vassals = join(dir, 'vassals');
    const marks = join(dir, 'marks');
    await mkdir(vassals);
    await mkdir(marks);
    const socks = [join(dir, 'm1.sock'), join(dir, 'm2.sock')];
    for (const [i, sock] of socks.entries()) {
      await writeVassal(
        vassals,
        `m${i + 1}.yaml`,
        vassalText(sock, i, {
          workers: 2,
          mounts: [{ path: '/', app: 'emperor-marked.mjs' }],
          env: { MARK_DIR: marks },
        }),
      );
    }
    const first = startEmperor([vassals]);
    await first.waitForLog(isEvent('m1.yaml', 'ready'));
    await first.waitForLog(isEvent('m2.yaml', 'ready'));
    const children = await waitFor(
      () => {
        const names = readdirSync(marks);
        return names.length === 4 ? names.map((n) => Number(n.split('-')[1])) : undefined;
      },
      5000,
      'four marked children',
    );
    // The spare (forked 1 s after the start) must go too.
    await first.waitForLog(isEvent(undefined, 'spare'));
    const everything = [...vassalPids(first.logs), ...children];
    for (const pid of children) suite.procs.record(pid);
    expect(idleSpares(first.logs)).toHaveLength(1);
    expect(everything.length).toBe(2 + 4 + 4 + 1);
    for (const pid of everything) expect(isDead(pid)).toBe(false);
    // Vassals lead their own process groups.
    const vassalMasters = first.logs
      .filter(isEvent(undefined, 'ready'))
      .map((r) => r['vassalPid'] as number);
    for (const pid of vassalMasters)
      expect(readFileSync(`/proc/${pid}/stat`, 'utf8')).toMatch(
        new RegExp(`\\) \\S+ \\d+ ${pid} `),
      );

    first.child.kill('SIGKILL');
    const tookMs = await waitUntilDead(everything, 5000);
    console.log(
      `emperor SIGKILL -> 0 of ${everything.length} processes left in ${tookMs.toFixed(0)} ms`,
    );
    for (const sock of socks) expect(await canConnect({ path: sock })).toBe(false);

    const second = startEmperor([vassals]);
    await second.waitForLog(isEvent('m1.yaml', 'ready'));
    await second.waitForLog(isEvent('m2.yaml', 'ready'));
    for (const [i, sock] of socks.entries())
      expect((await uwsgiGet({ path: sock }, '/pid')).version).toBe(String(i));
    const secondChildren = readdirSync(marks)
      .map((n) => Number(n.split('-')[1]))
      .filter((pid) => !children.includes(pid));
    for (const pid of secondChildren) suite.procs.record(pid);
    const secondAll = [...vassalPids(second.logs), ...secondChildren];
    // SIGTERM: every vassal stops gracefully, exit 0, and the groups are gone (app children too).
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    await waitUntilDead(secondAll, 5000);
    expect(liveChildren(second.child.pid ?? -1)).toEqual([]);
    expect(procStat(second.child.pid ?? -1)).toBeUndefined();
  });

  it("SIGUSR1 reopens the emperor's log file and every vassal's (logrotate)", async () => {
    const dir = suite.dir();
    const vassals = join(dir, 'vassals');
    await mkdir(vassals);
    const emperorLog = join(dir, 'emperor.log');
    const vassalLog = join(dir, 'v.log');
    await writeVassal(
      vassals,
      'v.yaml',
      vassalText(join(dir, 'v.sock'), 1, { logFile: vassalLog }),
    );
    const config = join(dir, 'emperor.yaml');
    await writeFile(
      config,
      'emperor:\n  watch: [vassals]\n  control: emperor.sock\n  log: { file: emperor.log, format: json }\n',
    );
    const emperor = startEmperor(['--config', config]);
    const read = (f: string) => (existsSync(f) ? readFileSync(f, 'utf8') : '');
    await waitFor(
      () => read(emperorLog).includes('"event":"ready"') || undefined,
      10_000,
      'the vassal ready in the emperor log file',
    );
    expect(read(vassalLog)).toContain('"role":"master"');
    await rename(emperorLog, `${emperorLog}.1`);
    await rename(vassalLog, `${vassalLog}.1`);
    emperor.child.kill('SIGUSR1');
    await waitFor(
      () => (existsSync(emperorLog) && existsSync(vassalLog)) || undefined,
      5000,
      'both log files reopened',
    );
    expect(
      await emperorCli(['reload', 'v.yaml', '--control', join(dir, 'emperor.sock')]),
    ).toMatchObject({
      code: 0,
    });
    await waitFor(
      () => read(vassalLog).includes('"msg":"reloaded"') || undefined,
      5000,
      'reloaded',
    );
    expect(read(emperorLog)).toContain('"event":"reloaded"');
    expect(read(`${emperorLog}.1`)).not.toContain('"event":"reloaded"');
    expect(read(`${vassalLog}.1`)).not.toContain('"msg":"reloaded"');
    emperor.child.kill('SIGTERM');
    expect((await emperor.exited).code).toBe(0);
  });

  it('refuses what it cannot watch, with the reason', async () => {
    const dir = suite.dir();
    const missing = await emperorCli([join(dir, 'nope')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('UWSGI_ERR_EMPEROR_WATCH');
    const glob = await emperorCli([join(dir, '*', 'x.yaml')]);
    expect(glob.code).toBe(1);
    expect(glob.stderr).toContain('wildcards are allowed in the file name only');
    const config = join(dir, 'emperor.yaml');
    await writeFile(config, 'emperor:\n  wach: [x]\n');
    const bad = await emperorCli(['--config', config]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('wach');
    expect(bad.stderr).toMatch(
      /emperor\.yaml:2:3 \/emperor\/wach unknown key "wach"; did you mean "watch"/,
    );
  });

  it('the example in examples/ (README): three vassals from one defaults template serve, and stop with SIGTERM', async () => {
    const dir = suite.dir();
    const [apiPort, honoPort] = [await freePort(), await freePort()];
    const control = join(dir, 'emperor.sock');
    const emperor = startEmperor(['--config', join(REPO_ROOT, 'examples', 'emperor.yaml')], {
      ...process.env,
      SOCKET_DIR: dir,
      API_PORT: String(apiPort),
      HONO_PORT: String(honoPort),
      EMPEROR_CONTROL: control,
    });
    for (const name of ['api.yaml', 'hono.yaml', 'hello.yaml']) {
      await emperor.waitForLog(isEvent(name, 'ready'));
    }
    const api = await httpGet(`http://127.0.0.1:${apiPort}/api/users/42`);
    expect(api).toMatchObject({ status: 200 });
    expect(JSON.parse(api.body.toString())).toEqual({ id: '42', name: 'Grace' });
    expect((await httpGet(`http://127.0.0.1:${honoPort}/hono`)).body.toString()).toContain(
      '"app":"hono"',
    );
    const hello = await uwsgiGet(join(dir, 'uwsgi-ts-hello.sock'), '/');
    expect(hello).toMatchObject({ status: 200 });
    expect(hello.body.toString()).toContain('hello from uwsgi-ts');
    expect((await uwsgiGet(join(dir, 'uwsgi-ts-api.sock'), '/api/users/1')).status).toBe(200);
    const status = await emperorCli(['status', '--json', '--control', control]);
    const vassals = (
      JSON.parse(status.stdout) as {
        vassals: { name: string; state: string; workers: unknown[] }[];
      }
    ).vassals;
    expect(vassals.map((v) => [v.name, v.state, v.workers.length])).toEqual([
      ['api.yaml', 'serving', 2],
      ['hello.yaml', 'serving', 1],
      ['hono.yaml', 'serving', 1],
    ]);
    emperor.child.kill('SIGTERM');
    expect((await emperor.exited).code).toBe(0);
    expect(readdirSync(dir).filter((f) => f.endsWith('.sock'))).toEqual([]);
  });
});
