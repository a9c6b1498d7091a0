/**
 * HTTP/1.1 chunked transfer coding, decoded from a byte stream (RFC 9112 section 7.1), for
 * bodies a front end relays still chunked: uWSGI's http router sends a chunked client body with
 * `HTTP_TRANSFER_ENCODING: chunked` and no CONTENT_LENGTH (protocol/uwsgi.ts).
 *
 * Strict where a lenient reading has been a smuggling primitive: the size is hex digits only
 * (no sign, no `0x`, no whitespace before it), every line ends in CRLF (a bare LF or CR is an
 * error), data is followed by CRLF exactly. Extensions are skipped (bounded), trailer fields are
 * read and dropped (bounded). Data is handed on as views of the input, never copied.
 */

/** Why a chunked body was refused: `status` is the answer when none has been sent yet. */
export class ChunkedError extends Error {
  override readonly name = 'ChunkedError';
  readonly status: 400 | 413;
  constructor(status: 400 | 413, message: string) {
    super(message);
    this.status = status;
  }
}

/** Where decoded data and the end go. */
export interface ChunkedSink {
  /** Decoded body bytes: a view of the chunk given to `push`, valid as long as it is. */
  chunkData(data: Uint8Array): void;
  /** The last chunk and the trailer section are complete. */
  chunkedEnd(): void;
}

/** Longest chunk-size line (size, extensions, CRLF): Node's llhttp allows 16 KiB of extensions. */
export const MAX_CHUNK_LINE = 16 * 1024;
/** Largest trailer section, bytes (read and dropped). */
export const MAX_TRAILERS = 16 * 1024;
/** Hex digits of a chunk size: 13 keep it below 2^52, a safe integer. */
const MAX_SIZE_DIGITS = 13;

/** Decoder states (plain numbers: a switch over small integers). */
const State = {
  Size: 0,
  Ext: 1,
  SizeLf: 2,
  Data: 3,
  DataCr: 4,
  DataLf: 5,
  TrailerLineStart: 6,
  Trailer: 7,
  TrailerLf: 8,
  FinalLf: 9,
  Done: 10,
} as const;
type State = (typeof State)[keyof typeof State];

const CR = 13;
const LF = 10;

function hexValue(byte: number): number {
  if (byte >= 48 && byte <= 57) return byte - 48;
  if (byte >= 97 && byte <= 102) return byte - 87;
  if (byte >= 65 && byte <= 70) return byte - 55;
  return -1;
}

export class ChunkedDecoder {
  readonly #maxBodySize: number;
  #state: State = State.Size;
  #size = 0;
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;
  #left = 0;
  /** Body bytes decoded so far. */
  received = 0;

  constructor(maxBodySize: number) {
    this.#maxBodySize = maxBodySize;
  }

  /** True once the last chunk and the trailers are in; later bytes are not the body's. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  /**
   * Decodes `chunk`; returns how many of its bytes belonged to the body's framing (the rest,
   * after the end, is not looked at).
   * @throws {ChunkedError} malformed framing (400) or a body over `maxBodySize` (413).
   */
  push(chunk: Uint8Array, sink: ChunkedSink): number {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case State.Data: {
          const take = Math.min(this.#left, n - i);
          this.#left -= take;
          const start = i;
          i += take;
          if (this.#left === 0) this.#state = State.DataCr;
          sink.chunkData(chunk.subarray(start, i));
          break;
        }
        case State.Size: {
          const byte = chunk[i++] as number;
          const v = hexValue(byte);
          this.#lineBytes++;
          if (v >= 0) {
            if (++this.#digits > MAX_SIZE_DIGITS) throw bad('chunk size too long');
            this.#size = this.#size * 16 + v;
          } else if (this.#digits === 0) {
            throw bad('chunk size is not hex digits');
          } else if (byte === CR) {
            this.#state = State.SizeLf;
          } else if (byte === 59 || byte === 32 || byte === 9) {
            // `;` starts an extension; BWS may come before it.
            this.#state = State.Ext;
          } else {
            throw bad('chunk size is not hex digits');
          }
          break;
        }
        case State.Ext: {
          const byte = chunk[i++] as number;
          if (++this.#lineBytes > MAX_CHUNK_LINE) throw bad('chunk extension too long');
          if (byte === CR) this.#state = State.SizeLf;
          else if ((byte < 32 && byte !== 9) || byte === 127)
            throw bad('control char in chunk line');
          break;
        }
        case State.SizeLf: {
          if (chunk[i++] !== LF) throw bad('chunk size line not ended by CRLF');
          this.#startChunk();
          break;
        }
        case State.DataCr:
          if (chunk[i++] !== CR) throw bad('chunk data not followed by CRLF');
          this.#state = State.DataLf;
          break;
        case State.DataLf:
          if (chunk[i++] !== LF) throw bad('chunk data not followed by CRLF');
          this.#state = State.Size;
          break;
        case State.TrailerLineStart: {
          const byte = chunk[i++] as number;
          this.#countTrailer();
          if (byte === CR) this.#state = State.FinalLf;
          else if (byte === LF) throw bad('bare LF in trailer section');
          else this.#state = State.Trailer;
          break;
        }
        case State.Trailer: {
          const byte = chunk[i++] as number;
          this.#countTrailer();
          if (byte === CR) this.#state = State.TrailerLf;
          else if (byte === LF) throw bad('bare LF in trailer section');
          break;
        }
        case State.TrailerLf:
          this.#countTrailer();
          if (chunk[i++] !== LF) throw bad('trailer line not ended by CRLF');
          this.#state = State.TrailerLineStart;
          break;
        case State.FinalLf:
          if (chunk[i++] !== LF) throw bad('chunked body not ended by CRLF');
          this.#state = State.Done;
          sink.chunkedEnd();
          return i;
        case State.Done:
          return i;
      }
    }
    return i;
  }

  #startChunk(): void {
    const size = this.#size;
    this.#size = 0;
    this.#digits = 0;
    this.#lineBytes = 0;
    if (size === 0) {
      this.#state = State.TrailerLineStart;
      return;
    }
    this.received += size;
    if (this.received > this.#maxBodySize) {
      throw new ChunkedError(
        413,
        `chunked body over maxBodySize ${this.#maxBodySize} (${this.received} bytes announced)`,
      );
    }
    this.#left = size;
    this.#state = State.Data;
  }

  #countTrailer(): void {
    if (++this.#trailerBytes > MAX_TRAILERS) throw bad('trailer section too long');
  }
}

function bad(message: string): ChunkedError {
  return new ChunkedError(400, `malformed chunked body: ${message}`);
}
