/** STYLE.md section 8 properties for the codec, time-boxed (fast-check 4). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodePacket,
  encodePacket,
  HEADER_SIZE,
  PacketDecoder,
  requestToVars,
  UwsgiError,
  varsToRequest,
} from '../src/index.ts';
import { collector, concat } from './helpers.ts';

/** Each property gets at most this long; the whole file stays well under the suite budget. */
const BUDGET = { interruptAfterTimeLimit: 1500, numRuns: 300 } as const;

const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));
const latin1 = (maxLength: number, minLength = 0) =>
  fc.string({ unit: latin1Char, minLength, maxLength });
const pairs = fc.array(fc.tuple(latin1(20, 1), latin1(300)), { maxLength: 40 });
const utf8Pairs = fc.array(
  fc.tuple(
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }),
    fc.string({ unit: 'grapheme', maxLength: 60 }),
  ),
  { maxLength: 20 },
);

/** A packet built by hand from raw byte fields, independent of the encoder. */
const rawPacket = fc
  .record({
    modifier1: fc.integer({ min: 0, max: 255 }),
    modifier2: fc.integer({ min: 0, max: 255 }),
    fields: fc.array(
      fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 20 }), fc.uint8Array({ maxLength: 200 })),
      {
        maxLength: 30,
      },
    ),
  })
  .map(({ modifier1, modifier2, fields }) => {
    const parts: Uint8Array[] = [];
    for (const [k, v] of fields) {
      parts.push(
        Uint8Array.of(k.length & 0xff, k.length >> 8),
        k,
        Uint8Array.of(v.length & 0xff, v.length >> 8),
        v,
      );
    }
    const block = concat(...parts);
    return {
      bytes: concat(
        Uint8Array.of(modifier1, block.length & 0xff, block.length >> 8, modifier2),
        block,
      ),
      modifier1,
      modifier2,
      fields,
    };
  });

/** Cuts `bytes` at the given points (taken modulo its length). */
function split(bytes: Uint8Array, points: number[]): Uint8Array[] {
  const cuts = [
    ...new Set(points.map((p) => (bytes.length === 0 ? 0 : p % (bytes.length + 1)))),
  ].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  out.push(bytes.subarray(prev));
  return out;
}

