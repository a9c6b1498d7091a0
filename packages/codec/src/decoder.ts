/**
 * PacketDecoder: a push parser for one uwsgi request on a stream (STYLE.md section 5), in the
 * style of llhttp: no I/O, no timers; the caller feeds reads and gets callbacks.
 *
 *   header (4 bytes) -> vars (datasize bytes) -> body (length from `onVars`) -> done
 *
 * - Limits are checked as soon as the header is complete, before a vars byte is buffered
 *   (RELIABILITY.md U04): a peer cannot make us allocate or wait for more than `maxVarsSize`.
 * - Only vars bytes are ever copied, and only when the block spans reads: then into one
 *   `Uint8Array(datasize)`, never by concatenating chunks. A block that arrives in one read is
 *   decoded in place.
 * - Body bytes leave as `subarray()` views of the pushed chunk, including the bytes that share
 *   the read with the end of the vars block (PROTOCOL.md section 8: surplus starts the body).
 * - Bytes after a complete request are not consumed (`push` returns how many were): front ends
 *   send one request per connection, and treating the rest as a packet is unbit/uwsgi#2336.
 */
import { DEFAULT_MAX_VARS, DEFAULT_MAX_VARS_SIZE, HEADER_SIZE } from './constants.ts';
import { UwsgiError } from './errors.ts';
import type { PacketHeader } from './header.ts';
import {
  checkEncoding,
  checkLimit,
  decodeVarsRange,
  type UwsgiVars,
  type VarsEncoding,
} from './vars.ts';
import { type VarsView, viewOfRange } from './vars-view.ts';

/** The callbacks of a `PacketDecoder` other than the one that takes the vars. */
export interface DecoderHandlerBase {
  /** The header is complete and within limits; no vars byte has been buffered yet. */
  onHeader?(header: PacketHeader): void;
  /** Body bytes: a zero-copy view of the pushed chunk, valid as long as that chunk is. */
  onBody?(chunk: Uint8Array): void;
  /** The declared body is complete (or, for an open-ended body, `end()` was called). */
  onEnd?(): void;
}

/** Callbacks of a `PacketDecoder`. Each runs synchronously inside `push()` or `end()`. */
export interface DecoderHandler extends DecoderHandlerBase {
  /**
   * The vars block is decoded. Return the body length to expect (0 = none), or `undefined` to
   * take every further byte as body until `end()`.
   */
  onVars(vars: UwsgiVars, header: PacketHeader): number | undefined;
}

/**
 * Callbacks of a `PacketDecoder` that takes the vars as a lazy {@link VarsView} (same checks and
 * errors, no strings made) instead of decoded pairs.
 */
export interface DecoderViewHandler extends DecoderHandlerBase {
  /**
   * As `DecoderHandler.onVars`. The view reads the pushed chunk in place when the block arrived
   * in one `push()` (its own copy otherwise): `view.detach()` before it outlives that chunk's
   * memory.
   */
  onVarsView(vars: VarsView, header: PacketHeader): number | undefined;
}

/** Options of `PacketDecoder` and `decodePacket`. */
export interface DecoderOptions {
  /**
   * Largest datasize accepted, checked at the header. Default `DEFAULT_MAX_VARS_SIZE` (65535,
   * the protocol maximum).
   */
  readonly maxVarsSize?: number;
  /** Most vars accepted in the block. Default `DEFAULT_MAX_VARS` (1000). */
  readonly maxVars?: number;
  /** String mapping of var bytes. Default `'latin1'` (byte-exact). */
  readonly encoding?: VarsEncoding;
}

/** `failed` holds until `reset()`. */
export type DecoderState = 'header' | 'vars' | 'body' | 'done' | 'failed';

