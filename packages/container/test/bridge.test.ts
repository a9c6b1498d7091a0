import { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeHandler } from '../src/app/types.ts';
import { exchange, packet, requestVars, type Served, serve } from './fixtures/apps/harness.ts';

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

async function start(handler: NodeHandler, options: Parameters<typeof serve>[1] = {}) {
  served = await serve(handler, options);
  return served;
}

/** The slice of Express 5 used here (the package ships no types; @types/express is not a dep). */
interface ExpressRequest extends IncomingMessage {
  body: unknown;
  path: string;
  originalUrl: string;
  baseUrl: string;
  ip: string;
  protocol: string;
}
interface ExpressResponse extends ServerResponse {
  cookie(name: string, value: string): this;
  status(code: number): this;
  json(body: unknown): this;
}
interface ExpressApp extends NodeHandler {
  use(middleware: unknown): void;
  post(path: string, handler: (req: ExpressRequest, res: ExpressResponse) => void): void;
}
interface ExpressModule {
  (): ExpressApp;
  json(): unknown;
}
const EXPRESS = 'express';
const { default: express } = (await import(EXPRESS)) as { default: ExpressModule };

describe('bridge: genuine node:http objects', () => {
  it('hands apps real IncomingMessage and ServerResponse instances', async () => {
    let kinds: unknown[] = [];
    const s = await start((req, res) => {
      kinds = [
        req instanceof IncomingMessage,
        res instanceof ServerResponse,
        req.headersDistinct['x-multi'],
        req.complete,
      ];
      res.end();
    });
    await exchange(
      s.path,
      packet(
        requestVars('GET', '/', [
          ['HTTP_X_MULTI', 'a'],
          ['HTTP_X_MULTI', 'b'],
        ]),
      ),
    );
    expect(kinds).toEqual([true, true, ['a', 'b'], true]);
  });

  it('runs an unmodified Express app mounted under a prefix', async () => {
    const app = express();
    app.use(express.json());
    app.post('/items', (req, res) => {
      res.cookie('a', '1');
      res.cookie('b', '2');
      res.status(201).json({
        got: req.body,
        path: req.path,
        originalUrl: req.originalUrl,
        baseUrl: req.baseUrl,
        ip: req.ip,
        protocol: req.protocol,
      });
    });
    const s = await start(app, { mount: '/api' });
    const body = Buffer.from(JSON.stringify({ n: 1 }));
    const r = await exchange(
      s.path,
      packet(
        requestVars(
          'POST',
          '/api/items?x=1',
          { CONTENT_TYPE: 'application/json' },
          body.length,
        ).map(([k, v]) =>
          k === 'CONTENT_TYPE' ? ['CONTENT_TYPE', 'application/json'] : [k, v],
        ) as Array<[string, string]>,
        body,
      ),
    );
    expect(r.status).toBe(201);
    expect(r.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    expect(r.headers['transfer-encoding']).toBeUndefined();
    expect(JSON.parse(r.body.toString())).toEqual({
      got: { n: 1 },
      path: '/items',
      originalUrl: '/api/items?x=1',
      baseUrl: '/api',
      ip: '203.0.113.7',
      protocol: 'http',
    });
  });

  it('A04: a Content-Length mismatch never yields a desynced body', async () => {
    const s = await start((_req, res) => {
      res.setHeader('Content-Length', '5');
      res.write('0123456789');
      res.end();
    });
    const r = await exchange(s.path, packet(requestVars('GET', '/')));
    // strictContentLength: the write throws in the app, the connection is dropped with nothing
    // or a truncated answer, never 10 bytes under a 5-byte length.
    expect(r.body.length).toBeLessThanOrEqual(5);
    expect(r.raw.toString()).not.toContain('0123456789');
  });

  it('A01: header values with CR/LF are refused by Node and answered 500', async () => {
    const s = await start((_req, res) => {
      res.setHeader('X-Bad', 'a\r\nInjected: 1');
      res.end();
    });
    const r = await exchange(s.path, packet(requestVars('GET', '/')));
    expect(r.status).toBe(500);
    expect(r.headers.injected).toBeUndefined();
  });

  it('req.destroy() by the app keeps the connection for its response (body parser 413)', async () => {
    const size = 256 * 1024;
    const s = await start((req, res) => {
      req.once('data', () => {
        req.destroy();
        res.statusCode = 413;
        res.end('too big');
      });
    });
    const r = await exchange(
      s.path,
      packet(requestVars('POST', '/', {}, size), Buffer.alloc(size)),
    );
    expect(r.status).toBe(413);
    expect(r.body.toString()).toBe('too big');
  });
});
