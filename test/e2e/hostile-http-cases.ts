/**
 * The rows of hostile-http.test.ts: RELIABILITY.md section 1.2 (H01-H15) and the issue-12 cases
 * (I12) as raw HTTP bytes, with what the built container's HTTP listener must answer.
 */
import { expect } from 'vitest';

export const HEADER_TIMEOUT_MS = 1000;
export const BODY_TIMEOUT_MS = 1000;
/** node:http checks its head deadline every second (connectionsCheckingInterval). */
const CHECK_INTERVAL_MS = 1000;
/** Every case that is not a deadline case must be answered well inside the shortest one. */
export const PROMPT_MS = 0.9 * Math.min(HEADER_TIMEOUT_MS, BODY_TIMEOUT_MS);
export const MAX_VARS = 100;
export const LIMITS = {
  maxVars: MAX_VARS,
  maxBodySize: 1024,
  headerTimeoutMs: HEADER_TIMEOUT_MS,
  bodyTimeoutMs: BODY_TIMEOUT_MS,
  requestTimeoutMs: 10_000,
};

export interface HttpCase {
  readonly id: string;
  readonly name: string;
  readonly payload: string | readonly string[];
  /** Statuses allowed; `closed`: the connection ends without a response byte. */
  readonly expect: readonly number[] | 'closed';
  /** App calls the case must cause (default: 1 for a 2xx, else 0). */
  readonly appCalls?: number;
  /** Deadline cases: the answer must come no earlier than this and no later than `maxMs`. */
  readonly minMs?: number;
  readonly maxMs?: number;
  /** The answer must not start with `100 Continue`. */
  readonly noContinue?: boolean;
  readonly check?: (body: Buffer) => void;
}

export const H = 'Host: a\r\n';
const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
export const CLOSE = 'Connection: close\r\n';
const POST = `POST /app/echo HTTP/1.1\r\n${H}`;
const CHUNKED = `${POST}Transfer-Encoding: chunked\r\n`;
const ok = (extra = '') => `GET /app/canary HTTP/1.1\r\n${H}${extra}${CLOSE}\r\n`;

