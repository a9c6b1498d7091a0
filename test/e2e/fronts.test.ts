/**
 * The built container behind the other real front ends of PROTOCOL.md section 4: Apache 2.4
 * mod_proxy_uwsgi, lighttpd 1.4 mod_scgi in uwsgi mode and uWSGI 2.0's http router, each over the
 * container's unix socket, with node:http as the client. Per front end: what it sends (the vars,
 * via test/fixtures/fronts/vars.mjs) next to what the apps get (mount split, raw URLs, headers,
 * bodies), its own answer to a chunked request body, responses it must relay whole, and the
 * container's fds back to baseline after every test. Each suite is skipped when its binary is
 * absent (test/utils/fronts.ts).
 */
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, fdsBackTo, type RunningContainer, startContainer } from '../utils/cli.ts';
import { APPS_DIR, TRANSPORT, writeConfig } from '../utils/config.ts';
import {
  type FrontEnd,
  type FrontEndOptions,
  HAS_APACHE,
  HAS_LIGHTTPD,
  HAS_UWSGI_ROUTER,
  startApache,
  startLighttpd,
  startUwsgiRouter,
} from '../utils/fronts.ts';
import {
  type ClientRequest,
  type Echo,
  pattern,
  patternSha,
  rawHttpExchange,
  request,
  sha256,
} from '../utils/http-client.ts';
import { openFds } from '../utils/procs.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import { parseHttpResponse } from '../utils/uwsgi-client.ts';

const VARS_APP = join(APPS_DIR, '..', 'fronts', 'vars.mjs');
const KIB = 1024;
const MIB = 1024 * KIB;

/** What differs between the front ends (PROTOCOL.md sections 4 and 5), as observed. */
interface Profile {
  readonly title: string;
  readonly available: boolean;
  start(options: FrontEndOptions): Promise<FrontEnd>;
  /** Prefixes proxied to the container (each is the SCRIPT_NAME the front end sends). */
  readonly prefixes?: readonly string[];
  /** The first var of every packet. */
  readonly firstVar: string;
  /** Vars sent for `GET /vars/x?y=1` (first occurrence); `null` = not sent. */
  readonly getVars: Readonly<Record<string, string | null>>;
  /** How the app sees `Cookie: a=1` + `Cookie: b=2` (the front end joins them). */
  readonly twoCookies: string;
  /** `%2F` in a path: proxied as is, or refused by the front end itself. */
  readonly encodedSlash: 'proxied' | 404;
  /** Its answer to a chunked request body. */
  readonly chunked: 'length-required' | 'de-chunked' | 'relayed-chunked';
}

const PROFILES: readonly Profile[] = [
  {
    title: 'Apache mod_proxy_uwsgi',
    available: HAS_APACHE,
    start: startApache,
    // `ProxyPass /vars/` first: Apache takes the first matching ProxyPass.
    prefixes: ['/vars/', '/'],
    firstVar: 'PATH_INFO',
    getVars: {
      SCRIPT_NAME: '/vars',
      PATH_INFO: '/x',
      REQUEST_URI: '/vars/x?y=1',
      QUERY_STRING: 'y=1',
      REQUEST_METHOD: 'GET',
      CONTENT_LENGTH: null,
    },
    twoCookies: 'a=1, b=2',
    encodedSlash: 404,
    chunked: 'length-required',
  },
  {
    title: 'lighttpd mod_scgi (uwsgi protocol)',
    available: HAS_LIGHTTPD,
    start: startLighttpd,
    prefixes: ['/vars', '/'],
    firstVar: 'CONTENT_LENGTH',
    getVars: {
      CONTENT_LENGTH: '0',
      SCRIPT_NAME: '/vars',
      PATH_INFO: '/x',
      REQUEST_URI: '/vars/x?y=1',
      QUERY_STRING: 'y=1',
      REQUEST_METHOD: 'GET',
    },
    twoCookies: 'a=1; b=2',
    encodedSlash: 'proxied',
    chunked: 'de-chunked',
  },
  {
    title: 'uWSGI http router',
    available: HAS_UWSGI_ROUTER,
    start: startUwsgiRouter,
    firstVar: 'REQUEST_METHOD',
    getVars: {
      SCRIPT_NAME: '',
      PATH_INFO: '/vars/x',
      REQUEST_URI: '/vars/x?y=1',
      QUERY_STRING: 'y=1',
      UWSGI_ROUTER: 'http',
      CONTENT_LENGTH: null,
    },
    twoCookies: 'a=1, b=2',
    encodedSlash: 'proxied',
    chunked: 'relayed-chunked',
  },
];

