import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeHandler } from '../src/app/types.ts';
import { exchange, type Served, serve, waitForRecord } from './fixtures/apps/harness.ts';

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

async function start(handler: NodeHandler, options: Parameters<typeof serve>[1] = {}) {
  served = await serve(handler, { ...options, protocol: 'http' });
  return served;
}

function raw(port: number, text: string) {
  return exchange(port, Buffer.from(text, 'latin1'));
}

describe('http listener: same dispatch as uwsgi', () => {
  it('routes to the mount with req.url relative, originalUrl and baseUrl set', async () => {
    let seen: Record<string, unknown> = {};
    const s = await start(
      (req, res) => {
        const r = req as IncomingMessage & { originalUrl?: string; baseUrl?: string };
        seen = { url: req.url, originalUrl: r.originalUrl, baseUrl: r.baseUrl };
        res.end('ok');
      },
      { mount: '/api' },
    );
    const r = await raw(s.port, 'GET /api/x?y=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(200);
    expect(seen).toEqual({ url: '/x?y=1', originalUrl: '/api/x?y=1', baseUrl: '/api' });
    const miss = await raw(s.port, 'GET /other HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(miss.status).toBe(404);
  });

  it('keeps HTTP/1.1 keep-alive working across requests', async () => {
    const s = await start((_req, res) => {
      res.end('ok');
    });
    const twice =
      'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n';
    const r = await raw(s.port, twice);
    expect(r.raw.toString().match(/HTTP\/1\.1 200 OK/g)?.length).toBe(2);
  });

  it('a throw answers 500 and the next request is served', async () => {
    const s = await start((req, res) => {
      if (req.url === '/boom') throw new Error('boom');
      res.end('fine');
    });
    const r = await raw(s.port, 'GET /boom HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(r.status).toBe(500);
    expect(r.headers.connection).toBe('close');
    const ok = await raw(s.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(ok.body.toString()).toBe('fine');
  });

  it('maxBodySize: 413 for a declared length and for a chunked body that grows past it', async () => {
    let bodies = 0;
    const s = await start(
      (req, res) => {
        req.on('end', () => {
          bodies++;
          res.end('read');
        });
        req.resume();
      },
      { limits: { maxBodySize: 10 } },
    );
    const declared = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890',
    );
    expect(declared.status).toBe(413);
    const chunked = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n',
    );
    expect(chunked.status).toBe(413);
    expect(bodies).toBe(0);
  });

  it('requestTimeoutMs answers 504', async () => {
    const s = await start(() => undefined, { limits: { requestTimeoutMs: 100 } });
    const r = await raw(s.port, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(r.status).toBe(504);
  });

  it('never parses leniently: CL + TE and a space before the colon are 400 (H01, H04)', async () => {
    let calls = 0;
    const s = await start((_req, res) => {
      calls++;
      res.end();
    });
    const both = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect(both.status).toBe(400);
    const spaced = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello',
    );
    expect(spaced.status).toBe(400);
    expect(calls).toBe(0);
  });

  it('refuses what RFC 9112 does not allow before the app: HTTP/0.9, HTTP/2.0, two Host headers', async () => {
    let calls = 0;
    const s = await start((_req, res) => {
      calls++;
      res.end('ok');
    });
    const cases: Array<[string, number]> = [
      ['GET /\r\n\r\n', 400],
      ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
      ['GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n', 400],
    ];
    for (const [text, status] of cases) {
      const r = await raw(s.port, text);
      // HTTP/0.9 has no status line to parse: the raw bytes still carry the refusal.
      if (status === 400 && !text.includes('HTTP/')) {
        expect(r.raw.toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
      } else {
        expect(r.status, text).toBe(status);
        expect(r.headers.connection, text).toBe('close');
      }
    }
    expect(calls).toBe(0);
    const ok = await raw(s.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(ok.status).toBe(200);
    expect(calls).toBe(1);
  });

  it('a doubled space in the request line is 400 before the app (strictRequestLine), served when it is off', async () => {
    let calls = 0;
    const handler: NodeHandler = (req, res) => {
      calls++;
      res.end(req.url);
    };
    const doubled = [
      'GET  /a HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      'GET /a  HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
      'GET   /a   HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    ];
    const s = await start(handler);
    for (const text of doubled) {
      const r = await raw(s.port, text);
      expect(r.status, text).toBe(400);
      expect(r.headers.connection, text).toBe('close');
    }
    expect(calls).toBe(0);
    // Spaces inside a header value are no request line.
    const ok = await raw(
      s.port,
      'GET /a HTTP/1.1\r\nHost: a\r\nX-Note: two  spaces\r\nConnection: close\r\n\r\n',
    );
    expect(ok.status).toBe(200);
    expect(calls).toBe(1);
    // Pipelined in one read: the first (well-formed) is served, the second refused.
    const both = await raw(
      s.port,
      'GET /first HTTP/1.1\r\nHost: a\r\n\r\nGET  /second HTTP/1.1\r\nHost: a\r\n\r\n',
    );
    const text = both.raw.toString('latin1');
    expect(text).toMatch(/^HTTP\/1\.1 200 [\s\S]*\/first[\s\S]*HTTP\/1\.1 400 /);
    expect(calls).toBe(2);
    // A body that holds a request line with doubled spaces is no request line: served, and
    // so is the clean request pipelined after it.
    const body = 'captured:\nPOST  /import HTTP/1.1\n';
    const captured = await raw(
      s.port,
      `POST /import HTTP/1.1\r\nHost: a\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
        'GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    expect(captured.raw.toString('latin1')).toMatch(
      /^HTTP\/1\.1 200 [\s\S]*\/import[\s\S]*HTTP\/1\.1 200 [\s\S]*\/after/,
    );
    expect(calls).toBe(4);
    await served?.close();
    served = undefined;
    const lenient = await start(handler, { strictRequestLine: false });
    for (const text of doubled) {
      const r = await raw(lenient.port, text);
      expect(r.status, text).toBe(200);
      expect(r.body.toString(), text).toBe('/a');
    }
    expect(calls).toBe(7);
  });

  it('Expect: an unknown expectation is 417 with Connection: close; 100 only for a body that fits', async () => {
    let calls = 0;
    const s = await start(
      (req, res) => {
        calls++;
        req.resume();
        req.on('end', () => res.end('read'));
      },
      { limits: { maxBodySize: 10 } },
    );
    const foo = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nContent-Length: 2\r\n\r\n',
    );
    expect(foo.status).toBe(417);
    expect(foo.headers.connection).toBe('close');
    const over = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n',
    );
    expect(over.raw.toString('latin1')).not.toContain('100 Continue');
    expect(over.raw.toString('latin1')).toContain(' 413 ');
    expect(calls).toBe(0);
    const fits = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi',
    );
    expect(fits.raw.toString('latin1')).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /);
    expect(calls).toBe(1);
  });

  it('Expect: 100-continue to a path no mount serves is 404 without a 100', async () => {
    let calls = 0;
    const s = await start(
      (_req, res) => {
        calls++;
        res.end('ok');
      },
      { mount: '/api' },
    );
    const missing = await raw(
      s.port,
      'POST /other HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n',
    );
    expect(missing.raw.toString('latin1')).toMatch(/^HTTP\/1\.1 404 /);
    expect(missing.headers.connection).toBe('close');
    const chunked = await raw(
      s.port,
      'POST /api/x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n',
    );
    expect(chunked.raw.toString('latin1')).toMatch(
      /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /,
    );
    expect(calls).toBe(1);
  });

  it('a WebSocket handshake is refused with 400 and Connection: close, never reaching the app; h2c is ignored', async () => {
    let calls = 0;
    const s = await start((_req, res) => {
      calls++;
      res.end('ok');
    });
    const ws = await raw(
      s.port,
      'GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(ws.status).toBe(400);
    expect(ws.headers.connection).toBe('close');
    expect(calls).toBe(0);
    const h2c = await raw(
      s.port,
      'GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\n\r\n',
    );
    expect(h2c.status).toBe(200);
    expect(calls).toBe(1);
  });

  it('H12: a slow head gets 408 at headersTimeout', async () => {
    const s = await start(
      (_req, res) => {
        res.end();
      },
      {
        limits: { headerTimeoutMs: 200, bodyTimeoutMs: 200 },
      },
    );
    const started = Date.now();
    const r = await exchange(s.port, Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n'));
    expect(r.status).toBe(408);
    // Checked every second (connectionsCheckingInterval), not Node's default 30 s.
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('logs the access record with the TCP peer', async () => {
    const s = await start((_req, res) => {
      res.end('ok');
    });
    await new Promise<void>((resolve, reject) => {
      request({ port: s.port, host: '127.0.0.1', path: '/a?b' }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
        .on('error', reject)
        .end();
    });
    const rec = await waitForRecord(s.records, (x) => x.msg === 'request');
    expect(rec).toMatchObject({
      method: 'GET',
      url: '/a?b',
      status: 200,
      remoteAddress: '127.0.0.1',
      listener: `127.0.0.1:${s.port}`,
    });
  });

  it('pipelined requests whose client leaves are aborted and settled at once, not at requestTimeoutMs', async () => {
    const aborted: string[] = [];
    let calls = 0;
    let allIn: () => void = () => undefined;
    const arrived = new Promise<void>((resolve) => {
      allIn = resolve;
    });
    const s = await start(
      (req, res) => {
        calls++;
        req.on('aborted', () => aborted.push(req.url ?? ''));
        // The first one is never answered: every later response stays queued behind it.
        if (req.url !== '/0') res.end('queued');
        if (calls === 20) allIn();
      },
      { limits: { requestTimeoutMs: 60_000 } },
    );
    const socket = connect({ host: '127.0.0.1', port: s.port });
    socket.on('error', () => undefined);
    let text = '';
    for (let i = 0; i < 20; i++) text += `GET /${i} HTTP/1.1\r\nHost: a\r\n\r\n`;
    socket.write(text);
    await arrived;
    expect(s.container.stats().inFlight).toBe(20);
    socket.destroy();
    const until = Date.now() + 5000;
    while (s.records.filter((r) => r.msg === 'request').length < 20 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const records = s.records.filter((r) => r.msg === 'request');
    expect(records).toHaveLength(20);
    expect(records.every((r) => r.aborted === true && r.status === 0)).toBe(true);
    expect(s.container.stats().inFlight).toBe(0);
    expect(aborted).toHaveLength(20);
    expect(s.records.some((r) => r.msg === 'request timeout')).toBe(false);
  });

  it('a body sent too slowly gets 408 with Connection: close at bodyTimeoutMs after the head; the app request is aborted', async () => {
    let aborted = 0;
    let calls = 0;
    const s = await start(
      (req, res) => {
        calls++;
        req.on('aborted', () => aborted++);
        req.resume();
        req.on('end', () => res.end('read'));
      },
      { limits: { headerTimeoutMs: 5000, bodyTimeoutMs: 300, requestTimeoutMs: 10_000 } },
    );
    for (const [head, body] of [
      ['POST /cl HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n', '01234'],
      ['POST /te HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', '5\r\n01234\r\n'],
      ['POST /none HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n', ''],
    ] as const) {
      const started = Date.now();
      const r = await exchange(s.port, Buffer.from(head + body));
      const elapsed = Date.now() - started;
      expect(r.status, head).toBe(408);
      expect(r.headers.connection, head).toBe('close');
      // bodyTimeoutMs after the head, not headerTimeoutMs + bodyTimeoutMs (node's requestTimeout).
      expect(elapsed).toBeGreaterThanOrEqual(290);
      expect(elapsed).toBeLessThan(2000);
    }
    // The chunked request without any body byte was never dispatched.
    expect(calls).toBe(2);
    await waitForRecord(s.records, () => aborted === 2);
    const records = s.records.filter((r) => r.msg === 'request');
    expect(records.map((r) => [r.url, r.status])).toEqual([
      ['/cl', 408],
      ['/te', 408],
      ['/none', 408],
    ]);
    expect(s.records.filter((r) => r.msg === 'http request body deadline exceeded')).toHaveLength(
      3,
    );
    expect(s.container.stats().inFlight).toBe(0);
  });

  it('a body within bodyTimeoutMs is read; the deadline does not outlive the request', async () => {
    const s = await start(
      (req, res) => {
        let n = 0;
        req.on('data', (c: Buffer) => {
          n += c.length;
        });
        req.on('end', () => res.end(String(n)));
      },
      { limits: { bodyTimeoutMs: 200 } },
    );
    const r = await raw(
      s.port,
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n' +
        'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nab\r\n0\r\n\r\n',
    );
    expect(r.raw.toString('latin1').match(/HTTP\/1\.1 200 OK/g)?.length).toBe(3);
    expect(r.raw.toString('latin1')).not.toContain('408');
  });

  it('chunk framing errors that come with the first body bytes never reach the app; HTTP/1.0 chunked is 400', async () => {
    let calls = 0;
    const s = await start((req, res) => {
      calls++;
      req.resume();
      req.on('end', () => res.end('read'));
    });
    const head = 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n';
    const cases: Array<[string, number]> = [
      [`${head}zz\r\nhello\r\n0\r\n\r\n`, 400],
      [`${head}+5\r\nhello\r\n0\r\n\r\n`, 400],
      [`${head}-5\r\nhello\r\n0\r\n\r\n`, 400],
      [`${head}5\r\nhelloXX0\r\n\r\n`, 400],
      [`${head}5;${'a'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`, 413],
      [`${head}5\r\nhello\r\n0\r\n\rX`, 400],
      [`${head}5\r\nhello\r\n5\r\nworldXX`, 400],
      [
        'POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
        400,
      ],
    ];
    for (const [text, status] of cases) {
      const r = await raw(s.port, text);
      expect(r.status, text.slice(head.length, head.length + 20)).toBe(status);
      expect(r.headers.connection).toBe('close');
    }
    expect(calls).toBe(0);
    const logged = s.records.filter((r) => r.msg === 'request');
    expect(logged.map((r) => r.status)).toEqual(cases.map(([, status]) => status));
    const ok = await raw(
      s.port,
      `${head.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')}0\r\n\r\n`,
    );
    expect(ok.status).toBe(200);
    expect(calls).toBe(1);
  });

  it('a framing error after the first body bytes aborts the dispatched request; the client gets 400', async () => {
    let aborted = 0;
    let dataSeen!: () => void;
    const firstData = new Promise<void>((resolve) => {
      dataSeen = resolve;
    });
    const s = await start((req) => {
      req.on('aborted', () => aborted++);
      req.on('error', () => undefined);
      req.once('data', () => dataSeen());
    });
    const socket = connect({ host: '127.0.0.1', port: s.port });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n');
    await firstData;
    socket.write('zz\r\n');
    await closed;
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^HTTP\/1\.1 400 /);
    await waitForRecord(s.records, () => aborted === 1);
  });

  it('a dispatched chunked body that grows past maxBodySize in a later read: 413, dispatch logs it', async () => {
    let dataSeen!: () => void;
    const firstData = new Promise<void>((resolve) => {
      dataSeen = resolve;
    });
    const s = await start(
      (req) => {
        req.once('data', () => dataSeen());
      },
      { limits: { maxBodySize: 10 } },
    );
    const socket = connect({ host: '127.0.0.1', port: s.port });
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.write('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n');
    await firstData;
    socket.write('6\r\n678901\r\n0\r\n\r\n');
    await closed;
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^HTTP\/1\.1 413 /);
    const rec = await waitForRecord(s.records, (r) => r.msg === 'request');
    expect(rec).toMatchObject({ status: 413, mount: '/' });
  });
});
