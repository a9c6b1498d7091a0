import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { ACCEPTED_APP_SHAPES, loadApp } from '../src/app/loader.ts';
import type { LoadedApp, NodeHandler } from '../src/app/types.ts';
import type { MountConfig } from '../src/config/types.ts';
import { closeServers } from './fixtures/apps/harness.ts';

const fixtureUrl = (name: string): string =>
  new URL(`./fixtures/loader/${name}`, import.meta.url).href;
const fixture = (name: string): string => fileURLToPath(fixtureUrl(name));

function mountOf(name: string, extra: Partial<MountConfig> = {}): MountConfig {
  return { path: '/', app: fixture(name), kind: 'auto', fetchUrl: 'full', ...extra };
}

const servers: http.Server[] = [];
const apps: LoadedApp[] = [];

afterEach(async () => {
  await closeServers(servers);
  await Promise.all(apps.splice(0).map((app) => app.close?.()));
});

/** Serves `handler` from a real node:http server on an ephemeral loopback port. */
async function serve(handler: NodeHandler): Promise<string> {
  const server = http.createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((err: unknown) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

async function load(name: string, extra: Partial<MountConfig> = {}): Promise<LoadedApp> {
  const app = await loadApp(mountOf(name, extra));
  apps.push(app);
  return app;
}

async function getJson(app: LoadedApp, path: string): Promise<Record<string, unknown>> {
  const base = await serve(app.handler);
  const res = await fetch(`${base}${path}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

describe('loadApp: discovery', () => {
  it.each([
    ['esm-fetch-named.mjs', 'fetch', 'fetch export (fetch handler)', 'esm-fetch-named'],
    [
      'cjs-fetch-object.cjs',
      'fetch',
      'default export .fetch() (fetch handler)',
      'cjs-fetch-object',
    ],
    ['esm-hono.mjs', 'fetch', 'default export .fetch() (fetch handler)', 'esm-hono'],
    ['esm-koa.mjs', 'node', 'default export (Koa app)', 'esm-koa'],
    ['cjs-koa.cjs', 'node', 'default export (Koa app)', 'cjs-koa'],
    ['esm-fastify.mjs', 'node', 'default export (Fastify instance)', 'esm-fastify'],
    ['esm-server-named.mjs', 'node', 'export "server" (http.Server)', 'esm-server-named'],
    ['cjs-server.cjs', 'node', 'default export (http.Server)', 'cjs-server'],
    ['esm-express.mjs', 'node', 'default export (Express app)', 'esm-express'],
    ['cjs-express.cjs', 'node', 'default export (Express app)', 'cjs-express'],
    ['esm-function.mjs', 'node', 'default export ((req, res) function)', 'esm-function'],
    ['cjs-function.cjs', 'node', 'default export ((req, res) function)', 'cjs-function'],
    ['cjs-transpiled.cjs', 'node', 'default export ((req, res) function)', 'cjs-transpiled'],
    ['esm-handler.mjs', 'node', 'handler export ((req, res) function)', 'esm-handler'],
    ['cjs-handler.cjs', 'node', 'handler export ((req, res) function)', 'cjs-handler'],
    ['esm-listen-express.mjs', 'node', 'listen() on import (http.Server)', 'esm-listen-express'],
    ['esm-listen-tla.mjs', 'node', 'listen() on import (http.Server)', 'esm-listen-tla'],
    ['cjs-listen-koa.cjs', 'node', 'listen() on import (http.Server)', 'cjs-listen-koa'],
    ['esm-listen-fastify.mjs', 'node', 'listen() on import (http.Server)', 'esm-listen-fastify'],
  ])('%s -> %s, %s', async (file, kind, shape, name) => {
    const app = await load(file);
    expect(app.kind).toBe(kind);
    expect(app.shape).toBe(shape);
    const path = file === 'esm-hono.mjs' ? '/url?q=1' : '/some/path?q=1';
    const body = await getJson(app, path);
    expect(body['app']).toBe(name);
    expect(String(body['url'])).toMatch(/\/(some\/path|url)\?q=1$/);
  });

  it('a named exported server takes precedence over a default function, as documented', async () => {
    // esm-named.mjs has no server: the default function wins over `api`, `web`.
    const app = await load('esm-named.mjs');
    expect(app.shape).toBe('default export ((req, res) function)');
    expect((await getJson(app, '/x'))['app']).toBe('esm-named default');
  });

  it('runs every request listener of an exported server', async () => {
    const app = await load('esm-server-named.mjs');
    const res = await fetch(`${await serve(app.handler)}/`);
    expect(res.headers.get('x-first-listener')).toBe('yes');
    await res.arrayBuffer();
  });

  it("exposes the app's own http.Server (WebSocket upgrades are emitted on it)", async () => {
    const named = await load('esm-server-named.mjs');
    const mod = (await import(fixtureUrl('esm-server-named.mjs'))) as { server: http.Server };
    expect(named.server).toBe(mod.server);
    const listened = await load('esm-listen-express.mjs');
    expect(listened.server).toBeInstanceOf(http.Server);
    const fastify = await load('esm-fastify.mjs');
    const fmod = (await import(fixtureUrl('esm-fastify.mjs'))) as { default: { server: unknown } };
    expect(fastify.server).toBe(fmod.default.server);
    // A bare function has no server: its handshakes are refused (400).
    expect((await load('esm-function.mjs')).server).toBeUndefined();
  });

  it('uses mount.export instead of discovery, for node and fetch values', async () => {
    const api = await load('esm-named.mjs', { export: 'api' });
    expect(api.shape).toBe('export "api" ((req, res) function)');
    expect((await getJson(api, '/x'))['app']).toBe('esm-named api');
    const web = await load('esm-named.mjs', { export: 'web' });
    expect(web.kind).toBe('fetch');
    expect((await getJson(web, '/x'))['app']).toBe('esm-named web');
  });

  it('kind: fetch takes a bare function export as a fetch handler', async () => {
    const app = await load('esm-fetch-named.mjs', { kind: 'fetch', export: 'fetch' });
    expect(app.kind).toBe('fetch');
    expect((await getJson(app, '/k'))['app']).toBe('esm-fetch-named');
  });

  it('kind: node refuses a module that only has a fetch handler', async () => {
    await expect(load('esm-fetch-only.mjs', { kind: 'node' })).rejects.toMatchObject({
      code: 'UWSGI_ERR_APP_EXPORT',
      message: expect.stringContaining('with kind node'),
    });
  });

  it('fakes a successful bind for listen() on import: callback, address(), no port bound', async () => {
    const app = await load('esm-listen-express.mjs');
    const mod = (await import(fixtureUrl('esm-listen-express.mjs'))) as {
      seen: { listeningPort?: number };
    };
    expect(app.kind).toBe('node');
    expect(mod.seen.listeningPort).toBe(3000);
    const tla = (await import(fixtureUrl('esm-listen-tla.mjs'))) as {
      address: AddressInfo;
    };
    await load('esm-listen-tla.mjs');
    expect(tla.address).toMatchObject({ address: '127.0.0.1', family: 'IPv4', port: 0 });
  });

  it('a second mount of a listen()-on-import module reuses the captured server', async () => {
    const first = await load('cjs-listen-koa.cjs');
    const second = await load('cjs-listen-koa.cjs');
    expect(second.shape).toBe(first.shape);
    expect((await getJson(second, '/again'))['app']).toBe('cjs-listen-koa');
  });

  it('Fastify: close() runs onClose hooks', async () => {
    // Its own fixture: closing a Fastify instance is final, and modules are cached.
    const app = await loadApp(mountOf('esm-fastify-close.mjs'));
    const mod = (await import(fixtureUrl('esm-fastify-close.mjs'))) as { events: string[] };
    expect((await getJson(app, '/f'))['app']).toBe('esm-fastify-close');
    expect(mod.events).toEqual([]);
    await app.close?.();
    expect(mod.events).toEqual(['closed']);
  });
});

describe('loadApp: listen() interception', () => {
  it('restores net.Server.prototype.listen even when the import throws', async () => {
    const original = net.Server.prototype.listen;
    await expect(load('esm-listen-throws.mjs')).rejects.toMatchObject({
      code: 'UWSGI_ERR_APP_LOAD',
      cause: expect.objectContaining({ message: 'app failed after listen()' }),
    });
    expect(net.Server.prototype.listen).toBe(original);
    expect(http.Server.prototype.listen).toBe(original);
  });

  it('leaves listen() outside the import alone, even while an import is in progress', async () => {
    const original = net.Server.prototype.listen;
    const gate = globalThis as { __uwsgiTsLoaderGate?: Promise<void> };
    let open: () => void = () => undefined;
    gate.__uwsgiTsLoaderGate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const loading = load('esm-gated.mjs');
    // Wait (bounded, by turns of the event loop) until the import is under way.
    for (let turn = 0; net.Server.prototype.listen === original; turn++) {
      expect(turn).toBeLessThan(10_000);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const own = http.createServer();
    servers.push(own);
    await new Promise<void>((resolve) => own.listen(0, '127.0.0.1', resolve));
    expect(own.listening).toBe(true);
    expect((own.address() as AddressInfo).port).toBeGreaterThan(0);
    open();
    expect((await loading).shape).toBe('default export ((req, res) function)');
    expect(net.Server.prototype.listen).toBe(original);
  });

  it('serialises loads: concurrent imports all see their own listen() calls', async () => {
    const loaded = await Promise.all([
      load('esm-listen-express.mjs'),
      load('cjs-listen-koa.cjs'),
      load('esm-listen-fastify.mjs'),
      load('esm-koa.mjs'),
    ]);
    expect(loaded.map((a) => a.shape)).toEqual([
      'listen() on import (http.Server)',
      'listen() on import (http.Server)',
      'listen() on import (http.Server)',
      'default export (Koa app)',
    ]);
    expect(net.Server.prototype.listen).toBe(http.Server.prototype.listen);
  });
});

describe('loadApp: errors', () => {
  it('UWSGI_ERR_APP_EXPORT lists the accepted shapes and what the module exports', async () => {
    const err = await load('esm-nothing.mjs').catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UWSGI_ERR_APP_EXPORT' });
    const message = (err as Error).message;
    expect(message).toContain(fixture('esm-nothing.mjs'));
    expect(message).toContain('Exports: default (object), version (number).');
    for (const shape of ACCEPTED_APP_SHAPES) expect(message).toContain(shape);
  });

  it('UWSGI_ERR_APP_EXPORT for a missing named export', async () => {
    await expect(load('esm-named.mjs', { export: 'nope' })).rejects.toMatchObject({
      code: 'UWSGI_ERR_APP_EXPORT',
      message: expect.stringContaining('no export named "nope"'),
    });
  });

  it('UWSGI_ERR_APP_LOAD with cause for a module that throws or does not exist', async () => {
    await expect(load('esm-throws.mjs')).rejects.toMatchObject({
      code: 'UWSGI_ERR_APP_LOAD',
      cause: expect.objectContaining({ message: 'module body failed' }),
    });
    const missing = await load('does-not-exist.mjs').catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'UWSGI_ERR_APP_LOAD' });
    expect((missing as Error).cause).toBeInstanceOf(Error);
  });
});
