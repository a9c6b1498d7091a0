/** scanVars: the zero-allocation walk over a vars block, by example and on real captures. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  decodeVars,
  encodeVars,
  HEADER_SIZE,
  readHeader,
  scanVars,
  type VarsVisitor,
} from '../src/index.ts';
import { ascii, concat, hex } from './helpers.ts';

interface Seen {
  readonly result: number;
  readonly vars: Array<[string, string]>;
  readonly ranges: Array<[number, number, number, number]>;
}

/** One char per byte (Node's latin1, as decodeVars' default). */
const latin1 = (bytes: Uint8Array, from: number, to: number): string =>
  Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('latin1');

/** Scans and records every var as latin1 strings and raw ranges; `stopAt` returns false there. */
function scan(bytes: Uint8Array, start = 0, end = bytes.length, stopAt = -1): Seen {
  const vars: Array<[string, string]> = [];
  const ranges: Array<[number, number, number, number]> = [];
  const result = scanVars(bytes, start, end, {
    onVar(b, keyStart, keyEnd, valueStart, valueEnd) {
      expect(b).toBe(bytes);
      vars.push([latin1(b, keyStart, keyEnd), latin1(b, valueStart, valueEnd)]);
      ranges.push([keyStart, keyEnd, valueStart, valueEnd]);
      return vars.length !== stopAt;
    },
  });
  return { result, vars, ranges };
}

