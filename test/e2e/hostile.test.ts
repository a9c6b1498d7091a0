/**
 * RELIABILITY.md section 1.1 (U01-U32) against the built container's uwsgi listeners: each
 * hostile input ends in REJ (connection closed, no response bytes) or its documented status,
 * the app is called only by the cases meant to reach it, a canary request still succeeds
 * afterwards, and the container's open fds return to their baseline (procfs).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, fdsBackTo, type RunningContainer, startContainer } from '../utils/cli.ts';
import { TRANSPORT, writeConfig } from '../utils/config.ts';
import { pattern, sha256 } from '../utils/http-client.ts';
import { connect, pollUntil, type Target } from '../utils/net.ts';
import { openFds } from '../utils/procs.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import {
  type ExchangeResult,
  encodeRequest,
  encodeVarsBlock,
  nginxLikeVars,
  parseHttpResponse,
  uwsgiExchange,
  uwsgiRequest,
} from '../utils/uwsgi-client.ts';

const HEADER_TIMEOUT_MS = 1000;
const BODY_TIMEOUT_MS = 1000;
/**
 * A close caused by a deadline cannot come before it: every case that is not a deadline case
 * must see the server end the connection (FIN or close) well inside the shortest one. "Close
 * after every response" (PROTOCOL.md section 8): Apache reads a uwsgi response to EOF even with
 * Content-Length (section 4), so a FIN held back until a deadline stalls its client. Draining
 * unread request bytes after the half-close is fine; holding back the FIN is not.
 */
const PROMPT_MS = 0.9 * Math.min(HEADER_TIMEOUT_MS, BODY_TIMEOUT_MS);
const LIMITS = {
  bufferSize: 16_384,
  maxVars: 200,
  maxBodySize: 1024 * 1024,
  headerTimeoutMs: HEADER_TIMEOUT_MS,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
  requestTimeoutMs: 10_000,
};

type Expected =
  /** Closed (FIN or RST) without a single response byte. */
  | 'rej'
  /** Either REJ or one of `statuses` (RELIABILITY.md leaves the choice to the implementation). */
  | 'rej-or-status'
  /** Any one of these statuses. */
  | readonly number[];

interface HostileCase {
  readonly id: string;
  readonly name: string;
  readonly payload: Buffer | readonly Buffer[];
  readonly halfClose?: boolean;
  readonly expect: Expected;
  readonly statuses?: readonly number[];
  /** App calls the case must cause (default: 1 for a 2xx, else 0; -1 = not checked). */
  readonly appCalls?: number;
  /** Deadline cases: the close must come no earlier than this... */
  readonly minMs?: number;
  /** ...and no later than this (default PROMPT_MS). */
  readonly maxMs?: number;
}

const GET = (uri = '/canary', extra: ReadonlyArray<readonly [string, string]> = []) =>
  nginxLikeVars('GET', uri, extra);

function header(modifier1: number, datasize: number, modifier2 = 0): Buffer {
  const b = Buffer.from([modifier1, 0, 0, modifier2]);
  b.writeUInt16LE(datasize, 1);
  return b;
}

/** A packet whose header claims `datasize` over an arbitrary vars block. */
function withBlock(block: Buffer, datasize = block.length, modifier1 = 0): Buffer {
  return Buffer.concat([header(modifier1, datasize), block]);
}

function postWithLength(cl: string, body: Buffer): Buffer {
  return encodeRequest(nginxLikeVars('POST', '/cl', [], cl), body);
}

const validBlock = encodeVarsBlock(GET());

/** What uWSGI's router sends for a chunked client body: TE chunked, no CONTENT_LENGTH. */
const chunkedPost = () =>
  nginxLikeVars('POST', '/chunked', [['HTTP_TRANSFER_ENCODING', 'chunked']]).filter(
    ([k]) => k !== 'CONTENT_LENGTH',
  );

