/**
 * Access records for the answers the container gives without dispatch (issue 10): every hostile
 * input gets exactly one `"msg":"request"` record, in the shape dispatch writes (the same keys;
 * `method`/`url` null when no request could be read; `error` only on refusals), on both uwsgi
 * transports and on the HTTP listener. Each case ends with a canary request whose own record
 * proves that everything the case logs is in before the count is checked.
 */
import { once } from 'node:events';
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
  type Vars,
  waitForRecord,
} from './fixtures/apps/harness.ts';

let served: Served | undefined;
const cleanups: Array<() => void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup();
  await served?.close();
  served = undefined;
});

const TRANSPORTS: ReadonlyArray<'net' | 'fast'> = [
  'net',
  ...('unavailable' in createFastTransport() ? [] : (['fast'] as const)),
];
let transport: 'net' | 'fast' = 'net';

const echo: NodeHandler = (req, res) => {
  req.resume();
  req.on('end', () => res.end('ok'));
};

type Rec = Record<string, unknown>;

/** The access records (`"msg":"request"`) but the canaries'. */
function accessRecords(s: Served): Rec[] {
  return s.records.filter((r) => r.msg === 'request' && r.url !== '/canary');
}

/**
 * A connection whose request is in flight (its declared body never comes): not idle, so the
 * connection limit refuses the next connection instead of shedding this one. Its url is
 * `/canary`, so its record is left out of {@link accessRecords}.
 */
async function busyHolder(s: Served) {
  const holder =
    s.port === 0 ? connect({ path: s.path }) : connect({ host: '127.0.0.1', port: s.port });
  cleanups.push(() => holder.destroy());
  await once(holder, 'connect');
  holder.write(
    s.port === 0
      ? packet(requestVars('POST', '/canary', {}, 5))
      : Buffer.from('POST /canary HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n'),
  );
  await expect.poll(() => s.container.stats().inFlight).toBe(1);
  return holder;
}

/** The keys every access record has, in the order they are logged (`aborted`, `error` aside). */
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

/**
 * Serves a canary on `s`, waits for its record (so everything before it is logged), and returns
 * the one record the case wrote, checking its shape.
 */
async function onlyRecord(s: Served): Promise<Rec> {
  const canary =
    s.port === 0
      ? await exchange(s.path, packet(requestVars('GET', '/canary')))
      : await exchange(
          s.port,
          Buffer.from('GET /canary HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'),
        );
  expect(canary.status).toBe(200);
  await waitForRecord(s.records, (r) => r.msg === 'request' && r.url === '/canary');
  const records = accessRecords(s);
  expect(records).toHaveLength(1);
  const rec = records[0] as Rec;
  expect(rec).toMatchObject({ level: 30, component: 'access', msg: 'request' });
  const keys = Object.keys(rec).filter((k) => FIELDS.includes(k));
  expect(keys).toEqual(FIELDS);
  expect(typeof rec.durationMs).toBe('number');
  return rec;
}

function withVar(vars: Vars, name: string, value: string | undefined): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [k, v] of vars as ReadonlyArray<readonly [string, string]>) {
    if (k !== name) out.push([k, v]);
    else if (value !== undefined) out.push([k, value]);
  }
  return out;
}