function checkBodyLength(value: unknown): number {
  if (value === undefined) return Number.POSITIVE_INFINITY;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new UwsgiError(
      'UWSGI_ERR_ARG_INVALID',
      `onVars must return a non-negative safe integer or undefined, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * `UWSGI_ERR_VARS_TOO_LARGE` for a header whose datasize exceeds the limit. The size field is
 * at packet offset 1. Internal: shared with `decodePacket`.
 */
export function varsTooLarge(datasize: number, maxVarsSize: number): UwsgiError {
  return new UwsgiError(
    'UWSGI_ERR_VARS_TOO_LARGE',
    `vars block of ${datasize} bytes exceeds maxVarsSize ${maxVarsSize}`,
    { offset: 1 },
  );
}

/** `UWSGI_ERR_PACKET_TRUNCATED` at stream offset `offset`. Internal: shared with `decodePacket`. */
export function truncated(what: string, offset: number): UwsgiError {
  return new UwsgiError('UWSGI_ERR_PACKET_TRUNCATED', `stream ended early: ${what}`, { offset });
}

/** The default options, shared: no allocation per decoder. */
export const NO_OPTIONS: DecoderOptions = Object.freeze({});

/**
 * Push decoder for one uwsgi request: header, vars block, body.
 *
 * `push()` and `end()` throw `UwsgiError` on bad input and then stay `failed` (rethrowing the
 * same error) until `reset()`. An exception thrown by a handler callback also fails the decoder
 * and propagates unchanged. Callbacks must not call `push`, `end` or `reset` re-entrantly.
 */
export class PacketDecoder {
  readonly #handler: DecoderHandlerBase;
  /** `onVarsView` was given: the vars go out as a view. */
  readonly #view: boolean;
  readonly #maxVarsSize: number;
  readonly #maxVars: number;
  readonly #utf8: boolean;
  #state: DecoderState = 'header';
  #consumed = 0;
  /** A header split across reads collects here (allocated on first need: reads rarely split it). */
  #headerBytes: Uint8Array | undefined;
  #headerFill = 0;
  #header: PacketHeader | undefined;
  /** A vars block split across reads collects here: exactly datasize bytes. */
  #varsBytes: Uint8Array | undefined;
  #varsFill = 0;
  #bodyLeft = 0;
  #error: unknown;

  /**
   * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID` when a limit is not a non-negative integer or
   * `encoding` is unknown.
   */
  constructor(handler: DecoderHandler | DecoderViewHandler, options: DecoderOptions = NO_OPTIONS) {
    const view =
      handler !== null &&
      typeof handler === 'object' &&
      typeof (handler as Partial<DecoderViewHandler>).onVarsView === 'function';
    if (
      !view &&
      (handler === null ||
        typeof handler !== 'object' ||
        typeof (handler as Partial<DecoderHandler>).onVars !== 'function')
    ) {
      throw new UwsgiError(
        'UWSGI_ERR_ARG_INVALID',
        'handler.onVars (or handler.onVarsView) must be a function',
      );
    }
    this.#handler = handler;
    this.#view = view;
    this.#maxVarsSize = checkLimit('maxVarsSize', options.maxVarsSize, DEFAULT_MAX_VARS_SIZE);
    this.#maxVars = checkLimit('maxVars', options.maxVars, DEFAULT_MAX_VARS);
    this.#utf8 = checkEncoding(options.encoding);
  }

  /** `header` -> `vars` -> `body` -> `done`; or `failed`. */
  get state(): DecoderState {
    return this.#state;
  }

  /** Bytes taken from the stream since construction or `reset()` (header, vars and body). */
  get bytesConsumed(): number {
    return this.#consumed;
  }

  /** The header, once complete; `undefined` before. */
  get header(): PacketHeader | undefined {
    return this.#header;
  }

  /** Back to `header` for a new stream, dropping any partial packet and the failure. */
  reset(): void {
    this.#state = 'header';
    this.#consumed = 0;
    this.#headerFill = 0;
    this.#header = undefined;
    this.#varsBytes = undefined;
    this.#varsFill = 0;
    this.#bodyLeft = 0;
    this.#error = undefined;
  }

  /**
   * Feeds bytes. Returns how many bytes of `chunk` were consumed: all of them, except once the
   * request is complete (`done`), when the rest is left to the caller (0 in `done`).
   *
   * @throws {UwsgiError} `UWSGI_ERR_VARS_TOO_LARGE` (datasize > maxVarsSize, thrown as soon as
   * the 4 header bytes are in), `UWSGI_ERR_VARS_MALFORMED`, `UWSGI_ERR_VARS_TOO_MANY`,
   * `UWSGI_ERR_VARS_ENCODING`, `UWSGI_ERR_ARG_INVALID` (bad `onVars` result); the stored error
   * again while `failed`.
   */
  push(chunk: Uint8Array): number {
    if (this.#state === 'failed') throw this.#error;
    if (this.#state === 'done') return 0;
    try {
      return this.#run(chunk);
    } catch (err) {
      this.#fail(err);
      throw err;
    }
  }

  /**
   * The stream ended (EOF). Completes an open-ended body; anything else unfinished is an error.
   * A no-op in `done`.
   *
   * @throws {UwsgiError} `UWSGI_ERR_PACKET_TRUNCATED` when EOF comes inside the header (even at
   * byte 0: no request at all), the vars block or a declared body; the stored error while
   * `failed`.
   */
  end(): void {
    switch (this.#state) {
      case 'done':
        return;
      case 'failed':
        throw this.#error;
      case 'body':
        if (this.#bodyLeft === Number.POSITIVE_INFINITY) {
          this.#finish();
          return;
        }
        this.#truncated(`${this.#bodyLeft} body bytes missing`);
        return;
      case 'vars':
        this.#truncated(`${this.#header!.datasize - this.#varsFill} vars bytes missing`);
        return;
      case 'header':
        this.#truncated(`${HEADER_SIZE - this.#headerFill} header bytes missing`);
        return;
    }
  }

  #truncated(what: string): never {
    const err = truncated(what, this.#consumed);
    this.#fail(err);
    throw err;
  }

  #fail(err: unknown): void {
    this.#state = 'failed';
    this.#error = err;
    this.#varsBytes = undefined;
  }

  #finish(): void {
    this.#state = 'done';
    this.#handler.onEnd?.();
  }

  #run(chunk: Uint8Array): number {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case 'header': {
          let header: PacketHeader;
          if (this.#headerFill === 0 && n - i >= HEADER_SIZE) {
            header = {
              modifier1: chunk[i]!,
              datasize: chunk[i + 1]! | (chunk[i + 2]! << 8),
              modifier2: chunk[i + 3]!,
            };
            i += HEADER_SIZE;
            this.#consumed += HEADER_SIZE;
          } else {
            // A header split across reads (PROTOCOL.md section 8: partial reads).
            const take = Math.min(HEADER_SIZE - this.#headerFill, n - i);
            this.#headerBytes ??= new Uint8Array(HEADER_SIZE);
            for (let k = 0; k < take; k++) this.#headerBytes[this.#headerFill + k] = chunk[i + k]!;
            this.#headerFill += take;
            this.#consumed += take;
            i += take;
            if (this.#headerFill < HEADER_SIZE) break;
            const h = this.#headerBytes;
            header = { modifier1: h[0]!, datasize: h[1]! | (h[2]! << 8), modifier2: h[3]! };
            this.#headerFill = 0;
          }
          i = this.#onHeader(header, chunk, i);
          break;
        }
        case 'vars': {
          const header = this.#header!;
          const take = Math.min(header.datasize - this.#varsFill, n - i);
          this.#varsBytes!.set(chunk.subarray(i, i + take), this.#varsFill);
          this.#varsFill += take;
          this.#consumed += take;
          i += take;
          if (this.#varsFill === header.datasize) {
            const block = this.#varsBytes!;
            this.#varsBytes = undefined;
            this.#decodeVars(block, 0, block.length, header, true, 0);
          }
          break;
        }
        case 'body': {
          const take = Math.min(this.#bodyLeft, n - i);
          const part = chunk.subarray(i, i + take);
          i += take;
          this.#consumed += take;
          this.#bodyLeft -= take;
          this.#handler.onBody?.(part);
          if (this.#bodyLeft === 0) this.#finish();
          break;
        }
        default:
          // done (or failed by a callback): the rest is not ours.
          return i;
      }
    }
    return i;
  }

  /** Header complete at stream offset `#consumed`; `i` = index of the next byte in `chunk`. */
  #onHeader(header: PacketHeader, chunk: Uint8Array, i: number): number {
    this.#header = header;
    if (header.datasize > this.#maxVarsSize) {
      throw varsTooLarge(header.datasize, this.#maxVarsSize);
    }
    this.#state = 'vars';
    this.#handler.onHeader?.(header);
    if (this.#state !== 'vars') return i;
    const size = header.datasize;
    if (chunk.length - i >= size) {
      // Whole block in this read: decode in place, no copy.
      this.#decodeVars(chunk, i, i + size, header, false, size);
      return i + size;
    }
    this.#varsBytes = new Uint8Array(size);
    this.#varsFill = 0;
    return i;
  }

  /**
   * The block `bytes[start, end)` is complete: decode it, count `consumed` more bytes, hand it
   * over. `owned`: the bytes are the decoder's own copy.
   */
  #decodeVars(
    bytes: Uint8Array,
    start: number,
    end: number,
    header: PacketHeader,
    owned: boolean,
    consumed: number,
  ): void {
    let length: number | undefined;
    if (this.#view) {
      const view = viewOfRange(bytes, start, end, this.#maxVars, this.#utf8, HEADER_SIZE, owned);
      this.#consumed += consumed;
      length = (this.#handler as DecoderViewHandler).onVarsView(view, header);
    } else {
      const vars = decodeVarsRange(bytes, start, end, this.#maxVars, this.#utf8, HEADER_SIZE);
      this.#consumed += consumed;
      length = (this.#handler as DecoderHandler).onVars(vars, header);
    }
    this.#afterVars(checkBodyLength(length));
  }

  #afterVars(length: number): void {
    if (this.#state !== 'vars') return;
    if (length === 0) {
      this.#finish();
    } else {
      this.#state = 'body';
      this.#bodyLeft = length;
    }
  }
}
