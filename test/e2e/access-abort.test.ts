/**
 * Issue 11 ("Access records for every request") against the built CLI (`uwsgi-ts run`, a
 * master and one worker, JSON on stdout): a request whose client left, and one cut off by a
 * forced stop, each leave exactly one `"msg":"request"` record saying what reached the client.
 * CI runs the suite per transport (`UWSGI_TS_TRANSPORT`).
 */
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  type LogRecord,
  type RunningContainer,
  startContainer,
} from '../utils/cli.ts';
import { TRANSPORT, writeConfig } from '../utils/config.ts';
import { request } from '../utils/http-client.ts';
import { connect, pollUntil, type Target } from '../utils/net.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import { encodeRequest, nginxLikeVars } from '../utils/uwsgi-client.ts';

const isAccess = (r: LogRecord) => r.msg === 'request';

/** Every access record of `url` so far. */
function recordsFor(container: RunningContainer, url: string): LogRecord[] {
  return container.logs.filter((r) => isAccess(r) && r.url === url);
}

/** Opens a connection and sends `bytes`; the caller closes it. */
async function send(target: Target, bytes: Uint8Array | string): Promise<Socket> {
  const socket = connect(target);
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.write(bytes);
  return socket;
}

/** Resolves with what `socket` received once it holds `marker`. */
function receivedUpTo(socket: Socket, marker: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      const all = Buffer.concat(chunks);
      if (all.includes(marker)) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(all);
      }
    };
    const onClose = () => reject(new Error(`closed before ${JSON.stringify(marker)} arrived`));
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}

const uwsgiGet = (url: string) => encodeRequest(nginxLikeVars('GET', url));
const httpGet = (url: string) => `GET ${url} HTTP/1.1\r\nHost: a\r\n\r\n`;