describe.each(TRANSPORTS)('uwsgi listener, %s transport', (kind) => {
  beforeEach(() => {
    transport = kind;
  });

  async function start(options: Parameters<typeof serve>[1] = {}) {
    served = await serve(echo, { transport, ...options });
    return served;
  }

  it('400 (bad CONTENT_LENGTH): method, url and client from the vars', async () => {
    const s = await start();
    const vars = withVar(requestVars('POST', '/upload?x=1'), 'CONTENT_LENGTH', 'abc');
    const r = await exchange(s.path, packet(vars), { closeAfterResponse: true });
    expect(r.status).toBe(400);
    const rec = await onlyRecord(s);
    expect(rec).toMatchObject({
      method: 'POST',
      url: '/upload?x=1',
      status: 400,
      bytes: r.raw.length,
      mount: null,
      remoteAddress: '203.0.113.7',
      listener: `unix:${s.path}`,
    });
    expect(rec).not.toHaveProperty('aborted');
    expect(rec).not.toHaveProperty('error');
  });

  it('400 for datasize 0: method and url null', async () => {
    const s = await start();
    const r = await exchange(s.path, Buffer.from([0, 0, 0, 0]), { closeAfterResponse: true });
    expect(r.status).toBe(400);
    expect(await onlyRecord(s)).toMatchObject({
      method: null,
      url: null,
      status: 400,
      bytes: r.raw.length,
      remoteAddress: null,
    });
  });

  it('400 without REQUEST_METHOD under strictVars: url known, method null', async () => {
    const s = await start({ strictVars: true });
    const vars = withVar(requestVars('GET', '/m'), 'REQUEST_METHOD', undefined);
    const r = await exchange(s.path, packet(vars), { closeAfterResponse: true });
    expect(r.status).toBe(400);
    expect(await onlyRecord(s)).toMatchObject({ method: null, url: '/m', status: 400 });
  });

  it('without REQUEST_METHOD (not strict): served, logged as the GET it was served as', async () => {
    const s = await start();
    const vars = withVar(requestVars('GET', '/m'), 'REQUEST_METHOD', undefined);
    const r = await exchange(s.path, packet(vars), { closeAfterResponse: true });
    expect(r.status).toBe(200);
    const rec = await waitForRecord(s.records, (x) => x.msg === 'request');
    expect(rec).toMatchObject({ method: 'GET', url: '/m', status: 200 });
  });

  it('411 for a transfer coding without CONTENT_LENGTH that is not chunked', async () => {
    const s = await start();
    const vars = requestVars('POST', '/chunks', [['HTTP_TRANSFER_ENCODING', 'gzip']]);
    const r = await exchange(s.path, packet(vars), { closeAfterResponse: true });
    expect(r.status).toBe(411);
    expect(await onlyRecord(s)).toMatchObject({
      method: 'POST',
      url: '/chunks',
      status: 411,
      bytes: r.raw.length,
      mount: null,
      remoteAddress: '203.0.113.7',
    });
  });

  it('413 for CONTENT_LENGTH over maxBodySize', async () => {
    const s = await start({ limits: { maxBodySize: 10 } });
    const r = await exchange(s.path, packet(requestVars('PUT', '/big', {}, 100)), {
      closeAfterResponse: true,
    });
    expect(r.status).toBe(413);
    expect(await onlyRecord(s)).toMatchObject({
      method: 'PUT',
      url: '/big',
      status: 413,
      bytes: r.raw.length,
      mount: null,
    });
  });

  it('a framing error: status 0, error "protocol", nothing known', async () => {
    const s = await start();
    const r = await exchange(s.path, Buffer.from([0, 5, 0, 0, 0, 0, 1, 0, 0x78]), {
      halfClose: true,
    });
    expect(r.raw.length).toBe(0);
    const rec = await onlyRecord(s);
    expect(rec).toMatchObject({
      method: null,
      url: null,
      status: 0,
      bytes: 0,
      mount: null,
      remoteAddress: null,
      listener: `unix:${s.path}`,
      error: 'protocol',
    });
    expect(rec).not.toHaveProperty('aborted');
  });

  it('an unsupported modifier1 and HTTP on the uwsgi socket: one "protocol" record each', async () => {
    const s = await start();
    await exchange(s.path, packet(requestVars('GET', '/'), undefined, 5));
    await exchange(s.path, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await exchange(s.path, packet(requestVars('GET', '/canary')));
    await waitForRecord(s.records, (r) => r.url === '/canary');
    expect(accessRecords(s).map((r) => [r.status, r.error])).toEqual([
      [0, 'protocol'],
      [0, 'protocol'],
    ]);
  });

  it('the head deadline: status 0, error "protocol", the time it took', async () => {
    const s = await start({ limits: { headerTimeoutMs: 200 } });
    const r = await exchange(s.path, Buffer.from([0, 40]));
    expect(r.raw.length).toBe(0);
    const rec = await onlyRecord(s);
    expect(rec).toMatchObject({ method: null, url: null, status: 0, error: 'protocol' });
    expect(rec.durationMs as number).toBeGreaterThanOrEqual(150);
  });

  it('an idle connection (no byte) is no request: no record', async () => {
    const s = await start({ limits: { headerTimeoutMs: 100 } });
    const r = await exchange(s.path, new Uint8Array(0));
    expect(r.raw.length).toBe(0);
    await exchange(s.path, packet(requestVars('GET', '/canary')));
    await waitForRecord(s.records, (x) => x.url === '/canary');
    expect(accessRecords(s)).toEqual([]);
  });

  it('a head cut short by the close of the container: status 0, aborted', async () => {
    const s = await start();
    const socket = connect({ path: s.path });
    cleanups.push(() => socket.destroy());
    socket.on('error', () => undefined);
    await once(socket, 'connect');
    socket.write(Buffer.from([0, 40, 0]));
    await expect.poll(() => s.container.stats().connections).toBe(1);
    // Give the server the bytes before it closes.
    await new Promise((resolve) => setTimeout(resolve, 50));
    await s.container.close({ timeoutMs: 0 });
    // Written when the socket has closed, which close() waits for.
    const records = accessRecords(s);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      method: null,
      url: null,
      status: 0,
      aborted: true,
      error: 'shutdown',
    });
  });

  it("504 from requestTimeoutMs: the one record is dispatch's", async () => {
    served = await serve(
      (req, res) => {
        if (req.url === '/canary') res.end('ok');
      },
      { transport, limits: { requestTimeoutMs: 100 } },
    );
    const s = served;
    const r = await exchange(s.path, packet(requestVars('GET', '/slow')));
    expect(r.status).toBe(504);
    const rec = await onlyRecord(s);
    expect(rec).toMatchObject({
      method: 'GET',
      url: '/slow',
      status: 504,
      bytes: r.raw.length,
      mount: '/',
      remoteAddress: '203.0.113.7',
      listener: `unix:${s.path}`,
    });
    expect(rec).not.toHaveProperty('error');
  });

  it('ping gets its pong and no record', async () => {
    const s = await start();
    const pong = await exchange(s.path, Buffer.from([100, 0, 0, 0]));
    expect([...pong.raw]).toEqual([100, 0, 0, 1]);
    await exchange(s.path, packet(requestVars('GET', '/canary')));
    await waitForRecord(s.records, (x) => x.url === '/canary');
    expect(accessRecords(s)).toEqual([]);
  });

  it('a connection over maxConnections: status 0, error "refused"', async () => {
    const s = await start({ limits: { maxConnections: 1 } });
    const holder = await busyHolder(s);
    const refused = await exchange(s.path, packet(requestVars('GET', '/')));
    expect(refused.raw.length).toBe(0);
    const rec = await waitForRecord(s.records, (x) => x.msg === 'request');
    expect(rec).toMatchObject({
      method: null,
      url: null,
      status: 0,
      bytes: 0,
      durationMs: 0,
      mount: null,
      remoteAddress: null,
      listener: `unix:${s.path}`,
      error: 'refused',
    });
    holder.destroy();
    await expect.poll(() => s.container.stats().connections).toBe(0);
    // The holder's request (url /canary) is left out of accessRecords.
    expect(await onlyRecord(s)).toBe(rec);
  });

  for (const [name, options] of [
    ['log.access: false', { accessLog: false }],
    ['a level above info', { logLevel: 'warn' }],
  ] as const) {
    it(`${name}: no record for any of them`, async () => {
      const s = await start({ ...options, limits: { maxConnections: 1, maxBodySize: 10 } });
      const bad = withVar(requestVars('POST', '/'), 'CONTENT_LENGTH', 'abc');
      expect((await exchange(s.path, packet(bad), { closeAfterResponse: true })).status).toBe(400);
      await exchange(s.path, packet(requestVars('PUT', '/', {}, 100)), {
        closeAfterResponse: true,
      });
      await exchange(s.path, Buffer.from([0, 5, 0, 0, 0, 0, 1, 0, 0x78]), { halfClose: true });
      const holder = await busyHolder(s);
      await exchange(s.path, packet(requestVars('GET', '/')));
      expect(s.container.stats().connectionsRejected).toBe(1);
      holder.destroy();
      await expect.poll(() => s.container.stats().connections).toBe(0);
      await s.container.close({ timeoutMs: 0 });
      expect(s.records.filter((r) => r.msg === 'request')).toEqual([]);
    });
  }
});

