import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createFetchListener } from '../src/app/fetch.ts';
import { loadApp } from '../src/app/loader.ts';
import type { FetchHandler, NodeHandler } from '../src/app/types.ts';
import type { ContainerRequest } from '../src/dispatch/types.ts';
import { closeServers } from './fixtures/apps/harness.ts';

const servers: http.Server[] = [];

afterEach(async () => {
  await closeServers(servers);
});

interface Dispatch {
  /** Mount prefix to strip from req.url, as the router would. */
  readonly prefix?: string;
  /** What the listener reports; the mount part (scriptName, pathInfo) is added as dispatch does. */
  readonly uwsgi?: Omit<NonNullable<ContainerRequest['uwsgi']>, 'scriptName' | 'pathInfo'>;
}

/** A node:http server that mimics the dispatcher: sets originalUrl/baseUrl/uwsgi, strips the prefix. */
async function serve(handler: NodeHandler, dispatch: Dispatch = {}): Promise<number> {
  const prefix = dispatch.prefix ?? '';
  // requireHostHeader: false, so that Host-less requests reach the adapter (Node 20 answers 400).
  const server = http.createServer({ requireHostHeader: false }, (incoming, res) => {
    const req = incoming as ContainerRequest;
    req.originalUrl = req.url as string;
    req.baseUrl = prefix;
    const pathInfo = (req.url as string).slice(prefix.length);
    req.url = pathInfo || '/';
    if (dispatch.uwsgi !== undefined) {
      req.uwsgi = { ...dispatch.uwsgi, scriptName: prefix, pathInfo };
    }
    void handler(req, res);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Raw client request, so that Host can be omitted or forged. */
function request(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  options: { setHost?: boolean; method?: string; body?: string } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path,
        headers,
        method: options.method ?? 'GET',
        setHost: options.setHost ?? true,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

const echoUrl: FetchHandler = (r) => Response.json({ url: r.url, method: r.method });

describe('createFetchListener: request URL', () => {
  it('full (default): external URL with the mount prefix and query', async () => {
    const port = await serve(createFetchListener(echoUrl), { prefix: '/api' });
    const res = await request(port, '/api/items?id=7', { host: 'example.test:8080' });
    expect(JSON.parse(res.body)).toEqual({
      url: 'http://example.test:8080/api/items?id=7',
      method: 'GET',
    });
  });

  it('relative: the prefix is stripped like req.url', async () => {
    const port = await serve(createFetchListener(echoUrl, { fetchUrl: 'relative' }), {
      prefix: '/api',
    });
    const res = await request(port, '/api/items?id=7', { host: 'example.test' });
    expect(JSON.parse(res.body).url).toBe('http://example.test/items?id=7');
    const root = await request(port, '/api', { host: 'example.test' });
    expect(JSON.parse(root.body).url).toBe('http://example.test/');
  });

  it('leaves req.url as the dispatcher set it once the request is built', async () => {
    let seen: string | undefined;
    const inner = createFetchListener(echoUrl);
    const port = await serve(
      async (req, res) => {
        await inner(req, res);
        seen = req.url;
      },
      { prefix: '/api' },
    );
    await request(port, '/api/x');
    expect(seen).toBe('/x');
  });

  it.each([
    [[['HTTPS', 'on']], 'https://example.test/p'],
    [[['HTTPS', '1']], 'https://example.test/p'],
    [[['REQUEST_SCHEME', 'https']], 'https://example.test/p'],
    [
      [
        ['UWSGI_SCHEME', 'https'],
        ['REQUEST_SCHEME', 'http'],
      ],
      'https://example.test/p',
    ],
    [
      [
        ['HTTPS', 'off'],
        ['REQUEST_SCHEME', 'http'],
      ],
      'http://example.test/p',
    ],
  ] as Array<[Array<[string, string]>, string]>)('scheme from uwsgi vars %j', async (vars, url) => {
    const port = await serve(createFetchListener(echoUrl), { uwsgi: { vars } });
    const res = await request(port, '/p', { host: 'example.test' });
    expect(JSON.parse(res.body).url).toBe(url);
  });

  it('scheme from req.uwsgi.scheme', async () => {
    const port = await serve(createFetchListener(echoUrl), {
      uwsgi: { scheme: 'https', vars: [] },
    });
    const res = await request(port, '/p', { host: 'h.test:8443' });
    expect(JSON.parse(res.body).url).toBe('https://h.test:8443/p');
  });

  it('no Host: SERVER_NAME and SERVER_PORT, else the base URL', async () => {
    const vars: Array<[string, string]> = [
      ['SERVER_NAME', 'srv.test'],
      ['SERVER_PORT', '8080'],
    ];
    const withVars = await serve(createFetchListener(echoUrl), { uwsgi: { vars } });
    const a = await request(withVars, '/p', {}, { setHost: false });
    expect(JSON.parse(a.body).url).toBe('http://srv.test:8080/p');
    const v6: Array<[string, string]> = [
      ['SERVER_NAME', '::1'],
      ['SERVER_PORT', '80'],
    ];
    const withV6 = await serve(createFetchListener(echoUrl), { uwsgi: { vars: v6 } });
    const c = await request(withV6, '/p', {}, { setHost: false });
    expect(JSON.parse(c.body).url).toBe('http://[::1]/p');
    const bare = await serve(createFetchListener(echoUrl, { baseUrl: 'http://fallback.test:81' }));
    const b = await request(bare, '/p', {}, { setHost: false });
    expect(JSON.parse(b.body).url).toBe('http://fallback.test:81/p');
  });

  it('a Host that would change the path is a 400, on both URL paths', async () => {
    const https = await serve(createFetchListener(echoUrl), { uwsgi: { scheme: 'https' } });
    const a = await request(https, '/p', { host: 'evil.test/admin?' });
    expect(a.status).toBe(400);
    const http1 = await serve(createFetchListener(echoUrl));
    const b = await request(http1, '/p', { host: 'evil.test/admin?' });
    expect(b.status).toBe(400);
  });

  it('passes the request body through', async () => {
    const port = await serve(createFetchListener(async (r) => new Response(await r.text())));
    const res = await request(port, '/p', {}, { method: 'POST', body: 'hello body' });
    expect(res.body).toBe('hello body');
  });
});

describe('createFetchListener: errors and streaming', () => {
  it('a handler that throws or rejects answers 500 and reports the error', async () => {
    const errors: unknown[] = [];
    const app = await loadApp(
      {
        path: '/',
        app: fileURLToPath(new URL('./fixtures/loader/esm-fetch-throws.mjs', import.meta.url)),
        kind: 'auto',
        fetchUrl: 'full',
      },
      { onFetchError: (err) => errors.push(err) },
    );
    const port = await serve(app.handler);
    expect((await request(port, '/sync')).status).toBe(500);
    expect((await request(port, '/async')).status).toBe(500);
    expect(errors.map((e) => (e as Error).message)).toEqual(['sync failure', 'async failure']);
  });

  it('streams a Response body: the first chunk arrives before the handler finishes', async () => {
    let release: () => void = () => undefined;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    const handler: FetchHandler = () =>
      new Response(
        new ReadableStream({
          async start(controller) {
            controller.enqueue(new TextEncoder().encode('first;'));
            await released;
            controller.enqueue(new TextEncoder().encode('second'));
            controller.close();
          },
        }),
      );
    const port = await serve(createFetchListener(handler));
    const body = await new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/' }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
            // Only a streamed first chunk can unblock the producer.
            if (text === 'first;') release();
          });
          res.on('end', () => resolve(text));
        })
        .on('error', reject);
    });
    expect(body).toBe('first;second');
  });

  it('honours back-pressure: no chunk is pulled while the response waits for drain', async () => {
    const chunkSize = 64 * 1024;
    const count = 256;
    let pulls = 0;
    let blocked = false;
    let pullsWhileBlocked = 0;
    let timesBlocked = 0;
    // The client starts paused and resumes once the server has been blocked at least once, so
    // the socket really fills up; whichever of the two events comes last triggers the resume.
    let clientResponse: http.IncomingMessage | undefined;
    const resumeClient = (): void => {
      if (clientResponse !== undefined && timesBlocked > 0) clientResponse.resume();
    };
    const handler: FetchHandler = () =>
      new Response(
        new ReadableStream(
          {
            pull(controller) {
              pulls += 1;
              if (blocked) pullsWhileBlocked += 1;
              if (pulls > count) controller.close();
              else controller.enqueue(new Uint8Array(chunkSize));
            },
          },
          { highWaterMark: 0 },
        ),
      );
    const inner = createFetchListener(handler);
    const port = await serve((req, res) => {
      const write = res.write.bind(res) as (chunk: unknown) => boolean;
      res.write = ((chunk: unknown) => {
        const ok = write(chunk);
        if (!ok && !blocked) {
          blocked = true;
          timesBlocked += 1;
          res.once('drain', () => {
            blocked = false;
          });
          setImmediate(() => resumeClient());
        }
        return ok;
      }) as typeof res.write;
      return inner(req, res);
    });
    const received = await new Promise<number>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port, path: '/' }, (res) => {
          let bytes = 0;
          res.pause();
          clientResponse = res;
          setImmediate(resumeClient);
          res.on('data', (c: Buffer) => {
            bytes += c.length;
          });
          res.on('end', () => resolve(bytes));
        })
        .on('error', reject);
    });
    expect(received).toBe(chunkSize * count);
    expect(timesBlocked).toBeGreaterThan(0);
    expect(pullsWhileBlocked).toBe(0);
  });
});
