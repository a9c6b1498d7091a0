/**
 * The vars block (PROTOCOL.md section 1): `{ u16le key_len | key | u16le val_len | value }*`
 * until datasize is consumed, with no count, terminator or padding. Also the array form
 * (`{ u16le len | bytes }*`) that RPC and the cache use.
 */

import {
  decodeLatin1,
  decodeUtf8Strict,
  encodeUtf8Strict,
  isAscii,
  writeLatin1,
  writeU16LE,
} from './bytes.ts';
import { DEFAULT_MAX_VARS, MAX_DATASIZE } from './constants.ts';
import { UwsgiError } from './errors.ts';

/**
 * How var bytes map to strings. `latin1` (default): one char per byte, lossless, like node:http
 * header strings; `utf8`: strict UTF-8 (invalid bytes are an error, never U+FFFD).
 */
export type VarsEncoding = 'latin1' | 'utf8';

/** Decoded vars: ordered, byte-exact pairs; duplicate keys are kept in order. */
export type UwsgiVars = ReadonlyArray<readonly [name: string, value: string]>;

/** Vars to encode: ordered pairs (duplicates allowed) or a record (its own enumerable keys). */
export type VarsInput = Iterable<readonly [string, string]> | Readonly<Record<string, string>>;

/** Options of `encodeVars` and `encodeArray`. */
export interface EncodeVarsOptions {
  /** Default `'latin1'`: a char above U+00FF is then an error. */
  readonly encoding?: VarsEncoding;
}

/** Options of `decodeVars`. */
export interface DecodeVarsOptions {
  /** Most pairs accepted. Default `DEFAULT_MAX_VARS` (1000). */
  readonly maxVars?: number;
  /** Default `'latin1'`. */
  readonly encoding?: VarsEncoding;
}

export function checkEncoding(encoding: unknown): boolean {
  if (encoding === undefined || encoding === 'latin1') return false;
  if (encoding === 'utf8') return true;
  throw new UwsgiError(
    'UWSGI_ERR_ARG_INVALID',
    `encoding must be 'latin1' or 'utf8', got ${String(encoding)}`,
  );
}

function malformed(message: string, offset: number): UwsgiError {
  return new UwsgiError('UWSGI_ERR_VARS_MALFORMED', message, { offset });
}

/** Decodes `bytes[from, to)` as strict UTF-8; `offset` places the error in the stream. */
function utf8At(bytes: Uint8Array, from: number, to: number, offset: number): string {
  const s = decodeUtf8Strict(bytes.subarray(from, to));
  if (s === undefined) {
    throw new UwsgiError(
      'UWSGI_ERR_VARS_ENCODING',
      `bytes at offset ${offset} are not valid UTF-8 (encoding 'utf8')`,
      { offset },
    );
  }
  return s;
}

const UTF8_LOOSE = new TextDecoder('utf-8', { ignoreBOM: true });
/** Copy of a block with its length fields zeroed (see `maskedText`); reused, decoding is sync. */
let scratch = new Uint8Array(4096);

/**
 * `text` is the UTF-8 decode of `n` bytes. It equals their latin1 view exactly when all bytes
 * were ASCII: a byte >= 0x80 either joins a multi-byte sequence (the string gets shorter) or
 * becomes U+FFFD.
 */
function isAsciiText(text: string, n: number): boolean {
  return text.length === n && text.indexOf('\uFFFD') === -1;
}

/** The structural error of the var starting at `p`, if any (shared by the decode loops). */
function varError(
  bytes: Uint8Array,
  p: number,
  end: number,
  maxVars: number,
  count: number,
  shift: number,
): UwsgiError | undefined {
  // A var needs at least 5 bytes: key length, a 1-byte key, value length.
  if (end - p < 2) return malformed(`${end - p} stray byte after the last var`, p + shift);
  const keyLength = bytes[p]! | (bytes[p + 1]! << 8);
  if (keyLength === 0) return malformed('zero-length key', p + shift);
  const keyStart = p + 2;
  if (keyLength > end - keyStart) {
    return malformed(
      `key length ${keyLength} overruns the block (${end - keyStart} left)`,
      p + shift,
    );
  }
  const keyEnd = keyStart + keyLength;
  if (end - keyEnd < 2) return malformed('key without a value length', keyEnd + shift);
  const valueLength = bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8);
  const valueStart = keyEnd + 2;
  if (valueLength > end - valueStart) {
    return malformed(
      `value length ${valueLength} overruns the block (${end - valueStart} left)`,
      keyEnd + shift,
    );
  }
  if (count >= maxVars) {
    return new UwsgiError('UWSGI_ERR_VARS_TOO_MANY', `more than ${maxVars} vars (maxVars)`, {
      offset: p + shift,
    });
  }
  return undefined;
}

