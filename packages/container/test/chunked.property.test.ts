/** protocol/chunked.ts: any valid chunking, split anywhere, decodes to the body; limits hold. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChunkedDecoder,
  ChunkedError,
  MAX_CHUNK_LINE,
  MAX_TRAILERS,
} from '../src/protocol/chunked.ts';

interface Decoded {
  readonly body: Buffer;
  readonly ended: boolean;
  /** Bytes of the input the decoder took (the rest follows the body). */
  readonly used: number;
}

function decode(pieces: readonly Uint8Array[], maxBodySize = Number.MAX_SAFE_INTEGER): Decoded {
  const decoder = new ChunkedDecoder(maxBodySize);
  const parts: Buffer[] = [];
  let ended = false;
  let used = 0;
  const sink = {
    chunkData: (data: Uint8Array) => parts.push(Buffer.from(data)),
    chunkedEnd: () => {
      ended = true;
    },
  };
  for (const piece of pieces) {
    if (decoder.done) break;
    used += decoder.push(piece, sink);
  }
  return { body: Buffer.concat(parts), ended, used };
}

/** Cuts `bytes` at the given offsets (any order, duplicates allowed). */
function split(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let at = 0;
  for (const p of points) {
    out.push(bytes.subarray(at, p));
    at = p;
  }
  out.push(bytes.subarray(at));
  return out;
}

const chunkArb = fc.record({
  data: fc.uint8Array({ minLength: 1, maxLength: 40 }),
  upper: fc.boolean(),
  zeros: fc.nat(3),
  ext: fc.option(fc.stringMatching(/^[a-z]{1,5}(=[a-z0-9"]{0,6})?$/), { nil: undefined }),
});

function encode(
  chunks: ReadonlyArray<{
    data: Uint8Array;
    upper: boolean;
    zeros: number;
    ext?: string | undefined;
  }>,
  trailers: readonly string[],
): Buffer {
  const out: Buffer[] = [];
  for (const c of chunks) {
    let size = c.data.length.toString(16);
    if (c.upper) size = size.toUpperCase();
    out.push(
      Buffer.from(`${'0'.repeat(c.zeros)}${size}${c.ext === undefined ? '' : `;${c.ext}`}\r\n`),
    );
    out.push(Buffer.from(c.data), Buffer.from('\r\n'));
  }
  out.push(Buffer.from(`0\r\n${trailers.map((t) => `${t}\r\n`).join('')}\r\n`));
  return Buffer.concat(out);
}

describe('ChunkedDecoder', () => {
  it('decodes any valid chunking, however the stream is split, and stops at its end', () => {
    fc.assert(
      fc.property(
        fc.array(chunkArb, { maxLength: 8 }),
        fc.array(fc.stringMatching(/^X-[a-z]{1,8}: [a-z]{0,8}$/), { maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.uint8Array({ maxLength: 8 }),
        (chunks, trailers, cuts, surplus) => {
          const wire = encode(chunks, trailers);
          const pieces = split(Buffer.concat([wire, Buffer.from(surplus)]), cuts);
          const r = decode(pieces);
          expect(r.ended).toBe(true);
          expect(r.body).toEqual(Buffer.concat(chunks.map((c) => Buffer.from(c.data))));
          expect(r.used).toBe(wire.length);
        },
      ),
    );
  });

  it('refuses a body whose announced sizes pass maxBodySize, before the data (413)', () => {
    const wire = Buffer.from('5\r\nabcde\r\n6\r\n');
    let caught: unknown;
    try {
      decode([wire], 10);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ChunkedError);
    expect((caught as ChunkedError).status).toBe(413);
    expect(decode([Buffer.from('5\r\nabcde\r\n5\r\nfghij\r\n0\r\n\r\n')], 10).body.toString()).toBe(
      'abcdefghij',
    );
  });

  it.each([
    ['empty size', '\r\n'],
    ['sign', '+5\r\nabcde\r\n0\r\n\r\n'],
    ['LF only', '5\nabcde\r\n0\r\n\r\n'],
    ['CR without LF', '5\rabcde\r\n0\r\n\r\n'],
    ['data longer than its size', '2\r\nabc\r\n0\r\n\r\n'],
    ['bare LF after data', '1\r\na\n0\r\n\r\n'],
    ['control char in an extension', '1;a\x01\r\na\r\n0\r\n\r\n'],
    ['bare LF in the trailers', '0\r\nX-A: b\n\r\n'],
    ['a chunk line over the limit', `1;${'e'.repeat(MAX_CHUNK_LINE)}\r\na\r\n0\r\n\r\n`],
    ['trailers over the limit', `0\r\nX-A: ${'b'.repeat(MAX_TRAILERS)}\r\n\r\n`],
  ])('refuses malformed framing (%s) with 400', (_name, text) => {
    // Whole and one byte at a time: the same answer.
    for (const pieces of [
      [Buffer.from(text)],
      [...Buffer.from(text)].map((b) => Uint8Array.of(b)),
    ]) {
      let caught: unknown;
      try {
        decode(pieces);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(ChunkedError);
      expect((caught as ChunkedError).status).toBe(400);
    }
  });
});
