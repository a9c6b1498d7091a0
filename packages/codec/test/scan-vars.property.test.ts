/** scanVars held to decodeVars by property (fast-check 4, time-boxed like the other properties). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeVars, encodeVars, scanVars } from '../src/index.ts';
import { concat } from './helpers.ts';

const BUDGET = { interruptAfterTimeLimit: 1500, numRuns: 500 } as const;
/** decodeVars' count limit out of the way: scanVars has none. */
const NO_LIMIT = { maxVars: Number.MAX_SAFE_INTEGER } as const;

const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
const latin1 = (maxLength: number, minLength = 0) =>
  fc.string({ unit: latin1Char, minLength, maxLength });
const pairs = fc.array(fc.tuple(latin1(20, 1), latin1(300)), { maxLength: 40 });

/** A block built by hand from raw fields (zero-length keys allowed), then maybe cut or extended:
 * well formed or not, and malformed in every way a block can be. */
const rawBlock = fc
  .record({
    fields: fc.array(fc.tuple(fc.uint8Array({ maxLength: 12 }), fc.uint8Array({ maxLength: 40 })), {
      maxLength: 12,
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

const latin1Of = (bytes: Uint8Array, from: number, to: number): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('latin1');

interface Scan {
  readonly result: number;
  readonly vars: Array<[string, string]>;
  /** Where the last visited var ends (`start` when none was). */
  readonly lastEnd: number;
}

function scan(bytes: Uint8Array, start: number, end: number, stopAfter = Infinity): Scan {
  const vars: Array<[string, string]> = [];
  let lastEnd = start;
  const result = scanVars(bytes, start, end, {
    onVar(b, keyStart, keyEnd, valueStart, valueEnd) {
      expect(start <= keyStart && keyStart < keyEnd && keyEnd + 2 === valueStart).toBe(true);
      expect(valueStart <= valueEnd && valueEnd <= end).toBe(true);
      vars.push([latin1Of(b, keyStart, keyEnd), latin1Of(b, valueStart, valueEnd)]);
      lastEnd = valueEnd;
      return vars.length < stopAfter;
    },
  });
  return { result, vars, lastEnd };
}

/** decodeVars' verdict: the pairs, or undefined when it throws (a UwsgiError, never else). */
function decoded(block: Uint8Array): Array<[string, string]> | undefined {
  try {
    return decodeVars(block, NO_LIMIT);
  } catch (err) {
    expect(err).toMatchObject({ name: 'UwsgiError', code: 'UWSGI_ERR_VARS_MALFORMED' });
    return undefined;
  }
}

describe('scanVars against decodeVars', () => {
  it('visits exactly the decoded pairs of any encoded block, wherever it sits in the array', () => {
    fc.assert(
      fc.property(
        pairs,
        fc.uint8Array({ maxLength: 8 }),
        fc.uint8Array({ maxLength: 8 }),
        (p, before, after) => {
          const block = encodeVars(p);
          const bytes = concat(before, block, after);
          const seen = scan(bytes, before.length, before.length + block.length);
          expect(seen.result).toBe(p.length);
          expect(seen.vars).toEqual(decodeVars(block, NO_LIMIT));
        },
      ),
      BUDGET,
    );
  });

  it('agrees on any block, well formed or not: -1 exactly when decodeVars throws', () => {
    fc.assert(
      fc.property(fc.oneof(rawBlock, fc.uint8Array({ maxLength: 64 })), (block) => {
        const seen = scan(block, 0, block.length);
        const vars = decoded(block);
        if (vars === undefined) {
          expect(seen.result).toBe(-1);
          // What was visited before the malformed var is the block's well-formed prefix.
          expect(seen.vars).toEqual(decodeVars(block.subarray(0, seen.lastEnd), NO_LIMIT));
        } else {
          expect(seen.result).toBe(vars.length);
          expect(seen.vars).toEqual(vars);
        }
      }),
      BUDGET,
    );
  });

  it('stops after the var whose visitor returned false', () => {
    fc.assert(
      fc.property(pairs, fc.nat({ max: 45 }), (p, k) => {
        const block = encodeVars(p);
        const stopAfter = Math.max(k, 1);
        const seen = scan(block, 0, block.length, stopAfter);
        expect(seen.result).toBe(Math.min(stopAfter, p.length));
        expect(seen.vars).toEqual(decodeVars(block, NO_LIMIT).slice(0, stopAfter));
      }),
      BUDGET,
    );
  });
});
