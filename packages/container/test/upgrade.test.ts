/**
 * WebSocket handshakes on the HTTP listener (dispatch/upgrade.ts, protocol/upgrade-request.ts):
 * routed by mount to the app's own http.Server as 'upgrade', where the real `ws` library
 * listens; refusals; the access record and stats of an upgrade; close frame 1001 at the end of a
 * graceful stop.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { exchange, type Served, serve, waitForRecord } from './fixtures/apps/harness.ts';

let served: Served | undefined;
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await served?.close();
  served = undefined;
});

interface Seen {
  url?: string | undefined;
  originalUrl?: string | undefined;
  baseUrl?: string | undefined;
}

/** An http.Server with `ws` attached: echoes every message, records what the handshake saw. */
function echoServer(seen: Seen = {}): { server: Server; wss: WebSocketServer } {
  const server = createServer((_req, res) => {
    res.end('plain');
  });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws, req: IncomingMessage & { originalUrl?: string; baseUrl?: string }) => {
    seen.url = req.url;
    seen.originalUrl = req.originalUrl;
    seen.baseUrl = req.baseUrl;
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
  return { server, wss };
}

function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  sockets.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (data) => resolve(String(data))));
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
}

function raw(port: number, text: string) {
  return exchange(port, Buffer.from(text, 'latin1'));
}

const HANDSHAKE =
  'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';

