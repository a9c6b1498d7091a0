/**
 * Real front-end captures (nginx, lighttpd, Apache, uWSGI's http router; see
 * fixtures/README.md) decoded with the one-shot and the push decoder, checked against
 * fixtures/manifest.json. The manifest's measured facts come from an independent parser in
 * fixtures/capture.mjs; its hand-written facts are what each front end is documented to send
 * (PROTOCOL.md sections 4 and 5).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type DecoderHandler,
  decodePacket,
  encodePacket,
  PacketDecoder,
  type PacketHeader,
  varsToRequest,
} from '../src/index.ts';

interface Capture {
  readonly file: string;
  readonly frontEnd: string;
  readonly byteLength: number;
  readonly empty?: boolean;
  readonly modifier1?: number;
  readonly modifier2?: number;
  readonly datasize?: number;
  readonly varCount?: number;
  readonly keys?: readonly string[];
  readonly bodyLength?: number;
  readonly bodySha256?: string;
  readonly firstKeys?: readonly string[];
  readonly lastKey?: string;
  readonly expect?: Readonly<Record<string, string>>;
  readonly all?: Readonly<Record<string, readonly string[]>>;
  readonly absent?: readonly string[];
  readonly request?: {
    readonly method: string;
    readonly url: string;
    readonly path?: string;
    readonly query?: string;
    readonly contentLength: number;
  };
}

interface Manifest {
  readonly encoding: 'latin1';
  readonly captures: readonly Capture[];
}

const FIXTURES = new URL('./fixtures/', import.meta.url);
const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURES), 'utf8')) as Manifest;
const packets = manifest.captures.filter((c) => !c.empty);
const empties = manifest.captures.filter((c) => c.empty);

function load(c: Capture): Uint8Array {
  return new Uint8Array(readFileSync(new URL(c.file, FIXTURES)));
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

/** Body length to ask the decoder for: the first non-empty CONTENT_LENGTH, as front ends send it. */
function declaredBody(vars: ReadonlyArray<readonly [string, string]>): number {
  const cl = vars.find(([k, v]) => k === 'CONTENT_LENGTH' && v !== '');
  return cl ? Number(cl[1]) : 0;
}

interface Collected {
  headers: PacketHeader[];
  vars: Array<readonly [string, string]> | undefined;
  body: Uint8Array[];
  ends: number;
}

function collector(): { handler: DecoderHandler; out: Collected } {
  const out: Collected = { headers: [], vars: undefined, body: [], ends: 0 };
  const handler: DecoderHandler = {
    onHeader(h) {
      out.headers.push({ ...h });
    },
    onVars(vars) {
      expect(out.vars).toBeUndefined();
      out.vars = vars.map(([k, v]) => [k, v] as const);
      return declaredBody(vars);
    },
    onBody(chunk) {
      // Zero-copy views on the pushed chunk: copy before the caller reuses it.
      out.body.push(chunk.slice());
    },
    onEnd() {
      out.ends++;
    },
  };
  return { handler, out };
}

