/**
 * A lazy view of a vars block: validated like `decodeVars` in one pass over the length fields,
 * then read by name or in order, making only the strings asked for. `decodeVars` makes two
 * strings and a pair per var; a server that dispatches on a dozen of them (method, target,
 * headers) needs none of the rest, and the app usually none at all.
 */
import { decodeLatin1, decodeUtf8Strict, encodeUtf8Strict, isAscii } from './bytes.ts';
import { DEFAULT_MAX_VARS } from './constants.ts';
import {
  asciiBlockText,
  checkEncoding,
  checkLimit,
  checkUtf8Fields,
  type DecodeVarsOptions,
  decodeVarsRange,
  lastHighLengthByte,
  scanVars,
  type VarsEncoding,
  type VarsVisitor,
  validateVars,
} from './vars.ts';

/** Stands for bytes that `detach()` let go of, until they are rebuilt from the text. */
const RELEASED = new Uint8Array(0);

/**
 * The vars of one block, in order, duplicates kept; strings in the decoder's encoding, made on
 * each read (nothing is cached but the block's text, decoded once on the first string read).
 *
 * Made by {@link decodeVarsView}, {@link decodePacketView} or a `PacketDecoder` whose handler has
 * `onVarsView`. The block must be valid (the factories check it): the constructor is internal.
 *
 * The view reads the bytes it was made over. When that memory is reused (a transport's shared
 * read buffer), call {@link VarsView.detach} before the view outlives it (it keeps the block's
 * text instead, no copy).
 */
export class VarsView implements Iterable<[string, string]> {
  /** The array holding the block; `RELEASED` after a `detach()`, until `#bytes` rebuilds it. */
  #raw: Uint8Array;
  #start: number;
  #end: number;
  /** Number of vars. */
  readonly size: number;
  readonly #utf8: boolean;
  /** Some length field holds a byte >= 0x80 (see vars.ts `maskedText`). */
  readonly #high: boolean;
  #owned: boolean;
  /** The block as text, one char per byte at block offsets; undefined until first needed. */
  #text: string | undefined;
  /** `#text` came from an all-ASCII block. */
  #ascii = false;
  /**
   * After `detach()` of a block whose text has its length fields masked (vars.ts `maskedText`):
   * each var's key and value length, to rebuild the bytes from. Otherwise undefined.
   */
  #lengths: number[] | undefined;

  /**
   * Internal: `bytes[start, end)` is a block already validated (`size` vars; `high` as
   * vars.ts `lastHighLengthByte`). `owned`: the memory is the view's own (no `detach` needed).
   */
  constructor(
    bytes: Uint8Array,
    start: number,
    end: number,
    size: number,
    utf8: boolean,
    high: boolean,
    owned: boolean,
  ) {
    this.#raw = bytes;
    this.#start = start;
    this.#end = end;
    this.size = size;
    this.#utf8 = utf8;
    this.#high = high;
    this.#owned = owned;
    this.#text = undefined;
    this.#lengths = undefined;
  }

