/** A small node:http client (no keep-alive) for requests through nginx or the HTTP listener. */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';

export interface ClientResponse {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  /** Parsed JSON body (throws if not JSON). */
  json<T = unknown>(): T;
}

export interface ClientRequest {
  readonly method?: string;
  readonly headers?: http.OutgoingHttpHeaders;
  /** Sent with Content-Length; an array of pieces is sent chunked (no Content-Length). */
  readonly body?: Uint8Array | string | readonly Uint8Array[];
  readonly timeoutMs?: number;
}

/**
 * `url` may carry bytes node:http would refuse in a URL object (raw UTF-8 in the path): it is
 * split by hand and the path passed through as-is (latin1 on the wire).
 */
export function request(url: string, req: ClientRequest = {}): Promise<ClientResponse> {
  const m = /^http:\/\/([^/:]+):(\d+)(\/.*)$/.exec(url);
  if (!m) throw new Error(`unsupported url ${url}`);
  return new Promise((resolve, reject) => {
    const chunked = Array.isArray(req.body);
    // Array values go out as repeated header lines (Node joins only Cookie arrays, with "; ").
    const r = http.request({
      host: m[1],
      port: Number(m[2]),
      path: m[3],
      method: req.method ?? 'GET',
      headers: req.headers ?? {},
      agent: false,
    });
    const timer = setTimeout(() => r.destroy(new Error(`timeout ${url}`)), req.timeoutMs ?? 15_000);
    r.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    r.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks);
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body,
          json: <T>() => JSON.parse(body.toString('utf8')) as T,
        });
      });
    });
    if (chunked) {
      for (const piece of req.body as readonly Uint8Array[]) r.write(piece);
      r.end();
    } else if (req.body !== undefined) {
      const b = typeof req.body === 'string' ? Buffer.from(req.body) : (req.body as Uint8Array);
      r.setHeader('content-length', b.length);
      r.end(b);
    } else {
      r.end();
    }
  });
}

export const sha256 = (b: Uint8Array | string): string =>
  createHash('sha256').update(b).digest('hex');

/** Deterministic bytes (no Math.random: failures must reproduce). */
export function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/**
 * Exact request bytes to an HTTP server (nginx), response read until the server closes
 * (send `Connection: close`). For requests node:http cannot produce (repeated Cookie lines).
 */
export function rawHttpExchange(
  port: number,
  bytes: Uint8Array,
  timeoutMs = 10_000,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => s.destroy(new Error('raw HTTP exchange timed out')), timeoutMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** What the fixture apps (test/fixtures/apps, test/fixtures/fronts/vars.mjs) echo back as JSON. */
export interface Echo {
  framework: string;
  method: string;
  url: string;
  originalUrl?: string;
  baseUrl?: string;
  path?: string;
  headers: Record<string, string | string[]>;
  rawHeaders?: string[];
  /** vars.mjs only: the uwsgi vars in packet order. */
  vars?: Array<[string, string]>;
  bodyLength: number;
  bodySha256: string;
}

/** sha256 of the apps' generated body (test/fixtures/apps/shared.mjs `patternByte`). */
export function patternSha(size: number): string {
  const h = createHash('sha256');
  const piece = Buffer.alloc(251 * 256);
  for (let i = 0; i < piece.length; i++) piece[i] = (i * 7 + 13) % 251;
  for (let off = 0; off < size; off += piece.length) {
    h.update(piece.subarray(0, Math.min(piece.length, size - off)));
  }
  return h.digest('hex');
}
