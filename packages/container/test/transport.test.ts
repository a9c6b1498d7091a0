import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { lstat, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  classifyListenAddress,
  formatListenTarget,
  parseListenAddress,
} from '../src/transport/address.ts';
import { selectTransport } from '../src/transport/index.ts';
import { listenServer } from '../src/transport/listen.ts';
import { createNetTransport } from '../src/transport/net.ts';
import type { Connection, Listening } from '../src/transport/types.ts';
import { tempDir } from './fixtures/apps/harness.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function dir(): Promise<string> {
  const tmp = await tempDir();
  cleanups.push(tmp.cleanup);
  return tmp.dir;
}

describe('parseListenAddress', () => {
  it('parses unix paths, tcp hosts, IPv6 and inherited fds', () => {
    expect(parseListenAddress('/run/app.sock')).toEqual({
      kind: 'unix',
      path: '/run/app.sock',
      mode: 0o660,
    });
    expect(parseListenAddress('unix:rel/app.sock', { baseDir: '/etc/x', mode: '0600' })).toEqual({
      kind: 'unix',
      path: '/etc/x/rel/app.sock',
      mode: 0o600,
    });
    expect(parseListenAddress('127.0.0.1:3031')).toEqual({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 3031,
    });
    expect(parseListenAddress('[::1]:0')).toEqual({ kind: 'tcp', host: '::1', port: 0 });
    expect(parseListenAddress('localhost:8080')).toMatchObject({ host: 'localhost', port: 8080 });
    expect(parseListenAddress('fd:3')).toEqual({ kind: 'fd', fd: 3 });
    expect(parseListenAddress('app.sock', { baseDir: '/srv' })).toMatchObject({
      kind: 'unix',
      path: '/srv/app.sock',
    });
  });

  it('refuses ambiguous or invalid forms', () => {
    for (const bad of [
      '',
      ':3031',
      '3031',
      '::1:80',
      '127.0.0.1:65536',
      'host:-1',
      'host:80x',
      'unix:',
      'unix:a\0b',
      // The limits config used to apply alone (transport/address.ts is now the one parser).
      ' 127.0.0.1:3031',
      '127.0.0.1:003031',
      '[nope]:1',
      'bad_host:1',
      '@abstract',
      'fd:x',
      'fd:1234567890',
    ]) {
      expect(() => parseListenAddress(bad), bad).toThrow(
        expect.objectContaining({ code: 'UWSGI_ERR_LISTEN' }),
      );
    }
    expect(() => parseListenAddress('/a.sock', { mode: '0999' })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_LISTEN' }),
    );
  });

  it('classifies without throwing, for config issues', () => {
    expect(classifyListenAddress('127.0.0.1:3031')).toEqual({
      kind: 'tcp',
      host: '127.0.0.1',
      port: 3031,
    });
    expect(classifyListenAddress('LOCALHOST:1')).toEqual({
      kind: 'tcp',
      host: 'LOCALHOST',
      port: 1,
    });
    expect(classifyListenAddress('[::1]:0')).toEqual({ kind: 'tcp', host: '::1', port: 0 });
    expect(classifyListenAddress('app.sock', { baseDir: '/srv' })).toEqual({
      kind: 'unix',
      path: '/srv/app.sock',
      mode: 0o660,
    });
    expect(classifyListenAddress('unix:/run/a.sock')).toMatchObject({ path: '/run/a.sock' });
    expect(classifyListenAddress('fd:3')).toEqual({ kind: 'fd', fd: 3 });
    expect(classifyListenAddress('fd:x')).toEqual({
      kind: 'invalid',
      reason: '"x" is not a file descriptor number',
    });
    expect(classifyListenAddress('unix:')).toEqual({
      kind: 'invalid',
      reason: 'the unix socket path is empty',
    });
    expect(classifyListenAddress('/a.sock', { mode: '0999' })).toMatchObject({ kind: 'invalid' });
  });

  it('formats targets for display', () => {
    expect(formatListenTarget({ kind: 'unix', path: '/a.sock', mode: 0o660 })).toBe('unix:/a.sock');
    expect(formatListenTarget({ kind: 'tcp', host: '::1', port: 80 })).toBe('[::1]:80');
    expect(formatListenTarget({ kind: 'tcp', host: '127.0.0.1', port: 80 })).toBe('127.0.0.1:80');
  });
});