/** Set by `validateVars`: some length field of the block holds a byte >= 0x80. */
let highLengthByte = false;

/** `highLengthByte` of the last `validateVars`. Internal: read by the vars view right after. */
export function lastHighLengthByte(): boolean {
  return highLengthByte;
}

/**
 * Validates the block and returns the number of vars (and sets `highLengthByte`); throws the
 * first structural error, in block order. The checks live in `varError` so that the loop stays
 * small: it reads 4 bytes per var.
 */
export function validateVars(
  bytes: Uint8Array,
  start: number,
  end: number,
  maxVars: number,
  shift: number,
): number {
  let p = start;
  let count = 0;
  let high = 0;
  while (p < end) {
    const keyLength = bytes[p]! | (bytes[p + 1]! << 8);
    const keyEnd = p + 2 + keyLength;
    const valueLength = keyEnd + 1 < end ? bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8) : -1;
    const valueEnd = keyEnd + 2 + valueLength;
    if (keyLength === 0 || valueLength < 0 || valueEnd > end || count >= maxVars) {
      throw varError(bytes, p, end, maxVars, count, shift)!;
    }
    high |= keyLength | valueLength;
    count++;
    p = valueEnd;
  }
  highLengthByte = (high & 0x8080) !== 0;
  return count;
}

/**
 * The text of a valid block whose length fields hold a byte >= 0x80 (any field of 128 bytes or
 * more, or whose length is 128-255 mod 256), decoded from a copy with those fields zeroed:
 * the length bytes are never read back as text, and content is nearly always ASCII, so this keeps
 * the decoder's ASCII fast path for the whole block.
 */
function maskedText(bytes: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (scratch.length < n) scratch = new Uint8Array(Math.max(n, 2 * scratch.length));
  scratch.set(bytes.subarray(start, end));
  let p = 0;
  while (p < n) {
    const length = scratch[p]! | (scratch[p + 1]! << 8);
    scratch[p] = 0;
    scratch[p + 1] = 0;
    p += 2 + length;
  }
  return UTF8_LOOSE.decode(scratch.subarray(0, n));
}

/**
 * The text of a valid block `bytes[start, end)` when every content byte is ASCII: one char per
 * byte at the same offset (length fields may read as NUL), so a field is a `slice()` of it;
 * `undefined` when a content byte is >= 0x80. `high`: `highLengthByte` of its validation.
 * Internal: the vars view decodes its strings from this.
 */
export function asciiBlockText(
  bytes: Uint8Array,
  start: number,
  end: number,
  high: boolean,
): string | undefined {
  const whole = high
    ? maskedText(bytes, start, end)
    : UTF8_LOOSE.decode(bytes.subarray(start, end));
  return isAsciiText(whole, end - start) ? whole : undefined;
}

/**
 * Structure checked by `validateVars`; in utf8 mode, also the strict UTF-8 of every field with a
 * byte >= 0x80, in block order (the error `decodeVarsRange` gives for the same block). Internal:
 * shared with the vars view.
 */
export function checkUtf8Fields(
  bytes: Uint8Array,
  start: number,
  end: number,
  shift: number,
): void {
  let p = start;
  while (p < end) {
    const keyStart = p + 2;
    const keyEnd = keyStart + (bytes[p]! | (bytes[p + 1]! << 8));
    const valueStart = keyEnd + 2;
    const valueEnd = valueStart + (bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8));
    if (!isAscii(bytes, keyStart, keyEnd)) utf8At(bytes, keyStart, keyEnd, keyStart + shift);
    if (!isAscii(bytes, valueStart, valueEnd)) {
      utf8At(bytes, valueStart, valueEnd, valueStart + shift);
    }
    p = valueEnd;
  }
}

