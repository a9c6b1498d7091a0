import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { NodeHandler } from '../src/app/types.ts';
import { createFastTransport } from '../src/transport/fast/listen.ts';
import {
  exchange,
  packet,
  requestVars,
  type Served,
  serve,
  waitForRecord,
} from './fixtures/apps/harness.ts';

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

/** Every suite below runs on both uwsgi transports (one protocol conformance suite). */
const TRANSPORTS: ReadonlyArray<'net' | 'fast'> = [
  'net',
  ...('unavailable' in createFastTransport() ? [] : (['fast'] as const)),
];
let transport: 'net' | 'fast' = 'net';

async function start(handler: NodeHandler, options: Parameters<typeof serve>[1] = {}) {
  served = await serve(handler, { transport, ...options });
  return served;
}

const hello: NodeHandler = (_req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('hello');
};

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

describe.each(TRANSPORTS)('%s transport', (kind) => {
  beforeEach(() => {
    transport = kind;
  });

  describe('uwsgi listener: response framing', () => {
    it('refuses a WebSocket handshake with 400 (no front end relays an upgrade over uwsgi)', async () => {
      let calls = 0;
      const s = await start((req, res) => {
        calls++;
        void hello(req, res);
      });
      const r = await exchange(
        s.path,
        packet(
          requestVars('GET', '/chat', {
            HTTP_UPGRADE: 'websocket',
            HTTP_CONNECTION: 'upgrade',
            HTTP_SEC_WEBSOCKET_VERSION: '13',
          }),
        ),
      );
      expect(r.raw.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
      expect(calls).toBe(0);
      const plain = await exchange(
        s.path,
        packet(requestVars('GET', '/', { HTTP_UPGRADE: 'h2c' })),
      );
      expect(plain.body.toString()).toBe('hello');
      expect(calls).toBe(1);
    });

    it('answers with one status line, Content-Length, Connection: close, then closes', async () => {
      const s = await start(hello);
      const r = await exchange(s.path, packet(requestVars('GET', '/')));
      expect(r.ending).toBe('end');
      expect(r.raw.toString('latin1')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(r.headers['content-length']).toBe('5');
      expect(r.headers.connection).toBe('close');
      expect(r.headers['transfer-encoding']).toBeUndefined();
      expect(r.headers.date).toBeDefined();
      expect(r.body.toString()).toBe('hello');
    });

    it('never chunks: streamed bodies and an app-set Transfer-Encoding are close-delimited', async () => {
      const s = await start((_req, res) => {
        res.setHeader('Transfer-Encoding', 'chunked');
        res.appendHeader('Keep-Alive', 'timeout=5');
        res.write('one ');
        setImmediate(() => res.end('two'));
      });
      const r = await exchange(s.path, packet(requestVars('GET', '/')));
      expect(r.headers['transfer-encoding']).toBeUndefined();
      expect(r.headers['keep-alive']).toBeUndefined();
      expect(r.headers['content-length']).toBeUndefined();
      expect(r.headers.connection).toBe('close');
      expect(r.body.toString()).toBe('one two');
    });

    it('strips hop-by-hop headers passed to writeHead in every shape', async () => {
      const shapes: Array<(res: ServerResponse) => void> = [
        (res) => res.writeHead(200, { 'Transfer-Encoding': 'chunked', 'X-A': '1' }),
        (res) => res.writeHead(200, 'Fine', ['Transfer-Encoding', 'chunked', 'X-A', '1']),
        (res) =>
          res.writeHead(200, [
            ['Connection', 'keep-alive'],
            ['X-A', '1'],
          ] as never),
      ];
      for (const shape of shapes) {
        const s = await start((_req, res) => {
          shape(res);
          res.end('x');
        });
        const r = await exchange(s.path, packet(requestVars('GET', '/')));
        expect(r.headers['x-a']).toBe('1');
        expect(r.headers['transfer-encoding']).toBeUndefined();
        expect(r.headers.connection).toBe('close');
        expect(r.body.toString()).toBe('x');
        await s.close();
        served = undefined;
      }
    });

    it('sends no body for HEAD, 204 and 304', async () => {
      const s = await start((req, res) => {
        if (req.url === '/204') res.statusCode = 204;
        if (req.url === '/304') res.statusCode = 304;
        res.end('must not be sent');
      });
      const head = await exchange(s.path, packet(requestVars('HEAD', '/')));
      expect(head.status).toBe(200);
      // As on Node's own server: a HEAD response from end(body) carries neither body nor length.
      expect(head.headers['transfer-encoding']).toBeUndefined();
      expect(head.body.length).toBe(0);
      for (const code of [204, 304]) {
        const r = await exchange(s.path, packet(requestVars('GET', `/${code}`)));
        expect(r.status).toBe(code);
        expect(r.body.length).toBe(0);
      }
    });

    it('frames HTTP/1.0 requests the same way (Content-Length when known, else close)', async () => {
      const s = await start((req, res) => {
        if (req.url === '/stream') res.write('a');
        res.end(req.httpVersion);
      });
      const vars = (uri: string) =>
        requestVars('GET', uri).map(([k, v]) =>
          k === 'SERVER_PROTOCOL' ? (['SERVER_PROTOCOL', 'HTTP/1.0'] as [string, string]) : [k, v],
        ) as Array<[string, string]>;
      const known = await exchange(s.path, packet(vars('/')));
      expect(known.headers['content-length']).toBe('3');
      expect(known.body.toString()).toBe('1.0');
      const streamed = await exchange(s.path, packet(vars('/stream')));
      expect(streamed.headers['transfer-encoding']).toBeUndefined();
      expect(streamed.body.toString()).toBe('a1.0');
    });

    it('keeps duplicate Set-Cookie headers and joins duplicate Cookie vars as Node does', async () => {
      const s = await start((req, res) => {
        res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
        res.appendHeader('Set-Cookie', 'c=3');
        res.end(JSON.stringify({ cookie: req.headers.cookie, accept: req.headers.accept }));
      });
      const vars = requestVars('GET', '/', [
        ['HTTP_COOKIE', 'x=1'],
        ['HTTP_COOKIE', 'y=2'],
        ['HTTP_ACCEPT', 'text/html'],
        ['HTTP_ACCEPT', 'application/json'],
      ]);
      const r = await exchange(s.path, packet(vars));
      expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/', 'c=3']);
      expect(JSON.parse(r.body.toString())).toEqual({
        cookie: 'x=1; y=2',
        accept: 'text/html, application/json',
      });
    });

    it('accepts an 8 KiB cookie (over uWSGI 4096 buffer-size)', async () => {
      const cookie = `big=${'c'.repeat(8192)}`;
      const s = await start((req, res) => {
        res.end(String(req.headers.cookie?.length));
      });
      const r = await exchange(s.path, packet(requestVars('GET', '/', { HTTP_COOKIE: cookie })));
      expect(r.body.toString()).toBe(String(cookie.length));
    });

    it('forwards socket drain to the response for large streamed bodies', async () => {
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const total = 64;
      let sawDrain = 0;
      const s = await start(async (_req, res) => {
        res.on('drain', () => sawDrain++);
        for (let i = 0; i < total; i++) {
          if (!res.write(chunk)) await once(res, 'drain');
        }
        res.end();
      });
      const r = await exchange(s.path, packet(requestVars('GET', '/')));
      expect(r.body.length).toBe(chunk.length * total);
      expect(sawDrain).toBeGreaterThan(0);
    });
  });

  describe('uwsgi listener: request side', () => {
    it('builds a genuine IncomingMessage with vars-derived fields and the client address', async () => {
      let seen: Record<string, unknown> = {};
      const s = await start(
        (req, res) => {
          const r = req as IncomingMessage & {
            originalUrl?: string;
            baseUrl?: string;
            uwsgi?: unknown;
          };
          seen = {
            method: req.method,
            url: req.url,
            originalUrl: r.originalUrl,
            baseUrl: r.baseUrl,
            httpVersion: req.httpVersion,
            host: req.headers.host,
            te: req.headers['transfer-encoding'],
            rawHeaders: req.rawHeaders,
            remoteAddress: req.socket.remoteAddress,
            remotePort: req.socket.remotePort,
            sameSocket: req.socket === res.socket,
            uwsgi: r.uwsgi,
          };
          res.end();
        },
        { mount: '/api' },
      );
      // Transfer-Encoding reaches the app only when no CONTENT_LENGTH frames the body (with it,
      // the codec drops the var nginx forwards after de-chunking: see the refusals below).
      const vars = requestVars('GET', '/api/items?x=1', {
        HTTP_TRANSFER_ENCODING: 'identity',
        HTTP_X_TRACE: 'abc',
      });
      const r = await exchange(s.path, packet(vars));
      expect(r.status).toBe(200);
      expect(seen).toMatchObject({
        method: 'GET',
        url: '/items?x=1',
        originalUrl: '/api/items?x=1',
        baseUrl: '/api',
        httpVersion: '1.1',
        host: 'example.test',
        te: 'identity',
        remoteAddress: '203.0.113.7',
        remotePort: 51234,
        sameSocket: true,
        uwsgi: { scriptName: '/api', pathInfo: '/items', scheme: 'http' },
      });
      expect(seen.rawHeaders).toEqual([
        'host',
        'example.test',
        'transfer-encoding',
        'identity',
        'x-trace',
        'abc',
      ]);
    });

    it('gives req.url "/" when the request names the mount exactly', async () => {
      let url: string | undefined;
      const s = await start(
        (req, res) => {
          url = req.url;
          res.end();
        },
        { mount: '/api' },
      );
      await exchange(s.path, packet(requestVars('GET', '/api?q=1')));
      expect(url).toBe('/?q=1');
      const miss = await exchange(s.path, packet(requestVars('GET', '/apix')));
      expect(miss.status).toBe(404);
    });

    for (const size of [0, 1024, 5 * 1024 * 1024]) {
      it(`delivers a ${size}-byte body intact, with back-pressure`, async () => {
        const body = randomBytes(size);
        const s = await start(async (req, res) => {
          // A slow consumer: the connection must be paused rather than buffering everything.
          const chunks: Buffer[] = [];
          for await (const chunk of req) {
            chunks.push(chunk as Buffer);
            if (chunks.length % 16 === 0) await new Promise((r) => setImmediate(r));
          }
          const got = Buffer.concat(chunks);
          res.end(`${got.length} ${createHash('sha256').update(got).digest('hex')}`);
        });
        const r = await exchange(s.path, packet(requestVars('POST', '/upload', {}, size), body));
        expect(r.body.toString()).toBe(
          `${size} ${createHash('sha256').update(body).digest('hex')}`,
        );
      });
    }

    it('pauses the connection while the app does not read (bounded buffering)', async () => {
      const size = 8 * 1024 * 1024;
      let buffered = -1;
      const s = await start((req, res) => {
        setTimeout(() => {
          buffered = req.readableLength;
          req.resume();
          req.on('end', () => res.end('ok'));
        }, 100);
      });
      const r = await exchange(
        s.path,
        packet(requestVars('POST', '/', {}, size), Buffer.alloc(size)),
      );
      expect(r.body.toString()).toBe('ok');
      expect(buffered).toBeGreaterThan(0);
      expect(buffered).toBeLessThan(2 * 1024 * 1024);
    });

    it('U14/U27: bytes after the declared body are never parsed as a second request', async () => {
      let calls = 0;
      const s = await start(async (req, res) => {
        calls++;
        res.end(`${req.method} ${(await readBody(req)).toString()}`);
      });
      const second = packet(requestVars('DELETE', '/admin', { UWSGI_FILE: '/tmp/x.py' }));
      const r = await exchange(
        s.path,
        Buffer.concat([packet(requestVars('POST', '/', {}, 5), Buffer.from('hello')), second]),
      );
      expect(r.body.toString()).toBe('POST hello');
      expect(calls).toBe(1);
    });

    it('U31: a half-close after a complete request still gets the response', async () => {
      const s = await start((_req, res) => {
        setTimeout(() => res.end('late'), 20);
      });
      const r = await exchange(s.path, packet(requestVars('GET', '/')), { halfClose: true });
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('late');
    });

    it('U13: EOF inside the declared body aborts the request instead of hanging', async () => {
      const events: string[] = [];
      let closed!: () => void;
      const done = new Promise<void>((r) => {
        closed = r;
      });
      const s = await start((req, res) => {
        req.on('aborted', () => events.push('aborted'));
        req.on('error', (err: NodeJS.ErrnoException) => events.push(`error ${err.code}`));
        req.on('close', () => {
          events.push('close');
          closed();
        });
        res.on('close', () => events.push('res close'));
        req.resume();
      });
      await exchange(s.path, packet(requestVars('POST', '/', {}, 100), Buffer.alloc(10)), {
        halfClose: true,
      });
      await done;
      expect(events).toContain('aborted');
      expect(events).toContain('error ECONNRESET');
    });

    it('responds before reading the body, then drains it before closing', async () => {
      const size = 4 * 1024 * 1024;
      const s = await start((_req, res) => {
        res.statusCode = 401;
        res.end('no');
      });
      const r = await exchange(
        s.path,
        packet(requestVars('POST', '/', {}, size), Buffer.alloc(size)),
      );
      expect(r.ending).toBe('end');
      expect(r.status).toBe(401);
      expect(r.body.toString()).toBe('no');
    });
  });

  describe('uwsgi listener: refusals', () => {
    it('U05: datasize 0 -> 400; no method, no path -> 400 under strictVars', async () => {
      const s = await start(hello, { strictVars: true });
      const cases = [
        Buffer.from([0, 0, 0, 0]),
        packet([['REQUEST_URI', '/']]),
        packet([['REQUEST_METHOD', 'GET']]),
      ];
      for (const bytes of cases) {
        const r = await exchange(s.path, bytes, { halfClose: true });
        expect(r.status).toBe(400);
        expect(r.headers.connection).toBe('close');
      }
    });

    it('no method, no path: served as GET /, one warning per listener and part', async () => {
      const seen: string[] = [];
      const s = await start((req, res) => {
        seen.push(`${req.method} ${req.url} ${req.headers['x-blah']}`);
        res.end('SEE-THIS');
      });
      // What nginx sends for a location with its own uwsgi_param and no include uwsgi_params.
      const bare = packet([
        ['SERVER_PROTOCOL', 'HTTP/1.0'],
        ['HTTP_X_BLAH', 'blah'],
        ['HTTP_HOST', 'localhost'],
      ]);
      for (let i = 0; i < 3; i++) {
        const r = await exchange(s.path, bare, { halfClose: true });
        expect(r.status).toBe(200);
        expect(r.body.toString()).toBe('SEE-THIS');
      }
      const r = await exchange(s.path, packet([['REQUEST_METHOD', 'POST']]), { halfClose: true });
      expect(r.status).toBe(200);
      expect(seen).toEqual(['GET / blah', 'GET / blah', 'GET / blah', 'POST / undefined']);
      const warnings = s.records.filter(
        (x) => x.level === 40 && /uwsgi_params/.test(String(x.msg)),
      );
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({
        listener: `unix:${s.path}`,
        missing: ['REQUEST_METHOD', 'REQUEST_URI'],
      });
      expect(String(warnings[0]?.msg)).toContain('strictVars');
      // Only the method missing: the path part was warned about already, the method too.
      const q = await exchange(s.path, packet([['QUERY_STRING', 'a=1']]), { halfClose: true });
      expect(q.status).toBe(200);
      expect(seen.at(-1)).toBe('GET /?a=1 undefined');
      expect(s.records.filter((x) => /uwsgi_params/.test(String(x.msg)))).toHaveLength(1);
    });

    it('U12: malformed CONTENT_LENGTH -> 400', async () => {
      const s = await start(hello);
      for (const cl of ['abc', '-1', '+5', ' 5', '5 ', '0x10', '1e3', '5,5', '9'.repeat(25)]) {
        const vars = requestVars('POST', '/').map(([k, v]) =>
          k === 'CONTENT_LENGTH' ? ([k, cl] as [string, string]) : ([k, v] as [string, string]),
        );
        const r = await exchange(s.path, packet(vars), { halfClose: true });
        expect(r.status, `CONTENT_LENGTH ${JSON.stringify(cl)}`).toBe(400);
      }
    });

    it('U15: CONTENT_LENGTH over maxBodySize -> 413 before the body is read', async () => {
      let calls = 0;
      const s = await start(
        (_req, res) => {
          calls++;
          res.end();
        },
        { limits: { maxBodySize: 1000 } },
      );
      // The body is never sent: the 413 must not wait for it.
      const r = await exchange(s.path, packet(requestVars('POST', '/', {}, 5000)), {
        closeAfterResponse: true,
      });
      expect(r.status).toBe(413);
      expect(calls).toBe(0);
    });

    // The vars uWSGI's http router sends for a chunked client body (--http-chunked-input;
    // PROTOCOL.md sections 4, 8): no CONTENT_LENGTH at all, then the client's raw chunks.
    const routerVars: Array<[string, string]> = [
      ['REQUEST_METHOD', 'POST'],
      ['PATH_INFO', '/chunked'],
      ['REQUEST_URI', '/chunked'],
      ['QUERY_STRING', ''],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['SCRIPT_NAME', ''],
      ['SERVER_NAME', 'h'],
      ['SERVER_PORT', '80'],
      ['UWSGI_ROUTER', 'http'],
      ['REMOTE_ADDR', '127.0.0.1'],
      ['REMOTE_PORT', '5000'],
      ['HTTP_HOST', 'h'],
      ['HTTP_TRANSFER_ENCODING', 'chunked'],
    ];
    /** Echoes `length transfer-encoding body`, or `aborted` when the request was. */
    const chunkEcho = (calls: { n: number; aborted: number }): NodeHandler => {
      return (req, res) => {
        calls.n++;
        req.on('aborted', () => calls.aborted++);
        readBody(req).then(
          (body) => res.end(`${body.length} ${req.headers['transfer-encoding']} ${body}`),
          () => undefined,
        );
      };
    };

    it('a chunked body without CONTENT_LENGTH (uWSGI router) is decoded for the app', async () => {
      const calls = { n: 0, aborted: 0 };
      const s = await start(chunkEcho(calls));
      const body = Buffer.from(
        '3\r\nabc\r\n10;ext=1;e2="q"\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n',
      );
      const whole = await exchange(s.path, packet(routerVars, body));
      expect(whole.status).toBe(200);
      expect(whole.body.toString()).toBe('19 chunked abc0123456789abcdef');
      // One byte per write: every state of the decoder split across reads; surplus ignored.
      const bytes = packet(routerVars, Buffer.concat([body, Buffer.from('GARBAGE')]));
      const slow = await exchange(s.path, bytes, {
        pieces: Array.from(bytes.subarray(60), (b) => Uint8Array.of(b)).reduce<Uint8Array[]>(
          (acc, piece) => [...acc, piece],
          [bytes.subarray(0, 60)],
        ),
      });
      expect(slow.body.toString()).toBe('19 chunked abc0123456789abcdef');
      // Codings before chunked stay the app's to undo; chunked framing still delimits the body.
      const gz = routerVars.map(([k, v]): [string, string] =>
        k === 'HTTP_TRANSFER_ENCODING' ? [k, 'gzip, chunked'] : [k, v],
      );
      const coded = await exchange(s.path, packet(gz, Buffer.from('2\r\nzz\r\n0\r\n\r\n')));
      expect(coded.body.toString()).toBe('2 gzip, chunked zz');
      const empty = await exchange(s.path, packet(routerVars, Buffer.from('0\r\n\r\n')));
      expect(empty.body.toString()).toBe('0 chunked ');
      expect(calls).toEqual({ n: 4, aborted: 0 });
    });

    it.each([
      ['size not hex', '3x\r\nabc\r\n0\r\n\r\n'],
      ['0x prefix', '0x3\r\nabc\r\n0\r\n\r\n'],
      ['space before the size', ' 3\r\nabc\r\n0\r\n\r\n'],
      ['bare LF after the size', '3\nabc\r\n0\r\n\r\n'],
      ['no CRLF after data', '3\r\nabcd\r\n0\r\n\r\n'],
      ['negative size', '-3\r\nabc\r\n0\r\n\r\n'],
      ['a 14-digit size', `${'0'.repeat(13)}3\r\nabc\r\n0\r\n\r\n`],
      ['an over-long extension', `3;${'x'.repeat(17 * 1024)}\r\nabc\r\n0\r\n\r\n`],
      ['over-long trailers', `0\r\n${'X-T: y\r\n'.repeat(3000)}\r\n`],
    ])('malformed chunked body (%s) -> 400, the request aborted', async (_name, chunks) => {
      const calls = { n: 0, aborted: 0 };
      const s = await start(chunkEcho(calls));
      const r = await exchange(s.path, packet(routerVars, Buffer.from(chunks)), {
        halfClose: true,
      });
      expect(r.status).toBe(400);
      expect(r.headers.connection).toBe('close');
      // Found bad within the head's read: the app is not called (else it sees `aborted`).
      expect(calls.aborted).toBe(calls.n);
    });

    it('a chunked body over maxBodySize -> 413 at the chunk size, before its data', async () => {
      const calls = { n: 0, aborted: 0 };
      const s = await start(chunkEcho(calls), { limits: { maxBodySize: 10 } });
      const fits = await exchange(
        s.path,
        packet(routerVars, Buffer.from('a\r\n0123456789\r\n0\r\n\r\n')),
      );
      expect(fits.body.toString()).toBe('10 chunked 0123456789');
      // The second chunk's size line alone takes it over: refused without waiting for its data.
      const over = await exchange(s.path, packet(routerVars, Buffer.from('6\r\n012345\r\n6\r\n')), {
        closeAfterResponse: true,
      });
      expect(over.status).toBe(413);
      // Found bad within the head's read: the app is not called (else it sees `aborted`).
      expect(calls.aborted).toBe(calls.n - 1);
    });

    it('EOF before the last chunk: the app sees an aborted request', async () => {
      const calls = { n: 0, aborted: 0 };
      const s = await start(chunkEcho(calls));
      const r = await exchange(s.path, packet(routerVars, Buffer.from('3\r\nabc\r\n')), {
        halfClose: true,
      });
      expect(r.status).toBeUndefined();
      expect(calls).toEqual({ n: 1, aborted: 1 });
    });

    it('any other transfer coding without CONTENT_LENGTH -> 411, app not called', async () => {
      let calls = 0;
      const s = await start((req, res) => {
        calls++;
        void readBody(req).then((body) =>
          res.end(`${body.length} ${req.headers['transfer-encoding']}`),
        );
      });
      for (const te of ['gzip', 'chunked, gzip', 'chunked, chunked']) {
        const r = await exchange(
          s.path,
          packet(requestVars('POST', '/', [['HTTP_TRANSFER_ENCODING', te]]), Buffer.from('abc')),
          { halfClose: true },
        );
        expect(r.status, te).toBe(411);
        expect(r.headers.connection).toBe('close');
      }
      expect(calls).toBe(0);
      // Still served: identity (no body), and TE with CONTENT_LENGTH (nginx de-chunked it).
      const identity = await exchange(
        s.path,
        packet(requestVars('POST', '/', [['HTTP_TRANSFER_ENCODING', 'identity']])),
      );
      expect(identity.body.toString()).toBe('0 identity');
      const framed = await exchange(
        s.path,
        packet(
          requestVars('POST', '/', [['HTTP_TRANSFER_ENCODING', 'chunked']], 3),
          Buffer.from('abc'),
        ),
      );
      expect(framed.body.toString()).toBe('3 undefined');
      expect(calls).toBe(2);
    });

    const framing: Array<[string, Buffer, string]> = [
      ['U02 short header then EOF', Buffer.from([0, 10]), 'UWSGI_ERR_PACKET_TRUNCATED'],
      [
        'U03 vars shorter than datasize then EOF',
        Buffer.concat([Buffer.from([0, 0x57, 0, 0]), Buffer.alloc(20, 1)]),
        'UWSGI_ERR_PACKET_TRUNCATED',
      ],
      [
        'U06 zero-length key',
        Buffer.from([0, 5, 0, 0, 0, 0, 1, 0, 0x78]),
        'UWSGI_ERR_VARS_MALFORMED',
      ],
      [
        'U07 value overrun',
        Buffer.from([0, 8, 0, 0, 1, 0, 0x41, 9, 0, 0x78, 0x79, 0x7a]),
        'UWSGI_ERR_VARS_MALFORMED',
      ],
      [
        'U09 stray bytes after the last pair',
        Buffer.from([0, 7, 0, 0, 1, 0, 0x41, 1, 0, 0x42, 0x00]),
        'UWSGI_ERR_VARS_MALFORMED',
      ],
    ];
    for (const [name, bytes, code] of framing) {
      it(`${name}: closed without a response, logged with its code`, async () => {
        let calls = 0;
        const s = await start((_req, res) => {
          calls++;
          res.end();
        });
        const r = await exchange(s.path, bytes, { halfClose: true });
        expect(r.raw.length).toBe(0);
        expect(calls).toBe(0);
        const rec = await waitForRecord(s.records, (x) => x.msg === 'uwsgi request rejected');
        expect(rec).toMatchObject({ code, peer: 'unix' });
      });
    }

    it('U04: datasize over bufferSize is refused at the header, before the vars arrive', async () => {
      const s = await start(hello, { limits: { bufferSize: 16384 } });
      // Only the 4 header bytes: no half-close, so the close must come from the size check.
      const r = await exchange(s.path, Buffer.from([0, 0xff, 0xff, 0]));
      expect(r.raw.length).toBe(0);
      const rec = await waitForRecord(s.records, (x) => x.msg === 'uwsgi request rejected');
      expect(rec).toMatchObject({ code: 'UWSGI_ERR_VARS_TOO_LARGE', datasize: 65535 });
    });

    it('U17: HTTP sent to the uwsgi socket is named in the log', async () => {
      const s = await start(hello);
      const r = await exchange(s.path, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      expect(r.raw.length).toBe(0);
      const rec = await waitForRecord(s.records, (x) => x.msg === 'uwsgi request rejected');
      expect(rec.reason).toBe('HTTP sent to uwsgi socket');
    });

    it('U16: unsupported modifier1 closes; modifier1 100 answers pong', async () => {
      const s = await start(hello);
      const r = await exchange(s.path, packet(requestVars('GET', '/'), undefined, 5));
      expect(r.raw.length).toBe(0);
      const pong = await exchange(s.path, Buffer.from([100, 0, 0, 0]));
      expect([...pong.raw]).toEqual([100, 0, 0, 1]);
      const m30 = await exchange(s.path, packet(requestVars('GET', '/'), undefined, 30));
      expect(m30.body.toString()).toBe('hello');
    });

    it('U28: a slow head is closed at the total header deadline', async () => {
      const s = await start(hello, { limits: { headerTimeoutMs: 200 } });
      const bytes = packet(requestVars('GET', '/'));
      const pieces = [...bytes].map((b) => Uint8Array.of(b));
      const started = Date.now();
      const r = await exchange(s.path, bytes, { pieces, delayMs: 20 });
      const elapsed = Date.now() - started;
      expect(r.raw.length).toBe(0);
      expect(elapsed).toBeGreaterThanOrEqual(180);
      expect(elapsed).toBeLessThan(1500);
      const rec = await waitForRecord(s.records, (x) => x.msg === 'uwsgi request rejected');
      expect(rec.reason).toBe('header deadline exceeded');
    });

    it('U01: an idle connection is closed silently at the header deadline', async () => {
      const s = await start(hello, { limits: { headerTimeoutMs: 100 } });
      const r = await exchange(s.path, new Uint8Array(0));
      expect(r.raw.length).toBe(0);
      expect(s.records.some((x) => x.msg === 'uwsgi request rejected')).toBe(false);
    });

    it('a stalled body is aborted at the body deadline', async () => {
      let aborted = false;
      const s = await start(
        (req) => {
          req.on('aborted', () => {
            aborted = true;
          });
          req.resume();
        },
        { limits: { bodyTimeoutMs: 150 } },
      );
      const r = await exchange(s.path, packet(requestVars('POST', '/', {}, 100), Buffer.alloc(10)));
      expect(r.raw.length).toBe(0);
      expect(aborted).toBe(true);
    });
  });

  describe('uwsgi listener: app failures', () => {
    it('a sync throw answers 500 and the next request is served', async () => {
      const s = await start((req, res) => {
        if (req.url === '/boom') throw new Error('boom');
        res.end('fine');
      });
      const r = await exchange(s.path, packet(requestVars('GET', '/boom')));
      expect(r.status).toBe(500);
      const ok = await exchange(s.path, packet(requestVars('GET', '/ok')));
      expect(ok.body.toString()).toBe('fine');
      const rec = await waitForRecord(s.records, (x) => x.msg === 'app error');
      expect(rec.url).toBe('/boom');
    });

    it('a throw after res.end() leaves the finished response intact', async () => {
      const s = await start((_req, res) => {
        res.end('complete');
        throw new Error('after end');
      });
      const r = await exchange(s.path, packet(requestVars('GET', '/')));
      expect(r.status).toBe(200);
      expect(r.body.toString()).toBe('complete');
    });

    it('a rejected promise answers 500; after headers it destroys the connection', async () => {
      const s = await start(async (req, res) => {
        if (req.url === '/after') {
          res.writeHead(200, { 'Content-Length': '10' });
          res.write('12345');
        }
        await Promise.resolve();
        throw new Error('async boom');
      });
      const before = await exchange(s.path, packet(requestVars('GET', '/before')));
      expect(before.status).toBe(500);
      const after = await exchange(s.path, packet(requestVars('GET', '/after')));
      expect(after.status).toBe(200);
      expect(after.body.toString()).toBe('12345');
    });

    it('requestTimeoutMs answers 504 and ignores the late answer', async () => {
      let lateError: unknown;
      const s = await start(
        (_req, res) => {
          setTimeout(() => {
            try {
              res.writeHead(200, { 'X-Late': '1' });
              res.end('late');
            } catch (err) {
              lateError = err;
            }
          }, 300);
        },
        { limits: { requestTimeoutMs: 100 } },
      );
      const r = await exchange(s.path, packet(requestVars('GET', '/slow')));
      expect(r.status).toBe(504);
      expect(r.headers['x-late']).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(lateError).toBeUndefined();
    });

    it('a client abort mid-response surfaces as close on req and res, without errors', async () => {
      const events: string[] = [];
      let finished!: () => void;
      const done = new Promise<void>((r) => {
        finished = r;
      });
      const s = await start((req, res) => {
        req.on('close', () => events.push('req close'));
        res.on('close', () => {
          events.push('res close');
          finished();
        });
        res.on('error', (err) => events.push(`res error ${err.message}`));
        res.write('first');
        const timer = setInterval(() => res.write('more'), 5);
        res.on('close', () => clearInterval(timer));
      });
      const socket = connect({ path: s.path });
      socket.write(packet(requestVars('GET', '/')));
      await once(socket, 'data');
      socket.destroy();
      await done;
      expect(events).toContain('res close');
      expect(events).toContain('req close');
      expect(events.filter((e) => e.startsWith('res error'))).toEqual([]);
    });

    it('writes one access log record per request', async () => {
      const s = await start(hello, { mount: '/m' });
      await exchange(s.path, packet(requestVars('GET', '/m/x?y=1')));
      const rec = await waitForRecord(s.records, (x) => x.msg === 'request');
      expect(rec).toMatchObject({
        method: 'GET',
        url: '/m/x?y=1',
        status: 200,
        mount: '/m',
        remoteAddress: '203.0.113.7',
        listener: `unix:${s.path}`,
      });
      expect(rec.bytes as number).toBeGreaterThan(5);
      expect(typeof rec.durationMs).toBe('number');
    });
  });
});
