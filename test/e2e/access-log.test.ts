/**
 * Issue 10 against the built CLI (`uwsgi-ts run`, a master and one worker, JSON on stdout):
 * the answers the container gives without an app (a bad uwsgi packet, 400, 411, 413, a refused
 * connection) and the 504 of the request deadline each leave exactly one `"msg":"request"`
 * record in the shape of an app's, on the uwsgi listeners (unix and TCP) and the HTTP listener.
 * CI runs the suite per transport (`UWSGI_TS_TRANSPORT`).
 */
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  type LogRecord,
  type RunningContainer,
  startContainer,
} from '../utils/cli.ts';
import { TRANSPORT, writeConfig } from '../utils/config.ts';
import { rawHttpExchange } from '../utils/http-client.ts';
import { connect, type Target } from '../utils/net.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import {
  encodeRequest,
  nginxLikeVars,
  parseHttpResponse,
  uwsgiExchange,
  uwsgiRequest,
} from '../utils/uwsgi-client.ts';

/** The keys of every access record, in their order (`aborted` and `error` only when set). */
const FIELDS = [
  'method',
  'url',
  'status',
  'bytes',
  'durationMs',
  'mount',
  'remoteAddress',
  'listener',
];

const isAccess = (r: LogRecord) => r.msg === 'request';