/**
 * Decodes the vars block `bytes[start, end)`. Error offsets are `streamOffset` plus the
 * position within the block. Internal: `decodeVars`, `decodePacket` and the decoder call it.
 *
 * 1. One pass over the length fields (4 bytes per var, none of the content) validates the
 *    structure, counts the vars, and notes whether a length byte is >= 0x80.
 * 2. One native decode of the whole block (of a copy with the length fields zeroed, if one is
 *    not ASCII): UTF-8 is the engine's fastest decoder and equals latin1 on ASCII.
 * 3. If the text is pure ASCII, a `slice()` per field into an array of the right size: a decode
 *    per string, or a table lookup that compares the bytes, costs more than the slice (measured:
 *    the slice copies with memcpy, or shares the block's text from 13 chars on). Otherwise the
 *    block is decoded again as latin1 and, in utf8 mode, non-ASCII fields one by one.
 */
export function decodeVarsRange(
  bytes: Uint8Array,
  start: number,
  end: number,
  maxVars: number,
  utf8: boolean,
  streamOffset: number,
): Array<[string, string]> {
  if (start === end) return [];
  const shift = streamOffset - start;
  const count = validateVars(bytes, start, end, maxVars, shift);
  const whole = highLengthByte
    ? maskedText(bytes, start, end)
    : UTF8_LOOSE.decode(bytes.subarray(start, end));
  if (!isAsciiText(whole, end - start)) return decodeMixed(bytes, start, end, count, utf8, shift);
  // Filled in full below: no hole is ever observable.
  const out = new Array<[string, string]>(count);
  let p = start;
  for (let i = 0; i < count; i++) {
    const keyStart = p + 2 - start;
    const keyEnd = keyStart + (bytes[p]! | (bytes[p + 1]! << 8));
    const valueStart = keyEnd + 2;
    const valueEnd = valueStart + (bytes[start + keyEnd]! | (bytes[start + keyEnd + 1]! << 8));
    // Empty values are common (nginx's QUERY_STRING, CONTENT_TYPE, CONTENT_LENGTH on a GET).
    out[i] = [
      whole.slice(keyStart, keyEnd),
      valueEnd === valueStart ? '' : whole.slice(valueStart, valueEnd),
    ];
    p = start + valueEnd;
  }
  return out;
}

/**
 * `decodeVarsRange` for a valid block with a content byte >= 0x80: latin1 maps it to one char;
 * utf8 mode decodes each non-ASCII field strictly on its own.
 */
function decodeMixed(
  bytes: Uint8Array,
  start: number,
  end: number,
  count: number,
  utf8: boolean,
  shift: number,
): Array<[string, string]> {
  const whole = decodeLatin1(bytes.subarray(start, end));
  const out = new Array<[string, string]>(count);
  let p = start;
  for (let i = 0; i < count; i++) {
    const keyStart = p + 2;
    const keyEnd = keyStart + (bytes[p]! | (bytes[p + 1]! << 8));
    const valueStart = keyEnd + 2;
    const valueEnd = valueStart + (bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8));
    out[i] = [
      !utf8 || isAscii(bytes, keyStart, keyEnd)
        ? whole.slice(keyStart - start, keyEnd - start)
        : utf8At(bytes, keyStart, keyEnd, keyStart + shift),
      !utf8 || isAscii(bytes, valueStart, valueEnd)
        ? whole.slice(valueStart - start, valueEnd - start)
        : utf8At(bytes, valueStart, valueEnd, valueStart + shift),
    ];
    p = valueEnd;
  }
  return out;
}

