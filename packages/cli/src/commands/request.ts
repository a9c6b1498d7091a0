/**
 * `uwsgi-ts request ADDRESS [METHOD] PATH`: one request over the uwsgi protocol, sent the way
 * nginx sends it (the vars of its stock `uwsgi_params`, then one `HTTP_*` var per header, then
 * the body), for poking at a container or any uwsgi application server without a front end.
 *
 * uwsgi responses carry no framing (PROTOCOL.md section 1): a raw HTTP/1.x head, the body, then
 * the server closes. So the body is streamed until EOF, and a `Content-Length` that disagrees
 * with what arrived is reported (a short body means the server gave up mid-response).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { resolve } from 'node:path';
import {
  encodePacket,
  type ResponseHead,
  ResponseHeadParser,
  requestToVars,
} from '@uwsgi-ts/codec';
import { CliError, usageError } from '../errors.ts';
import { type CliIo, write } from '../io.ts';

export interface RequestOptions {
  readonly address: string;
  readonly method?: string;
  readonly path: string;
  /** `Name: value` strings as given to -H. */
  readonly headers: readonly string[];
  readonly data?: string;
  readonly dataFile?: string;
  readonly host?: string;
  readonly include: boolean;
  readonly raw: boolean;
  /** Total deadline in ms; 0 = none. */
  readonly timeoutMs: number;
  /** Sent as User-Agent unless -H gives one. */
  readonly userAgent: string;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

type Target = { readonly path: string } | { readonly host: string; readonly port: number };

/** Same forms as a listener address: unix path (with `/` or `unix:`), `host:port`, `[v6]:port`. */
export function parseTarget(address: string, cwd: string): Target {
  if (address.startsWith('unix:')) return { path: resolve(cwd, address.slice(5)) };
  if (address.includes('/')) return { path: resolve(cwd, address) };
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) {
    if (!address.includes(':')) return { path: resolve(cwd, address) };
    throw usageError(
      `invalid address "${address}": use host:port, [v6]:port or a unix socket path`,
      'request',
    );
  }
  return { host: match[1] ?? match[2] ?? '', port };
}

function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(':');
  const name = colon < 0 ? '' : text.slice(0, colon).trim();
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
    throw usageError(`invalid header "${text}": expected 'Name: value'`, 'request');
  }
  return [name, text.slice(colon + 1).trim()];
}