describe('scanVars', () => {
  it('visits each var as byte ranges, in order, duplicates and empty values included', () => {
    const block = encodeVars([
      ['REQUEST_METHOD', 'GET'],
      ['QUERY_STRING', ''],
      ['HTTP_X', 'a'],
      ['HTTP_X', '\u00ff\u0080'],
    ]);
    const seen = scan(block);
    expect(seen.result).toBe(4);
    expect(seen.vars).toEqual(decodeVars(block));
    // REQUEST_METHOD: key at 2..16, value at 18..21.
    expect(seen.ranges[0]).toEqual([2, 16, 18, 21]);
    // QUERY_STRING's value is empty: start === end.
    const [, , valueStart, valueEnd] = seen.ranges[1]!;
    expect(valueEnd).toBe(valueStart);
  });

  it('walks an empty block without a call', () => {
    expect(scan(new Uint8Array(0))).toEqual({ result: 0, vars: [], ranges: [] });
    expect(scan(hex('01 00 41 00 00'), 5, 5).result).toBe(0);
  });

  it('reads only bytes[start, end): a block inside a packet, garbage around it', () => {
    const block = encodeVars([
      ['A', 'b'],
      ['PATH_INFO', '/x'],
    ]);
    const bytes = concat(hex('ff ff ff'), block, hex('ff ff'));
    const seen = scan(bytes, 3, 3 + block.length);
    expect(seen.result).toBe(2);
    expect(seen.vars).toEqual([
      ['A', 'b'],
      ['PATH_INFO', '/x'],
    ]);
    expect(seen.ranges[0]).toEqual([5, 6, 8, 9]);
  });

  it('stops after the var whose onVar returned false, counting it', () => {
    const block = encodeVars([
      ['A', '1'],
      ['B', '2'],
      ['C', '3'],
    ]);
    const seen = scan(block, 0, block.length, 2);
    expect(seen.result).toBe(2);
    expect(seen.vars).toEqual([
      ['A', '1'],
      ['B', '2'],
    ]);
    // Stopping first means the malformed rest is never looked at.
    const broken = concat(block, hex('00 00'));
    expect(scan(broken, 0, broken.length, 1).result).toBe(1);
  });

  it('goes on for any return value but false (a JavaScript visitor that returns nothing)', () => {
    const block = encodeVars([
      ['A', '1'],
      ['B', '2'],
    ]);
    let calls = 0;
    const visitor = {
      onVar() {
        calls++;
      },
    } as unknown as VarsVisitor;
    expect(scanVars(block, 0, block.length, visitor)).toBe(2);
    expect(calls).toBe(2);
  });

  it('returns -1 where decodeVars throws UWSGI_ERR_VARS_MALFORMED, after the vars before', () => {
    const ok = encodeVars([['A', 'b']]);
    const cases: Array<[string, Uint8Array]> = [
      ['zero-length key', hex('00 00 00 00 00')],
      ['one stray byte', hex('41')],
      ['four stray bytes', hex('01 00 41 00')],
      ['key overruns the block', hex('05 00 41 42')],
      ['key without a value length', hex('01 00 41 01')],
      ['value overruns the block', hex('01 00 41 03 00 62 63')],
    ];
    for (const [what, tail] of cases) {
      const block = concat(ok, tail);
      expect(() => decodeVars(block), what).toThrow(
        expect.objectContaining({ code: 'UWSGI_ERR_VARS_MALFORMED' }),
      );
      const seen = scan(block);
      expect(seen.result, what).toBe(-1);
      expect(seen.vars, what).toEqual([['A', 'b']]);
      // Cut short by `end`, the same bytes are malformed too.
      expect(scan(concat(tail, ok), 0, tail.length).result, what).toBe(-1);
    }
  });

  it('has no maxVars limit (decodeVars has one): the caller counts', () => {
    const pairs = Array.from({ length: 1001 }, (_, i): [string, string] => [`K${i}`, '']);
    const block = encodeVars(pairs);
    expect(() => decodeVars(block)).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_TOO_MANY' }),
    );
    expect(scan(block).result).toBe(1001);
  });

  it('refuses offsets outside the array or out of order with UWSGI_ERR_ARG_INVALID', () => {
    const block = encodeVars([['A', 'b']]);
    const visitor: VarsVisitor = { onVar: () => true };
    for (const [start, end] of [
      [-1, 2],
      [3, 2],
      [0, block.length + 1],
      [0.5, 2],
      [0, Number.NaN],
      [0, Number.POSITIVE_INFINITY],
    ] as const) {
      expect(() => scanVars(block, start, end, visitor), `${start}, ${end}`).toThrow(
        expect.objectContaining({ name: 'UwsgiError', code: 'UWSGI_ERR_ARG_INVALID' }),
      );
    }
  });

  it('walks every captured front-end packet as decodeVars decodes it', () => {
    const dir = new URL('./fixtures/', import.meta.url);
    const manifest = JSON.parse(readFileSync(new URL('manifest.json', dir), 'utf8')) as {
      captures: Array<{ file: string; empty?: boolean }>;
    };
    let walked = 0;
    for (const { file, empty } of manifest.captures) {
      if (empty) continue;
      const bytes = new Uint8Array(readFileSync(new URL(file, dir)));
      const end = HEADER_SIZE + readHeader(bytes).datasize;
      const seen = scan(bytes, HEADER_SIZE, end);
      const vars = decodeVars(bytes.subarray(HEADER_SIZE, end), { maxVars: 100_000 });
      expect(seen.result, file).toBe(vars.length);
      expect(seen.vars, file).toEqual(vars);
      walked++;
    }
    expect(walked).toBeGreaterThan(10);
  });

  it('reads ASCII names as bytes: a visitor can match a var without a string', () => {
    const block = encodeVars([
      ['PATH_INFO', '/a'],
      ['REQUEST_METHOD', 'HEAD'],
    ]);
    const name = ascii('REQUEST_METHOD');
    let method: [number, number] | undefined;
    scanVars(block, 0, block.length, {
      onVar(b, keyStart, keyEnd, valueStart, valueEnd) {
        if (keyEnd - keyStart !== name.length) return true;
        for (let i = 0; i < name.length; i++) if (b[keyStart + i] !== name[i]) return true;
        method = [valueStart, valueEnd];
        return false;
      },
    });
    expect(method && latin1(block, ...method)).toBe('HEAD');
  });
});