describe('HTTP listener', () => {
  async function start(options: Parameters<typeof serve>[1] = {}, handler: NodeHandler = echo) {
    served = await serve(handler, { ...options, protocol: 'http' });
    return served;
  }

  const raw = (s: Served, text: string) => exchange(s.port, Buffer.from(text, 'latin1'));

  it('413 for a declared Content-Length over maxBodySize', async () => {
    const s = await start({ limits: { maxBodySize: 10 } });
    const r = await raw(
      s,
      'POST /up?a HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890',
    );
    expect(r.status).toBe(413);
    const rec = await onlyRecord(s);
    expect(rec).toMatchObject({
      method: 'POST',
      url: '/up?a',
      status: 413,
      bytes: r.raw.length,
      mount: null,
      remoteAddress: '127.0.0.1',
      listener: `127.0.0.1:${s.port}`,
    });
    expect(rec).not.toHaveProperty('error');
  });

  it('413 for a chunked body past maxBodySize in the read of its head: never dispatched, one record', async () => {
    const s = await start({ limits: { maxBodySize: 10 } });
    const r = await raw(
      s,
      'POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n678901\r\n0\r\n\r\n',
    );
    expect(r.status).toBe(413);
    // The chunked request waits for its first body bytes to parse (http-body.ts); they already
    // pass the limit: the listener answers and logs, the app is never called.
    expect(await onlyRecord(s)).toMatchObject({
      method: 'POST',
      url: '/c',
      status: 413,
      mount: null,
    });
  });

  it('400 for a request llhttp refuses (CL + TE): method and url null', async () => {
    const s = await start();
    const r = await raw(
      s,
      'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect(r.status).toBe(400);
    // node:http's own answer, unchanged.
    expect(r.raw.toString('latin1')).toBe('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    const rec = await onlyRecord(s);
    expect(rec).toMatchObject({
      method: null,
      url: null,
      status: 400,
      bytes: r.raw.length,
      durationMs: 0,
      mount: null,
      remoteAddress: '127.0.0.1',
    });
    expect(rec).not.toHaveProperty('error');
  });

  it('431 for a head over maxHeaderSize', async () => {
    const s = await start();
    const r = await raw(s, `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20000)}\r\n\r\n`);
    expect(r.status).toBe(431);
    expect(await onlyRecord(s)).toMatchObject({ status: 431, bytes: r.raw.length, url: null });
  });

  it('408 for a head past headersTimeout', async () => {
    const s = await start({ limits: { headerTimeoutMs: 200, bodyTimeoutMs: 200 } });
    const r = await raw(s, 'GET / HTTP/1.1\r\nHost: a\r\n');
    expect(r.status).toBe(408);
    expect(await onlyRecord(s)).toMatchObject({ status: 408, method: null, url: null });
  });

  it('400 for HTTP/1.1 without Host, as node:http answers it; HTTP/1.0 needs none', async () => {
    let calls = 0;
    const s = await start({}, (_req, res) => {
      calls++;
      res.end('ok');
    });
    const r = await raw(s, 'GET /nohost HTTP/1.1\r\n\r\n');
    // Byte for byte what node:http's requireHostHeader sends (its empty chunked body included).
    expect(r.raw.toString('latin1').replace(/\r\nDate: [^\r]*/, '')).toBe(
      'HTTP/1.1 400 Bad Request\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    expect(calls).toBe(0);
    const rec = await onlyRecord(s);
    expect(rec).toMatchObject({
      method: 'GET',
      url: '/nohost',
      status: 400,
      bytes: r.raw.length,
      mount: null,
    });
    const old = await raw(s, 'GET /old HTTP/1.0\r\n\r\n');
    expect(old.status).toBe(200);
  });

  it('417 for an unknown expectation; 100-continue still reaches the app', async () => {
    const s = await start();
    const r = await raw(
      s,
      'GET /e HTTP/1.1\r\nHost: a\r\nExpect: magic\r\nConnection: close\r\n\r\n',
    );
    expect(r.status).toBe(417);
    expect(await onlyRecord(s)).toMatchObject({ method: 'GET', url: '/e', status: 417 });
    const cont = await raw(
      s,
      'POST /c HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi',
    );
    expect(cont.raw.toString('latin1')).toMatch(
      /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/,
    );
    const noHost = await raw(
      s,
      'POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi',
    );
    expect(noHost.status).toBe(400);
    await waitForRecord(s.records, (x) => x.url === '/c' && x.status === 400);
    expect(accessRecords(s).map((x) => [x.url, x.status, x.mount])).toEqual([
      ['/e', 417, null],
      ['/c', 200, '/'],
      ['/c', 400, null],
    ]);
  });

  it('CONNECT is closed unanswered: status 0, error "protocol"', async () => {
    const s = await start();
    const r = await raw(s, 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    expect(r.raw.length).toBe(0);
    expect(await onlyRecord(s)).toMatchObject({
      method: 'CONNECT',
      url: 'example.test:443',
      status: 0,
      bytes: 0,
      remoteAddress: '127.0.0.1',
      error: 'protocol',
    });
  });

  it("504 from requestTimeoutMs: one record, dispatch's", async () => {
    const s = await start({ limits: { requestTimeoutMs: 100 } }, (req, res) => {
      if (req.url === '/canary') res.end('ok');
    });
    const r = await raw(s, 'GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(r.status).toBe(504);
    expect(await onlyRecord(s)).toMatchObject({
      method: 'GET',
      url: '/slow',
      status: 504,
      mount: '/',
    });
  });

  it('a connection over maxConnections: error "refused" with the TCP peer', async () => {
    const s = await start({ limits: { maxConnections: 1 } });
    const holder = await busyHolder(s);
    const refused = await raw(s, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    expect(refused.raw.length).toBe(0);
    const rec = await waitForRecord(s.records, (x) => x.msg === 'request');
    expect(rec).toMatchObject({
      method: null,
      url: null,
      status: 0,
      bytes: 0,
      durationMs: 0,
      mount: null,
      remoteAddress: '127.0.0.1',
      listener: `127.0.0.1:${s.port}`,
      error: 'refused',
    });
    holder.destroy();
    await expect.poll(() => s.container.stats().connections).toBe(0);
    expect(await onlyRecord(s)).toBe(rec);
  });

  it('log.access: false: no record for any of them', async () => {
    const s = await start({ accessLog: false, limits: { maxBodySize: 10 } });
    await raw(s, 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n01234567890');
    await raw(s, 'GET / HTTP/1.1\r\n\r\n');
    await raw(s, 'BAD\r\n\r\n');
    await raw(s, 'CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\n\r\n');
    await s.container.close({ timeoutMs: 0 });
    expect(s.records.filter((r) => r.msg === 'request')).toEqual([]);
  });
});
