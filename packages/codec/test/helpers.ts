/** Test helpers: bytes written out as hex, latin1 text, concatenation. */
import { expect } from 'vitest';
import type { VarsView } from '../src/index.ts';

/** `hex('00 3e 00 00')` -> bytes; whitespace ignored. */
export function hex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, '');
  if (clean.length % 2 !== 0) throw new Error(`odd hex length: ${text}`);
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** latin1 text -> bytes (one byte per char). */
export function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

export function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Char codes of a string, to assert byte-exact strings. */
export function codes(s: string): number[] {
  return Array.from(s, (c) => c.charCodeAt(0));
}

/** What a PacketDecoder reported. */
export interface Collected {
  header: { modifier1: number; datasize: number; modifier2: number } | undefined;
  vars: Array<readonly [string, string]> | undefined;
  body: Uint8Array[];
  ended: number;
}

/** A handler that records everything; `bodyLength` is what onVars returns. */
export function collector(
  bodyLength: (vars: ReadonlyArray<readonly [string, string]>) => number | undefined = () => 0,
) {
  const seen: Collected = { header: undefined, vars: undefined, body: [], ended: 0 };
  return {
    seen,
    handler: {
      onHeader(h: { modifier1: number; datasize: number; modifier2: number }) {
        seen.header = h;
      },
      onVars(vars: ReadonlyArray<readonly [string, string]>) {
        seen.vars = [...vars];
        return bodyLength(vars);
      },
      onBody(chunk: Uint8Array) {
        seen.body.push(chunk);
      },
      onEnd() {
        seen.ended++;
      },
    },
  };
}

/** Every way of reading the view agrees with the eager pairs. */
export function expectViewMatches(view: VarsView, pairs: Array<[string, string]>): void {
  expect(view.size).toBe(pairs.length);
  expect([...view]).toEqual(pairs);
  expect(view.toArray()).toEqual(pairs);
  expect([...view.keys()]).toEqual(pairs.map(([k]) => k));
  for (const [name] of pairs) {
    const all = pairs.filter(([k]) => k === name).map(([, v]) => v);
    expect(view.get(name)).toBe(all[0]);
    expect(view.getAll(name)).toEqual(all);
    expect(view.has(name)).toBe(true);
  }
}