describe(`access records for the container's own answers (transport ${TRANSPORT ?? 'default'})`, () => {
  let dir: string;
  let container: RunningContainer;
  let unix: Target;
  let tcp: Target;
  let canaries = 0;

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-access');
    const config = await writeConfig(dir, {
      mounts: [{ path: '/', app: 'plain.mjs' }],
      limits: { maxBodySize: 1024, requestTimeoutMs: 300, bodyTimeoutMs: 5000 },
    });
    container = await startContainer(config);
    unix = container.target('uwsgi', 'unix');
    tcp = container.target('uwsgi', 'tcp');
  });

  afterAll(async () => {
    try {
      if (container) expect(await container.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  /**
   * Runs `act`, then a canary request, and returns the access records logged in between (the
   * canary's record comes after them: records of one worker keep their order).
   */
  async function recordsOf(act: () => Promise<unknown>): Promise<LogRecord[]> {
    const from = container.logs.length;
    await act();
    const url = `/canary/${++canaries}`;
    expect((await uwsgiRequest(unix, nginxLikeVars('GET', url))).status).toBe(200);
    await container.waitForLog((r) => isAccess(r) && r.url === url);
    const records = container.logs.slice(from).filter((r) => isAccess(r) && r.url !== url);
    for (const r of records) {
      expect(Object.keys(r).filter((k) => FIELDS.includes(k))).toEqual(FIELDS);
      expect(r).toMatchObject({ level: 30, component: 'access' });
    }
    return records;
  }

  it('a malformed uwsgi packet: one record, status 0, error "protocol"', async () => {
    const records = await recordsOf(() =>
      // A zero-length key (U06).
      uwsgiExchange(unix, Buffer.from([0, 5, 0, 0, 0, 0, 1, 0, 0x78]), { halfClose: true }),
    );
    expect(records).toEqual([
      expect.objectContaining({
        method: null,
        url: null,
        status: 0,
        bytes: 0,
        mount: null,
        remoteAddress: null,
        listener: container.address('uwsgi', 'unix'),
        error: 'protocol',
      }),
    ]);
  });

  it('400 for a bad CONTENT_LENGTH over TCP: method, url and client from the vars', async () => {
    let bytes = 0;
    const records = await recordsOf(async () => {
      const r = await uwsgiExchange(
        tcp,
        encodeRequest(nginxLikeVars('POST', '/cl?x=1', [], 'abc'), Buffer.from('hello')),
        { halfClose: true },
      );
      expect(parseHttpResponse(r.data)?.status).toBe(400);
      bytes = r.data.length;
    });
    expect(records).toEqual([
      expect.objectContaining({
        method: 'POST',
        url: '/cl?x=1',
        status: 400,
        bytes,
        mount: null,
        remoteAddress: '127.0.0.1',
        listener: container.address('uwsgi', 'tcp'),
      }),
    ]);
    expect(records[0]).not.toHaveProperty('error');
  });

  it('411 for HTTP_TRANSFER_ENCODING (not chunked) without CONTENT_LENGTH', async () => {
    const records = await recordsOf(async () => {
      const r = await uwsgiExchange(
        unix,
        encodeRequest(nginxLikeVars('POST', '/te', [['HTTP_TRANSFER_ENCODING', 'gzip']])),
        { halfClose: true },
      );
      expect(parseHttpResponse(r.data)?.status).toBe(411);
    });
    expect(records).toEqual([
      expect.objectContaining({ method: 'POST', url: '/te', status: 411, mount: null }),
    ]);
  });

  it('413 for a body over maxBodySize, on uwsgi and on HTTP', async () => {
    const records = await recordsOf(async () => {
      const r = await uwsgiExchange(
        unix,
        encodeRequest(nginxLikeVars('POST', '/big', [], String(1024 * 1024))),
        { halfClose: true },
      );
      expect(parseHttpResponse(r.data)?.status).toBe(413);
      const port = (container.target('http') as { port: number }).port;
      const h = await rawHttpExchange(
        port,
        Buffer.from('POST /big-http HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n'),
      );
      expect(parseHttpResponse(h)?.status).toBe(413);
    });
    expect(records).toEqual([
      expect.objectContaining({ method: 'POST', url: '/big', status: 413, mount: null }),
      expect.objectContaining({
        method: 'POST',
        url: '/big-http',
        status: 413,
        mount: null,
        remoteAddress: '127.0.0.1',
        listener: container.address('http'),
      }),
    ]);
  });

  it('400 for an HTTP request llhttp refuses: method and url null', async () => {
    const port = (container.target('http') as { port: number }).port;
    const records = await recordsOf(async () => {
      const h = await rawHttpExchange(port, Buffer.from('NOT HTTP AT ALL\r\n\r\n'));
      expect(parseHttpResponse(h)?.status).toBe(400);
    });
    expect(records).toEqual([
      expect.objectContaining({ method: null, url: null, status: 400, mount: null }),
    ]);
  });

  it('504 from requestTimeoutMs: one record (dispatch writes it)', async () => {
    const records = await recordsOf(async () => {
      // Half the declared body: the app waits for the rest, the request deadline answers.
      const r = await uwsgiExchange(
        unix,
        encodeRequest(nginxLikeVars('POST', '/wait', [], '10'), Buffer.from('12345')),
        { timeoutMs: 1500 },
      );
      expect(parseHttpResponse(r.data)?.status).toBe(504);
    });
    expect(records).toEqual([
      expect.objectContaining({ method: 'POST', url: '/wait', status: 504, mount: '/' }),
    ]);
    expect(records[0]).not.toHaveProperty('error');
  });
});

describe(`access records for refused connections (transport ${TRANSPORT ?? 'default'})`, () => {
  /** How long the holder's response streams. */
  const DRIP_MS = 1500;
  let dir: string;
  let container: RunningContainer;

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-access-refused');
    const config = await writeConfig(dir, {
      mounts: [{ path: '/', app: 'plain.mjs' }],
      limits: { maxConnections: 1 },
    });
    container = await startContainer(config);
  });

  afterAll(async () => {
    try {
      if (container) expect(await container.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  it('a connection over maxConnections: one record each, status 0, error "refused"', async () => {
    const unix = container.target('uwsgi', 'unix');
    // The one admitted connection, busy (its response streams for DRIP_MS), so it is never shed
    // to make room: the next connections are refused. Its first response bytes say it was
    // dispatched (before that it waits for its head: idle, and would be shed).
    const holder = connect(unix);
    holder.on('error', () => undefined);
    try {
      await once(holder, 'connect');
      holder.write(encodeRequest(nginxLikeVars('GET', `/drip?ms=${DRIP_MS}`)));
      await once(holder, 'data');
      const r = await uwsgiExchange(
        container.target('uwsgi', 'tcp'),
        encodeRequest(nginxLikeVars('GET', '/')),
      );
      expect(r.data.length).toBe(0);
      // uwsgiExchange: the refusal may come as a reset (the request bytes arrived unread).
      const h = await uwsgiExchange(
        container.target('http'),
        Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\n'),
      );
      expect(h.data.length).toBe(0);
    } finally {
      holder.destroy();
    }
    // Once the holder is gone, requests are served again; the record of one comes after those
    // of the refusals (one worker's records keep their order).
    // Until the holder's response has ended (DRIP_MS) and its connection closed, the attempts
    // are refused too: count them.
    let refusedAfter = 0;
    const until = Date.now() + DRIP_MS + 5000;
    for (;;) {
      const r = await uwsgiExchange(unix, encodeRequest(nginxLikeVars('GET', '/after')));
      if (parseHttpResponse(r.data)?.status === 200) break;
      expect(r.data.length).toBe(0);
      refusedAfter++;
      expect(Date.now()).toBeLessThan(until);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await container.waitForLog((r) => isAccess(r) && r.url === '/after' && r.status === 200);
    const refused = container.logs.filter((r) => isAccess(r) && r.error === 'refused');
    const common = {
      method: null,
      url: null,
      status: 0,
      bytes: 0,
      durationMs: 0,
      mount: null,
      error: 'refused',
    };
    expect(refused).toEqual([
      expect.objectContaining({
        ...common,
        remoteAddress: null,
        listener: container.address('uwsgi', 'tcp'),
      }),
      expect.objectContaining({
        ...common,
        remoteAddress: '127.0.0.1',
        listener: container.address('http'),
      }),
      ...Array.from({ length: refusedAfter }, () =>
        expect.objectContaining({ ...common, listener: container.address('uwsgi', 'unix') }),
      ),
    ]);
    // Every other record is a served request (the holder's too: its 200 head went out).
    expect(container.logs.filter((r) => isAccess(r) && r.status !== 200)).toEqual(refused);
  });
});
