/**
 * The line of an access record (log.ts `accessLog`), cheaper to make than one template of ~20
 * parts. The parts that repeat from one record to the next are joined once and kept while they
 * stay the same: the logger's bindings with the method (`,"pid":..,"method":"GET","url":`), and
 * everything from the mount on (mount, client, listener, `aborted`, `error`, `msg`). A record is
 * then ~10 concatenations, one flattening, and a latin1 copy into the batch when the line is
 * ASCII (nearly always; UTF-8 otherwise). Measured per record with callgrind
 * (bench/README.md "Access records"): 4,916 -> 4,327 instructions. Writing the bytes one by one
 * from JavaScript instead (cached parts as Buffers, digits by hand) cost ~10,000: a JS loop over
 * a Buffer costs tens of instructions a byte, more than V8's string copies.
 *
 * The bytes are those of {@link AccessFormat.line}: the line pino would print for
 * `child({ component: 'access' }).info(record, 'request')`, every string as `JSON.stringify`
 * writes it.
 */
import type { AccessRecord } from './log.ts';

/** A character past ASCII: a string without one has the same latin1 and UTF-8 bytes. */
const NON_ASCII = /[\u0080-\uffff]/;

/** Printable ASCII but `"` and backslash: such a string needs nothing in JSON but its quotes. */
const JSON_PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** `JSON.stringify(value)` for a string, with a cheaper path for plain ASCII. */
export function jsonString(value: string): string {
  return JSON_PLAIN.test(value) ? `"${value}"` : JSON.stringify(value);
}

/**
 * `String(us / 1000)` for a non-negative whole number of microseconds (JSON's own number form:
 * up to three decimals, no trailing zeros), without the double-to-string conversion.
 */
export function formatMicros(us: number): string {
  const whole = Math.floor(us / 1000);
  const frac = us - whole * 1000;
  if (frac === 0) return `${whole}`;
  if (frac % 100 === 0) return `${whole}.${frac / 100}`;
  if (frac % 10 === 0) return `${whole}.${frac < 100 ? '0' : ''}${frac / 10}`;
  return `${whole}.${frac < 10 ? '00' : frac < 100 ? '0' : ''}${frac}`;
}

const orNull = (value: string | null): string => (value === null ? 'null' : jsonString(value));

/** Formats the access records of one logger (its bindings); see the module comment. */
export class AccessFormat {
  /** `,"pid":N...,"component":"access"`: the logger's bindings as pino prints them. */
  readonly #bindings: string;
  #method: string | null | undefined;
  /** Bindings, method and the url's key: `,"pid":..,"method":"GET","url":`. */
  #head = '';
  #headAscii = true;
  #mount: string | null | undefined;
  #peer: string | null | undefined;
  #listener: string | undefined;
  #aborted = false;
  #error: string | null | undefined;
  /** From the mount on: `,"mount":..,"listener":..[,"aborted":true][,"error":..],"msg":..}\n`. */
  #tail = '';
  #tailAscii = true;
  #line = '';
  #ascii = true;

  constructor(bindings: string) {
    this.#bindings = bindings;
  }

  /** The record's line as one string, with `time`. */
  line(r: AccessRecord, time: number): string {
    return (
      `{"level":30,"time":${time}${this.#bindings},"method":${orNull(r.method)}` +
      `,"url":${orNull(r.url)},"status":${r.status},"bytes":${r.bytes}` +
      `,"durationMs":${formatMicros(r.durationUs)}${tailOf(r.mount, r.remoteAddress, r.listener, r.aborted, r.error)}`
    );
  }

  /**
   * Builds the line of `r` and returns the most bytes {@link write} can take for it. Call right
   * before `write`.
   */
  prepare(r: AccessRecord, time: number): number {
    if (r.method !== this.#method || this.#method === undefined) {
      this.#method = r.method;
      this.#head = `${this.#bindings},"method":${orNull(r.method)},"url":`;
      this.#headAscii = !NON_ASCII.test(this.#head);
    }
    if (
      r.mount !== this.#mount ||
      r.remoteAddress !== this.#peer ||
      r.listener !== this.#listener ||
      r.aborted !== this.#aborted ||
      r.error !== this.#error
    ) {
      this.#mount = r.mount;
      this.#peer = r.remoteAddress;
      this.#listener = r.listener;
      this.#aborted = r.aborted;
      this.#error = r.error;
      this.#tail = tailOf(r.mount, r.remoteAddress, r.listener, r.aborted, r.error);
      this.#tailAscii = !NON_ASCII.test(this.#tail);
    }
    const url = r.url;
    let urlJson: string;
    let ascii = this.#headAscii && this.#tailAscii;
    if (url === null) urlJson = 'null';
    else if (JSON_PLAIN.test(url)) urlJson = `"${url}"`;
    else {
      urlJson = JSON.stringify(url);
      ascii = false;
    }
    const line =
      `{"level":30,"time":${time}${this.#head}${urlJson},"status":${r.status},"bytes":${r.bytes}` +
      `,"durationMs":${formatMicros(r.durationUs)}${this.#tail}`;
    this.#line = line;
    this.#ascii = ascii;
    return ascii ? line.length : line.length * 3;
  }

  /** The line {@link prepare} built, as a string (for a line too large for a batch). */
  take(): string {
    const line = this.#line;
    this.#line = '';
    return line;
  }

  /** Writes the line {@link prepare} built at `p` in `buf`; returns its end. */
  write(buf: Buffer, p: number): number {
    const line = this.#line;
    this.#line = '';
    return p + buf.write(line, p, this.#ascii ? 'latin1' : 'utf8');
  }
}

function tailOf(
  mount: string | null,
  peer: string | null,
  listener: string,
  aborted: boolean,
  error: string | null,
): string {
  return (
    `,"mount":${orNull(mount)},"remoteAddress":${orNull(peer)},"listener":${jsonString(listener)}` +
    `${aborted ? ',"aborted":true' : ''}${error === null ? '' : `,"error":"${error}"`},"msg":"request"}\n`
  );
}
