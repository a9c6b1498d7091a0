import type { IncomingMessage } from 'node:http';
import { request } from 'node:http';
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
});
