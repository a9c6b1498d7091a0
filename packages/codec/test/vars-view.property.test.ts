/** The vars view held to the eager decode by property (fast-check 4, time-boxed). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeVars,
  decodeVarsView,
  encodeVars,
  PacketDecoder,
  UwsgiError,
  type VarsEncoding,
  type VarsView,
} from '../src/index.ts';
import { concat, expectViewMatches } from './helpers.ts';

const BUDGET = { interruptAfterTimeLimit: 1500, numRuns: 400 } as const;

const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
const latin1 = (maxLength: number, minLength = 0) =>
  fc.string({ unit: latin1Char, minLength, maxLength });
/** Few distinct names, so that duplicates are common; values long enough for high length bytes. */
const pairs = fc.array(
  fc.tuple(fc.oneof(fc.constantFrom('A', 'HTTP_HOST', '\u00e9'), latin1(12, 1)), latin1(300)),
  { maxLength: 30 },
);
const utf8Pairs = fc.array(
  fc.tuple(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
    fc.string({ unit: 'grapheme', maxLength: 150 }),
  ),
  { maxLength: 15 },
);

/** Raw fields (zero-length keys allowed, invalid UTF-8 likely), maybe cut or with a tail. */
const rawBlock = fc
  .record({
    fields: fc.array(fc.tuple(fc.uint8Array({ maxLength: 6 }), fc.uint8Array({ maxLength: 200 })), {
      maxLength: 10,
    }),
    cut: fc.nat(),
    cutIt: fc.boolean(),
    tail: fc.uint8Array({ maxLength: 6 }),
  })
  .map(({ fields, cut, cutIt, tail }) => {
    const parts: Uint8Array[] = [];
    for (const [key, value] of fields) {
      parts.push(Uint8Array.of(key.length, 0), key, Uint8Array.of(value.length, 0), value);
    }
    const whole = concat(...parts, tail);
    return cutIt ? whole.subarray(0, cut % (whole.length + 1)) : whole;
  });

type Result = { pairs: Array<[string, string]> } | { error: [string, string, number | undefined] };

function attempt(fn: () => Array<[string, string]>): Result {
  try {
    return { pairs: fn() };
  } catch (err) {
    if (!(err instanceof UwsgiError)) throw err;
    return { error: [err.code, err.message, err.offset] };
  }
}

function optionsOf(encoding: VarsEncoding, maxVars: number | undefined) {
  return maxVars === undefined ? { encoding } : { encoding, maxVars };
}

/** The view of `block` placed inside a larger array (reads must stay within the block). */
function viewInside(block: Uint8Array, encoding: VarsEncoding, maxVars?: number): VarsView {
  const host = concat(Uint8Array.of(1, 0, 0x41), block, Uint8Array.of(9, 0, 0));
  return decodeVarsView(host.subarray(3, 3 + block.length), optionsOf(encoding, maxVars));
}

describe('VarsView properties', () => {
  it('reads what decodeVars decodes, by name and in order (latin1)', () => {
    fc.assert(
      fc.property(pairs, (vars) => {
        const block = encodeVars(vars);
        const view = viewInside(block, 'latin1');
        expectViewMatches(view, decodeVars(block));
        expect(encodeVars(view)).toEqual(block);
        expect(view.block()).toEqual(block);
        expect(view.get('MISSING')).toBeUndefined();
      }),
      BUDGET,
    );
  });

  it('reads what decodeVars decodes (utf8)', () => {
    fc.assert(
      fc.property(utf8Pairs, (vars) => {
        const block = encodeVars(vars, { encoding: 'utf8' });
        const view = viewInside(block, 'utf8');
        expectViewMatches(view, vars);
        expect(encodeVars(view, { encoding: 'utf8' })).toEqual(block);
      }),
      BUDGET,
    );
  });

  it('accepts and refuses exactly what decodeVars does, with the same error', () => {
    fc.assert(
      fc.property(
        rawBlock,
        fc.constantFrom<VarsEncoding>('latin1', 'utf8'),
        fc.option(fc.nat(8), { nil: undefined }),
        (block, encoding, maxVars) => {
          const options = optionsOf(encoding, maxVars);
          const eager = attempt(() => decodeVars(block, options));
          const lazy = attempt(() => [...decodeVarsView(block, options)]);
          expect(lazy).toEqual(eager);
          if ('pairs' in eager) {
            expectViewMatches(viewInside(block, encoding, maxVars), eager.pairs);
          }
        },
      ),
      BUDGET,
    );
  });

  it('a detached view survives its source being overwritten', () => {
    fc.assert(
      fc.property(pairs, fc.uint8Array({ minLength: 1, maxLength: 1 }), (vars, [fill]) => {
        const block = encodeVars(vars);
        const source = block.slice();
        const view = decodeVarsView(source);
        // Half the time some string was read before the detach (the text is then cached).
        if (fill! & 1) view.get('A');
        view.detach();
        source.fill(fill!);
        expectViewMatches(view, decodeVars(block));
      }),
      BUDGET,
    );
  });

  it('PacketDecoder gives the view of the eager decoder, however the packet is split', () => {
    fc.assert(
      fc.property(rawBlock, fc.array(fc.nat(), { maxLength: 6 }), (block, points) => {
        const packet = concat(
          Uint8Array.of(0, block.length & 0xff, block.length >> 8, 0),
          block,
          Uint8Array.of(1, 2, 3),
        );
        const cuts = [...new Set(points.map((p) => p % (packet.length + 1)))].sort((a, b) => a - b);
        const feed = (decoder: PacketDecoder): void => {
          let prev = 0;
          for (const c of [...cuts, packet.length]) {
            decoder.push(packet.subarray(prev, c));
            prev = c;
          }
        };
        let eagerVars: Array<[string, string]> = [];
        let view: VarsView | undefined;
        const eager = attempt(() => {
          feed(
            new PacketDecoder({
              onVars: (v) => {
                eagerVars = v.map(([k, x]): [string, string] => [k, x]);
                return 0;
              },
            }),
          );
          return eagerVars;
        });
        const lazy = attempt(() => {
          feed(
            new PacketDecoder({
              onVarsView: (v) => {
                view = v.detach();
                return 0;
              },
            }),
          );
          return view === undefined ? [] : [...view];
        });
        expect(lazy).toEqual(eager);
      }),
      BUDGET,
    );
  });
});