export function checkLimit(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new UwsgiError(
      'UWSGI_ERR_ARG_INVALID',
      `${name} must be a non-negative integer, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Decodes a vars block (the bytes after the header; not the header itself).
 *
 * @throws {UwsgiError} `UWSGI_ERR_VARS_MALFORMED` (zero-length key, key or value overrunning the
 * block, trailing bytes), `UWSGI_ERR_VARS_TOO_MANY`, `UWSGI_ERR_VARS_ENCODING` (utf8 only),
 * `UWSGI_ERR_ARG_INVALID` (options). `offset` is relative to the start of `block`.
 */
export function decodeVars(
  block: Uint8Array,
  options: DecodeVarsOptions = {},
): Array<[string, string]> {
  const maxVars = checkLimit('maxVars', options.maxVars, DEFAULT_MAX_VARS);
  return decodeVarsRange(block, 0, block.length, maxVars, checkEncoding(options.encoding), 0);
}

/**
 * Receives each var of a block from {@link scanVars} as byte ranges of the scanned array, in
 * block order: the name is `bytes[keyStart, keyEnd)` (never empty), the value
 * `bytes[valueStart, valueEnd)` (empty when the two are equal). Nothing is copied or decoded.
 */
export interface VarsVisitor {
  /** Returns `false` to stop the scan after this var; any other value goes on. */
  onVar(
    bytes: Uint8Array,
    keyStart: number,
    keyEnd: number,
    valueStart: number,
    valueEnd: number,
  ): boolean;
}

/**
 * Walks the vars block `bytes[start, end)` without allocating: each var's name and value go to
 * `visitor.onVar` as offsets into `bytes`, so a caller can look for a few vars by comparing bytes
 * instead of decoding every string (`decodeVars` makes two strings per var). The structure is
 * checked as `decodeVars` checks it (same rules, but no `maxVars` limit: count the vars if you
 * need one), var by var: a malformed var is found only once the vars before it were visited, so
 * act on what was seen only when the result is not -1.
 *
 * @returns the number of vars visited (the one whose `onVar` returned `false` included), or -1
 *   when the scan met a malformed var: a zero-length key, a key or value overrunning `end`, or
 *   1 to 4 bytes left where a var starts.
 * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID` unless `start` and `end` are integers with
 *   `0 <= start <= end <= bytes.length`.
 */
export function scanVars(
  bytes: Uint8Array,
  start: number,
  end: number,
  visitor: VarsVisitor,
): number {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end) {
    throw argInvalid(`scanVars needs integers 0 <= start <= end, got ${start}, ${end}`);
  }
  if (end > bytes.length) {
    throw argInvalid(`scanVars end ${end} is past the ${bytes.length} bytes given`);
  }
  let count = 0;
  let p = start;
  while (p < end) {
    // A var needs at least 5 bytes: key length, a 1-byte key, value length.
    if (end - p < 5) return -1;
    const keyLength = bytes[p]! | (bytes[p + 1]! << 8);
    const keyStart = p + 2;
    const keyEnd = keyStart + keyLength;
    if (keyLength === 0 || end - keyEnd < 2) return -1;
    const valueStart = keyEnd + 2;
    const valueEnd = valueStart + (bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8));
    if (valueEnd > end) return -1;
    count++;
    p = valueEnd;
    if (visitor.onVar(bytes, keyStart, keyEnd, valueStart, valueEnd) === false) break;
  }
  return count;
}

function isIterable(value: object): value is Iterable<unknown> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

function argInvalid(message: string): UwsgiError {
  return new UwsgiError('UWSGI_ERR_ARG_INVALID', message);
}

/** Validates and snapshots the pairs (an iterable may be single-use). */
function collectPairs(vars: VarsInput): Array<readonly [string, string]> {
  if (vars === null || typeof vars !== 'object') throw argInvalid('vars must be pairs or a record');
  const pairs: Array<readonly [string, string]> = [];
  const source: Iterable<unknown> = isIterable(vars) ? vars : Object.entries(vars);
  for (const pair of source) {
    if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw argInvalid('each var must be a [string, string] pair');
    }
    if (pair[0].length === 0)
      throw argInvalid('a var name cannot be empty (uWSGI drops the packet)');
    pairs.push(pair as unknown as readonly [string, string]);
  }
  return pairs;
}

function tooLong(what: string, length: number): UwsgiError {
  return argInvalid(`${what} is ${length} bytes; a u16 length allows at most ${MAX_DATASIZE}`);
}

function notLatin1(s: string, index: number): UwsgiError {
  return argInvalid(
    `char U+${s.charCodeAt(index).toString(16).padStart(4, '0')} at index ${index} of ${JSON.stringify(s.slice(0, 40))} is not latin1; use encoding 'utf8'`,
  );
}

