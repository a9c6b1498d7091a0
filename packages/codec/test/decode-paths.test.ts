/**
 * The vars decoder has three internal paths (vars.ts `decodeVarsRange`): ASCII block, ASCII
 * content behind length fields with a byte >= 0x80 (decoded from a masked copy), and content
 * with a byte >= 0x80 (latin1 view, per-field strict UTF-8 in utf8 mode). `decodePacket` runs
 * it directly rather than through a `PacketDecoder`. These tests pin every path to an
 * independent reference model, and `decodePacket` to `PacketDecoder`, errors included.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodePacket, decodeVars, HEADER_SIZE, PacketDecoder, UwsgiError } from '../src/index.ts';
import { collector, concat } from './helpers.ts';

const BUDGET = { interruptAfterTimeLimit: 1500, numRuns: 300 } as const;

function u16(n: number): Uint8Array {
  return Uint8Array.of(n & 0xff, n >> 8);
}

/** A vars block from raw byte fields, built without the codec. */
function block(fields: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Uint8Array {
  return concat(...fields.flatMap(([k, v]) => [u16(k.length), k, u16(v.length), v]));
}

function packet(fields: ReadonlyArray<readonly [Uint8Array, Uint8Array]>): Uint8Array {
  const b = block(fields);
  return concat(Uint8Array.of(0, b.length & 0xff, b.length >> 8, 0), b);
}

const bytesOf = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));
const latin1Of = (b: Uint8Array) => String.fromCharCode(...b);
const STRICT = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Reference decode of well-formed fields: latin1 = one char per byte; utf8 = strict UTF-8 per
 * field, the first invalid field (key before value) failing at its stream offset.
 */
function reference(
  fields: ReadonlyArray<readonly [Uint8Array, Uint8Array]>,
  utf8: boolean,
): Array<[string, string]> | { code: string; offset: number } {
  const out: Array<[string, string]> = [];
  let at = HEADER_SIZE;
  for (const [k, v] of fields) {
    const pair: string[] = [];
    for (const [bytes, start] of [
      [k, at + 2],
      [v, at + 4 + k.length],
    ] as const) {
      if (!utf8) {
        pair.push(latin1Of(bytes));
        continue;
      }
      try {
        pair.push(STRICT.decode(bytes));
      } catch {
        return { code: 'UWSGI_ERR_VARS_ENCODING', offset: start };
      }
    }
    out.push([pair[0]!, pair[1]!]);
    at += 4 + k.length + v.length;
  }
  return out;
}

/** Field bytes biased towards each path: ASCII, latin1, UTF-8, lengths around 128 and 256. */
const fieldBytes = (minLength: number) =>
  fc.oneof(
    fc.uint8Array({ minLength, maxLength: 300, max: 0x7f }),
    fc.uint8Array({ minLength, maxLength: 300 }),
    fc
      .string({ unit: 'grapheme', minLength, maxLength: 40 })
      .map((s) => new TextEncoder().encode(s)),
    fc
      .tuple(
        fc.integer({ min: Math.max(minLength, 120), max: 520 }),
        fc.integer({ min: 0x20, max: 0x7e }),
      )
      .map(([n, c]) => new Uint8Array(n).fill(c)),
  );
const fields = fc.array(fc.tuple(fieldBytes(1), fieldBytes(0)), { maxLength: 25 });

type Outcome =
  | { vars: unknown; modifier1: number; modifier2: number; byteLength: number }
  | { code: string; offset: number | undefined; message: string };

function outcome(run: () => Outcome): Outcome {
  try {
    return run();
  } catch (err) {
    if (!(err instanceof UwsgiError)) throw err;
    return { code: err.code, offset: err.offset, message: err.message };
  }
}

function viaDecoder(bytes: Uint8Array, options: object): Outcome {
  return outcome(() => {
    const { seen, handler } = collector();
    const d = new PacketDecoder(handler, options);
    d.push(bytes);
    d.end();
    const h = seen.header!;
    return {
      vars: seen.vars,
      modifier1: h.modifier1,
      modifier2: h.modifier2,
      byteLength: HEADER_SIZE + h.datasize,
    };
  });
}

function viaDecodePacket(bytes: Uint8Array, options: object): Outcome {
  return outcome(() => {
    const p = decodePacket(bytes, options);
    return {
      vars: p.vars,
      modifier1: p.modifier1,
      modifier2: p.modifier2,
      byteLength: p.byteLength,
    };
  });
}