export async function request(options: RequestOptions, io: CliIo): Promise<number> {
  const target = parseTarget(options.address, io.cwd);
  if (!options.path.startsWith('/')) {
    throw usageError(`PATH must start with "/" (got "${options.path}")`, 'request');
  }
  if (options.data !== undefined && options.dataFile !== undefined) {
    throw usageError('give the body with either --data or --data-file, not both', 'request');
  }
  const headers = options.headers.map(parseHeader);
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name);

  let body: Uint8Array | string | undefined;
  let bodyLength = 0;
  if (options.data !== undefined) {
    body = Buffer.from(options.data, 'utf8');
    bodyLength = body.byteLength;
  } else if (options.dataFile !== undefined) {
    body = resolve(io.cwd, options.dataFile);
    try {
      bodyLength = (await stat(body)).size;
    } catch (err) {
      await write(
        io.stderr,
        `uwsgi-ts request: cannot read ${options.dataFile}: ${(err as Error).message}\n`,
      );
      return 1;
    }
  }
  const method = options.method ?? (body === undefined ? 'GET' : 'POST');
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(method)) {
    throw usageError(`invalid method "${method}"`, 'request');
  }

  // What curl puts in front of nginx: Host first, then its defaults, then the user's headers.
  const serverName = options.host?.replace(/:\d+$/, '') ?? 'localhost';
  const all: Array<[string, string]> = [];
  if (!has('host')) all.push(['Host', options.host ?? 'localhost']);
  if (!has('user-agent')) all.push(['User-Agent', options.userAgent]);
  if (!has('accept')) all.push(['Accept', '*/*']);
  all.push(...headers);
  if (body !== undefined && !has('content-length'))
    all.push(['Content-Length', String(bodyLength)]);

  let packet: Uint8Array;
  try {
    packet = encodePacket(
      requestToVars({
        method,
        url: options.path,
        headers: all,
        remoteAddress: '127.0.0.1',
        serverName,
        serverPort: 'port' in target ? target.port : 80,
      }),
    );
  } catch (err) {
    // The codec refuses what nginx would answer 400 to (bad target, CR/LF in a value...).
    throw usageError((err as Error).message, 'request');
  }

  const socket = 'path' in target ? connect({ path: target.path }) : connect(target);
  try {
    const head = await exchange(socket, packet, body, options, io);
    if (head.statusCode >= 200 && head.statusCode < 400) return 0;
    // Exit 1 says "not 2xx/3xx"; stderr says which, and what a 400 usually means here.
    const line = `${head.statusCode}${head.statusMessage === '' ? '' : ` ${head.statusMessage}`}`;
    // An HTTP server's refusal of a packet it cannot parse is a bare 400 (Connection: close,
    // nothing else); an app's own 400 carries headers of its own.
    const bare = head.headers.every(([name]) => name.toLowerCase() === 'connection');
    const hint =
      head.statusCode === 400 && bare
        ? ' (an HTTP server answers a uwsgi packet with 400: is this a uwsgi listener?)'
        : '';
    await write(io.stderr, `uwsgi-ts request: the server answered ${line}${hint}\n`);
    return 1;
  } catch (err) {
    await write(io.stderr, `uwsgi-ts request: ${(err as Error).message}\n`);
    return 1;
  } finally {
    socket.destroy();
  }
}

