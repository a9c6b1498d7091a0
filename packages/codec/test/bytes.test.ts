/** bytes.ts: byte-exact latin1 whatever the engine's TextDecoder('latin1') does. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ByteDecoder,
  createLatin1Decoder,
  decodeLatin1,
  encodeUtf8Strict,
  trimOws,
  writeLatin1,
} from '../src/bytes.ts';

/** The reference: one char per byte. */
function reference(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** WHATWG windows-1252 for 0x80-0x9F (what the "latin1" label means in the Encoding Standard). */
const CP1252 = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152,
  0x8d, 0x17d, 0x8f, 0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122,
  0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];
const windows1252: ByteDecoder = {
  decode: (bytes) =>
    Array.from(bytes, (b) =>
      String.fromCharCode(b >= 0x80 && b <= 0x9f ? CP1252[b - 0x80]! : b),
    ).join(''),
};
const identity: ByteDecoder = { decode: reference };
const lossy: ByteDecoder = { decode: (bytes) => reference(bytes).replace(/[\u0080-\u00ff]/g, '?') };

const every = new Uint8Array(512).map((_, i) => i % 256);

describe('latin1 decoding', () => {
  it.each([
    ['the engine TextDecoder', decodeLatin1],
    ['a windows-1252 TextDecoder (mapped back)', createLatin1Decoder(windows1252)],
    ['an ISO-8859-1 TextDecoder', createLatin1Decoder(identity)],
    ['a lossy decoder (rejected by the probe)', createLatin1Decoder(lossy)],
    ['no TextDecoder at all', createLatin1Decoder(undefined)],
  ])('is byte-exact with %s', (_name, decode) => {
    expect(decode(every)).toBe(reference(every));
    for (let i = 0; i < 256; i++)
      expect(decode(every.subarray(i, i + 1))).toBe(String.fromCharCode(i));
    const long = new Uint8Array(20000).map((_, i) => (i * 7) % 256);
    expect(decode(long)).toBe(reference(long));
    expect(decode(new Uint8Array(0))).toBe('');
  });

  it('matches the reference on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 3000 }), (bytes) => {
        expect(decodeLatin1(bytes)).toBe(reference(bytes));
        expect(createLatin1Decoder(windows1252)(bytes)).toBe(reference(bytes));
      }),
      { interruptAfterTimeLimit: 1000, numRuns: 200 },
    );
  });
});

describe('encoding helpers', () => {
  it('writeLatin1 writes bytes, long ASCII and non-ASCII alike, and reports chars above 0xFF', () => {
    const s = `${'a'.repeat(40)}\u00e9\u00ff${'b'.repeat(40)}`;
    const out = new Uint8Array(s.length + 2);
    expect(writeLatin1(s, out, 2)).toBe(-1);
    expect(reference(out.subarray(2))).toBe(s);
    const ascii = 'x'.repeat(100);
    const room = new Uint8Array(101);
    expect(writeLatin1(ascii, room, 1)).toBe(-1);
    expect(reference(room.subarray(1))).toBe(ascii);
    expect(writeLatin1('ab\u0100', new Uint8Array(3), 0)).toBe(2);
  });

  it('encodeUtf8Strict refuses lone surrogates only', () => {
    expect(encodeUtf8Strict('\ud83d\ude00')).toEqual(Uint8Array.of(0xf0, 0x9f, 0x98, 0x80));
    expect(encodeUtf8Strict('a\ud83d')).toBeUndefined();
    expect(encodeUtf8Strict('\ude00b')).toBeUndefined();
  });

  it('trimOws trims SP and HTAB only', () => {
    expect(trimOws(' \t a b \t ')).toBe('a b');
    expect(trimOws('\r\na\u000b')).toBe('\r\na\u000b');
    expect(trimOws('   ')).toBe('');
  });
});