function utf8Bytes(s: string): Uint8Array {
  const b = encodeUtf8Strict(s);
  if (b === undefined) throw argInvalid(`${JSON.stringify(s.slice(0, 40))} holds a lone surrogate`);
  return b;
}

/**
 * Encodes items, each as `u16le length | bytes`, into a new buffer with `room` leading bytes
 * left for a header. `items` alternate key, value for the vars form.
 */
function encodeItems(items: readonly string[], utf8: boolean, room: number): Uint8Array {
  if (!utf8) {
    let size = 0;
    for (const s of items) {
      if (s.length > MAX_DATASIZE) throw tooLong('a field', s.length);
      size += 2 + s.length;
    }
    if (size > MAX_DATASIZE) throw tooLong('the block', size);
    const out = new Uint8Array(room + size);
    let p = room;
    for (const s of items) {
      writeU16LE(out, p, s.length);
      const bad = writeLatin1(s, out, p + 2);
      if (bad !== -1) throw notLatin1(s, bad);
      p += 2 + s.length;
    }
    return out;
  }
  const encoded: Uint8Array[] = [];
  let size = 0;
  for (let i = 0; i < items.length; i++) {
    const b = utf8Bytes(items[i]!);
    if (b.length > MAX_DATASIZE) throw tooLong('a field', b.length);
    encoded.push(b);
    size += 2 + b.length;
  }
  if (size > MAX_DATASIZE) throw tooLong('the block', size);
  const out = new Uint8Array(room + size);
  let p = room;
  for (const b of encoded) {
    writeU16LE(out, p, b.length);
    out.set(b, p + 2);
    p += 2 + b.length;
  }
  return out;
}

/** Internal: the vars block behind `room` spare leading bytes. */
export function encodeVarsWithRoom(
  vars: VarsInput,
  options: EncodeVarsOptions,
  room: number,
): Uint8Array {
  const utf8 = checkEncoding(options.encoding);
  const items: string[] = [];
  for (const [k, v] of collectPairs(vars)) items.push(k, v);
  return encodeItems(items, utf8, room);
}

/**
 * Encodes vars into a block (no header). Pairs keep their order; duplicates are written as given.
 *
 * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID`: empty name, a field or the block over 65535 bytes,
 * a char above U+00FF in latin1 mode, a lone surrogate in utf8 mode, a non-string.
 */
export function encodeVars(vars: VarsInput, options: EncodeVarsOptions = {}): Uint8Array {
  return encodeVarsWithRoom(vars, options, 0);
}

/**
 * Encodes the array form (`u16le len | bytes` per item, no keys), the payload of RPC (modifier1
 * 173) requests: `encodeArray(['hello', 'world'])` -> `05 00 hello 05 00 world`.
 *
 * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID` as `encodeVars`.
 */
export function encodeArray(items: Iterable<string>, options: EncodeVarsOptions = {}): Uint8Array {
  const utf8 = checkEncoding(options.encoding);
  const list: string[] = [];
  for (const item of items) {
    if (typeof item !== 'string') throw argInvalid('array items must be strings');
    list.push(item);
  }
  return encodeItems(list, utf8, 0);
}

/**
 * Decodes the array form. Empty items are allowed.
 *
 * @throws {UwsgiError} `UWSGI_ERR_VARS_MALFORMED` (an item overruns the block, a stray byte),
 * `UWSGI_ERR_VARS_ENCODING` (utf8 only).
 */
export function decodeArray(block: Uint8Array, options: EncodeVarsOptions = {}): string[] {
  const utf8 = checkEncoding(options.encoding);
  const out: string[] = [];
  const end = block.length;
  const whole = decodeLatin1(block);
  let p = 0;
  while (p < end) {
    if (end - p < 2) throw malformed(`${end - p} stray byte after the last item`, p);
    const length = block[p]! | (block[p + 1]! << 8);
    if (length > end - p - 2) {
      throw malformed(`item length ${length} overruns the block (${end - p - 2} left)`, p);
    }
    const from = p + 2;
    const to = from + length;
    out.push(
      !utf8 || isAscii(block, from, to) ? whole.slice(from, to) : utf8At(block, from, to, from),
    );
    p += 2 + length;
  }
  return out;
}