describe('vars decoding paths', () => {
  it('every path matches the reference model (latin1 and utf8)', () => {
    fc.assert(
      fc.property(fields, fc.boolean(), (fs, utf8) => {
        const encoding = utf8 ? 'utf8' : 'latin1';
        const expected = reference(fs, utf8);
        const bytes = packet(fs);
        if (Array.isArray(expected)) {
          expect(decodePacket(bytes, { encoding }).vars).toEqual(expected);
          expect(decodeVars(bytes.subarray(HEADER_SIZE), { encoding })).toEqual(expected);
        } else {
          expect(() => decodePacket(bytes, { encoding })).toThrow(
            expect.objectContaining(expected),
          );
        }
      }),
      BUDGET,
    );
  });

  it('decodePacket agrees with PacketDecoder on any input: result, or error code/offset/message', () => {
    const options = fc.record(
      {
        maxVarsSize: fc.integer({ min: 0, max: 70000 }),
        maxVars: fc.integer({ min: 0, max: 30 }),
        encoding: fc.constantFrom('latin1', 'utf8'),
      },
      { requiredKeys: [] },
    );
    const input = fc.oneof(
      fields.map(packet),
      // Truncated or corrupted packets: cut, or one byte overwritten.
      fc
        .tuple(fields.map(packet), fc.nat(), fc.nat({ max: 255 }), fc.boolean())
        .map(([p, at, byte, cut]) => {
          if (cut) return p.subarray(0, at % (p.length + 1));
          const q = p.slice();
          q[at % q.length] = byte;
          return q;
        }),
      fc.uint8Array({ maxLength: 600 }),
    );
    fc.assert(
      fc.property(input, options, (bytes, opts) => {
        expect(viaDecodePacket(bytes, opts)).toEqual(viaDecoder(bytes, opts));
      }),
      BUDGET,
    );
  });

  it('decodes ASCII content behind length fields with a byte >= 0x80 (masked copy)', () => {
    // 0x80 and 0x1ff: low byte >= 0x80; 0x8000: high byte >= 0x80.
    for (const n of [0x80, 0xff, 0x1ff, 0x8000]) {
      const value = 'v'.repeat(n);
      const bytes = packet([
        [bytesOf('HTTP_COOKIE'), bytesOf(value)],
        [bytesOf('K'), bytesOf('')],
      ]);
      for (const encoding of ['latin1', 'utf8'] as const) {
        expect(decodePacket(bytes, { encoding }).vars).toEqual([
          ['HTTP_COOKIE', value],
          ['K', ''],
        ]);
      }
    }
    // A key of 128 bytes: the key length field is the non-ASCII one.
    const key = `HTTP_${'X'.repeat(123)}`;
    expect(decodePacket(packet([[bytesOf(key), bytesOf('v')]])).vars).toEqual([[key, 'v']]);
  });

  it('decodes non-ASCII content with and without high length bytes', () => {
    const e = Uint8Array.of(0xc3, 0xa9); // é in UTF-8
    for (const pad of [0, 200]) {
      const value = concat(new Uint8Array(pad).fill(0x61), e);
      const bytes = packet([[bytesOf('PATH_INFO'), value]]);
      expect(decodePacket(bytes).vars).toEqual([['PATH_INFO', `${'a'.repeat(pad)}\u00c3\u00a9`]]);
      expect(decodePacket(bytes, { encoding: 'utf8' }).vars).toEqual([
        ['PATH_INFO', `${'a'.repeat(pad)}é`],
      ]);
    }
  });

  it('reports the structure before the encoding: a malformed block with invalid UTF-8 is MALFORMED', () => {
    const bad = Uint8Array.of(0xff);
    const b = block([[bytesOf('K'), bad]]);
    // A stray byte after a var whose value is invalid UTF-8.
    const bytes = concat(Uint8Array.of(0, b.length + 1, 0, 0), b, Uint8Array.of(1));
    expect(() => decodePacket(bytes, { encoding: 'utf8' })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_MALFORMED', offset: HEADER_SIZE + b.length }),
    );
    // Well-formed: the encoding error, at the value's stream offset.
    expect(() => decodePacket(packet([[bytesOf('K'), bad]]), { encoding: 'utf8' })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_ENCODING', offset: HEADER_SIZE + 5 }),
    );
  });

  it('counts any number of vars in a block given to decodeVars (no 16-bit count)', () => {
    const n = 70_000; // more vars than a u16 can count; each is K=""
    const b = new Uint8Array(5 * n);
    for (let i = 0; i < n; i++) b.set([1, 0, 0x4b, 0, 0], 5 * i);
    const vars = decodeVars(b, { maxVars: n });
    expect(vars).toHaveLength(n);
    expect(vars[n - 1]).toEqual(['K', '']);
    expect(() => decodeVars(b, { maxVars: n - 1 })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_TOO_MANY', offset: 5 * (n - 1) }),
    );
  });

  it('returns arrays without holes, each pair a fresh [name, value] array', () => {
    const bytes = packet([
      [bytesOf('A'), bytesOf('1')],
      [bytesOf('A'), bytesOf('1')],
    ]);
    const { vars } = decodePacket(bytes);
    expect(Object.keys(vars)).toEqual(['0', '1']);
    expect(vars[0]).not.toBe(vars[1]);
    vars[0]![1] = 'changed';
    expect(vars[1]).toEqual(['A', '1']);
  });
});
