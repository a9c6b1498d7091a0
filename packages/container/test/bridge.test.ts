import { writeFile } from 'node:fs/promises';
import { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeHandler } from '../src/app/types.ts';
import {
  exchange,
  packet,
  requestVars,
  type Served,
  serve,
  tempDir,
} from './fixtures/apps/harness.ts';

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
  send(body: string): this;
  sendFile(path: string, callback: (err?: Error) => void): void;
}
type ExpressRoute = (req: ExpressRequest, res: ExpressResponse) => void;
interface ExpressApp extends NodeHandler {
  use(middleware: unknown): void;
  get(path: string, handler: ExpressRoute): void;
  post(path: string, handler: ExpressRoute): void;
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

/**
 * Express 5 replaces the prototype of every request and response it handles
 * (`Object.setPrototypeOf(res, app.response)`): the bridge's overrides must survive that.
 */
describe('bridge: Express 5 apps (prototypes swapped per request)', () => {
  const MiB = 1024 * 1024;

  /** `size` bytes of a pattern that shows misplaced or missing chunks. */
  function pattern(size: number): Buffer {
    const buf = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4) buf.writeUInt32BE(i >>> 2, i);
    return buf;
  }

  /** A stream of `data` in 64 KiB pieces, as fs streams deliver a file. */
  function piecewise(data: Buffer): Readable {
    return Readable.from(
      (function* () {
        for (let at = 0; at < data.length; at += 64 * 1024) yield data.subarray(at, at + 64 * 1024);
      })(),
    );
  }

  it.each([1, 20])(
    'stream.pipe(res) of %i MiB waits for drain and arrives whole',
    async (mib) => {
      const data = pattern(mib * MiB);
      const app = express();
      app.get('/piped', (_req, res) => {
        res.setHeader('content-length', String(data.length));
        piecewise(data).pipe(res);
      });
      const s = await start(app);
      const r = await exchange(s.path, packet(requestVars('GET', '/piped')));
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(data.length);
      expect(r.body.equals(data)).toBe(true);
    },
    20_000,
  );

  it.each([1, 20])(
    'res.sendFile of %i MiB arrives whole with its Content-Length',
    async (mib) => {
      const data = pattern(mib * MiB);
      const tmp = await tempDir();
      try {
        const file = join(tmp.dir, 'big.bin');
        await writeFile(file, data);
        let sent: Error | undefined | 'pending' = 'pending';
        const app = express();
        app.get('/file', (_req, res) => {
          res.sendFile(file, (err) => {
            sent = err;
          });
        });
        const s = await start(app);
        const r = await exchange(s.path, packet(requestVars('GET', '/file')));
        expect(r.status).toBe(200);
        expect(r.headers['content-length']).toBe(String(data.length));
        expect(r.body.equals(data)).toBe(true);
        expect(sent).toBeUndefined();
      } finally {
        await tmp.cleanup();
      }
    },
    20_000,
  );

  it('a manual write loop over the high-water mark resumes on drain', async () => {
    const data = pattern(MiB);
    const app = express();
    app.get('/loop', (_req, res) => {
      let at = 0;
      const more = () => {
        while (at < data.length) {
          const piece = data.subarray(at, at + 16 * 1024);
          at += piece.length;
          if (!res.write(piece)) {
            res.once('drain', more);
            return;
          }
        }
        res.end();
      };
      more();
    });
    const s = await start(app);
    const r = await exchange(s.path, packet(requestVars('GET', '/loop')));
    expect(r.status).toBe(200);
    expect(r.headers['transfer-encoding']).toBeUndefined();
    expect(r.body.equals(data)).toBe(true);
  });

  it('req.destroy() of an unread body, then 413: the response still goes out', async () => {
    const size = 256 * 1024;
    const app = express();
    app.post('/upload', (req, res) => {
      req.destroy();
      res.status(413).send('too big');
    });
    const s = await start(app);
    const r = await exchange(
      s.path,
      packet(requestVars('POST', '/upload', {}, size), Buffer.alloc(size, 0x62)),
    );
    expect(r.ending).toBe('end');
    expect(r.status).toBe(413);
    expect(r.body.toString()).toBe('too big');
  });

  it('A05: Transfer-Encoding set by the app is dropped and the body is not chunk-framed', async () => {
    const app = express();
    app.get('/te', (_req, res) => {
      res.setHeader('transfer-encoding', 'chunked');
      res.appendHeader('Connection', 'keep-alive');
      res.write('a');
      res.end('b');
    });
    app.get('/te-head', (_req, res) => {
      res.writeHead(200, { 'Transfer-Encoding': 'chunked', 'X-Kept': '1' });
      res.end('cd');
    });
    const s = await start(app);
    const r = await exchange(s.path, packet(requestVars('GET', '/te')));
    expect(r.headers['transfer-encoding']).toBeUndefined();
    expect(r.headers.connection).toBe('close');
    expect(r.body.toString()).toBe('ab');
    const h = await exchange(s.path, packet(requestVars('GET', '/te-head')));
    expect(h.headers['transfer-encoding']).toBeUndefined();
    expect(h.headers['x-kept']).toBe('1');
    expect(h.body.toString()).toBe('cd');
  });
});
