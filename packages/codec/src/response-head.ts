/**
 * Parses the head of the raw HTTP/1.x response an application writes on a uwsgi connection
 * (PROTOCOL.md section 1: responses have no uwsgi framing). Two forms, as nginx reads them:
 *
 * - a status line `HTTP/d.d NNN reason` (reason optional), then header lines;
 * - CGI form: header lines only; `Status: NNN reason` gives the status (and is removed), else
 *   a `Location` header means 302, else 200.
 *
 * Stricter than nginx where nginx's leniency hides bugs: a first line that starts with `HTTP/`
 * but is not a valid status line is an error (nginx would skip it and answer 200), header names
 * must be tokens, values must not hold NUL or a bare CR, and obs-fold continuation lines are
 * refused (RFC 9112 section 5.2). Lines end in CRLF or a bare LF (RFC 9112 section 2.2 lets a
 * recipient accept LF; nginx does).
 */

import { decodeLatin1, hasCrLfNul, hasCtlExceptHtab, trimOws } from './bytes.ts';
import { DEFAULT_MAX_HEAD_SIZE, DEFAULT_MAX_HEADERS } from './constants.ts';
import { UwsgiError } from './errors.ts';
import { checkLimit } from './vars.ts';

/** A parsed response head. */
export interface ResponseHead {
  readonly statusCode: number;
  /** Reason phrase as sent; `''` when none (always `''` for a defaulted CGI status). */
  readonly statusMessage: string;
  /** `'1.1'` for `HTTP/1.1`; `''` in CGI form (no status line). */
  readonly httpVersion: string;
  /** Header lines in order, names as sent (compare case-insensitively), values trimmed of OWS. */
  readonly headers: Array<[string, string]>;
  /** Index, within the chunk that completed the head, of the first body byte. */
  readonly bodyOffset: number;
}

/** Options of `ResponseHeadParser` and `parseResponseHead`. */
export interface ResponseHeadOptions {
  /** Most bytes from the first byte to the end of the blank line. Default 65536. */
  readonly maxHeadSize?: number;
  /** Most header lines. Default 1000. */
  readonly maxHeaders?: number;
}

/** `failed` holds until `reset()`. */
export type ResponseHeadState = 'head' | 'done' | 'failed';

const LF = 0x0a;
const CR = 0x0d;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const STATUS_LINE = /^HTTP\/([0-9])\.([0-9]) ([0-9]{3})(?: (.*))?$/s;
const CGI_STATUS = /^([0-9]{3})(?:[ \t]+(.*))?$/s;

function malformed(message: string, offset: number): UwsgiError {
  return new UwsgiError('UWSGI_ERR_RESPONSE_MALFORMED', message, { offset });
}

/**
 * Incremental response head parser: push reads until it returns the head.
 *
 * After the head is returned the parser is `done` and ignores further input (the body is the
 * caller's: `chunk.subarray(head.bodyOffset)`). For a 1xx head, `reset()` and push the rest.
 */
export class ResponseHeadParser {
  readonly #maxHeadSize: number;
  readonly #maxHeaders: number;
  #state: ResponseHeadState = 'head';
  #error: unknown;
  /** Head bytes of earlier chunks, when the head spans reads. */
  #buf: Uint8Array | undefined;
  #len = 0;
  /** Stream offset where the current line starts. */
  #lineStart = 0;
  #lines = 0;

  /** @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID` for a limit that is not a non-negative integer. */
  constructor(options: ResponseHeadOptions = {}) {
    this.#maxHeadSize = checkLimit('maxHeadSize', options.maxHeadSize, DEFAULT_MAX_HEAD_SIZE);
    this.#maxHeaders = checkLimit('maxHeaders', options.maxHeaders, DEFAULT_MAX_HEADERS);
  }

  get state(): ResponseHeadState {
    return this.#state;
  }

  /** Head bytes seen so far (the whole head once `done`). */
  get bytesConsumed(): number {
    return this.#len;
  }

