/**
 * What an operator relies on around the master (docs/supervisor.md; RELIABILITY.md R15, R16): a
 * second instance on a live socket refuses to start; the pidfile; `log.file` reopened on SIGUSR1
 * after logrotate renamed it; `env:` reaching the app; a unix socket's group and mode set before
 * any worker serves; systemd socket activation taking the passed fd instead of binding.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI_BIN, type LogRecord, runCli } from '../utils/cli.ts';
import { TRANSPORT } from '../utils/config.ts';
import { canConnect } from '../utils/net.ts';
import { liveChildren, waitUntilGone } from '../utils/procs.ts';
import {
  fanOut,
  split,
  supervisorSuite,
  uwsgiGet,
  writeSupervisorConfig,
} from '../utils/supervisor.ts';

const SOCKET_ACTIVATE = '/usr/bin/systemd-socket-activate';

/** The gid of the first of `names` in /etc/group, or undefined. */
function groupId(...names: string[]): { name: string; gid: number } | undefined {
  const lines = readFileSync('/etc/group', 'utf8').split('\n');
  for (const name of names) {
    const gid = lines.map((l) => l.split(':')).find((f) => f[0] === name)?.[2];
    if (gid !== undefined) return { name, gid: Number(gid) };
  }
  return undefined;
}
const GROUP = groupId('www-data', 'nogroup');

/** JSON records of a log file (complete lines only). */
function fileRecords(file: string): LogRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as LogRecord);
}