describe(`access records of aborted requests (transport ${TRANSPORT ?? 'default'})`, () => {
  let dir: string;
  let container: RunningContainer;
  let httpPort: number;
  const open: Socket[] = [];

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-access-abort');
    const config = await writeConfig(dir, { mounts: [{ path: '/', app: 'plain.mjs' }] });
    container = await startContainer(config);
    httpPort = (container.target('http') as { port: number }).port;
  });

  afterEach(() => {
    for (const socket of open.splice(0)) socket.destroy();
  });

  afterAll(async () => {
    try {
      if (container) expect(await container.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  /** Until the app waits for `/release?id=ID` (it has done what comes before). */
  const appWaits = (id: string) =>
    pollUntil(
      async () =>
        (
          JSON.parse(
            (await request(`http://127.0.0.1:${httpPort}/waiting?id=${id}`)).body.toString(),
          ) as { waiting: boolean }
        ).waiting,
      { what: `app waiting for ${id}`, intervalMs: 20 },
    );
  const releaseApp = (id: string) => request(`http://127.0.0.1:${httpPort}/release?id=${id}`);

  /** The one record of `url`, once written (and checks that no second one follows it). */
  async function oneRecord(url: string): Promise<LogRecord> {
    await container.waitForLog((r) => isAccess(r) && r.url === url);
    // A later request's record comes after any second one of `url` (records keep their order).
    const canary = `/canary?after=${encodeURIComponent(url)}`;
    expect((await request(`http://127.0.0.1:${httpPort}${canary}`)).status).toBe(200);
    await container.waitForLog((r) => isAccess(r) && r.url === canary);
    const records = recordsFor(container, url);
    expect(records).toHaveLength(1);
    return records[0] as LogRecord;
  }

  it('uwsgi: the front end resets before the head was written: status 0, bytes 0', async () => {
    const url = '/head-held?id=uwsgi-reset';
    // The app has called writeHead(200) (headersSent), but no byte went out yet.
    const socket = await send(container.target('uwsgi', 'tcp'), uwsgiGet(url));
    open.push(socket);
    await appWaits('uwsgi-reset');
    socket.resetAndDestroy();
    expect(await oneRecord(url)).toMatchObject({
      method: 'GET',
      status: 0,
      bytes: 0,
      mount: '/',
      listener: container.address('uwsgi', 'tcp'),
      aborted: true,
    });
    expect(recordsFor(container, url)[0]).not.toHaveProperty('error');
    await releaseApp('uwsgi-reset');
  });

  it('uwsgi: the front end closes mid-response, the next write fails: aborted', async () => {
    const url = '/stream?id=uwsgi-close';
    // nginx closes its upstream connection when its client goes away; over a unix socket the
    // container learns it when its next write fails (EPIPE).
    const socket = await send(container.target('uwsgi', 'unix'), uwsgiGet(url));
    open.push(socket);
    const received = await receivedUpTo(socket, 'first\n');
    socket.destroy();
    await releaseApp('uwsgi-close');
    const record = await oneRecord(url);
    expect(record).toMatchObject({
      method: 'GET',
      status: 200,
      mount: '/',
      listener: container.address('uwsgi', 'unix'),
      aborted: true,
    });
    expect(record).not.toHaveProperty('error');
    // What the client read; node:net (transport `net`) also counts the write that failed.
    expect([received.length, received.length + 'last\n'.length]).toContain(record['bytes']);
    if (TRANSPORT !== 'net') expect(record['bytes']).toBe(received.length);
  });

  it('HTTP: the client leaves before the head was written, and mid-body', async () => {
    const held = '/head-held?id=http-close';
    const early = await send(container.target('http'), httpGet(held));
    open.push(early);
    await appWaits('http-close');
    early.destroy();
    expect(await oneRecord(held)).toMatchObject({
      method: 'GET',
      status: 0,
      bytes: 0,
      mount: '/',
      listener: container.address('http'),
      aborted: true,
    });
    await releaseApp('http-close');

    const streamed = '/stream?id=http-mid';
    const mid = await send(container.target('http'), httpGet(streamed));
    open.push(mid);
    const received = await receivedUpTo(mid, 'first\n');
    mid.destroy();
    expect(await oneRecord(streamed)).toMatchObject({
      status: 200,
      bytes: received.length,
      aborted: true,
    });
    await releaseApp('http-mid');
  });
});

describe(`access records of requests cut off by a forced stop (transport ${TRANSPORT ?? 'default'})`, () => {
  let dir: string;
  let container: RunningContainer | undefined;
  const open: Socket[] = [];

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-access-stop');
  });

  afterEach(async () => {
    for (const socket of open.splice(0)) socket.destroy();
    await container?.kill();
    container = undefined;
  });

  afterAll(async () => {
    if (dir) await removeTmpDir(dir);
  });

  for (const [signal, grace] of [
    ['SIGTERM', 300],
    ['SIGQUIT', 30_000],
  ] as const) {
    it(`${signal} (shutdownTimeoutMs ${grace}): one record each, error "shutdown"`, async () => {
      const config = await writeConfig(
        dir,
        { mounts: [{ path: '/', app: 'plain.mjs' }], shutdownTimeoutMs: grace },
        `${signal}.yaml`,
      );
      const c = await startContainer(config);
      container = c;
      // In flight when the stop comes: a streamed response over uwsgi and over HTTP (head and
      // a first piece sent), and a uwsgi head still incomplete (no request yet).
      const uwsgi = await send(c.target('uwsgi', 'unix'), uwsgiGet('/stream?id=stop-uwsgi'));
      const http = await send(c.target('http'), httpGet('/stream?id=stop-http'));
      open.push(uwsgi, http);
      const [fromUwsgi, fromHttp] = await Promise.all([
        receivedUpTo(uwsgi, 'first\n'),
        receivedUpTo(http, 'first\n'),
      ]);
      // With a grace period, a uwsgi head still incomplete too (its bytes are read long
      // before the grace runs out; without one, the stop could come first: no record then).
      if (signal === 'SIGTERM') {
        open.push(await send(c.target('uwsgi', 'unix'), Buffer.from([0, 100, 0, 0, 1])));
      }
      expect(await c.stop(signal)).toEqual({ code: 0, signal: null });
      const cut = c.logs.filter((r) => isAccess(r));
      const common = { aborted: true, error: 'shutdown' };
      const expected = [
        expect.objectContaining({
          ...common,
          url: '/stream?id=stop-uwsgi',
          status: 200,
          bytes: fromUwsgi.length,
          listener: c.address('uwsgi', 'unix'),
        }),
        expect.objectContaining({
          ...common,
          url: '/stream?id=stop-http',
          status: 200,
          bytes: fromHttp.length,
          listener: c.address('http'),
        }),
      ];
      if (signal === 'SIGTERM') {
        expected.push(
          expect.objectContaining({
            ...common,
            method: null,
            url: null,
            status: 0,
            bytes: 0,
            listener: c.address('uwsgi', 'unix'),
          }),
        );
      }
      expect(cut).toEqual(expect.arrayContaining(expected));
      expect(cut).toHaveLength(expected.length);
    });
  }
});
