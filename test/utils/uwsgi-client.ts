/**
 * A raw uwsgi client for e2e tests: hand-built packets (its own encoder, independent of the
 * codec under test, so malformed packets are easy), one exchange per connection, the raw
 * response bytes, and how the connection ended.
 */
import type { Socket } from 'node:net';
import { connect, parseTarget, type Target } from './net.ts';

export type Vars = Record<string, string> | ReadonlyArray<readonly [string, string]>;

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
}

/** The vars block alone (key/value strings as latin1 bytes). No limit checks: tests need overruns. */
export function encodeVarsBlock(vars: Vars): Buffer {
  const pairs = Array.isArray(vars) ? vars : Object.entries(vars);
  const parts: Buffer[] = [];
  for (const [k, v] of pairs as ReadonlyArray<readonly [string, string]>) {
    const kb = Buffer.from(k, 'latin1');
    const vb = Buffer.from(v, 'latin1');
    parts.push(u16(kb.length), kb, u16(vb.length), vb);
  }
  return Buffer.concat(parts);
}

/** Header (modifier1, datasize u16 LE, modifier2) + vars block + body. */
export function encodeRequest(
  vars: Vars,
  body: Uint8Array = Buffer.alloc(0),
  options: { modifier1?: number; modifier2?: number } = {},
): Buffer {
  const block = encodeVarsBlock(vars);
  if (block.length > 0xffff) throw new Error(`vars block ${block.length} > 65535`);
  const header = Buffer.from([options.modifier1 ?? 0, 0, 0, options.modifier2 ?? 0]);
  header.writeUInt16LE(block.length, 1);
  return Buffer.concat([header, block, body]);
}

/** The vars nginx's stock uwsgi_params would send for a simple request (PROTOCOL.md section 5). */
export function nginxLikeVars(
  method: string,
  uri: string,
  extra: ReadonlyArray<readonly [string, string]> = [],
  contentLength = '',
): Array<readonly [string, string]> {
  const q = uri.indexOf('?');
  const path = q < 0 ? uri : uri.slice(0, q);
  return [
    ['QUERY_STRING', q < 0 ? '' : uri.slice(q + 1)],
    ['REQUEST_METHOD', method],
    ['CONTENT_TYPE', ''],
    ['CONTENT_LENGTH', contentLength],
    ['REQUEST_URI', uri],
    ['PATH_INFO', decodeURIComponent(path)],
    ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
    ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ['REQUEST_SCHEME', 'http'],
    ['REMOTE_ADDR', '127.0.0.1'],
    ['REMOTE_PORT', '50000'],
    ['SERVER_PORT', '80'],
    ['SERVER_NAME', 'localhost'],
    ['HTTP_HOST', 'localhost'],
    ...extra,
  ];
}

export type ExchangeOutcome = 'closed' | 'reset' | 'timeout';

export interface ExchangeResult {
  readonly data: Buffer;
  /** `closed`: the server ended the connection (FIN); `reset`: ECONNRESET/EPIPE; `timeout`: still open at `timeoutMs`. */
  readonly outcome: ExchangeOutcome;
  readonly error?: string;
  readonly ms: number;
}

export interface ExchangeOptions {
  /** Give up (and destroy the socket) after this long; default 5000. */
  readonly timeoutMs?: number;
  /** Half-close (FIN) after writing (U31). Default false: a real front end keeps its write side open. */
  readonly halfClose?: boolean;
  /** Called with the socket once connected, after the payload was written. */
  readonly onConnected?: (socket: Socket) => void;
}

/**
 * Connects, writes each payload piece as its own write, and collects everything the server
 * sends until it closes the connection (or `timeoutMs`).
 */
export function uwsgiExchange(
  target: Target | string,
  payload: Uint8Array | readonly Uint8Array[],
  options: ExchangeOptions = {},
): Promise<ExchangeResult> {
  const t = typeof target === 'string' ? parseTarget(target) : target;
  const started = performance.now();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const socket = connect(t);
    let settled = false;
    const finish = (outcome: ExchangeOutcome, error?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const ms = performance.now() - started;
      const data = Buffer.concat(chunks);
      resolve(error === undefined ? { data, outcome, ms } : { data, outcome, error, ms });
    };
    const timer = setTimeout(() => finish('timeout'), options.timeoutMs ?? 5000);
    socket.on('connect', () => {
      const pieces = payload instanceof Uint8Array ? [payload] : payload;
      for (const p of pieces) socket.write(p);
      if (options.halfClose) socket.end();
      options.onConnected?.(socket);
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // A reset after the response arrived still delivered the response: report both.
      finish(err.code === 'ECONNREFUSED' ? 'closed' : 'reset', err.code ?? err.message);
    });
  });
}

export interface HttpResponse {
  readonly status: number;
  readonly reason: string;
  readonly httpVersion: string;
  readonly headers: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
  /** Value of the first header with this name (case-insensitive). */
  header(name: string): string | undefined;
  /** All values of a header, in order. */
  headerAll(name: string): string[];
}

/**
 * Parses a raw HTTP/1.x response as a uwsgi backend writes it (status line, CRLF headers,
 * close-delimited or Content-Length body). Returns undefined when no complete head arrived.
 */
export function parseHttpResponse(data: Buffer): HttpResponse | undefined {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = data.toString('latin1', 0, end).split('\r\n');
  const m = /^(HTTP\/\d\.\d) (\d{3})(?: (.*))?$/.exec(lines[0]!);
  if (!m) throw new Error(`bad status line: ${JSON.stringify(lines[0])}`);
  const headers = lines.slice(1).map((l) => {
    const i = l.indexOf(':');
    if (i <= 0) throw new Error(`bad header line: ${JSON.stringify(l)}`);
    return [l.slice(0, i), l.slice(i + 1).trim()] as const;
  });
  const all = (name: string) =>
    headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);
  return {
    httpVersion: m[1]!,
    status: Number(m[2]),
    reason: m[3] ?? '',
    headers,
    body: data.subarray(end + 4),
    header: (name) => all(name)[0],
    headerAll: all,
  };
}

/** One request over uwsgi; throws unless a full response head came back. */
export async function uwsgiRequest(
  target: Target | string,
  vars: Vars,
  body?: Uint8Array,
  options?: ExchangeOptions,
): Promise<HttpResponse> {
  const r = await uwsgiExchange(target, encodeRequest(vars, body), options);
  const res = parseHttpResponse(r.data);
  if (!res)
    throw new Error(`no HTTP response (${r.outcome} ${r.error ?? ''}, ${r.data.length} bytes)`);
  return res;
}
