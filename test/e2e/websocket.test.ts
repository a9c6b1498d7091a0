/**
 * WebSockets behind a real nginx (issue 12): nginx cannot carry an upgrade over uwsgi_pass, so
 * the WebSocket locations go to the container's HTTP listener with proxy_pass and the upgrade
 * headers (docs/deploy.md), the rest with uwsgi_pass. The apps are the real `ws` library
 * (ws-chat.mjs, mounted at /chat) and Socket.IO (socketio-chat.mjs, mounted at /io).
 */
import { type Socket as IoSocket, io as ioClient } from 'socket.io-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { assertBuilt, fdsBackTo, type RunningContainer, startContainer } from '../utils/cli.ts';
import { writeConfig } from '../utils/config.ts';
import { request } from '../utils/http-client.ts';
import { HAS_NGINX, type Nginx, type NginxLocation, startNginx } from '../utils/nginx.ts';
import { openFds } from '../utils/procs.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';

/** What docs/deploy.md tells users to put in a WebSocket location. */
const UPGRADE_DIRECTIVES = [
  'proxy_http_version 1.1',
  'proxy_set_header Upgrade $http_upgrade',
  'proxy_set_header Connection "upgrade"',
  'proxy_set_header Host $host',
];

const MOUNTS = [
  { path: '/', app: 'plain.mjs' },
  { path: '/chat', app: 'ws-chat.mjs' },
  { path: '/io', app: 'socketio-chat.mjs' },
];

/** One uwsgi_pass location for normal requests, proxy_pass for the WebSocket mounts. */
function locations(container: RunningContainer): NginxLocation[] {
  const http = container.address('http', 'tcp');
  return [
    { path: '/', upstream: container.address('uwsgi', 'unix') },
    { path: '/chat', upstream: http, proxy: true, directives: UPGRADE_DIRECTIVES },
    { path: '/io/', upstream: http, proxy: true, directives: UPGRADE_DIRECTIVES },
  ];
}

const clients: WebSocket[] = [];
const ioClients: IoSocket[] = [];

function wsUrl(nginx: Nginx, path: string): string {
  return nginx.url(path).replace(/^http:/, 'ws:');
}

function openWs(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  clients.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) =>
      reject(new Error(`handshake answered ${res.statusCode}`)),
    );
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve) =>
    ws.once('message', (data, isBinary) => resolve({ data: data as Buffer, isBinary })),
  );
}

async function roundTrip(ws: WebSocket, text: string): Promise<string> {
  const reply = nextMessage(ws);
  ws.send(text);
  return String((await reply).data);
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
}

function workerPid(container: RunningContainer): number {
  const pid = (container.ready['workers'] as number[] | undefined)?.[0];
  if (pid === undefined) throw new Error('no worker pid in the ready record');
  return pid;
}

afterEach(() => {
  for (const ws of clients.splice(0)) ws.terminate();
  for (const s of ioClients.splice(0)) s.disconnect();
});