const cases: HostileCase[] = [
  { id: 'U01a', name: 'connect, EOF', payload: [], halfClose: true, expect: 'rej' },
  {
    id: 'U01b',
    name: 'connect, send nothing: closed at the header deadline',
    payload: [],
    expect: 'rej',
    minMs: HEADER_TIMEOUT_MS * 0.8,
    maxMs: HEADER_TIMEOUT_MS + 2500,
  },
  {
    id: 'U02',
    name: '3 header bytes, EOF',
    payload: header(0, 100).subarray(0, 3),
    halfClose: true,
    expect: 'rej',
  },
  {
    id: 'U03a',
    name: 'fewer var bytes than datasize, EOF',
    payload: withBlock(validBlock.subarray(0, 40), validBlock.length),
    halfClose: true,
    expect: 'rej',
  },
  {
    id: 'U03b',
    name: 'fewer var bytes than datasize, stall: closed at the header deadline',
    payload: withBlock(validBlock.subarray(0, 40), validBlock.length),
    expect: 'rej',
    minMs: HEADER_TIMEOUT_MS * 0.8,
    maxMs: HEADER_TIMEOUT_MS + 2500,
  },
  {
    id: 'U04',
    name: 'datasize 65535 over bufferSize 16384: rejected before reading it',
    payload: Buffer.concat([header(0, 65535), Buffer.alloc(100, 0x41)]),
    expect: 'rej',
  },
  { id: 'U05a', name: 'datasize 0', payload: header(0, 0), expect: [400] },
  {
    id: 'U05b',
    // Served as uWSGI does (issue 11); strictVars: true answers 400 (protocol-uwsgi.test.ts).
    name: 'no REQUEST_METHOD: served as GET',
    payload: encodeRequest(GET().filter(([k]) => k !== 'REQUEST_METHOD')),
    expect: [200],
  },
  {
    id: 'U05c',
    name: 'neither PATH_INFO nor REQUEST_URI: served as /',
    payload: encodeRequest(GET().filter(([k]) => k !== 'PATH_INFO' && k !== 'REQUEST_URI')),
    expect: [200],
  },
  {
    id: 'U06',
    name: 'zero-length key',
    payload: withBlock(Buffer.concat([validBlock, Buffer.from([0, 0, 1, 0, 0x78])])),
    expect: 'rej',
  },
  {
    id: 'U07a',
    name: 'key length 0xFFFF in a small block',
    payload: withBlock(Buffer.concat([validBlock, Buffer.from([0xff, 0xff, 0x41, 0x41])])),
    expect: 'rej',
  },
  {
    id: 'U07b',
    name: 'value overrunning the block by 1',
    payload: withBlock(Buffer.concat([validBlock, Buffer.from([1, 0, 0x58, 3, 0, 0x61, 0x62])])),
    expect: 'rej',
  },
  {
    id: 'U08',
    name: 'empty values, including the last one',
    payload: encodeRequest(GET('/canary', [['HTTP_X_EMPTY', '']])),
    expect: [200],
  },
  {
    id: 'U09a',
    name: 'two stray bytes after the last pair',
    payload: withBlock(Buffer.concat([validBlock, Buffer.from([1, 0])])),
    expect: 'rej',
  },
  {
    id: 'U09b',
    name: 'key without a value length',
    payload: withBlock(Buffer.concat([validBlock, Buffer.from([1, 0, 0x58])])),
    expect: 'rej',
  },
  {
    id: 'U10',
    name: '300 vars over maxVars 200',
    payload: encodeRequest(
      GET(
        '/canary',
        Array.from({ length: 300 }, (_, i) => [`HTTP_X_${i}`, 'v'] as const),
      ),
    ),
    expect: 'rej-or-status',
    statuses: [400, 431],
  },
  {
    id: 'U11',
    name: 'two differing CONTENT_LENGTH vars',
    payload: encodeRequest(
      [...nginxLikeVars('POST', '/dup-cl', [], '5'), ['CONTENT_LENGTH', '3']],
      Buffer.from('hello'),
    ),
    expect: 'rej-or-status',
    statuses: [400],
  },
  ...['abc', '-1', '+5', ' 5', '5 ', '0x10', '1e3', '5,5', '9'.repeat(25)].map(
    (cl): HostileCase => ({
      id: 'U12',
      name: `CONTENT_LENGTH ${JSON.stringify(cl)}`,
      payload: postWithLength(cl, Buffer.from('hello')),
      expect: [400],
    }),
  ),
  {
    id: 'U13a',
    name: 'body shorter than CONTENT_LENGTH, then EOF: no hang',
    payload: postWithLength('100', Buffer.alloc(10, 0x62)),
    halfClose: true,
    expect: 'rej-or-status',
    statuses: [400, 500],
    appCalls: -1,
  },
  {
    id: 'U13b',
    name: 'body shorter than CONTENT_LENGTH, stall: ends at the body deadline',
    payload: postWithLength('100', Buffer.alloc(10, 0x62)),
    expect: 'rej-or-status',
    statuses: [400, 408, 500],
    appCalls: -1,
    minMs: BODY_TIMEOUT_MS * 0.8,
    maxMs: BODY_TIMEOUT_MS + 3000,
  },
  {
    id: 'U14',
    name: 'body longer than CONTENT_LENGTH holding a second packet: app called once',
    payload: Buffer.concat([
      postWithLength('5', Buffer.from('hello')),
      encodeRequest([...nginxLikeVars('DELETE', '/second'), ['UWSGI_FILE', '/etc/passwd']]),
    ]),
    expect: [200],
    appCalls: 1,
  },
  {
    id: 'U15',
    name: 'CONTENT_LENGTH over maxBodySize: 413 without the body being sent',
    payload: encodeRequest(nginxLikeVars('POST', '/too-big', [], String(2 * 1024 * 1024))),
    expect: [413],
  },
  ...[1, 5, 72, 255].map(
    (m1): HostileCase => ({
      id: 'U16',
      name: `modifier1 ${m1}`,
      payload: encodeRequest(GET(), undefined, { modifier1: m1 }),
      expect: 'rej-or-status',
      statuses: [501],
    }),
  ),
  {
    id: 'U16b',
    name: 'modifier2 != 0 with modifier1 0 is ignored',
    payload: encodeRequest(GET(), undefined, { modifier2: 7 }),
    expect: [200],
  },
  {
    id: 'U17',
    name: 'HTTP sent to the uwsgi socket',
    payload: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    expect: 'rej',
  },
  {
    id: 'U18',
    name: 'NUL in PATH_INFO and REQUEST_URI',
    payload: encodeRequest(GET('/a\0b')),
    expect: [200, 400],
  },
  {
    id: 'U20',
    name: 'CR/LF/NUL in an HTTP_* value is data',
    payload: encodeRequest(GET('/canary', [['HTTP_X_EVIL', 'a\r\nSet-Cookie: x=1\0']])),
    expect: [200, 400],
  },
  {
    id: 'U21',
    name: 'uWSGI magic vars have no effect',
    payload: encodeRequest(
      GET('/canary', [
        ['UWSGI_FILE', '/etc/passwd'],
        ['UWSGI_SCRIPT', 'os:system'],
        ['UWSGI_CHDIR', '/'],
        ['UWSGI_APPID', 'x'],
        ['UWSGI_POSTFILE', '/etc/shadow'],
      ]),
    ),
    expect: [200],
  },
  {
    id: 'U22',
    name: 'hostile paths: dot segments, %2e%2e, //, 6 KB (twice: REQUEST_URI and PATH_INFO)',
    payload: encodeRequest(GET(`/${'../'.repeat(5)}%2e%2e//${'a'.repeat(6000)}`)),
    expect: [200, 400, 404],
  },
  {
    id: 'U22b',
    name: 'PATH_INFO without a leading slash',
    payload: encodeRequest(
      GET().map(([k, v]) =>
        k === 'PATH_INFO' ? (['PATH_INFO', 'no-slash'] as const) : ([k, v] as const),
      ),
    ),
    expect: [200, 400, 404],
  },
  ...['', 'get', 'G ET', 'GET\r\nX: y'].map(
    (method): HostileCase => ({
      id: 'U23',
      name: `REQUEST_METHOD ${JSON.stringify(method)}`,
      payload: encodeRequest(
        GET().map(([k, v]) =>
          k === 'REQUEST_METHOD' ? ([k, method] as const) : ([k, v] as const),
        ),
      ),
      expect: method === 'get' ? [200, 400, 405] : [400],
    }),
  ),
  {
    id: 'U24',
    name: 'garbage REMOTE_ADDR and ports',
    payload: encodeRequest(
      GET().map(([k, v]) =>
        k === 'REMOTE_PORT' || k === 'SERVER_PORT'
          ? ([k, 'abc'] as const)
          : k === 'REMOTE_ADDR'
            ? ([k, '999.1.\0x'] as const)
            : ([k, v] as const),
      ),
    ),
    expect: [200, 400],
  },
  {
    id: 'U25',
    name: 'HTTP_TRANSFER_ENCODING chunked + HTTP_CONTENT_LENGTH: CONTENT_LENGTH frames',
    payload: encodeRequest(
      nginxLikeVars(
        'POST',
        '/te',
        [
          ['HTTP_TRANSFER_ENCODING', 'chunked'],
          ['HTTP_CONTENT_LENGTH', '100'],
        ],
        '5',
      ),
      Buffer.from('hello'),
    ),
    expect: [200],
  },
  {
    id: 'U26',
    name: 'a valid request one byte per write',
    payload: [...encodeRequest(GET())].map((b) => Buffer.from([b])),
    expect: [200],
  },
  {
    id: 'U27',
    name: 'a second packet pipelined after a complete request is ignored',
    payload: Buffer.concat([encodeRequest(GET()), encodeRequest(GET('/second'))]),
    expect: [200],
    appCalls: 1,
  },
  // Chunked bodies relayed without CONTENT_LENGTH (uWSGI's router, --http-chunked-input).
  {
    id: 'C01',
    name: 'chunked body without CONTENT_LENGTH, then a pipelined packet: decoded, surplus ignored',
    payload: Buffer.concat([
      encodeRequest(chunkedPost()),
      Buffer.from('4\r\nbody\r\n0\r\n\r\n'),
      encodeRequest(GET('/second')),
    ]),
    expect: [200],
    appCalls: 1,
  },
  ...[
    ['size with a sign', '+4\r\nbody\r\n0\r\n\r\n'],
    ['bare LF line ends', '4\nbody\n0\n\n'],
    ['data longer than its size (smuggled bytes)', '2\r\nbody\r\n0\r\n\r\n'],
    ['a size over 2^52', 'fffffffffffffff\r\n'],
  ].map(
    ([what, body]): HostileCase => ({
      id: 'C02',
      name: `malformed chunked body (${what}) -> 400, app not called`,
      payload: Buffer.concat([encodeRequest(chunkedPost()), Buffer.from(body as string)]),
      halfClose: true,
      expect: [400],
    }),
  ),
  {
    id: 'U31',
    name: 'half-close after a full request is still answered',
    payload: encodeRequest(GET()),
    halfClose: true,
    expect: [200],
  },
];

