import { once } from 'node:events';
import { lstat } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/index.ts';
import { type Container, createContainer } from '../src/container.ts';
import { createLogger } from '../src/shared/log.ts';
import { exchange, memoryLogger, packet, requestVars, tempDir } from './fixtures/apps/harness.ts';

const apps = fileURLToPath(new URL('./fixtures/apps/', import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Gate {
  entered(url: string): void;
  wait(): Promise<void>;
}

/** Installs the gate `gated.mjs` waits on; `release()` lets every held request finish. */
function installGate() {
  let release!: () => void;
  const released = new Promise<void>((r) => {
    release = r;
  });
  const entered: string[] = [];
  let onEnter: (() => void) | undefined;
  const gate: Gate = {
    entered(url) {
      entered.push(url);
      onEnter?.();
    },
    wait: () => released,
  };
  (globalThis as { __uwsgiTsGate?: Gate }).__uwsgiTsGate = gate;
  cleanups.push(() => {
    release();
    delete (globalThis as { __uwsgiTsGate?: Gate }).__uwsgiTsGate;
  });
  return {
    release,
    entered,
    whenEntered: () =>
      new Promise<void>((r) => {
        if (entered.length > 0) r();
        else onEnter = r;
      }),
  };
}

async function boot(yaml: (dir: string) => string) {
  const tmp = await tempDir();
  cleanups.push(tmp.cleanup);
  const config = parseConfig(yaml(tmp.dir), { file: join(tmp.dir, 'uwsgi-ts.yaml') });
  const { log, records } = memoryLogger();
  const container = createContainer(config, { logger: log });
  cleanups.push(() => container.close({ timeoutMs: 0 }));
  return { container, records, dir: tmp.dir };
}

/** A started container serving `gated.mjs` on a unix uwsgi listener, with its gate installed. */
async function startGated() {
  const booted = await boot(
    () => `
listeners:
  - protocol: uwsgi
    address: app.sock
mounts:
  - path: /
    app: ${apps}gated.mjs
transport: net
`,
  );
  // Installed after boot: cleanups run in reverse, so held requests are released before the
  // container's own close is awaited.
  const gate = installGate();
  await booted.container.start();
  const path = listenerPort(booted.container, 'uwsgi').slice('unix:'.length);
  return { ...booted, gate, path };
}

function listenerPort(container: Container, protocol: 'uwsgi' | 'http'): string {
  const address = container.listeners.find((l) => l.protocol === protocol)?.address ?? '';
  return address;
}

describe('createContainer', () => {
  it('loads the apps, binds the listeners and logs the ready record', async () => {
    const { container, records, dir } = await boot(
      () => `
listeners:
  - protocol: uwsgi
    address: app.sock
  - protocol: http
    address: 127.0.0.1:0
mounts:
  - path: /api
    app: ${apps}hello.mjs
  - path: /
    app: ${apps}fetch-app.mjs
transport: net
`,
    );
    await container.start();
    await container.start();
    const http = listenerPort(container, 'http');
    expect(container.listeners).toEqual([
      { protocol: 'uwsgi', address: `unix:${join(dir, 'app.sock')}` },
      { protocol: 'http', address: expect.stringMatching(/^127\.0\.0\.1:\d+$/) },
    ]);
    const ready = records.find((r) => r.msg === 'ready');
    expect(ready).toMatchObject({
      listeners: container.listeners,
      mounts: [
        { path: '/api', app: `${apps}hello.mjs`, kind: 'node' },
        { path: '/', app: `${apps}fetch-app.mjs`, kind: 'fetch' },
      ],
    });
    expect((await lstat(join(dir, 'app.sock'))).mode & 0o777).toBe(0o660);

    const viaUwsgi = await exchange(join(dir, 'app.sock'), packet(requestVars('GET', '/api/x')));
    expect(JSON.parse(viaUwsgi.body.toString())).toEqual({
      app: 'hello',
      url: '/x',
      baseUrl: '/api',
    });
    const fetchViaUwsgi = await exchange(join(dir, 'app.sock'), packet(requestVars('GET', '/f')));
    expect(fetchViaUwsgi.body.toString()).toBe('fetch /f');
    const port = Number(http.split(':')[1]);
    const viaHttp = await exchange(
      port,
      Buffer.from('GET /api/y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'),
    );
    expect(JSON.parse(viaHttp.body.toString())).toMatchObject({ url: '/y', baseUrl: '/api' });
    expect(container.stats()).toMatchObject({ requests: 3, inFlight: 0 });
    expect(container.stats().mounts).toEqual([
      expect.objectContaining({ path: '/api', requests: 2 }),
      expect.objectContaining({ path: '/', requests: 1 }),
    ]);

    await container.close();
    await expect(lstat(join(dir, 'app.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(records.some((r) => r.msg === 'stopped')).toBe(true);
  });

  it('refuses connections over maxConnections at once when none is idle, across listeners', async () => {
    const { container } = await boot(
      () => `
listeners:
  - protocol: uwsgi
    address: app.sock
  - protocol: http
    address: 127.0.0.1:0
mounts:
  - path: /
    app: ${apps}hello.mjs
limits:
  maxConnections: 1
transport: net
`,
    );
    await container.start();
    const path = listenerPort(container, 'uwsgi').slice('unix:'.length);
    const holder = connect({ path });
    cleanups.push(() => {
      holder.destroy();
    });
    await once(holder, 'connect');
    // A request whose declared body never comes: the holder is not idle, so it is never shed.
    holder.write(packet(requestVars('POST', '/', {}, 100)));
    await expect.poll(() => container.stats().requests).toBe(1);
    const refused = await exchange(path, packet(requestVars('GET', '/')));
    expect(refused.raw.length).toBe(0);
    const port = Number(listenerPort(container, 'http').split(':')[1]);
    const refusedHttp = await exchange(port, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'));
    expect(refusedHttp.raw.length).toBe(0);
    expect(container.stats().connectionsRejected).toBe(2);
    expect(container.stats().connectionsShed).toBe(0);
    holder.destroy();
    await once(holder, 'close');
    await expect.poll(() => container.stats().connections).toBe(0);
    const ok = await exchange(path, packet(requestVars('GET', '/')));
    expect(ok.status).toBe(200);
  });

  it('at maxConnections sheds idle connections oldest first (head-waiting, idle keep-alive) and warns once', async () => {
    const { container, records } = await boot(
      () => `
listeners:
  - protocol: uwsgi
    address: app.sock
  - protocol: http
    address: 127.0.0.1:0
mounts:
  - path: /
    app: ${apps}hello.mjs
limits:
  maxConnections: 2
transport: net
`,
    );
    await container.start();
    const path = listenerPort(container, 'uwsgi').slice('unix:'.length);
    const port = Number(listenerPort(container, 'http').split(':')[1]);
    // Oldest: a uwsgi connection that never sends its request head.
    const silent = connect({ path });
    cleanups.push(() => {
      silent.destroy();
    });
    await once(silent, 'connect');
    await expect.poll(() => container.stats().connections).toBe(1);
    // Then an HTTP keep-alive connection, idle after one answered request.
    const keepAlive = connect({ host: '127.0.0.1', port });
    cleanups.push(() => {
      keepAlive.destroy();
    });
    await once(keepAlive, 'connect');
    keepAlive.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    const [first] = (await once(keepAlive, 'data')) as [Buffer];
    expect(first.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    expect(container.stats().connections).toBe(2);
    const silentClosed = once(silent, 'close');
    const ok = await exchange(path, packet(requestVars('GET', '/')));
    expect(ok.status).toBe(200);
    await silentClosed;
    // Oldest first: the keep-alive connection was not touched.
    expect(keepAlive.destroyed).toBe(false);
    expect(container.stats().connectionsShed).toBe(1);
    // Once the answered exchange has closed, a newer silent connection fills the limit again.
    await expect.poll(() => container.stats().connections).toBe(1);
    const newer = connect({ path });
    cleanups.push(() => {
      newer.destroy();
    });
    await once(newer, 'connect');
    await expect.poll(() => container.stats().connections).toBe(2);
    const keepAliveClosed = once(keepAlive, 'close');
    const okHttp = await exchange(
      port,
      Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'),
    );
    expect(okHttp.status).toBe(200);
    await keepAliveClosed;
    expect(newer.destroyed).toBe(false);
    const stats = container.stats();
    expect(stats.connectionsShed).toBe(2);
    expect(stats.connectionsRejected).toBe(0);
    const warnings = () => records.filter((r) => r.msg === 'connection limit reached');
    // The first at once; what follows within the interval comes in the next one (here: close).
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({
      level: 40,
      connections: 2,
      limit: 2,
      limitBy: 'maxConnections',
      maxConnections: 2,
      shed: 1,
      refused: 0,
    });
    await container.close({ timeoutMs: 0 });
    expect(warnings()).toHaveLength(2);
    expect(warnings().reduce((n, r) => n + Number(r['shed']), 0)).toBe(2);
  });

  it('close() finishes in-flight requests, refuses new ones, and is idempotent', async () => {
    const { container, gate, path } = await startGated();
    const inFlight = exchange(path, packet(requestVars('GET', '/held')));
    await gate.whenEntered();
    const closing = container.close();
    expect(container.close()).toBe(closing);
    let closed = false;
    void closing.then(() => {
      closed = true;
    });
    // The listener goes first (its socket file too) while the held request is still served.
    await expect
      .poll(() =>
        lstat(path).then(
          () => 'present',
          (err: NodeJS.ErrnoException) => err.code,
        ),
      )
      .toBe('ENOENT');
    const late = await exchange(path, packet(requestVars('GET', '/late')));
    expect(late).toMatchObject({ ending: 'error', status: undefined });
    expect(closed).toBe(false);
    gate.release();
    const r = await inFlight;
    expect(r.body.toString()).toBe('released');
    await closing;
  });

  it('close({ timeoutMs }) destroys requests that outlive the grace period', async () => {
    const { container, records, path } = await startGated();
    const stuck = exchange(path, packet(requestVars('GET', '/stuck')));
    await expect.poll(() => container.stats().inFlight).toBe(1);
    await container.close({ timeoutMs: 50 });
    const r = await stuck;
    expect(r.raw.length).toBe(0);
    expect(records.some((x) => x.msg === 'shutdown timeout: closing remaining connections')).toBe(
      true,
    );
  });

  it('a second close() with a shorter timeout cuts the grace period short', async () => {
    const { container, path } = await startGated();
    const stuck = exchange(path, packet(requestVars('GET', '/stuck')));
    await expect.poll(() => container.stats().inFlight).toBe(1);
    const graceful = container.close({ timeoutMs: 60_000 });
    const started = Date.now();
    expect(container.close({ timeoutMs: 0 })).toBe(graceful);
    await graceful;
    expect(Date.now() - started).toBeLessThan(1000);
    expect((await stuck).raw.length).toBe(0);
  });

  it('a listener that cannot bind fails start() and releases what was bound', async () => {
    const { container, dir } = await boot(
      () => `
listeners:
  - protocol: uwsgi
    address: first.sock
  - protocol: uwsgi
    address: missing-dir/second.sock
mounts:
  - path: /
    app: ${apps}hello.mjs
transport: net
`,
    );
    await expect(container.start()).rejects.toMatchObject({ code: 'UWSGI_ERR_LISTEN' });
    await expect(lstat(join(dir, 'first.sock'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('an app that fails to load fails start() with its code', async () => {
    const { container } = await boot(
      () => `
listeners:
  - protocol: uwsgi
    address: app.sock
mounts:
  - path: /
    app: ${apps}does-not-exist.mjs
`,
    );
    await expect(container.start()).rejects.toMatchObject({ code: 'UWSGI_ERR_APP_LOAD' });
  });
});

describe('createLogger', () => {
  function capture(format: 'json' | 'pretty' | 'auto', isTTY: boolean) {
    const out = Object.assign(new PassThrough(), { isTTY });
    const chunks: string[] = [];
    out.on('data', (c: Buffer) => chunks.push(c.toString()));
    const log = createLogger({ access: true, format, level: 'info' }, { stdout: out });
    log.info({ n: 1 }, 'hello');
    log.debug('hidden');
    return chunks.join('');
  }

  it('writes JSON lines for json, and for auto when not a TTY', () => {
    for (const text of [capture('json', true), capture('auto', false)]) {
      const lines = text.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 30, n: 1, msg: 'hello' });
    }
  });

  it('writes human-readable lines synchronously for pretty, and for auto on a TTY', () => {
    for (const text of [capture('pretty', false), capture('auto', true)]) {
      expect(text).toContain('hello');
      expect(() => JSON.parse(text)).toThrow();
      expect(text).not.toContain('hidden');
    }
  });
});