describe(`supervisor: operations (transport ${TRANSPORT ?? 'default'})`, () => {
  const suite = supervisorSuite('e2e-supo');

  it('R16: a second run on the live socket exits 1 with a clear message; the first serves on', async () => {
    const dir = suite.dir();
    const sock = join(dir, 'app.sock');
    const config = await writeSupervisorConfig(dir, { workers: 2, pidfile: 'master.pid' });
    const c = await suite.start(config);
    const inode = statSync(sock).ino;
    const second = await runCli(['run', config, '--log-format', 'json'], { timeoutMs: 20_000 });
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(
      new RegExp(`UWSGI_ERR_LISTEN: cannot listen on unix:${sock}: another process is accepting`),
    );
    // The first one is untouched: same socket file, same pidfile, same workers, both serving.
    expect(statSync(sock).ino).toBe(inode);
    expect(readFileSync(join(dir, 'master.pid'), 'utf8')).toBe(`${c.pid}\n`);
    expect(liveChildren(c.pid)).toEqual(c.firstWorkers);
    const { byPid, failed } = split(
      await fanOut(60, 6, () => uwsgiGet(c.target('uwsgi', 'unix'), '/work?ms=2')),
    );
    expect(failed).toBe(0);
    expect([...byPid.keys()].sort((a, b) => a - b)).toEqual(c.firstWorkers);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  });

  it('pidfile, env: and log.file: records go to the file, SIGUSR1 after a rename opens a new one', async () => {
    const dir = suite.dir();
    const log = join(dir, 'uwsgi.log');
    const pidfile = join(dir, 'master.pid');
    const config = await writeSupervisorConfig(dir, {
      workers: 2,
      pidfile: 'master.pid',
      logFile: 'uwsgi.log',
      env: { GREETING: 'hello from env:' },
    });
    // Nothing on stdout: readiness is the pidfile (written once every worker serves) and the
    // ready record in the file.
    const master = suite.spawn(process.execPath, [CLI_BIN, 'run', config, '--log-format', 'json']);
    await expect
      .poll(() => fileRecords(log).find((r) => r.msg === 'ready'), {
        timeout: 20_000,
        interval: 20,
      })
      .toBeDefined();
    const pid = master.child.pid!;
    expect(readFileSync(pidfile, 'utf8')).toBe(`${pid}\n`);
    const ready = fileRecords(log).find((r) => r.msg === 'ready')!;
    const workers = (ready['workers'] as number[]).slice().sort((a, b) => a - b);
    for (const w of workers) suite.procs.record(w);
    expect(liveChildren(pid)).toEqual(workers);
    expect(master.logs).toEqual([]);
    // Master and both workers write to the file (a worker's batched records may land a moment
    // after the master's ready record).
    const writers = () => new Set(fileRecords(log).map((r) => r['pid']));
    await expect
      .poll(() => [pid, ...workers].every((p) => writers().has(p)), { timeout: 5000, interval: 20 })
      .toBe(true);

    const sock = { path: join(dir, 'app.sock') };
    const env = await uwsgiGet(sock, '/env?name=GREETING');
    expect(JSON.parse(env.body.toString())).toMatchObject({ value: 'hello from env:' });

    // logrotate: rename, then SIGUSR1. Until then the records still go to the renamed file.
    const rotated = join(dir, 'uwsgi.log.1');
    await rename(log, rotated);
    await uwsgiGet(sock, '/pid?before-reopen');
    await expect
      .poll(() => fileRecords(rotated).some((r) => r['url'] === '/pid?before-reopen'), {
        timeout: 5000,
        interval: 20,
      })
      .toBe(true);
    expect(existsSync(log)).toBe(false);
    process.kill(pid, 'SIGUSR1');
    await expect
      .poll(() => fileRecords(log).some((r) => r.msg === 'log files reopened'), {
        timeout: 5000,
        interval: 20,
      })
      .toBe(true);
    // Each worker reopens on its IPC message: requests until both have written to the new file.
    const inNew = () =>
      new Set(
        fileRecords(log)
          .filter((r) => r.msg === 'request')
          .map((r) => r['pid']),
      );
    for (let i = 0; i < 200 && !workers.every((w) => inNew().has(w)); i++) {
      await uwsgiGet(sock, '/pid?after-reopen');
    }
    expect([...inNew()].sort()).toEqual(workers);
    // From now on nothing goes to the rotated file.
    const rotatedSize = statSync(rotated).size;
    await fanOut(10, 2, () => uwsgiGet(sock, '/pid?later'));
    await expect
      .poll(() => fileRecords(log).filter((r) => r['url'] === '/pid?later').length, {
        timeout: 5000,
        interval: 20,
      })
      .toBe(10);
    expect(statSync(rotated).size).toBe(rotatedSize);

    master.child.kill('SIGTERM');
    expect(await master.exited).toEqual({ code: 0, signal: null });
    expect(existsSync(pidfile)).toBe(false);
    expect(existsSync(sock.path)).toBe(false);
    await waitUntilGone(workers, 2000);
  });

  it.skipIf(GROUP === undefined)(
    'a unix socket: mode 0660 from the bind on, its group set before any worker serves',
    async () => {
      const dir = suite.dir();
      const sock = join(dir, 'app.sock');
      const { name, gid } = GROUP!;
      const config = await writeSupervisorConfig(dir, {
        workers: 2,
        listeners: [{ protocol: 'uwsgi', address: 'app.sock', mode: '0660', group: name }],
      });
      // Watch the path from before the master starts until it is ready: every state the file is
      // seen in, and its state at the first connection a worker could take.
      const seen = new Set<string>();
      let atFirstConnect: string | undefined;
      let watching = true;
      const describeSock = () => {
        try {
          const s = statSync(sock);
          return `gid=${s.gid} mode=${(s.mode & 0o777).toString(8)}`;
        } catch {
          return undefined;
        }
      };
      const watcher = (async () => {
        while (watching) {
          const state = describeSock();
          if (state !== undefined) {
            seen.add(state);
            if (atFirstConnect === undefined && (await canConnect({ path: sock }))) {
              atFirstConnect = describeSock();
            }
          }
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
      })();
      const c = await suite.start(config);
      watching = false;
      await watcher;
      // Bound under a umask: never wider than 0660, not even before the chown (R15); root's
      // group for an instant at most, the configured one by the time anything can connect.
      const want = `gid=${gid} mode=660`;
      for (const state of seen) expect(['gid=0 mode=660', want]).toContain(state);
      expect(atFirstConnect).toBe(want);
      expect(describeSock()).toBe(want);
      const res = await uwsgiGet({ path: sock }, '/pid');
      expect(res.status).toBe(200);
      expect(await c.stop()).toEqual({ code: 0, signal: null });
    },
  );

  it.skipIf(!existsSync(SOCKET_ACTIVATE))(
    'systemd socket activation: serves on the passed fd, binds nothing itself, SIGTERM stops it',
    async () => {
      const dir = suite.dir();
      const sock = join(dir, 'app.sock');
      const config = await writeSupervisorConfig(dir, {
        workers: 2,
        listeners: [{ protocol: 'uwsgi', address: 'app.sock' }],
      });
      const activate = suite.spawn(SOCKET_ACTIVATE, [
        '-l',
        sock,
        process.execPath,
        CLI_BIN,
        'run',
        config,
        '--log-format',
        'json',
      ]);
      // systemd-socket-activate binds the path, then starts the command at the first connection.
      await activate.waitForStderr((t) => t.includes(`Listening on ${sock}`));
      const inode = statSync(sock).ino;
      // That first connection is made before any Node process exists: a worker answers it.
      const first = await uwsgiGet({ path: sock }, '/pid', 20_000);
      expect(first.status).toBe(200);
      const ready = await activate.waitForLog((r) => r.msg === 'ready', 20_000);
      const pid = activate.child.pid!;
      expect(ready['pid']).toBe(pid);
      const workers = (ready['workers'] as number[]).slice().sort((a, b) => a - b);
      expect(workers).toContain(first.pid);
      expect(ready['listeners']).toEqual([{ protocol: 'uwsgi', address: `unix:${sock}` }]);
      // The very socket systemd bound: same inode, and no passed fd left unclaimed.
      expect(statSync(sock).ino).toBe(inode);
      expect(
        activate.logs.filter((r) => r.msg === 'a socket passed by systemd matches no listener'),
      ).toEqual([]);
      const { byPid, failed } = split(
        await fanOut(40, 4, () => uwsgiGet({ path: sock }, '/work?ms=2')),
      );
      expect(failed).toBe(0);
      for (const p of byPid.keys()) expect(workers).toContain(p);

      activate.child.kill('SIGTERM');
      expect(await activate.exited).toEqual({ code: 0, signal: null });
      await waitUntilGone(workers, 2000);
    },
  );
});