export const cases: HttpCase[] = [
  { id: 'H00', name: 'well-formed request', payload: ok(), expect: [200] },
  {
    id: 'H01',
    name: 'Content-Length + Transfer-Encoding: chunked',
    payload: `${POST}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    expect: [400],
  },
  ...[
    [
      'two TE headers, chunked + chunked-false',
      'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked-false\r\n',
    ],
    ['TE continued on the next line', 'Transfer-Encoding: chunked\r\n , identity\r\n'],
    ['TE xchunked', 'Transfer-Encoding: xchunked\r\n'],
    ['TE chunked, identity', 'Transfer-Encoding: chunked, identity\r\n'],
  ].map(
    ([what, te]): HttpCase => ({
      id: 'H02',
      name: what as string,
      payload: `${POST}${te}\r\n5\r\nhello\r\n0\r\n\r\nGET /app/smuggled HTTP/1.1\r\n${H}\r\n`,
      expect: [400],
    }),
  ),
  {
    id: 'H02',
    name: 'chunked over HTTP/1.0',
    payload: `POST /app/echo HTTP/1.0\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    expect: [400],
  },
  ...['41, 42', '-1', '+5', '18446744073709551616', 'blah'].map(
    (cl): HttpCase => ({
      id: 'H03',
      name: `Content-Length ${JSON.stringify(cl)}`,
      payload: `${POST}Content-Length: ${cl}\r\n\r\nhello`,
      expect: [400],
    }),
  ),
  {
    id: 'H03',
    name: 'two differing Content-Length',
    payload: `${POST}Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!`,
    expect: [400],
  },
  {
    id: 'H04',
    name: 'Content-Length : 5 (space before the colon)',
    payload: `${POST}Content-Length : 5\r\n\r\nhello`,
    expect: [400],
  },
  ...[
    ['bare LF after the request line', `GET /app/canary HTTP/1.1\n${H}${CLOSE}\r\n`],
    ['bare CR in a header line', `GET /app/canary HTTP/1.1\r\nHost: a\rX: y\r\n${CLOSE}\r\n`],
    ['CR-only line ends', 'GET /app/canary HTTP/1.1\rHost: a\rConnection: close\r\r'],
  ].map(
    ([what, payload]): HttpCase => ({
      id: 'H05',
      name: what as string,
      payload: payload as string,
      expect: [400],
    }),
  ),
  ...[
    ['chunk extension over 16 KiB', `5;${'a'.repeat(20_000)}\r\nhello\r\n0\r\n\r\n`, 413],
    ['chunk size +5', '+5\r\nhello\r\n0\r\n\r\n', 400],
    ['chunk size -5', '-5\r\nhello\r\n0\r\n\r\n', 400],
    ['bad chunk size', 'zz\r\nhello\r\n0\r\n\r\n', 400],
    ['chunk data longer than its size', '2\r\nhello\r\n0\r\n\r\n', 400],
    ['missing CRLF after the chunk data', '5\r\nhello0\r\n\r\n', 400],
    ['missing final CRLF', '5\r\nhello\r\n0\r\n\rX', 400],
    ['data after the last chunk', '5\r\nhello\r\n0\r\n\r\nGARBAGE\r\n\r\n', 400],
  ].map(
    ([what, body, status]): HttpCase => ({
      id: 'H06',
      name: `${what as string}: never reaches the app`,
      payload: `${CHUNKED}\r\n${body as string}`,
      expect: [status as number],
    }),
  ),
  {
    id: 'H07',
    name: 'head over maxHeaderSize (16 KiB)',
    payload: ok(`X-Big: ${'b'.repeat(17 * 1024)}\r\n`),
    expect: [431],
  },
  {
    id: 'H07',
    name: `${MAX_VARS * 2} headers over maxVars ${MAX_VARS}: the excess dropped (Node 20), 431 (Node 24)`,
    payload: ok(Array.from({ length: MAX_VARS * 2 }, (_, i) => `X-${i}: v\r\n`).join('')),
    // node:http on Node 20 drops the headers over maxHeadersCount; on Node 24 it answers 431.
    expect: NODE_MAJOR >= 24 ? [431] : [200],
    check: (body) => {
      if (NODE_MAJOR >= 24) return;
      const echo = JSON.parse(body.toString()) as { rawHeaders: string[] };
      // node:http stops keeping headers once maxHeadersCount is reached, checked per batch of
      // 32 that llhttp flushes (_http_common.js parserOnHeaders): the bound is that coarse.
      const kept = echo.rawHeaders.length / 2;
      expect(kept).toBeGreaterThanOrEqual(MAX_VARS);
      expect(kept).toBeLessThanOrEqual(MAX_VARS + 32);
    },
  },
  {
    id: 'H08',
    name: 'HTTP/1.1 without Host',
    payload: `GET /app/canary HTTP/1.1\r\n${CLOSE}\r\n`,
    expect: [400],
  },
  { id: 'H08', name: 'two Host headers', payload: ok('Host: b\r\n'), expect: [400] },
  {
    id: 'H09',
    name: 'header name with _ (no CGI mapping on HTTP)',
    payload: ok('X_Under: 1\r\n'),
    expect: [200],
  },
  {
    id: 'H09',
    name: 'header name with a non-token char',
    payload: ok('X@Y: 1\r\n'),
    expect: [400],
  },
  { id: 'H10', name: 'obs-fold', payload: ok('X-A: 1\r\n  folded\r\n'), expect: [400] },
  { id: 'H10', name: 'NUL in a header value', payload: ok('X-A: 1\u00002\r\n'), expect: [400] },
  {
    id: 'H10',
    name: 'CTL (0x01) in a header value',
    payload: ok('X-A: 1\u00012\r\n'),
    expect: [400],
  },
  {
    id: 'H11',
    name: 'Expect: 100-continue over maxBodySize: 413 without 100, connection closed',
    payload: `${POST}Expect: 100-continue\r\nContent-Length: 2048\r\n\r\n`,
    expect: [413],
    noContinue: true,
  },
  {
    id: 'H11',
    name: 'Expect: 100-continue to a path no mount serves: 404 without 100, connection closed',
    payload: `POST /nowhere HTTP/1.1\r\n${H}Expect: 100-continue\r\nContent-Length: 2\r\n\r\n`,
    expect: [404],
    noContinue: true,
  },
  {
    id: 'H11',
    name: 'Expect: foo: 417, connection closed',
    payload: `${POST}Expect: foo\r\nContent-Length: 2\r\n\r\n`,
    expect: [417],
  },
  {
    id: 'H12',
    name: 'slow head: 408 at headerTimeoutMs',
    payload: `GET /app/canary HTTP/1.1\r\n${H}`,
    expect: [408],
    minMs: HEADER_TIMEOUT_MS * 0.8,
    maxMs: HEADER_TIMEOUT_MS + CHECK_INTERVAL_MS + 1500,
  },
  {
    id: 'H12',
    name: 'slow body (Content-Length): 408 at bodyTimeoutMs after the head',
    payload: `${POST}Content-Length: 10\r\n\r\n01234`,
    expect: [408],
    appCalls: 1,
    minMs: BODY_TIMEOUT_MS * 0.8,
    maxMs: BODY_TIMEOUT_MS + 1500,
  },
  {
    id: 'H12',
    name: 'slow body (chunked, one chunk sent): 408 at bodyTimeoutMs after the head',
    payload: `${CHUNKED}\r\n5\r\nhello\r\n`,
    expect: [408],
    appCalls: 1,
    minMs: BODY_TIMEOUT_MS * 0.8,
    maxMs: BODY_TIMEOUT_MS + 1500,
  },
  {
    id: 'H12',
    name: 'slow body (chunked, no byte sent): 408 at bodyTimeoutMs, never dispatched',
    payload: `${CHUNKED}\r\n`,
    expect: [408],
    minMs: BODY_TIMEOUT_MS * 0.8,
    maxMs: BODY_TIMEOUT_MS + 1500,
  },
  {
    id: 'H14',
    name: 'PRI * HTTP/2.0 (h2 preface)',
    payload: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    expect: [400, 505],
  },
  {
    id: 'H14',
    name: 'WebSocket handshake without a handler',
    payload: ok(
      'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n',
    ),
    expect: [400],
  },
  { id: 'H14', name: 'CONNECT', payload: `CONNECT a:443 HTTP/1.1\r\n${H}\r\n`, expect: 'closed' },
  {
    id: 'H15',
    name: 'absolute-form target: routed on its path',
    payload: `GET http://evil.example/app/canary HTTP/1.1\r\n${H}${CLOSE}\r\n`,
    expect: [200],
  },
  {
    id: 'H15',
    name: 'authority-form target outside CONNECT',
    payload: `GET a:443 HTTP/1.1\r\n${H}${CLOSE}\r\n`,
    expect: [400, 404],
  },
  {
    id: 'H15',
    name: 'asterisk target outside OPTIONS',
    payload: `GET * HTTP/1.1\r\n${H}${CLOSE}\r\n`,
    expect: [400, 404],
  },
  { id: 'I12', name: 'HTTP/0.9 request line', payload: 'GET /app/canary\r\n\r\n', expect: [400] },
  {
    id: 'I12',
    name: 'HTTP/2.0 request line',
    payload: `GET /app/canary HTTP/2.0\r\n${H}\r\n`,
    expect: [505],
  },
  // RFC 9112 section 3 grammar (`strictRequestLine`, default true); llhttp alone skips them.
  {
    id: 'I12',
    name: 'double space after the method',
    payload: ok().replace('GET ', 'GET  '),
    expect: [400],
  },
  {
    id: 'I12',
    name: 'double space after the target',
    payload: ok().replace(' HTTP/', '  HTTP/'),
    expect: [400],
  },
];
