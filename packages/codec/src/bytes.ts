/**
 * Byte helpers without Buffer (STYLE.md section 5.3): u16le, and byte-exact latin1 / strict
 * UTF-8 conversions between `Uint8Array` and strings.
 *
 * latin1 here means "one UTF-16 code unit per byte, value = byte" (what node:http does with
 * header bytes), not WHATWG's "latin1" label, which is windows-1252: bytes 0x80-0x9F decode to
 * other code points there (0x80 -> U+20AC). Node versions disagree on which of the two
 * `new TextDecoder('latin1')` gives, so `createLatin1Decoder` probes it once at load time and
 * either uses it as is (byte-exact), maps its windows-1252 code points back (a bijection on
 * 0x00-0xFF), or falls back to `String.fromCharCode` over byte runs.
 *
 * Why not `fromCharCode` alone, as STYLE.md section 5.4 suggests: one call per string of a
 * vars block (two per var) costs several times what llhttp spends on the equivalent request
 * head, while one native decode of the block plus a `slice()` per field is cheaper than llhttp.
 * The hot path (vars.ts) decodes pure-ASCII blocks with the UTF-8 decoder, which is identical
 * on ASCII and the fastest; this module's latin1 decoder handles the rest.
 */

/** Writes a little-endian u16. */
export function writeU16LE(bytes: Uint8Array, offset: number, value: number): void {
  bytes[offset] = value & 0xff;
  bytes[offset + 1] = value >>> 8;
}

/**
 * `String.fromCharCode.apply` takes its arguments on the stack; engines cap the count (V8 at
 * about 120k, JavaScriptCore at 64k), so long runs go in slices well under any cap.
 */
const APPLY_CHUNK = 8192;

function latin1ByApply(bytes: Uint8Array): string {
  const n = bytes.length;
  if (n <= APPLY_CHUNK) {
    return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  let out = '';
  for (let i = 0; i < n; i += APPLY_CHUNK) {
    out += String.fromCharCode.apply(
      null,
      bytes.subarray(i, Math.min(i + APPLY_CHUNK, n)) as unknown as number[],
    );
  }
  return out;
}

/** The part of `TextDecoder` we use, so that tests can stand in other engines' behaviour. */
export interface ByteDecoder {
  decode(bytes: Uint8Array): string;
}

/** Below this size a native decoder call costs more than `fromCharCode`. */
const NATIVE_MIN_BYTES = 16;
const NON_LATIN1 = /[\u0100-\uffff]/;
const NON_LATIN1_GLOBAL = /[\u0100-\uffff]/g;

/**
 * Builds the byte-exact latin1 decoder on top of `native` (a `TextDecoder('latin1')`, or
 * `undefined` where the engine has none): probes its mapping of all 256 bytes once, and uses it
 * as is when it is the identity, with the windows-1252 code points mapped back when it is a
 * bijection onto other chars, or not at all otherwise. Internal; exported for tests.
 */
export function createLatin1Decoder(
  native: ByteDecoder | undefined,
): (bytes: Uint8Array) => string {
  if (native === undefined) return latin1ByApply;
  const all = new Uint8Array(256);
  for (let i = 0; i < 256; i++) all[i] = i;
  const probe = native.decode(all);
  if (probe.length !== 256) return latin1ByApply;
  const fix = new Map<string, string>();
  for (let i = 0; i < 256; i++) {
    const c = probe.charCodeAt(i);
    if (c === i) continue;
    // Mapping back is only sound if the decoder's output is a bijection onto chars the true
    // latin1 view never produces.
    if (c <= 0xff || fix.has(probe[i]!)) return latin1ByApply;
    fix.set(probe[i]!, String.fromCharCode(i));
  }
  // Short inputs must map the same way (engines special-case small or ASCII inputs).
  for (const i of [0x00, 0x41, 0x80, 0x9f, 0xa0, 0xff]) {
    if (native.decode(all.subarray(i, i + 1)) !== probe[i]) return latin1ByApply;
  }
  return (bytes) => {
    if (bytes.length < NATIVE_MIN_BYTES) return latin1ByApply(bytes);
    const s = native.decode(bytes);
    if (fix.size === 0 || !NON_LATIN1.test(s)) return s;
    return s.replace(NON_LATIN1_GLOBAL, (c: string) => fix.get(c)!);
  };
}

function nativeLatin1(): ByteDecoder | undefined {
  try {
    return new TextDecoder('latin1');
  } catch {
    // Node built without ICU knows only utf-8 and utf-16le.
    return undefined;
  }
}

/**
 * Decodes bytes to a string with one char per byte (char code = byte value). Lossless: every
 * byte sequence round-trips through `writeLatin1`.
 */
export const decodeLatin1: (bytes: Uint8Array) => string = createLatin1Decoder(nativeLatin1());

const UTF8_STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const UTF8_ENCODER = new TextEncoder();

/**
 * Decodes UTF-8, refusing invalid sequences (returns `undefined`) instead of substituting
 * U+FFFD: a lossy decode would make distinct byte strings (`/a%FF` vs `/a%FE`) compare equal.
 * A leading BOM is kept as U+FEFF: the bytes are data, not a document.
 */
export function decodeUtf8Strict(bytes: Uint8Array): string | undefined {
  try {
    return UTF8_STRICT.decode(bytes);
  } catch {
    return undefined;
  }
}

/** True when every byte of `bytes[start, end)` is ASCII. */
export function isAscii(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    if (bytes[i]! > 0x7f) return false;
  }
  return true;
}

/**
 * Writes `s` as latin1 bytes at `offset`. Returns the index of the first char above 0xFF (which
 * cannot be one byte) or -1 when all of `s` was written.
 */
export function writeLatin1(s: string, target: Uint8Array, offset: number): number {
  const n = s.length;
  // Long ASCII strings (cookies, user agents): the native encoder writes the same bytes.
  if (n > 32 && !NON_ASCII.test(s)) {
    ASCII_ENCODER.encodeInto(s, target.subarray(offset, offset + n));
    return -1;
  }
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) return i;
    target[offset + i] = c;
  }
  return -1;
}

const ASCII_ENCODER = new TextEncoder();
const NON_ASCII = /[\u0080-\uffff]/;

/** Lone surrogates cannot be encoded as UTF-8; TextEncoder would silently write U+FFFD. */
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Encodes `s` as UTF-8, or returns `undefined` when it holds a lone surrogate. */
export function encodeUtf8Strict(s: string): Uint8Array | undefined {
  if (LONE_SURROGATE.test(s)) return undefined;
  return UTF8_ENCODER.encode(s);
}

/** True when `s` holds a char > 0xFF (not representable as one latin1 byte). */
export function hasNonLatin1(s: string): boolean {
  return NON_LATIN1.test(s);
}

/** True when `s` holds a control char, space or DEL (not allowed in a request-target). */
export function hasCtlOrSpace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** True when `s` holds CR, LF or NUL (which would split or truncate a header line). */
export function hasCrLfNul(s: string): boolean {
  // Native searches: header values can be kilobytes long (cookies).
  return s.includes('\r') || s.includes('\n') || s.includes('\u0000');
}

/** `s` without leading and trailing SP/HTAB (HTTP's OWS). */
export function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 0x20 || s.charCodeAt(start) === 0x09)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 0x20 || s.charCodeAt(end - 1) === 0x09)) end--;
  return start === 0 && end === s.length ? s : s.slice(start, end);
}

/** True when `s` holds a control char other than HTAB, or DEL (not allowed in a reason phrase). */
export function hasCtlExceptHtab(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}
