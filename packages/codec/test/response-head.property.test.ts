/** ResponseHeadParser: split invariance and garbage safety (fast-check 4, time-boxed). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseResponseHead, ResponseHeadParser, UwsgiError } from '../src/index.ts';
import { ascii, concat } from './helpers.ts';

const BUDGET = { interruptAfterTimeLimit: 1500, numRuns: 300 } as const;

const name = fc.string({ unit: fc.constantFrom(...'abcXYZ-019_!#'), minLength: 1, maxLength: 10 });
const value = fc.string({ unit: fc.constantFrom(...'abc XYZ;=\t\u00e9'), maxLength: 20 });
const head = fc.record({
  statusLine: fc.option(
    fc
      .tuple(fc.integer({ min: 100, max: 599 }), fc.constantFrom('', ' OK', ' Not Found'))
      .map(([c, r]) => `HTTP/1.1 ${c}${r}`),
    { nil: undefined },
  ),
  headers: fc.array(fc.tuple(name, value), { maxLength: 10 }),
  eol: fc.constantFrom('\r\n', '\n'),
  body: fc.uint8Array({ maxLength: 50 }),
});

describe('response head properties', () => {
  it('is chunk-split invariant', () => {
    fc.assert(
      fc.property(
        head,
        fc.array(fc.nat(), { maxLength: 10 }),
        ({ statusLine, headers, eol, body }, points) => {
          const lines = [
            ...(statusLine === undefined ? [] : [statusLine]),
            ...headers.map(([n, v]) => `${n}: ${v}`),
          ];
          const text = `${lines.map((l) => l + eol).join('')}${eol}`;
          const bytes = concat(ascii(text), body);
          const whole = parseResponseHead(bytes);
          expect(whole.bodyOffset).toBe(text.length);
          const cuts = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort(
            (a, b) => a - b,
          );
          const parser = new ResponseHeadParser();
          let prev = 0;
          let result: ReturnType<ResponseHeadParser['push']>;
          let start = 0;
          for (const c of [...cuts, bytes.length]) {
            const got = parser.push(bytes.subarray(prev, c));
            if (got !== undefined && result === undefined) {
              result = got;
              start = prev;
            }
            prev = c;
          }
          expect(result).toBeDefined();
          expect({ ...result!, bodyOffset: start + result!.bodyOffset }).toEqual(whole);
        },
      ),
      BUDGET,
    );
  });

  it('arbitrary bytes give a head, undefined or a UwsgiError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), (bytes) => {
        const parser = new ResponseHeadParser({ maxHeadSize: 300, maxHeaders: 5 });
        try {
          const h = parser.push(bytes);
          if (h !== undefined) expect(h.bodyOffset).toBeLessThanOrEqual(bytes.length);
        } catch (err) {
          expect(err).toBeInstanceOf(UwsgiError);
        }
      }),
      BUDGET,
    );
  });
});