describe('codec properties', () => {
  it('vars -> bytes -> vars round-trips (latin1)', () => {
    fc.assert(
      fc.property(pairs, (vars) => {
        expect(decodePacket(encodePacket(vars)).vars).toEqual(vars);
      }),
      BUDGET,
    );
  });

  it('vars -> bytes -> vars round-trips (utf8 option)', () => {
    fc.assert(
      fc.property(utf8Pairs, (vars) => {
        const bytes = encodePacket(vars, { encoding: 'utf8' });
        expect(decodePacket(bytes, { encoding: 'utf8' }).vars).toEqual(vars);
      }),
      BUDGET,
    );
  });

  it('bytes -> vars -> bytes is the identity for valid packets', () => {
    fc.assert(
      fc.property(rawPacket, ({ bytes, modifier1, modifier2, fields }) => {
        const p = decodePacket(bytes);
        expect(p.vars).toHaveLength(fields.length);
        expect(p.byteLength).toBe(bytes.length);
        expect(encodePacket(p.vars, { modifier1: p.modifier1, modifier2: p.modifier2 })).toEqual(
          bytes,
        );
        expect([p.modifier1, p.modifier2]).toEqual([modifier1, modifier2]);
      }),
      BUDGET,
    );
  });

  it('PacketDecoder is chunk-split invariant (header, vars, body, consumed)', () => {
    fc.assert(
      fc.property(
        rawPacket,
        fc.uint8Array({ maxLength: 300 }),
        fc.uint8Array({ maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        ({ bytes }, body, extra, points) => {
          const stream = concat(bytes, body, extra);
          const run = (chunks: Uint8Array[]) => {
            const { seen, handler } = collector(() => body.length);
            const d = new PacketDecoder(handler);
            let consumed = 0;
            for (const c of chunks) consumed += d.push(c);
            d.end();
            return {
              header: seen.header,
              vars: seen.vars,
              body: concat(...seen.body),
              ended: seen.ended,
              consumed,
              total: d.bytesConsumed,
            };
          };
          const whole = run([stream]);
          expect(whole.body).toEqual(body);
          expect(whole.consumed).toBe(bytes.length + body.length);
          expect(run(split(stream, points))).toEqual(whole);
          expect(
            run(
              split(
                stream,
                Array.from({ length: stream.length }, (_, i) => i),
              ),
            ),
          ).toEqual(whole);
        },
      ),
      BUDGET,
    );
  });

  it('arbitrary bytes give only UwsgiError, never a hang; after reset() a valid packet decodes', () => {
    const valid = encodePacket([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/'],
    ]);
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 2000 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        fc.boolean(),
        (garbage, points, open) => {
          const { seen, handler } = collector(() => (open ? undefined : 3));
          const d = new PacketDecoder(handler, { maxVars: 50 });
          try {
            for (const c of split(garbage, points)) d.push(c);
            d.end();
            if (seen.vars !== undefined) varsToRequest(seen.vars);
          } catch (err) {
            expect(err).toBeInstanceOf(UwsgiError);
          }
          d.reset();
          seen.vars = undefined;
          d.push(valid);
          expect(seen.vars).toEqual([
            ['REQUEST_METHOD', 'GET'],
            ['REQUEST_URI', '/'],
          ]);
        },
      ),
      BUDGET,
    );
  });

  it('over-limit datasize fails once the 4 header bytes are in, before buffering vars', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 0, max: 65534 })
          .chain((limit) =>
            fc.tuple(
              fc.constant(limit),
              fc.integer({ min: limit + 1, max: 65535 }),
              fc.integer({ min: 1, max: 4 }),
            ),
          ),
        fc.uint8Array({ maxLength: 64 }),
        ([limit, datasize, firstCut], tail) => {
          const { seen, handler } = collector();
          const d = new PacketDecoder(handler, { maxVarsSize: limit });
          const bytes = concat(Uint8Array.of(0, datasize & 0xff, datasize >> 8, 0), tail);
          if (firstCut < HEADER_SIZE) d.push(bytes.subarray(0, firstCut));
          expect(d.state).toBe('header');
          let err: unknown;
          try {
            d.push(bytes.subarray(firstCut < HEADER_SIZE ? firstCut : 0));
          } catch (e) {
            err = e;
          }
          expect(err).toMatchObject({ code: 'UWSGI_ERR_VARS_TOO_LARGE', offset: 1 });
          expect(d.state).toBe('failed');
          expect(d.bytesConsumed).toBe(HEADER_SIZE);
          expect(seen.header).toBeUndefined();
        },
      ),
      BUDGET,
    );
  });

  it('varsToRequest(requestToVars(r)) round-trips for requests nginx can express', () => {
    const token = fc.string({
      unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'),
      minLength: 1,
      maxLength: 8,
    });
    const segment = fc.string({
      unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_~'),
      minLength: 1,
      maxLength: 8,
    });
    const headerName = fc
      .string({
        unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-'),
        minLength: 1,
        maxLength: 12,
      })
      .filter((n) => !['content-length', 'content-type', 'transfer-encoding', 'host'].includes(n));
    const headerValue = fc
      .string({ unit: fc.constantFrom(...'abcdefghij XYZ019;=,/'), maxLength: 20 })
      .map((v) => v.trim());
    const request = fc.record({
      method: token,
      path: fc.array(segment, { maxLength: 4 }).map((s) => `/${s.join('/')}`),
      query: fc.option(fc.string({ unit: fc.constantFrom(...'abc=&%20'), maxLength: 12 }), {
        nil: undefined,
      }),
      headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 8 }),
      host: fc.option(fc.constantFrom('example.com', 'a.test:8080'), { nil: undefined }),
      body: fc.option(
        fc.record({
          length: fc.nat({ max: 1e9 }),
          type: fc.constantFrom('text/plain', 'application/json'),
        }),
        { nil: undefined },
      ),
      scheme: fc.constantFrom('http' as const, 'https' as const),
      httpVersion: fc.constantFrom('1.0', '1.1'),
      remotePort: fc.integer({ min: 1, max: 65535 }),
      serverPort: fc.integer({ min: 1, max: 65535 }),
      serverName: fc.constantFrom('', 'localhost'),
    });
    fc.assert(
      fc.property(request, (r) => {
        const url = r.query === undefined ? r.path : `${r.path}?${r.query}`;
        const headers: Array<[string, string]> = [];
        if (r.host !== undefined) headers.push(['host', r.host]);
        headers.push(...r.headers);
        if (r.body !== undefined)
          headers.push(['content-type', r.body.type], ['content-length', String(r.body.length)]);
        const vars = requestToVars({
          method: r.method,
          url,
          headers,
          scheme: r.scheme,
          httpVersion: r.httpVersion,
          remoteAddress: '192.0.2.1',
          remotePort: r.remotePort,
          serverName: r.serverName,
          serverPort: r.serverPort,
        });
        // Through the wire as well.
        const back = varsToRequest(decodePacket(encodePacket(vars)).vars);
        expect(back).toMatchObject({
          method: r.method,
          url,
          path: r.path,
          query: r.query ?? '',
          httpVersion: r.httpVersion,
          headers,
          contentLength: r.body?.length ?? 0,
          scheme: r.scheme,
          host: r.host ?? r.serverName,
          remoteAddress: '192.0.2.1',
          remotePort: r.remotePort,
          serverName: r.serverName,
          serverPort: r.serverPort,
          serverProtocol: `HTTP/${r.httpVersion}`,
          scriptName: '',
          pathInfo: r.path,
        });
      }),
      BUDGET,
    );
  });
});