/** Sends the packet and body, streams the response; resolves with the head at EOF. */
function exchange(
  socket: Socket,
  packet: Uint8Array,
  body: Uint8Array | string | undefined,
  options: RequestOptions,
  io: CliIo,
): Promise<ResponseHead> {
  return new Promise<ResponseHead>((resolvePromise, reject) => {
    const parser = new ResponseHeadParser();
    let head: ResponseHead | undefined;
    let received = 0;
    /** The first bytes that came back, for the error when they are not a response. */
    let first = Buffer.alloc(0);
    let bodyBytes = 0;
    let settled = false;
    const cleanups: Array<() => void> = [];
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      for (const cleanup of cleanups) cleanup();
      if (err !== undefined) reject(err);
      else if (head === undefined) {
        reject(
          requestFailed(
            `the server closed the connection after ${received} bytes, before a complete response head${
              received === 0
                ? ' (is this a uwsgi listener? a uwsgi server answers every packet)'
                : `; it sent ${quoteBytes(first)}`
            }`,
          ),
        );
      } else {
        const declared = contentLength(head);
        const bodiless =
          options.method === 'HEAD' || head.statusCode === 204 || head.statusCode === 304;
        if (declared !== undefined && !bodiless && declared !== bodyBytes) {
          const what =
            bodyBytes < declared ? 'truncated response' : 'response longer than declared';
          reject(
            requestFailed(
              `${what}: Content-Length is ${declared}, received ${bodyBytes} body bytes`,
            ),
          );
        } else {
          resolvePromise(head);
        }
      }
    };

    if (options.timeoutMs > 0) {
      const timer = setTimeout(
        () => finish(requestFailed(`no complete response within ${options.timeoutMs} ms`)),
        options.timeoutMs,
      );
      cleanups.push(() => clearTimeout(timer));
    }
    if (io.signal !== undefined) {
      const onAbort = () => finish(requestFailed('interrupted'));
      if (io.signal.aborted) onAbort();
      io.signal.addEventListener('abort', onAbort, { once: true });
      cleanups.push(() => io.signal?.removeEventListener('abort', onAbort));
    }

    const out = (chunk: Uint8Array) => {
      if (chunk.byteLength === 0) return;
      // Back-pressure: a slow stdout (a pipe into `less`) pauses the socket, not memory.
      if (!io.stdout.write(chunk)) {
        socket.pause();
        io.stdout.once('drain', () => socket.resume());
      }
    };

    socket.on('connect', () => {
      socket.write(packet);
      if (typeof body === 'string') {
        // Streamed, so a large upload never sits in memory; the socket stays open for the
        // response (front ends never half-close a uwsgi connection).
        const upload = createReadStream(body);
        cleanups.push(() => upload.destroy());
        upload
          .on('error', (err) =>
            finish(requestFailed(`cannot read the body file: ${err.message}`, err)),
          )
          .pipe(socket, { end: false });
      } else if (body !== undefined) {
        socket.write(body);
      }
    });
    socket.on('data', (chunk: Buffer) => {
      received += chunk.byteLength;
      if (first.byteLength < QUOTED_BYTES) {
        first = Buffer.concat([first, chunk.subarray(0, QUOTED_BYTES - first.byteLength)]);
      }
      if (options.raw) out(chunk);
      if (head !== undefined) {
        bodyBytes += chunk.byteLength;
        if (!options.raw) out(chunk);
        return;
      }
      let rest: Uint8Array = chunk;
      try {
        for (;;) {
          const parsed = parser.push(rest);
          if (parsed === undefined) return;
          rest = rest.subarray(parsed.bodyOffset);
          // An interim 1xx (100 Continue, 103 Early Hints) precedes the real head; 101 is final.
          if (parsed.statusCode >= 100 && parsed.statusCode < 200 && parsed.statusCode !== 101) {
            if (options.include) void write(io.stderr, renderHead(parsed));
            parser.reset();
            continue;
          }
          head = parsed;
          break;
        }
      } catch (err) {
        finish(
          requestFailed(
            `malformed response head: ${(err as Error).message}; it sent ${quoteBytes(first)}`,
            err,
          ),
        );
        return;
      }
      if (options.include) void write(io.stderr, renderHead(head));
      bodyBytes += rest.byteLength;
      if (!options.raw) out(rest);
    });
    socket.on('end', () => finish(undefined));
    socket.on('close', () => finish(undefined));
    socket.on('error', (err) => finish(requestFailed(err.message, err)));
  });
}

/** How many of the first bytes an error quotes. */
const QUOTED_BYTES = 64;

/** `"SSH-2.0-OpenSSH\r\n"`: the bytes as a JSON string, control and non-ASCII bytes escaped. */
function quoteBytes(bytes: Buffer): string {
  const named: Record<number, string> = { 9: '\\t', 10: '\\n', 13: '\\r', 34: '\\"', 92: '\\\\' };
  const text = [...bytes]
    .map(
      (b) =>
        named[b] ??
        (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`),
    )
    .join('');
  return `"${text}"${bytes.byteLength === QUOTED_BYTES ? '...' : ''}`;
}

/** A failed exchange: `request()` prints its message and exits 1 (never a usage error). */
function requestFailed(message: string, cause?: unknown): CliError {
  return new CliError(
    'UWSGI_ERR_CLI_REQUEST_FAILED',
    message,
    cause === undefined ? { command: 'request' } : { command: 'request', cause },
  );
}

function contentLength(head: ResponseHead): number | undefined {
  const header = head.headers.find(([name]) => name.toLowerCase() === 'content-length');
  return header !== undefined && /^\d+$/.test(header[1]) ? Number(header[1]) : undefined;
}

function renderHead(head: ResponseHead): string {
  const version = head.httpVersion === '' ? '1.1' : head.httpVersion;
  const status = `HTTP/${version} ${head.statusCode}${head.statusMessage === '' ? '' : ` ${head.statusMessage}`}`;
  return `${[status, ...head.headers.map(([n, v]) => `${n}: ${v}`)].join('\n')}\n\n`;
}
