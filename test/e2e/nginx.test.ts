/**
 * The built container behind a real nginx (`uwsgi_pass` over a unix socket and over TCP), with
 * real Express, Koa, Fastify, Hono apps and a plain handler (test/fixtures/apps). Checks what
 * the apps see (mount split, raw URLs, headers, bodies) and what the client gets back.
 */
import * as http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, type RunningContainer, startContainer } from '../utils/cli.ts';
import { TRANSPORT, writeConfig } from '../utils/config.ts';
import {
  type Echo,
  pattern,
  patternSha,
  rawHttpExchange,
  request,
  sha256,
} from '../utils/http-client.ts';
import { pollUntil } from '../utils/net.ts';
import { HAS_NGINX, type Nginx, startNginx } from '../utils/nginx.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import { parseHttpResponse } from '../utils/uwsgi-client.ts';

const MIB = 1024 * 1024;
const BIG = 20 * MIB;

describe.skipIf(!HAS_NGINX)(`through nginx (transport ${TRANSPORT ?? 'default'})`, () => {
  let dir: string;
  let container: RunningContainer;

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-nginx');
    const config = await writeConfig(dir, {
      mounts: [
        { path: '/', app: 'plain.mjs' },
        { path: '/express', app: 'express.mjs' },
        { path: '/koa', app: 'koa.mjs' },
        { path: '/fastify', app: 'fastify.mjs' },
        { path: '/hono', app: 'hono.mjs' },
        { path: '/hono-rel', app: 'hono-relative.mjs', fetchUrl: 'relative' },
        { path: '/nobuf', app: 'stream.mjs' },
      ],
      accessLog: false,
    });
    container = await startContainer(config);
  });

  afterAll(async () => {
    try {
      if (container) {
        const exit = await container.stop();
        expect(exit).toEqual({ code: 0, signal: null });
      }
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  describe.each([['unix'], ['tcp']] as const)('uwsgi_pass over %s', (kind) => {
    let nginx: Nginx;
    const url = (path: string) => nginx.url(path);
    const echo = async (path: string, init?: Parameters<typeof request>[1]) => {
      const res = await request(url(path), init);
      expect(res.status, res.body.toString()).toBe(200);
      return res.json<Echo>();
    };

    beforeAll(async () => {
      const upstream = container.address('uwsgi', kind);
      nginx = await startNginx({
        server: [
          'client_max_body_size 64m',
          'large_client_header_buffers 4 16k',
          'underscores_in_headers on',
        ],
        locations: [
          { path: '/', upstream },
          // Unbuffered both ways: responses stream to the client, request bodies (non-chunked)
          // stream to the container as they arrive (PROTOCOL.md section 4, "Plain body").
          {
            path: '/nobuf/',
            upstream,
            directives: ['uwsgi_buffering off', 'uwsgi_request_buffering off'],
          },
        ],
      });
    });

    afterAll(async () => {
      await nginx?.stop();
    });

    it('routes by mount and gives apps req.url relative to it', async () => {
      const root = await echo('/hello/there?x=1');
      expect(root).toMatchObject({
        framework: 'plain',
        method: 'GET',
        url: '/hello/there?x=1',
        originalUrl: '/hello/there?x=1',
        baseUrl: '',
      });
      const ex = await echo('/express/users/7?q=a%20b');
      expect(ex).toMatchObject({
        framework: 'express',
        url: '/users/7?q=a%20b',
        originalUrl: '/express/users/7?q=a%20b',
        path: '/users/7',
      });
      // A prefix match must end on a segment boundary: /expressive is not under /express.
      expect(await echo('/expressive')).toMatchObject({ framework: 'plain', url: '/expressive' });
      expect(await echo('/express')).toMatchObject({ framework: 'express', url: '/' });
      // A plain handler under a prefix sees the mount as req.baseUrl (SCRIPT_NAME).
      expect(await echo('/nobuf/x/y?z=1')).toMatchObject({
        framework: 'plain',
        url: '/x/y?z=1',
        originalUrl: '/nobuf/x/y?z=1',
        baseUrl: '/nobuf',
      });
      expect(await echo('/koa/k?z=1')).toMatchObject({ framework: 'koa', url: '/k?z=1' });
      expect(await echo('/fastify/f/g')).toMatchObject({ framework: 'fastify', url: '/f/g' });
      // Fetch apps get the full external URL (fetchUrl: full); Debian's params send $host.
      const h = await echo('/hono/x?y=1');
      expect(h).toMatchObject({ framework: 'hono', path: '/hono/x' });
      expect(h.url).toMatch(/^http:\/\/127\.0\.0\.1(:\d+)?\/hono\/x\?y=1$/);
      // fetchUrl: relative strips the mount prefix.
      const rel = await echo('/hono-rel/x?y=1');
      expect(rel).toMatchObject({ framework: 'hono', path: '/x' });
      expect(rel.url).toMatch(/^http:\/\/127\.0\.0\.1(:\d+)?\/x\?y=1$/);
    });

    it('passes percent-encoded and raw UTF-8 paths through unchanged', async () => {
      const enc = await echo('/caf%C3%A9/a%2Fb/%20?q=%C3%A9&r=%2F');
      expect(enc.url).toBe('/caf%C3%A9/a%2Fb/%20?q=%C3%A9&r=%2F');
      // Raw bytes c3 a9 in the request line; Node (and the container) expose them as latin1.
      const raw = await echo('/raw/caf\u00c3\u00a9?v=\u00c3\u00a9');
      expect(raw.url).toBe('/raw/caf\u00c3\u00a9?v=\u00c3\u00a9');
      const ex = await echo('/express/caf%C3%A9?x=%41');
      expect(ex).toMatchObject({
        url: '/caf%C3%A9?x=%41',
        originalUrl: '/express/caf%C3%A9?x=%41',
      });
    });

    it.each([
      ['0 B', 0],
      ['1 KiB', 1024],
      ['5 MiB', 5 * MIB],
    ])('POST %s arrives intact (plain, Express, unbuffered)', async (_label, size) => {
      const body = pattern(size, size + 1);
      for (const prefix of ['', '/express', '/nobuf']) {
        const e = await echo(`${prefix}/upload`, {
          method: 'POST',
          body,
          headers: { 'content-type': 'application/octet-stream' },
        });
        expect(e.method).toBe('POST');
        expect(e.bodyLength).toBe(size);
        expect(e.bodySha256).toBe(sha256(body));
        expect(e.headers['content-length']).toBe(String(size));
      }
    });

    it('a chunked client body reaches the app de-chunked, without Transfer-Encoding', async () => {
      const pieces = [pattern(1000, 1), pattern(2000, 2), pattern(500, 3)];
      const e = await echo('/chunked', { method: 'POST', body: pieces });
      expect(e.bodyLength).toBe(3500);
      expect(e.bodySha256).toBe(sha256(Buffer.concat(pieces)));
      expect(e.headers['content-length']).toBe('3500');
      expect(e.headers['transfer-encoding']).toBeUndefined();
    });

    it('HEAD, 204 and 304 have no body', async () => {
      const head = await request(url('/anything'), { method: 'HEAD' });
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      const n204 = await request(url('/status/204'));
      expect(n204.status).toBe(204);
      expect(n204.body.length).toBe(0);
      expect(n204.headers['x-status']).toBe('204');
      const n304 = await request(url('/status/304'));
      expect(n304.status).toBe(304);
      expect(n304.body.length).toBe(0);
      expect(n304.headers.etag).toBe('"v1"');
      const ex204 = await request(url('/express/status/204'));
      expect([ex204.status, ex204.body.length]).toEqual([204, 0]);
    });

    it('a 20 MiB response arrives complete', async () => {
      const res = await request(url(`/big?size=${BIG}`));
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe(String(BIG));
      expect(res.body.length).toBe(BIG);
      expect(sha256(res.body)).toBe(patternSha(BIG));
    });

    it.each([
      ['write loop', '/express/big'],
      ['stream.pipe(res)', '/express/piped'],
    ])('a 5 MiB Express response (%s) waits for drain and arrives complete', async (_l, path) => {
      // Express swaps the response's prototype: back-pressure must still reach it.
      const res = await request(url(`${path}?size=${5 * MIB}`));
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe(String(5 * MIB));
      expect(res.body.length).toBe(5 * MIB);
      expect(sha256(res.body)).toBe(patternSha(5 * MIB));
    });

    it('a streamed response reaches the client before it ends (uwsgi_buffering off)', async () => {
      const id = `s-${kind}-${Date.now()}`;
      const received: Buffer[] = [];
      const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
        http.get(url(`/nobuf/stream?id=${id}`), { agent: false }, resolve).on('error', reject);
      });
      expect(res.statusCode).toBe(200);
      const ended = new Promise<void>((resolve, reject) => {
        res.on('end', resolve);
        res.on('error', reject);
      });
      // The first piece must arrive while the app is still waiting for its release.
      const first = await new Promise<Buffer>((resolve) => {
        res.once('data', (c: Buffer) => {
          received.push(c);
          resolve(c);
        });
      });
      expect(first.toString()).toBe('first\n');
      res.on('data', (c: Buffer) => received.push(c));
      const rel = await request(url(`/release?id=${id}`));
      expect(rel.json()).toEqual({ released: true });
      await ended;
      expect(Buffer.concat(received).toString()).toBe('first\nlast\n');
    });

    it('several Set-Cookie headers stay separate', async () => {
      const plain = await request(url('/cookies'));
      expect(plain.headers['set-cookie']).toEqual([
        'a=1; Path=/',
        'b=2; HttpOnly',
        'c=3; Max-Age=60',
      ]);
      const ex = await request(url('/express/cookies'));
      expect(ex.headers['set-cookie']).toEqual([
        'a=1; Path=/',
        'b=2; Path=/; HttpOnly',
        'c=3; Path=/',
      ]);
      for (const p of ['/fastify/cookies', '/hono/cookies', '/hono-rel/cookies']) {
        expect((await request(url(p))).headers['set-cookie'], p).toEqual(['a=1', 'b=2', 'c=3']);
      }
      const koa = await request(url('/koa/cookies'));
      expect(koa.headers['set-cookie']).toHaveLength(2);
    });

    it('an 8 KiB Cookie and repeated request headers reach the app', async () => {
      const cookie = `big=${'x'.repeat(8192 - 4)}`;
      const e = await echo('/h', { headers: { cookie, 'x-dup': ['one', 'two'] } });
      expect(e.headers['cookie']).toBe(cookie);
      // nginx 1.22 sends each repeat as its own var; the bridge joins them as Node does.
      expect(e.headers['x-dup']).toBe('one, two');
      expect(
        e.rawHeaders?.filter((_, i, a) => i % 2 === 0 && a[i]?.toLowerCase() === 'x-dup'),
      ).toHaveLength(2);
      // Two Cookie lines (node:http would merge them): joined with "; " as node:http does.
      const raw = await rawHttpExchange(
        nginx.port,
        Buffer.from(
          'GET /dupcookie HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n',
        ),
      );
      const res = parseHttpResponse(raw)!;
      expect(res.status).toBe(200);
      const body = res.header('transfer-encoding') ? dechunk(res.body) : res.body;
      expect((JSON.parse(body.toString()) as Echo).headers['cookie']).toBe('a=1; b=2');
    });

    it('underscores_in_headers on: X_Under and X-Under reach the app as one joined header', async () => {
      // nginx sends both as HTTP_X_UNDER (PROTOCOL.md section 4); the bridge joins duplicates.
      const e = await echo('/u', { headers: { X_Under: 'a', 'X-Under': 'b' } });
      expect(e.headers['x-under']).toBe('a, b');
    });

    it('fetch and framework apps read bodies too', async () => {
      const body = pattern(4096, 9);
      for (const prefix of ['/koa', '/fastify', '/hono']) {
        const e = await echo(`${prefix}/p`, {
          method: 'PUT',
          body,
          headers: { 'content-type': 'application/octet-stream' },
        });
        expect([e.framework, e.method, e.bodyLength, e.bodySha256]).toEqual([
          prefix.slice(1),
          'PUT',
          4096,
          sha256(body),
        ]);
      }
    });

    it('an app that throws gets a 500 and the next request is served', async () => {
      const throwing = ['/throw', '/reject', '/express/throw', '/koa/throw', '/fastify/throw'];
      for (const p of [...throwing, '/hono/throw', '/hono-rel/throw']) {
        const res = await request(url(p));
        expect(res.status, p).toBe(500);
        expect((await echo('/after-throw')).url).toBe('/after-throw');
      }
    });

    it('a client that disconnects mid-response does not disturb the server', async () => {
      const before = (await request(url('/stats'))).json<{ slowAborted: number }>();
      await new Promise<void>((resolve, reject) => {
        const req = http.get(url('/nobuf/slow'), { agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code !== 'ECONNRESET') reject(err);
        });
      });
      // nginx closes the upstream connection; the app sees 'close' before finishing.
      await pollUntil(
        async () =>
          (await request(url('/stats'))).json<{ slowAborted: number }>().slowAborted >
          before.slowAborted,
        { what: 'the app to see the client abort', attempts: 100, intervalMs: 50 },
      );
      expect((await echo('/canary')).url).toBe('/canary');
    });
  });
});

/** Decodes a chunked HTTP body (nginx re-chunks close-delimited responses for HTTP/1.1 clients). */
function dechunk(b: Buffer): Buffer {
  const out: Buffer[] = [];
  let off = 0;
  for (;;) {
    const eol = b.indexOf('\r\n', off);
    const size = Number.parseInt(b.toString('latin1', off, eol), 16);
    if (!size) return Buffer.concat(out);
    out.push(b.subarray(eol + 2, eol + 2 + size));
    off = eol + 2 + size + 2;
  }
}