/** Deterministic split points (xorshift32), sizes 1..maxPiece. */
function splits(length: number, maxPiece: number, seed: number): number[] {
  const sizes: number[] = [];
  let x = seed >>> 0 || 1;
  let left = length;
  while (left > 0) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const n = Math.min(left, 1 + (x % maxPiece));
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

function feed(bytes: Uint8Array, sizes: readonly number[]): Collected {
  const { handler, out } = collector();
  const decoder = new PacketDecoder(handler);
  let off = 0;
  for (const n of sizes) {
    // A fresh copy per push: the decoder may keep no reference into a chunk it was given.
    const chunk = bytes.slice(off, off + n);
    decoder.push(chunk);
    chunk.fill(0);
    off += n;
  }
  decoder.end();
  expect(decoder.state).toBe('done');
  expect(decoder.bytesConsumed).toBe(bytes.length);
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function checkFacts(c: Capture, vars: ReadonlyArray<readonly [string, string]>): void {
  const values = (k: string) => vars.filter(([key]) => key === k).map(([, v]) => v);
  const keys = vars.map(([k]) => k);
  expect(keys).toEqual(c.keys);
  expect(vars.length).toBe(c.varCount);
  if (c.firstKeys) expect(keys.slice(0, c.firstKeys.length)).toEqual(c.firstKeys);
  if (c.lastKey) expect(keys.at(-1)).toBe(c.lastKey);
  for (const [k, v] of Object.entries(c.expect ?? {})) expect(values(k)[0], k).toBe(v);
  for (const [k, v] of Object.entries(c.all ?? {})) expect(values(k), k).toEqual(v);
  for (const k of c.absent ?? []) expect(values(k), k).toEqual([]);
}

describe('real front-end captures', () => {
  it('covers every front end', () => {
    const fronts = new Set(manifest.captures.map((c) => c.file.split('-')[0]));
    expect([...fronts].sort()).toEqual(['apache', 'lighttpd', 'nginx', 'router']);
    expect(manifest.encoding).toBe('latin1');
  });

  describe.each(packets.map((c) => [c.file, c] as const))('%s', (_file, c) => {
    const bytes = load(c);

    it('decodePacket matches the manifest', () => {
      expect(bytes.length).toBe(c.byteLength);
      const p = decodePacket(bytes);
      expect(p.modifier1).toBe(c.modifier1);
      expect(p.modifier2).toBe(c.modifier2);
      expect(p.byteLength).toBe(4 + c.datasize!);
      checkFacts(c, p.vars);
      // Latin-1 is byte-exact: the vars block re-measures to datasize.
      const measured = p.vars.reduce((n, [k, v]) => n + 4 + k.length + v.length, 0);
      expect(measured).toBe(c.datasize);
      const body = bytes.subarray(p.byteLength);
      expect(body.length).toBe(c.bodyLength);
      expect(sha256(body)).toBe(c.bodySha256);
    });

    it('varsToRequest reads method, url and body length', () => {
      const { vars } = decodePacket(bytes);
      const req = varsToRequest(vars);
      expect(req).toMatchObject(c.request!);
    });

    const modes: Array<[string, number[]]> = [
      ['one push', [bytes.length]],
      ['byte by byte', Array.from({ length: bytes.length }, () => 1)],
      ['random 1-4', splits(bytes.length, 4, 0x9e3779b9 ^ bytes.length)],
      ['random 1-4096', splits(bytes.length, 4096, 0x85ebca6b ^ bytes.length)],
      ['header split at 2, then rest', [2, bytes.length - 2]],
    ];
    it.each(modes)('PacketDecoder, %s', (_mode, sizes) => {
      const out = feed(bytes, sizes);
      expect(out.headers).toEqual([
        { modifier1: c.modifier1, datasize: c.datasize, modifier2: c.modifier2 },
      ]);
      expect(out.vars).toBeDefined();
      checkFacts(c, out.vars!);
      const body = concat(out.body);
      expect(body.length).toBe(c.bodyLength);
      expect(sha256(body)).toBe(c.bodySha256);
      expect(out.ends).toBe(1);
    });
  });

  it('the 65535-byte nginx block is the limit: one byte less allowed fails before buffering', () => {
    const c = packets.find((p) => p.file === 'nginx-max-datasize.bin')!;
    expect(c.datasize).toBe(65535);
    const bytes = load(c);
    expect(decodePacket(bytes).vars.length).toBe(c.varCount);
    const err = catchError(() => decodePacket(bytes.subarray(0, 4), { maxVarsSize: 65534 }));
    expect(err).toMatchObject({ code: 'UWSGI_ERR_VARS_TOO_LARGE' });
  });

  it('the 75-var nginx packet fails at maxVars 74', () => {
    const c = packets.find((p) => p.file === 'nginx-headers-60.bin')!;
    const bytes = load(c);
    expect(decodePacket(bytes, { maxVars: c.varCount! }).vars.length).toBe(c.varCount);
    const err = catchError(() => decodePacket(bytes, { maxVars: c.varCount! - 1 }));
    expect(err).toMatchObject({ code: 'UWSGI_ERR_VARS_TOO_MANY' });
  });

  it('utf8 decoding: raw UTF-8 from nginx decodes, the 0xFF that %FF became is refused', () => {
    const c = packets.find((p) => p.file === 'nginx-get-encoded-utf8.bin')!;
    const bytes = load(c);
    // PATH_INFO holds byte 0xFF (nginx decoded %FF): strict UTF-8 refuses it, never lossy.
    expect(catchError(() => decodePacket(bytes, { encoding: 'utf8' }))).toMatchObject({
      code: 'UWSGI_ERR_VARS_ENCODING',
    });
    // The same packet without that var: the raw c3 a9 bytes read as U+00E9.
    const { vars } = decodePacket(bytes);
    const kept = vars.filter(([k]) => k !== 'PATH_INFO');
    const reencoded = encodePacket(kept);
    const utf8 = decodePacket(reencoded, { encoding: 'utf8' }).vars;
    expect(utf8.find(([k]) => k === 'REQUEST_URI')![1]).toBe(
      '/caf%C3%A9/d%2Fe/../f//g/\u00e9/%FF?q=a%20b&r=\u00e9&s=%2F',
    );
  });

  it.each(empties.map((c) => [c.file, c] as const))(
    '%s: a backend connection closed before any byte is truncated, never a request',
    (_file, c) => {
      const bytes = load(c);
      expect(bytes.length).toBe(0);
      expect(catchError(() => decodePacket(bytes))).toMatchObject({
        code: 'UWSGI_ERR_PACKET_TRUNCATED',
      });
      const { handler, out } = collector();
      const decoder = new PacketDecoder(handler);
      decoder.push(bytes);
      // EOF with zero bytes: either a clean "no packet" or a truncation error; never vars.
      try {
        decoder.end();
      } catch (err) {
        expect(err).toMatchObject({ code: 'UWSGI_ERR_PACKET_TRUNCATED' });
      }
      expect(out.vars).toBeUndefined();
      expect(out.headers).toEqual([]);
    },
  );
});