describe('listenServer', () => {
  function server(): Server {
    const s = createServer((socket) => socket.end());
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
    return s;
  }

  it('creates the unix socket with the configured mode and removes it on close', async () => {
    const path = join(await dir(), 'a.sock');
    const listening = await listenServer(server(), {
      target: { kind: 'unix', path, mode: 0o600 },
      backlog: 16,
    });
    expect(listening.address).toBe(`unix:${path}`);
    expect((await lstat(path)).mode & 0o777).toBe(0o600);
    await listening.close();
    await expect(lstat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    await listening.close();
  });

  it('replaces a stale socket file (ECONNREFUSED)', async () => {
    const path = join(await dir(), 'stale.sock');
    // A process killed with SIGKILL leaves its socket file behind with nobody accepting on it.
    const child = spawnSync(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    expect(child.signal).toBe('SIGKILL');
    const before = await lstat(path);
    expect(before.isSocket()).toBe(true);
    const listening = await listenServer(server(), {
      target: { kind: 'unix', path, mode: 0o660 },
      backlog: 16,
    });
    cleanups.push(() => listening.close());
    // The stale file (ECONNREFUSED) was replaced by a socket that accepts.
    const probe = connect({ path });
    await once(probe, 'connect');
    probe.destroy();
    expect((await lstat(path)).mode & 0o777).toBe(0o660);
  });

  it('refuses a path a live process accepts on (R16) and a path that is not a socket', async () => {
    const base = await dir();
    const path = join(base, 'live.sock');
    const first = await listenServer(server(), {
      target: { kind: 'unix', path, mode: 0o660 },
      backlog: 16,
    });
    cleanups.push(() => first.close());
    await expect(
      listenServer(server(), { target: { kind: 'unix', path, mode: 0o660 }, backlog: 16 }),
    ).rejects.toMatchObject({ code: 'UWSGI_ERR_LISTEN', cause: { code: 'EADDRINUSE' } });
    const file = join(base, 'file.sock');
    await writeFile(file, 'not a socket');
    await expect(
      listenServer(server(), { target: { kind: 'unix', path: file, mode: 0o660 }, backlog: 16 }),
    ).rejects.toMatchObject({ code: 'UWSGI_ERR_LISTEN' });
  });

  it('reports the actual port for tcp port 0 and wraps EADDRINUSE', async () => {
    const first = await listenServer(server(), {
      target: { kind: 'tcp', host: '127.0.0.1', port: 0 },
      backlog: 16,
    });
    cleanups.push(() => first.close());
    const port = Number(first.address.split(':')[1]);
    expect(port).toBeGreaterThan(0);
    await expect(
      listenServer(server(), { target: { kind: 'tcp', host: '127.0.0.1', port }, backlog: 16 }),
    ).rejects.toMatchObject({ code: 'UWSGI_ERR_LISTEN', cause: { code: 'EADDRINUSE' } });
  });
});

describe('net transport', () => {
  it('hands out real net.Sockets that read only after start() and honour pause/resume', async () => {
    const path = join(await dir(), 'net.sock');
    const got: string[] = [];
    let conn!: Connection;
    let accepted!: () => void;
    const acceptedP = new Promise<void>((r) => {
      accepted = r;
    });
    const listening: Listening = await createNetTransport().listen(
      { target: { kind: 'unix', path, mode: 0o600 }, backlog: 16 },
      (c) => {
        conn = c;
        accepted();
      },
    );
    cleanups.push(() => listening.close());
    const client = connect({ path });
    cleanups.push(() => {
      client.destroy();
    });
    client.write('abc');
    await acceptedP;
    expect(conn.transientReads).toBe(false);
    expect(conn.socket.constructor.name).toBe('Socket');
    const ended = new Promise<void>((resolve) => {
      conn.start({
        onData: (chunk) => got.push(Buffer.from(chunk).toString()),
        onEnd: () => resolve(),
        onError: () => undefined,
      });
    });
    expect(() =>
      conn.start({ onData: () => undefined, onEnd: () => undefined, onError: () => undefined }),
    ).toThrow(expect.objectContaining({ code: 'UWSGI_ERR_TRANSPORT_STATE' }));
    client.end('def');
    await ended;
    expect(got.join('')).toBe('abcdef');
    conn.socket.end('bye');
  });

  it('selectTransport: net on request, fast or net for auto', () => {
    expect(selectTransport('net').name).toBe('net');
    expect(['fast', 'net']).toContain(selectTransport('auto').name);
  });
});