  reset(): void {
    this.#state = 'head';
    this.#error = undefined;
    this.#buf = undefined;
    this.#len = 0;
    this.#lineStart = 0;
    this.#lines = 0;
  }

  /**
   * Feeds bytes; returns the head once its blank line has arrived, else `undefined`.
   *
   * @throws {UwsgiError} `UWSGI_ERR_RESPONSE_MALFORMED`, `UWSGI_ERR_RESPONSE_TOO_LARGE` (head
   * over `maxHeadSize`, checked as bytes arrive, or more than `maxHeaders` lines); the stored
   * error again while `failed`.
   */
  push(chunk: Uint8Array): ResponseHead | undefined {
    if (this.#state === 'failed') throw this.#error;
    if (this.#state === 'done') return undefined;
    try {
      return this.#push(chunk);
    } catch (err) {
      this.#state = 'failed';
      this.#error = err;
      this.#buf = undefined;
      throw err;
    }
  }

  #byteAt(streamPos: number, chunk: Uint8Array): number {
    return streamPos >= this.#len ? chunk[streamPos - this.#len]! : this.#buf![streamPos]!;
  }

  #push(chunk: Uint8Array): ResponseHead | undefined {
    const base = this.#len;
    let from = 0;
    for (;;) {
      const j = chunk.indexOf(LF, from);
      if (j === -1) break;
      const pos = base + j;
      const contentEnd =
        pos > this.#lineStart && this.#byteAt(pos - 1, chunk) === CR ? pos - 1 : pos;
      if (contentEnd === this.#lineStart) {
        const size = pos + 1;
        if (size > this.#maxHeadSize) throw this.#tooLarge();
        let head: Uint8Array;
        if (base === 0) {
          head = chunk.subarray(0, j + 1);
        } else {
          head = new Uint8Array(size);
          head.set(this.#buf!.subarray(0, base));
          head.set(chunk.subarray(0, j + 1), base);
        }
        const parsed = parseHead(head, this.#maxHeaders, j + 1);
        this.#state = 'done';
        this.#buf = undefined;
        this.#len = size;
        return parsed;
      }
      this.#lineStart = pos + 1;
      // The status line plus maxHeaders header lines at most.
      if (++this.#lines > this.#maxHeaders + 1) {
        throw new UwsgiError(
          'UWSGI_ERR_RESPONSE_TOO_LARGE',
          `more than ${this.#maxHeaders} header lines`,
          {
            offset: pos,
          },
        );
      }
      from = j + 1;
    }
    const total = base + chunk.length;
    if (total > this.#maxHeadSize) throw this.#tooLarge();
    if (this.#buf === undefined || this.#buf.length < total) {
      const grown = new Uint8Array(
        Math.min(this.#maxHeadSize, Math.max(total, 2 * (this.#buf?.length ?? 0), 1024)),
      );
      if (this.#buf !== undefined) grown.set(this.#buf.subarray(0, base));
      this.#buf = grown;
    }
    this.#buf.set(chunk, base);
    this.#len = total;
    return undefined;
  }

  #tooLarge(): UwsgiError {
    return new UwsgiError(
      'UWSGI_ERR_RESPONSE_TOO_LARGE',
      `response head exceeds maxHeadSize ${this.#maxHeadSize}`,
      { offset: this.#maxHeadSize },
    );
  }
}

/** Parses a complete head (`bytes` ends with its blank line). */
function parseHead(bytes: Uint8Array, maxHeaders: number, bodyOffset: number): ResponseHead {
  const text = decodeLatin1(bytes);
  const headers: Array<[string, string]> = [];
  let statusCode = 0;
  let statusMessage = '';
  let httpVersion = '';
  let pos = 0;
  let first = true;
  let cgiStatus: string | undefined;
  let cgiStatusOffset = 0;
  let location = false;
  for (;;) {
    const lf = text.indexOf('\n', pos);
    const end = lf > pos && text.charCodeAt(lf - 1) === CR ? lf - 1 : lf;
    const line = text.slice(pos, end);
    const lineOffset = pos;
    pos = lf + 1;
    if (line.length === 0) break;
    const cr = line.indexOf('\r');
    if (cr !== -1) throw malformed('bare CR in the response head', lineOffset + cr);
    if (first) {
      first = false;
      if (line.startsWith('HTTP/')) {
        const m = STATUS_LINE.exec(line);
        if (m === null)
          throw malformed(`bad status line ${JSON.stringify(line.slice(0, 80))}`, lineOffset);
        const reason = m[4] ?? '';
        // A reason phrase is HTAB, SP, VCHAR or obs-text (RFC 9112 section 4).
        if (hasCtlExceptHtab(reason))
          throw malformed('control char in the reason phrase', lineOffset);
        const code = Number(m[3]);
        if (code < 100) throw malformed(`status ${m[3]} is below 100`, lineOffset);
        httpVersion = `${m[1]}.${m[2]}`;
        statusCode = code;
        statusMessage = reason;
        continue;
      }
    }
    const c0 = line.charCodeAt(0);
    if (c0 === 0x20 || c0 === 0x09)
      throw malformed('obs-fold (a header line starting with whitespace)', lineOffset);
    const colon = line.indexOf(':');
    if (colon === -1)
      throw malformed(
        `header line without a colon: ${JSON.stringify(line.slice(0, 80))}`,
        lineOffset,
      );
    const name = line.slice(0, colon);
    if (!TOKEN.test(name))
      throw malformed(
        `header name is not a token: ${JSON.stringify(name.slice(0, 80))}`,
        lineOffset,
      );
    const value = trimOws(line.slice(colon + 1));
    if (hasCrLfNul(value)) throw malformed(`NUL in the value of ${name}`, lineOffset + colon + 1);
    if (headers.length >= maxHeaders) {
      throw new UwsgiError('UWSGI_ERR_RESPONSE_TOO_LARGE', `more than ${maxHeaders} header lines`, {
        offset: lineOffset,
      });
    }
    if (httpVersion === '' && name.length === 6 && name.toLowerCase() === 'status') {
      // CGI form: the status travels as a header and is not passed on.
      if (cgiStatus === undefined) {
        cgiStatus = value;
        cgiStatusOffset = lineOffset;
      }
      continue;
    }
    if (name.length === 8 && name.toLowerCase() === 'location') location = true;
    headers.push([name, value]);
  }
  if (httpVersion === '') {
    if (cgiStatus !== undefined) {
      const m = CGI_STATUS.exec(cgiStatus);
      if (m === null || Number(m[1]) < 100) {
        throw malformed(
          `bad Status header ${JSON.stringify(cgiStatus.slice(0, 80))}`,
          cgiStatusOffset,
        );
      }
      statusCode = Number(m[1]);
      statusMessage = m[2] ?? '';
      if (hasCtlExceptHtab(statusMessage))
        throw malformed('control char in the Status reason', cgiStatusOffset);
    } else {
      // nginx's CGI-style default: a redirect if Location is present, else 200.
      statusCode = location ? 302 : 200;
    }
  }
  return { statusCode, statusMessage, httpVersion, headers, bodyOffset };
}

/**
 * Parses a response head from one buffer (e.g. a whole response read until close).
 * `bodyOffset` is the index of the first body byte in `bytes`.
 *
 * @throws {UwsgiError} `UWSGI_ERR_RESPONSE_MALFORMED` (also when `bytes` ends before the blank
 * line), `UWSGI_ERR_RESPONSE_TOO_LARGE`, `UWSGI_ERR_ARG_INVALID` (options).
 */
export function parseResponseHead(
  bytes: Uint8Array,
  options: ResponseHeadOptions = {},
): ResponseHead {
  const parser = new ResponseHeadParser(options);
  const head = parser.push(bytes);
  if (head === undefined) {
    throw malformed('the response ended before the blank line that ends its head', bytes.length);
  }
  return head;
}