const firstVar = (e: Echo, key: string) => e.vars?.find(([k]) => k === key)?.[1] ?? null;

for (const profile of PROFILES) {
  describe.skipIf(!profile.available)(
    `${profile.title} (transport ${TRANSPORT ?? 'default'})`,
    () => {
      let dir: string;
      let container: RunningContainer;
      let front: FrontEnd;
      let baselineFds: number;
      const url = (path: string) => front.url(path);
      const echo = async (path: string, init?: ClientRequest) => {
        const res = await request(url(path), init);
        expect(res.status, `${path}: ${res.body.toString().slice(0, 300)}`).toBe(200);
        return res.json<Echo>();
      };
      /** App calls so far (shared.mjs `stats.calls`; the /stats call itself counts once). */
      const appCalls = async () => (await request(url('/stats'))).json<{ calls: number }>().calls;

      beforeAll(async () => {
        assertBuilt();
        dir = await makeTmpDir('e2e-fronts');
        // Apache's children run as www-data when started as root: they must reach the socket
        // (0711 directory, 0666 socket; nobody can list the directory).
        await chmod(dir, 0o711);
        const config = await writeConfig(dir, {
          listeners: [{ protocol: 'uwsgi', address: 'app.sock', mode: '0666' }],
          mounts: [
            { path: '/', app: 'plain.mjs' },
            { path: '/express', app: 'express.mjs' },
            { path: '/hono', app: 'hono.mjs' },
            { path: '/vars', app: VARS_APP, kind: 'node' },
          ],
          accessLog: false,
        });
        container = await startContainer(config);
        front = await profile.start({
          upstream: container.target('uwsgi', 'unix'),
          ...(profile.prefixes ? { prefixes: profile.prefixes } : {}),
        });
        // Warm the path (lazy allocations on first accept) before taking the baseline.
        expect((await echo('/warm-up')).url).toBe('/warm-up');
        baselineFds = openFds(container.pid);
      });

      afterEach(async () => {
        if (!container || baselineFds === undefined) return;
        await fdsBackTo(container.pid, baselineFds);
      });

      afterAll(async () => {
        try {
          await front?.stop();
          if (container) {
            expect(container.child.exitCode).toBeNull();
            expect(await container.stop()).toEqual({ code: 0, signal: null });
          }
        } finally {
          await container?.kill();
          if (dir) await removeTmpDir(dir);
        }
      });

      it('sends its own vars; the container splits by mount, not by SCRIPT_NAME', async () => {
        const e = await echo('/vars/x?y=1');
        expect(e.vars?.[0]?.[0]).toBe(profile.firstVar);
        for (const [key, value] of Object.entries(profile.getVars)) {
          expect(firstVar(e, key), key).toBe(value);
        }
        expect(e).toMatchObject({
          framework: 'vars',
          url: '/x?y=1',
          baseUrl: '/vars',
          originalUrl: '/vars/x?y=1',
        });
      });

      it.runIf(profile.chunked === 'length-required')(
        'Apache: `ProxyPass /vars/` on /vars/ sends SCRIPT_NAME=/vars/ + PATH_INFO=/; same app view',
        async () => {
          const e = await echo('/vars/');
          expect([firstVar(e, 'SCRIPT_NAME'), firstVar(e, 'PATH_INFO')]).toEqual(['/vars/', '/']);
          expect(e).toMatchObject({ url: '/', baseUrl: '/vars', originalUrl: '/vars/' });
          // `/vars` is not under `ProxyPass /vars/`: the catch-all sends SCRIPT_NAME "".
          const bare = await echo('/vars');
          expect([firstVar(bare, 'SCRIPT_NAME'), firstVar(bare, 'PATH_INFO')]).toEqual([
            '',
            '/vars',
          ]);
          expect(bare).toMatchObject({ url: '/', baseUrl: '/vars', originalUrl: '/vars' });
        },
      );

      it('routes by mount; apps see req.url relative to it with the raw encoding', async () => {
        expect(await echo('/hello/there?x=1')).toMatchObject({
          framework: 'plain',
          url: '/hello/there?x=1',
          originalUrl: '/hello/there?x=1',
          baseUrl: '',
        });
        expect(await echo('/express/users/7?q=a%20b')).toMatchObject({
          framework: 'express',
          url: '/users/7?q=a%20b',
          originalUrl: '/express/users/7?q=a%20b',
          baseUrl: '/express',
          path: '/users/7',
        });
        expect(await echo('/expressive')).toMatchObject({ framework: 'plain', url: '/expressive' });
        const h = await echo('/hono/x?y=1');
        expect(h).toMatchObject({ framework: 'hono', path: '/hono/x' });
        expect(h.url).toBe(`http://127.0.0.1:${front.port}/hono/x?y=1`);

        const enc = '/caf%C3%A9/a%20b/%7e?q=%C3%A9&r=%2F';
        expect((await echo(enc)).url).toBe(enc);
        expect(await echo('/express/caf%C3%A9?x=%41')).toMatchObject({
          url: '/caf%C3%A9?x=%41',
          originalUrl: '/express/caf%C3%A9?x=%41',
        });
        // REQUEST_URI is the client's own bytes: `//` stays (the router does not normalise it
        // in PATH_INFO either, PROTOCOL.md section 4); dot segments are resolved for the mount.
        expect((await echo('//a//b?x=1')).url).toBe('//a//b?x=1');
      });

      it(`%2F in a path: ${profile.encodedSlash === 404 ? "the front end's own 404" : 'proxied as sent'}`, async () => {
        const before = await appCalls();
        const res = await request(url('/a%2Fb/c?d=%2F'));
        if (profile.encodedSlash === 404) {
          // AllowEncodedSlashes Off (the default): refused before proxying.
          expect(res.status).toBe(404);
          expect(await appCalls()).toBe(before + 1);
        } else {
          expect(res.status).toBe(200);
          expect(res.json<Echo>().url).toBe('/a%2Fb/c?d=%2F');
        }
      });

      it.each([
        ['0 B', 0],
        ['64 KiB', 64 * KIB],
        ['5 MiB', 5 * MIB],
      ])('POST %s arrives intact (plain, Express, Hono)', async (_label, size) => {
        const body = pattern(size, size + 7);
        for (const prefix of ['', '/express', '/hono']) {
          const e = await echo(`${prefix}/upload`, {
            method: 'POST',
            body,
            headers: { 'content-type': 'application/octet-stream' },
          });
          expect([e.method, e.bodyLength, e.bodySha256], prefix).toEqual([
            'POST',
            size,
            sha256(body),
          ]);
          expect(e.headers['content-length'], prefix).toBe(String(size));
        }
      });

      it.runIf(profile.chunked === 'length-required')(
        'a chunked body: 411 from Apache, the app never called, the container unharmed',
        async () => {
          // Apache opens a backend connection, closes it with 0 bytes and answers 411
          // (PROTOCOL.md section 4): the container must treat that as nothing at all.
          const before = await appCalls();
          const res = await request(url('/chunked'), {
            method: 'POST',
            body: [pattern(1000, 1), pattern(2000, 2)],
          });
          expect(res.status).toBe(411);
          expect(await appCalls()).toBe(before + 1);
          expect((await echo('/after-411')).url).toBe('/after-411');
        },
      );

      it.runIf(profile.chunked === 'de-chunked')(
        'a chunked body reaches the app de-chunked with CONTENT_LENGTH and no TE var',
        async () => {
          const pieces = [pattern(1000, 1), pattern(2000, 2), pattern(500, 3)];
          const e = await echo('/vars/chunked', { method: 'POST', body: pieces });
          expect([e.bodyLength, e.bodySha256]).toEqual([3500, sha256(Buffer.concat(pieces))]);
          expect(firstVar(e, 'CONTENT_LENGTH')).toBe('3500');
          expect(firstVar(e, 'HTTP_TRANSFER_ENCODING')).toBeNull();
          expect(e.headers['content-length']).toBe('3500');
          expect(e.headers['transfer-encoding']).toBeUndefined();
        },
      );

      it.runIf(profile.chunked === 'relayed-chunked')(
        'a chunked body: relayed still chunked without CONTENT_LENGTH, decoded by the container',
        async () => {
          // With --http-chunked-input the router forwards the client's chunked bytes as they come,
          // HTTP_TRANSFER_ENCODING chunked and no CONTENT_LENGTH (PROTOCOL.md section 4); the
          // container decodes the framing, so the app gets the body as node:http would give it.
          const pieces = [pattern(1000, 1), pattern(2000, 2), pattern(500, 3)];
          const e = await echo('/vars/chunked', { method: 'POST', body: pieces });
          expect([e.bodyLength, e.bodySha256]).toEqual([3500, sha256(Buffer.concat(pieces))]);
          expect(firstVar(e, 'CONTENT_LENGTH')).toBeNull();
          expect(firstVar(e, 'HTTP_TRANSFER_ENCODING')).toBe('chunked');
          expect(e.headers['transfer-encoding']).toBe('chunked');
          expect(e.headers['content-length']).toBeUndefined();
          expect((await echo('/after-chunked')).url).toBe('/after-chunked');
        },
      );

      it('HEAD, 204 and 304 have no body', async () => {
        const head = await request(url('/anything'), { method: 'HEAD' });
        expect([head.status, head.body.length]).toEqual([200, 0]);
        const n204 = await request(url('/status/204'));
        expect([n204.status, n204.body.length, n204.headers['x-status']]).toEqual([204, 0, '204']);
        const n304 = await request(url('/status/304'));
        expect([n304.status, n304.body.length, n304.headers.etag]).toEqual([304, 0, '"v1"']);
        for (const p of ['/express/status/204', '/hono/status/204']) {
          const r = await request(url(p));
          expect([r.status, r.body.length], p).toEqual([204, 0]);
        }
      });

      it('a 5 MiB response written with back-pressure arrives complete', async () => {
        // Apache reads to EOF even with a Content-Length; the container closes after the body.
        const size = 5 * MIB;
        const res = await request(url(`/big?size=${size}`));
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(size);
        expect(sha256(res.body)).toBe(patternSha(size));
      });

      it('several Set-Cookie headers stay separate', async () => {
        expect((await request(url('/cookies'))).headers['set-cookie']).toEqual([
          'a=1; Path=/',
          'b=2; HttpOnly',
          'c=3; Max-Age=60',
        ]);
        expect((await request(url('/express/cookies'))).headers['set-cookie']).toEqual([
          'a=1; Path=/',
          'b=2; Path=/; HttpOnly',
          'c=3; Path=/',
        ]);
        expect((await request(url('/hono/cookies'))).headers['set-cookie']).toEqual([
          'a=1',
          'b=2',
          'c=3',
        ]);
      });

      it('repeated request headers arrive joined by the front end', async () => {
        const e = await echo('/h', { headers: { 'x-dup': ['one', 'two'] } });
        expect(e.headers['x-dup']).toBe('one, two');
        // One var, unlike nginx 1.22's one var per line.
        expect(e.rawHeaders?.filter((v, i) => i % 2 === 0 && v.toLowerCase() === 'x-dup')).toEqual([
          'x-dup',
        ]);
        // Two Cookie lines (node:http would merge them before sending).
        const raw = await rawHttpExchange(
          front.port,
          Buffer.from(
            'GET /dupcookie HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n',
          ),
        );
        const res = parseHttpResponse(raw);
        expect(res?.status, raw.toString('latin1').slice(0, 300)).toBe(200);
        expect(res?.header('transfer-encoding')).toBeUndefined();
        expect((JSON.parse(res!.body.toString()) as Echo).headers['cookie']).toBe(
          profile.twoCookies,
        );
      });

      it('an app that throws gets a 500 and the next request is served', async () => {
        for (const p of ['/throw', '/reject', '/express/throw', '/hono/throw']) {
          const res = await request(url(p));
          expect(res.status, p).toBe(500);
          expect((await echo('/after-throw')).url).toBe('/after-throw');
        }
      });
    },
  );
}