describe.skipIf(!HAS_NGINX)('WebSockets through nginx proxy_pass to the http listener', () => {
  let dir: string;
  let container: RunningContainer;
  let nginx: Nginx;
  /** The worker's fds before any client connected. */
  let startFds: number;

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-websocket');
    const config = await writeConfig(dir, { mounts: MOUNTS });
    container = await startContainer(config);
    nginx = await startNginx({ locations: locations(container) });
    startFds = openFds(workerPid(container));
  });

  afterAll(async () => {
    try {
      await nginx?.stop();
      if (container) {
        expect(container.child.exitCode).toBeNull();
        expect(await container.stop()).toEqual({ code: 0, signal: null });
      }
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  it('ws: messages both ways under the mount, a clean close, one access record with 101', async () => {
    const ws = await openWs(wsUrl(nginx, '/chat/room?x=1'));
    expect(JSON.parse(await roundTrip(ws, 'whoami'))).toEqual({
      url: '/room?x=1',
      originalUrl: '/chat/room?x=1',
      baseUrl: '/chat',
    });
    expect(await roundTrip(ws, 'hello')).toBe('hello');
    const reply = nextMessage(ws);
    ws.send(Buffer.from([0, 1, 2, 255]));
    const binary = await reply;
    expect(binary.isBinary).toBe(true);
    expect([...binary.data]).toEqual([0, 1, 2, 255]);
    // A 64 KiB message crosses nginx and the container in several reads.
    const big = 'x'.repeat(64 * 1024);
    expect(await roundTrip(ws, big)).toBe(big);

    const done = closed(ws);
    ws.close(1000, 'bye');
    expect(await done).toEqual({ code: 1000, reason: 'bye' });
    const record = await container.waitForLog(
      (r) => r.msg === 'request' && r['url'] === '/chat/room?x=1',
    );
    expect(record).toMatchObject({ method: 'GET', status: 101, mount: '/chat' });
    expect(record['bytes'] as number).toBeGreaterThan(64 * 1024);
    expect(record['aborted']).toBeUndefined();
  });

  it('normal requests: uwsgi_pass for /, proxy_pass for the WebSocket mount', async () => {
    const plain = await request(nginx.url('/hello?x=1'));
    expect(plain.status).toBe(200);
    expect(plain.json<{ framework: string; url: string }>()).toMatchObject({
      framework: 'plain',
      url: '/hello?x=1',
    });
    const info = await request(nginx.url('/chat/info'));
    expect(info.status).toBe(200);
    expect(info.json<Record<string, unknown>>()).toMatchObject({
      framework: 'ws-chat',
      url: '/info',
      baseUrl: '/chat',
    });
  });

  it('Socket.IO: polling then the WebSocket upgrade, acknowledgements and broadcasts', async () => {
    const socket = ioClient(nginx.url('/'), { path: '/io/socket.io/', reconnection: false });
    ioClients.push(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    // The polling transport (plain requests through the same location) upgrades to websocket.
    await new Promise<void>((resolve) => {
      if (socket.io.engine.transport.name === 'websocket') resolve();
      else socket.io.engine.once('upgrade', () => resolve());
    });
    const ack = await socket.timeout(5000).emitWithAck('echo', { n: 1 });
    expect(ack).toEqual({ msg: { n: 1 }, transport: 'websocket' });
    const heard = new Promise((resolve) => socket.once('heard', resolve));
    socket.emit('shout', 'hi all');
    expect(await heard).toBe('hi all');
    socket.disconnect();
  });

  it('abrupt client disconnects: the container stays up and releases every socket', async () => {
    const pid = workerPid(container);
    // The earlier tests' connections are gone (their sockets close a moment after the clients').
    await fdsBackTo(pid, startFds);
    const baseline = openFds(pid);

    const open = await Promise.all(
      Array.from({ length: 8 }, (_, i) => openWs(wsUrl(nginx, `/chat/abrupt/${i}`))),
    );
    for (const ws of open) expect(await roundTrip(ws, 'ping')).toBe('ping');
    // Each open WebSocket holds a socket of the worker; all 8 are released after the cut. (The
    // baseline sample can hold a socket of an earlier test that is still closing, so the 8 are
    // counted down from the count with them open.)
    const held = openFds(pid);
    for (const ws of open) ws.terminate(); // TCP close, no close frame
    await fdsBackTo(pid, held - 8);
    await fdsBackTo(pid, baseline);
    for (let i = 0; i < 8; i++) {
      const record = await container.waitForLog(
        (r) => r.msg === 'request' && r['url'] === `/chat/abrupt/${i}`,
      );
      expect(record).toMatchObject({ status: 101 });
    }
    const after = await openWs(wsUrl(nginx, '/chat/after'));
    expect(await roundTrip(after, 'still serving')).toBe('still serving');
    expect(container.child.exitCode).toBeNull();
  });
});

describe.skipIf(!HAS_NGINX)('WebSockets and a graceful stop (SIGTERM)', () => {
  const GRACE_MS = 1500;
  let dir: string;
  let container: RunningContainer | undefined;
  let nginx: Nginx | undefined;

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-websocket-stop');
  });

  afterAll(async () => {
    try {
      await nginx?.stop();
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  it('open WebSockets keep working during the grace, then get close code 1001; the stop is bounded', async () => {
    const config = await writeConfig(dir, { mounts: MOUNTS, shutdownTimeoutMs: GRACE_MS });
    const c = await startContainer(config);
    container = c;
    nginx = await startNginx({ locations: locations(c) });
    const ws = await openWs(wsUrl(nginx, '/chat/stop'));
    const socket = ioClient(nginx.url('/'), {
      path: '/io/socket.io/',
      transports: ['websocket'],
      reconnection: false,
    });
    ioClients.push(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    const wsClosed = closed(ws);
    const ioGone = new Promise<string>((resolve) => socket.once('disconnect', resolve));

    const started = Date.now();
    const exit = c.stop('SIGTERM', GRACE_MS + 10_000);
    await c.waitForLog((r) => r.msg === 'stopping' && r['pid'] !== c.pid);
    // Stopping: no new connections, but the open WebSocket still talks.
    expect(await roundTrip(ws, 'during grace')).toBe('during grace');
    expect(await socket.timeout(2000).emitWithAck('echo', 'during grace')).toMatchObject({
      msg: 'during grace',
    });

    const { code } = await wsClosed;
    const closedAfter = Date.now() - started;
    expect(code).toBe(1001);
    expect(closedAfter).toBeGreaterThanOrEqual(GRACE_MS - 100);
    // Socket.IO sees its transport closed by the server.
    expect(await ioGone).toMatch(/transport close|io server disconnect/);
    expect(await exit).toEqual({ code: 0, signal: null });
    // Bounded: the grace, then at most the container's close wait and the exit.
    expect(Date.now() - started).toBeLessThan(GRACE_MS + 3000);
    const record = await c.waitForLog((r) => r.msg === 'request' && r['url'] === '/chat/stop');
    expect(record).toMatchObject({ status: 101, error: 'shutdown' });
  });
});