  /** The block's array, rebuilt from the text after a `detach()` (once, on first need). */
  get #bytes(): Uint8Array {
    return this.#raw === RELEASED ? this.#rebuild() : this.#raw;
  }

  /** The string mapping of names and values. */
  get encoding(): VarsEncoding {
    return this.#utf8 ? 'utf8' : 'latin1';
  }

  /** The array holding the block: the block is `bytes[byteOffset, byteOffset + byteLength)`. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  get byteOffset(): number {
    return this.#start;
  }

  get byteLength(): number {
    return this.#end - this.#start;
  }

  /** The raw block (a view of `bytes`, not a copy): `encodeVars(view)` gives the same bytes. */
  block(): Uint8Array {
    return this.#bytes.subarray(this.#start, this.#end);
  }

  /**
   * Makes the view independent of the memory it was made over, unless it already owns it.
   * Returns `this`. No copy is made: the block's text (decoded now if no string was read yet)
   * is kept instead of the bytes, with the length fields when the text does not hold them; the
   * bytes are rebuilt from it if a method needs them again. Strings already read stay valid.
   */
  detach(): this {
    if (this.#owned) return this;
    const bytes = this.#raw;
    const start = this.#start;
    const end = this.#end;
    if (this.#text === undefined) this.#decodeText();
    if (this.#high && this.#ascii) {
      // The text was decoded with the length fields zeroed: keep the lengths.
      const lengths: number[] = [];
      for (let p = start; p < end; ) {
        const keyLength = bytes[p]! | (bytes[p + 1]! << 8);
        const keyEnd = p + 2 + keyLength;
        const valueLength = bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8);
        lengths.push(keyLength, valueLength);
        p = keyEnd + 2 + valueLength;
      }
      this.#lengths = lengths;
    }
    this.#raw = RELEASED;
    this.#start = 0;
    this.#end = end - start;
    this.#owned = true;
    return this;
  }

  /** The bytes of a detached block, from its text (and lengths); kept from then on. */
  #rebuild(): Uint8Array {
    const text = this.#text!;
    const n = this.#end;
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = text.charCodeAt(i);
    const lengths = this.#lengths;
    if (lengths !== undefined) {
      let p = 0;
      for (let i = 0; i < lengths.length; i += 2) {
        const keyLength = lengths[i]!;
        const valueLength = lengths[i + 1]!;
        out[p] = keyLength & 0xff;
        out[p + 1] = keyLength >>> 8;
        const keyEnd = p + 2 + keyLength;
        out[keyEnd] = valueLength & 0xff;
        out[keyEnd + 1] = valueLength >>> 8;
        p = keyEnd + 2 + valueLength;
      }
      this.#lengths = undefined;
    }
    this.#raw = out;
    return out;
  }

  /** The first value of `name`, or `undefined` when no var has that name. */
  get(name: string): string | undefined {
    const p = this.#find(name, this.#start);
    return p === -1 ? undefined : this.#valueOf(p);
  }

  /** Every value of `name`, in block order (`[]` when none). */
  getAll(name: string): string[] {
    const out: string[] = [];
    let p = this.#find(name, this.#start);
    while (p !== -1) {
      out.push(this.#valueOf(p));
      p = this.#find(name, this.#next(p));
    }
    return out;
  }

  has(name: string): boolean {
    return this.#find(name, this.#start) !== -1;
  }

  /** The raw bytes of the first value of `name` (a view of `bytes`, not a copy), or undefined. */
  getBytes(name: string): Uint8Array | undefined {
    const p = this.#find(name, this.#start);
    if (p === -1) return undefined;
    const bytes = this.#bytes;
    const valueStart = p + 4 + (bytes[p]! | (bytes[p + 1]! << 8));
    return bytes.subarray(valueStart, this.#next(p));
  }

  /** `[name, value]` pairs in block order (a fresh pair each). */
  *entries(): IterableIterator<[string, string]> {
    const end = this.#end;
    for (let p = this.#start; p < end; p = this.#next(p)) {
      const bytes = this.#bytes;
      const keyEnd = p + 2 + (bytes[p]! | (bytes[p + 1]! << 8));
      yield [this.#string(p + 2, keyEnd), this.#valueOf(p)];
    }
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  /** Names in block order, duplicates kept. */
  *keys(): IterableIterator<string> {
    const end = this.#end;
    for (let p = this.#start; p < end; p = this.#next(p)) {
      const bytes = this.#bytes;
      yield this.#string(p + 2, p + 2 + (bytes[p]! | (bytes[p + 1]! << 8)));
    }
  }

  /** Every pair at once: what `decodeVars` returns for the block (a fresh array each call). */
  toArray(): Array<[string, string]> {
    return decodeVarsRange(this.#bytes, this.#start, this.#end, this.size, this.#utf8, 0);
  }

  /**
   * Walks the vars as byte ranges of `bytes` (see `scanVars`): no strings. Returns the number of
   * vars visited.
   */
  scan(visitor: VarsVisitor): number {
    return scanVars(this.#bytes, this.#start, this.#end, visitor);
  }

  /**
   * The string of `bytes[from, to)`, a field of this block (an offset pair from `scan` or
   * `bytes`), in the view's encoding.
   */
  string(from: number, to: number): string {
    if (from < this.#start || to > this.#end || from > to) {
      throw new RangeError(`${from}..${to} is outside the block`);
    }
    return this.#string(from, to);
  }

  #string(from: number, to: number): string {
    if (from === to) return '';
    const text = this.#text ?? this.#decodeText();
    if (this.#ascii || !this.#utf8 || isAscii(this.#bytes, from, to)) {
      return text.slice(from - this.#start, to - this.#start);
    }
    // Checked when the view was made: never undefined.
    return decodeUtf8Strict(this.#bytes.subarray(from, to)) as string;
  }

  #decodeText(): string {
    const bytes = this.#raw;
    const ascii = asciiBlockText(bytes, this.#start, this.#end, this.#high);
    this.#ascii = ascii !== undefined;
    const text = ascii ?? decodeLatin1(bytes.subarray(this.#start, this.#end));
    this.#text = text;
    return text;
  }

  /** The value of the var at `p`. */
  #valueOf(p: number): string {
    const bytes = this.#bytes;
    const valueStart = p + 4 + (bytes[p]! | (bytes[p + 1]! << 8));
    return this.#string(valueStart, this.#next(p));
  }

  /** Where the var after the one at `p` starts. */
  #next(p: number): number {
    const bytes = this.#bytes;
    const keyEnd = p + 2 + (bytes[p]! | (bytes[p + 1]! << 8));
    return keyEnd + 2 + (bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8));
  }

  /** Start of the first var at or after `from` named `name`, or -1. */
  #find(name: string, from: number): number {
    const bytes = this.#bytes;
    const end = this.#end;
    const n = name.length;
    let wide = false;
    for (let i = 0; i < n; i++) {
      if (name.charCodeAt(i) > (this.#utf8 ? 0x7f : 0xff)) {
        wide = true;
        break;
      }
    }
    if (wide) {
      // latin1: a char above U+00FF is no byte, so no key; utf8: compare the encoded name.
      const encoded = this.#utf8 ? encodeUtf8Strict(name) : undefined;
      return encoded === undefined ? -1 : this.#findBytes(encoded, from);
    }
    for (let p = from; p < end; ) {
      const keyLength = bytes[p]! | (bytes[p + 1]! << 8);
      const keyStart = p + 2;
      if (keyLength === n) {
        let i = 0;
        while (i < n && bytes[keyStart + i] === name.charCodeAt(i)) i++;
        if (i === n) return p;
      }
      const keyEnd = keyStart + keyLength;
      p = keyEnd + 2 + (bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8));
    }
    return -1;
  }

  #findBytes(name: Uint8Array, from: number): number {
    const bytes = this.#bytes;
    const n = name.length;
    for (let p = from; p < this.#end; p = this.#next(p)) {
      if ((bytes[p]! | (bytes[p + 1]! << 8)) !== n) continue;
      let i = 0;
      while (i < n && bytes[p + 2 + i] === name[i]) i++;
      if (i === n) return p;
    }
    return -1;
  }
}

/**
 * Internal: the view of `bytes[start, end)` after the checks `decodeVarsRange` makes (same
 * errors, offsets `streamOffset` plus the position in the block). `owned`: see the constructor.
 */
export function viewOfRange(
  bytes: Uint8Array,
  start: number,
  end: number,
  maxVars: number,
  utf8: boolean,
  streamOffset: number,
  owned: boolean,
): VarsView {
  if (start === end) return new VarsView(bytes, start, end, 0, utf8, false, owned);
  const shift = streamOffset - start;
  const size = validateVars(bytes, start, end, maxVars, shift);
  const high = lastHighLengthByte();
  if (utf8) checkUtf8Fields(bytes, start, end, shift);
  return new VarsView(bytes, start, end, size, utf8, high, owned);
}

/**
 * A lazy view of a vars block (the bytes after the header): the same checks and errors as
 * `decodeVars`, without making a string. The view reads `block` in place (see
 * {@link VarsView.detach}).
 *
 * @throws {UwsgiError} as `decodeVars`.
 */
export function decodeVarsView(block: Uint8Array, options: DecodeVarsOptions = {}): VarsView {
  const maxVars = checkLimit('maxVars', options.maxVars, DEFAULT_MAX_VARS);
  const utf8 = checkEncoding(options.encoding);
  return viewOfRange(block, 0, block.length, maxVars, utf8, 0, false);
}