function describeResult(r: ExchangeResult): string {
  return `${r.outcome}${r.error ? ` ${r.error}` : ''} after ${Math.round(r.ms)} ms, ${r.data.length} bytes: ${JSON.stringify(r.data.subarray(0, 120).toString('latin1'))}`;
}

function checkOutcome(c: HostileCase, r: ExchangeResult): number | undefined {
  const info = `${c.id} ${c.name}: ${describeResult(r)}`;
  expect(r.outcome, info).not.toBe('timeout');
  if (c.minMs !== undefined) expect(r.ms, info).toBeGreaterThanOrEqual(c.minMs);
  expect(r.ms, info).toBeLessThanOrEqual(c.maxMs ?? PROMPT_MS);
  if (c.expect === 'rej') {
    expect(r.data.length, info).toBe(0);
    return undefined;
  }
  if (r.data.length === 0) {
    expect(c.expect, info).toBe('rej-or-status');
    return undefined;
  }
  const res = parseHttpResponse(r.data);
  expect(res, info).toBeDefined();
  const allowed = c.expect === 'rej-or-status' ? c.statuses! : c.expect;
  expect(allowed, info).toContain(res!.status);
  // The whole response arrived (its Content-Length, when it has one) before the connection
  // ended: by FIN, or by RST when the server closed with request bytes left unread.
  const cl = res!.header('content-length');
  if (cl !== undefined) expect(res!.body.length, info).toBe(Number(cl));
  return res!.status;
}