describe('http listener: WebSocket upgrades', () => {
  it('routes a handshake by mount to the app server: messages both ways, clean close, one record', async () => {
    const seen: Seen = {};
    const { server } = echoServer(seen);
    served = await serve(server, { protocol: 'http', mount: '/chat' });
    const s = served;
    const ws = await open(`ws://127.0.0.1:${s.port}/chat/room?x=1`);
    expect(seen).toEqual({ url: '/room?x=1', originalUrl: '/chat/room?x=1', baseUrl: '/chat' });
    const reply = nextMessage(ws);
    ws.send('hello');
    expect(await reply).toBe('hello');
    // The handshake is one finished request; the open WebSocket holds a connection only.
    const during = s.container.stats();
    expect(during.inFlight).toBe(0);
    expect(during.requests).toBe(1);
    expect(during.mounts[0]?.statuses['1xx']).toBe(1);
    expect(during.connections).toBe(1);
    const done = closed(ws);
    ws.close(1000, 'bye');
    expect((await done).code).toBe(1000);
    const record = await waitForRecord(s.records, (r) => r.msg === 'request');
    expect(record).toMatchObject({
      method: 'GET',
      url: '/chat/room?x=1',
      status: 101,
      mount: '/chat',
      remoteAddress: '127.0.0.1',
    });
    expect(record.bytes as number).toBeGreaterThan(129); // the 101 head, then frames
    expect(record.aborted).toBeUndefined();
    expect(s.records.filter((r) => r.msg === 'request')).toHaveLength(1);
    // Normal requests on the same listener still reach the server's request listener.
    const plain = await raw(s.port, 'GET /chat/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(plain.body.toString()).toBe('plain');
  });

  it('refuses with Connection: close: no mount 404, an app without an upgrade listener 400, HTTP/1.0 400', async () => {
    let calls = 0;
    served = await serve(
      (_req, res) => {
        calls++;
        res.end('ok');
      },
      { protocol: 'http', mount: '/chat' },
    );
    const s = served;
    const none = await raw(s.port, `GET /other HTTP/1.1\r\nHost: a\r\n${HANDSHAKE}`);
    expect(none.status).toBe(404);
    expect(none.headers.connection).toBe('close');
    expect(none.ending).toBe('end');
    const plain = await raw(s.port, `GET /chat HTTP/1.1\r\nHost: a\r\n${HANDSHAKE}`);
    expect(plain.status).toBe(400);
    expect(plain.headers.connection).toBe('close');
    expect(plain.ending).toBe('end');
    expect(calls).toBe(0);
    expect(
      s.records.filter((r) => String(r.msg).includes('the app has no upgrade listener')),
    ).toHaveLength(1);
    const old = await raw(s.port, `GET /chat HTTP/1.0\r\nHost: a\r\n${HANDSHAKE}`);
    expect(old.status).toBe(400);
    // One record per refusal, written as each socket closes.
    await expect.poll(() => s.records.filter((r) => r.msg === 'request').length).toBe(3);
    const statuses = s.records.filter((r) => r.msg === 'request').map((r) => r.status);
    expect(statuses.sort()).toEqual([400, 400, 404]);
    expect(s.container.stats().inFlight).toBe(0);
  });

  it('over maxInFlight a handshake gets 503 before routing; an open WebSocket holds no in-flight slot', async () => {
    let release: (() => void) | undefined;
    const server = createServer((_req, res) => {
      release = () => res.end('released');
    });
    const wss = new WebSocketServer({ server });
    wss.on('connection', (ws) => ws.on('message', (data) => ws.send(data)));
    served = await serve(server, { protocol: 'http', limits: { maxInFlight: 1 } });
    const s = served;
    // An open WebSocket first: it does not count against maxInFlight.
    const ws = await open(`ws://127.0.0.1:${s.port}/`);
    const held = raw(s.port, 'GET /hold HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    await expect.poll(() => s.container.stats().inFlight).toBe(1);
    const over = await raw(s.port, `GET / HTTP/1.1\r\nHost: a\r\n${HANDSHAKE}`);
    expect(over.status).toBe(503);
    expect(over.headers.connection).toBe('close');
    release?.();
    expect((await held).body.toString()).toBe('released');
    const reply = nextMessage(ws);
    ws.send('open all along');
    expect(await reply).toBe('open all along');
  });

  it('at maxConnections an open WebSocket is never shed: the new connection is refused instead', async () => {
    const { server } = echoServer();
    served = await serve(server, { protocol: 'http', limits: { maxConnections: 1 } });
    const s = served;
    const ws = await open(`ws://127.0.0.1:${s.port}/`);
    const refused = await exchange(
      s.port,
      Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'),
    );
    expect(refused.raw.length).toBe(0);
    const stats = s.container.stats();
    expect(stats.connectionsShed).toBe(0);
    expect(stats.connectionsRejected).toBe(1);
    const reply = nextMessage(ws);
    ws.send('still open');
    expect(await reply).toBe('still open');
  });

  it('an app server with ws still serves h2c and other upgrades as normal requests, body included', async () => {
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('latin1');
      req.on('data', (chunk: string) => {
        body += chunk;
      });
      req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
    });
    new WebSocketServer({ server });
    served = await serve(server, { protocol: 'http' });
    const r = await raw(
      served.port,
      'POST /p HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade, close\r\nContent-Length: 5\r\n\r\nhello',
    );
    expect(r.status).toBe(200);
    expect(r.body.toString()).toBe('POST /p hello');
  });

  it('an upgrade listener that throws answers 500; one that never answers gets 504 at requestTimeoutMs', async () => {
    const server = createServer((_req, res) => res.end());
    server.on('upgrade', (req: IncomingMessage) => {
      if (req.url === '/boom') throw new Error('boom');
    });
    served = await serve(server, { protocol: 'http', limits: { requestTimeoutMs: 300 } });
    const s = served;
    const boom = await raw(s.port, `GET /boom HTTP/1.1\r\nHost: a\r\n${HANDSHAKE}`);
    expect(boom.status).toBe(500);
    expect(s.container.stats().exceptions).toBe(1);
    const started = Date.now();
    const silent = await raw(s.port, `GET /silent HTTP/1.1\r\nHost: a\r\n${HANDSHAKE}`);
    expect(silent.status).toBe(504);
    expect(silent.headers.connection).toBe('close');
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it('an upgrade listener that ends the socket with a callback (a refusal after async auth) closes it, nothing else', async () => {
    const server = createServer((_req, res) => res.end('plain'));
    server.on('upgrade', (_req: IncomingMessage, socket: import('node:net').Socket) => {
      setImmediate(() => socket.end(() => undefined));
    });
    served = await serve(server, { protocol: 'http' });
    const s = served;
    const refused = await raw(s.port, `GET / HTTP/1.1\r\nHost: a\r\n${HANDSHAKE}`);
    expect(refused.raw.length).toBe(0);
    const ok = await raw(s.port, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(ok.status).toBe(200);
    await expect.poll(() => s.container.stats().connections).toBe(0);
  });

  it('an abrupt client disconnect is logged once and releases the connection', async () => {
    const { server, wss } = echoServer();
    served = await serve(server, { protocol: 'http' });
    const s = served;
    const ws = await open(`ws://127.0.0.1:${s.port}/x`);
    const serverSide = new Promise<void>((resolve) => {
      for (const client of wss.clients) client.once('close', () => resolve());
    });
    ws.terminate(); // TCP close, no close frame
    await serverSide;
    const record = await waitForRecord(s.records, (r) => r.msg === 'request');
    expect(record).toMatchObject({ status: 101, url: '/x' });
    await expect.poll(() => s.container.stats().connections).toBe(0);
    const again = await open(`ws://127.0.0.1:${s.port}/y`);
    const reply = nextMessage(again);
    again.send('still here');
    expect(await reply).toBe('still here');
  });

  it('graceful stop: the WebSocket works during the grace, then gets close code 1001', async () => {
    const { server } = echoServer();
    served = await serve(server, { protocol: 'http' });
    const s = served;
    const ws = await open(`ws://127.0.0.1:${s.port}/`);
    const done = closed(ws);
    const started = Date.now();
    const closing = s.container.close({ timeoutMs: 400 });
    // Accepting stopped; the open WebSocket still talks.
    const reply = nextMessage(ws);
    ws.send('during grace');
    expect(await reply).toBe('during grace');
    const { code } = await done;
    expect(code).toBe(1001);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    await closing;
    // Bounded: the grace, then at most the close wait.
    expect(Date.now() - started).toBeLessThan(400 + 1500);
    const record = await waitForRecord(s.records, (r) => r.msg === 'request');
    expect(record).toMatchObject({ status: 101, aborted: true, error: 'shutdown' });
  });

  it('graceful stop with no WebSocket open is not held by the grace period', async () => {
    const { server } = echoServer();
    served = await serve(server, { protocol: 'http' });
    const ws = await open(`ws://127.0.0.1:${served.port}/`);
    const done = closed(ws);
    ws.close(1000);
    await done;
    await expect.poll(() => served?.container.stats().connections).toBe(0);
    const started = Date.now();
    await served.container.close({ timeoutMs: 5000 });
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