describe(`hostile uwsgi input (transport ${TRANSPORT ?? 'default'})`, () => {
  let dir: string;
  let container: RunningContainer;
  let unix: Target;
  let tcp: Target;
  let baselineFds: number;

  const appCalls = async (): Promise<number> => {
    const res = await uwsgiRequest(unix, GET('/stats'));
    expect(res.status).toBe(200);
    return (JSON.parse(res.body.toString()) as { calls: number }).calls;
  };

  const canary = async (target: Target = unix) => {
    const res = await uwsgiRequest(target, GET('/canary?ok=1'));
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ url: '/canary?ok=1' });
  };

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-hostile');
    const config = await writeConfig(dir, {
      mounts: [{ path: '/', app: 'plain.mjs' }],
      limits: LIMITS,
      accessLog: false,
    });
    container = await startContainer(config);
    unix = container.target('uwsgi', 'unix');
    tcp = container.target('uwsgi', 'tcp');
    // Warm both listeners (lazy loggers, first-accept allocations) before the baseline.
    await canary(unix);
    await canary(tcp);
    baselineFds = openFds(container.pid);
  });

  afterEach(async () => {
    if (!container) return;
    await fdsBackTo(container.pid, baselineFds);
  });

  afterAll(async () => {
    try {
      if (container) {
        expect(container.child.exitCode).toBeNull();
        const exit = await container.stop();
        expect(exit).toEqual({ code: 0, signal: null });
        const text = container.stdoutText() + container.stderrText();
        expect(text).not.toMatch(/uncaught|unhandled|FATAL/i);
      }
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  describe.each([['unix'], ['tcp']] as const)('over %s', (kind) => {
    it.each(cases.map((c) => [`${c.id} ${c.name}`, c] as const))('%s', async (_name, c) => {
      const target = kind === 'unix' ? unix : tcp;
      const before = await appCalls();
      const r = await uwsgiExchange(target, c.payload, {
        timeoutMs: 8000,
        ...(c.halfClose ? { halfClose: true } : {}),
      });
      const status = checkOutcome(c, r);
      // /stats itself counts one call.
      const calls = (await appCalls()) - before - 1;
      const want = c.appCalls ?? (status !== undefined && status < 300 ? 1 : 0);
      if (want >= 0) expect(calls, `${c.id} app calls`).toBe(want);
      expect(container.child.exitCode).toBeNull();
      await canary(target);
    });
  });

  it('U17: HTTP on the uwsgi socket is refused and logged as such', async () => {
    const r = await uwsgiExchange(unix, Buffer.from('POST /x HTTP/1.1\r\nHost: y\r\n\r\n'), {
      halfClose: true,
    });
    expect(r.data.length, describeResult(r)).toBe(0);
    await container.waitForLog((rec) => JSON.stringify(rec).includes('HTTP sent to uwsgi socket'));
    await canary();
  });

  it('U19: bytes 0x80-0xFF arrive latin1-exact', async () => {
    const path = `/bytes/${String.fromCharCode(...Array.from({ length: 128 }, (_, i) => 0x80 + i))}`;
    const res = await uwsgiRequest(unix, GET(path));
    expect(res.status).toBe(200);
    const echo = JSON.parse(res.body.toString()) as { url: string };
    expect(echo.url).toBe(path);
    expect(echo.url.length).toBe(path.length);
  });

  it('U26: every split of a POST yields the same request', async () => {
    const body = pattern(300, 5);
    const packet = encodeRequest(nginxLikeVars('POST', '/split', [], '300'), body);
    for (let at = 1; at < packet.length; at += 7) {
      const r = await uwsgiExchange(unix, [packet.subarray(0, at), packet.subarray(at)]);
      const res = parseHttpResponse(r.data);
      expect(res?.status, `split at ${at}`).toBe(200);
      const echo = JSON.parse(res!.body.toString()) as { bodySha256: string; url: string };
      expect(echo).toMatchObject({ url: '/split', bodySha256: sha256(body) });
    }
  });

  it('U28: a slow drip is closed at the total header deadline, not per read', async () => {
    const packet = encodeRequest(GET());
    let timer: NodeJS.Timeout | undefined;
    const r = await uwsgiExchange(unix, [], {
      timeoutMs: 8000,
      onConnected: (socket) => {
        let i = 0;
        // One byte every 100 ms: each read is well inside any idle timeout, the total is not.
        timer = setInterval(() => {
          if (i < packet.length && !socket.destroyed) socket.write(packet.subarray(i, ++i));
        }, 100);
      },
    });
    clearInterval(timer);
    expect(r.outcome, describeResult(r)).not.toBe('timeout');
    expect(r.data.length).toBe(0);
    expect(r.ms).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS * 0.8);
    expect(r.ms).toBeLessThan(HEADER_TIMEOUT_MS + 2500);
    await canary();
  });

  it('U29: 300 idle connections do not block a canary and are all closed at the deadline', async () => {
    const sockets = await Promise.all(
      Array.from(
        { length: 300 },
        (_, i) =>
          new Promise<{ closed: Promise<void> }>((resolve, reject) => {
            const s = connect(i % 2 ? unix : tcp);
            const closed = new Promise<void>((done) => s.once('close', () => done()));
            s.once('connect', () => resolve({ closed }));
            s.once('error', (err: NodeJS.ErrnoException) => {
              if (err.code !== 'ECONNRESET') reject(err);
            });
            s.resume();
          }),
      ),
    );
    await canary(unix);
    await canary(tcp);
    // All idle connections are closed by the server at the header deadline.
    await Promise.all(sockets.map((s) => s.closed));
    await canary(unix);
  });

  it('U30: a front end that resets while the app streams leaves the container healthy', async () => {
    const before = await uwsgiRequest(unix, GET('/stats'));
    const aborted0 = (JSON.parse(before.body.toString()) as { slowAborted: number }).slowAborted;
    await new Promise<void>((resolve, reject) => {
      const s = connect(unix);
      s.once('connect', () => s.write(encodeRequest(GET('/slow'))));
      s.once('data', () => {
        // On a unix socket destroy() is the abrupt close (resetAndDestroy is TCP-only).
        s.destroy();
        resolve();
      });
      s.once('error', reject);
    });
    await pollUntil(
      async () => {
        const r = await uwsgiRequest(unix, GET('/stats'));
        return (JSON.parse(r.body.toString()) as { slowAborted: number }).slowAborted > aborted0;
      },
      { what: 'the app to see the abort' },
    );
    await canary();
  });

  it('U32: 300 seeded random byte strings: only REJ or 400, canary fine', async () => {
    let x = 0x2545f491;
    const next = () => {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      return x;
    };
    for (let i = 0; i < 300; i++) {
      const len = 1 + (next() % 200);
      const bytes = Buffer.alloc(len);
      for (let j = 0; j < len; j++) bytes[j] = next() & 0xff;
      // Keep datasize within reach so some inputs parse as far as the vars.
      if (i % 2 === 0 && len >= 4) {
        bytes[0] = 0;
        bytes.writeUInt16LE(Math.max(0, len - 4), 1);
      }
      const r = await uwsgiExchange(unix, bytes, { halfClose: true, timeoutMs: 8000 });
      expect(r.outcome, `input ${i}: ${describeResult(r)}`).not.toBe('timeout');
      if (r.data.length > 0) {
        expect([400, 501], `input ${i}: ${describeResult(r)}`).toContain(
          parseHttpResponse(r.data)?.status,
        );
      }
    }
    await canary();
  });
});
