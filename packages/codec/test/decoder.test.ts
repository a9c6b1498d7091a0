/** PacketDecoder: PROTOCOL.md section 8 "Decoder / framing", STYLE.md section 5. */
import { describe, expect, it } from 'vitest';
import {
  decodePacket,
  encodePacket,
  HEADER_SIZE,
  MODIFIER1,
  PacketDecoder,
  UwsgiError,
} from '../src/index.ts';
import { ascii, codes, collector, concat, hex } from './helpers.ts';

const GET = encodePacket([
  ['REQUEST_METHOD', 'GET'],
  ['REQUEST_URI', '/x'],
]);

describe('PacketDecoder framing', () => {
  it('reads a header split across reads, datasize u16 little-endian at offset 1', () => {
    const { seen, handler } = collector();
    const d = new PacketDecoder(handler);
    // datasize 0x0102 = 258: byte 1 is the low byte.
    const packet = encodePacket([['K', 'v'.repeat(253)]], { modifier1: 7, modifier2: 9 });
    expect(packet.subarray(0, 4)).toEqual(hex('07 02 01 09'));
    d.push(packet.subarray(0, 1));
    expect(d.state).toBe('header');
    d.push(packet.subarray(1, 3));
    expect(d.state).toBe('header');
    expect(seen.header).toBeUndefined();
    d.push(packet.subarray(3, 5));
    expect(seen.header).toEqual({ modifier1: 7, datasize: 258, modifier2: 9 });
    expect(d.header).toEqual(seen.header);
    expect(d.state).toBe('vars');
    d.push(packet.subarray(5));
    expect(seen.vars).toEqual([['K', 'v'.repeat(253)]]);
    expect(d.state).toBe('done');
    expect(d.bytesConsumed).toBe(packet.length);
  });

  it('accepts datasize up to 65535 (above uWSGI 4096 default)', () => {
    const big = encodePacket([['HTTP_COOKIE', 'c'.repeat(65535 - 4 - 11)]]);
    expect(big.length).toBe(HEADER_SIZE + 65535);
    expect(decodePacket(big).vars[0]![1].length).toBe(65520);
    expect(decodePacket(encodePacket([['HTTP_COOKIE', 'c'.repeat(5000)]])).vars[0]![1].length).toBe(
      5000,
    );
  });

  it('buffers exactly datasize; surplus bytes in the same read start the body, zero-copy', () => {
    const { seen, handler } = collector(() => 4);
    const d = new PacketDecoder(handler);
    const packet = concat(GET, ascii('bodyEXTRA'));
    expect(d.push(packet)).toBe(GET.length + 4);
    expect(seen.body).toHaveLength(1);
    const body = seen.body[0]!;
    expect(body).toEqual(ascii('body'));
    // A view of the pushed chunk, not a copy.
    expect(body.buffer).toBe(packet.buffer);
    expect(body.byteOffset).toBe(GET.length);
    expect(d.state).toBe('done');
    // Bytes after a complete request are not consumed (one request per connection).
    expect(d.push(ascii('more'))).toBe(0);
  });

  it('keeps body bytes that share the read completing a split vars block', () => {
    const { seen, handler } = collector(() => undefined);
    const d = new PacketDecoder(handler);
    const packet = concat(GET, ascii('abc'));
    d.push(packet.subarray(0, 6));
    const tail = packet.subarray(6);
    d.push(tail);
    expect(seen.vars).toEqual([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/x'],
    ]);
    expect(seen.body[0]).toEqual(ascii('abc'));
    expect(seen.body[0]!.buffer).toBe(packet.buffer);
    d.push(ascii('de'));
    expect(d.state).toBe('body');
    expect(seen.ended).toBe(0);
    d.end();
    expect(seen.ended).toBe(1);
    expect(d.state).toBe('done');
    expect(concat(...seen.body)).toEqual(ascii('abcde'));
  });

  it('datasize 0 is valid framing', () => {
    const { seen, handler } = collector();
    const d = new PacketDecoder(handler);
    d.push(hex('00 00 00 00'));
    expect(seen.vars).toEqual([]);
    expect(seen.ended).toBe(1);
    expect(d.state).toBe('done');
  });

  it.each([
    ['zero-length key', '00 05 00 00 00 00 01 00 78', 4],
    ['key overrun', '00 05 00 00 09 00 41 42 43', 4],
    ['value overrun', '00 08 00 00 01 00 41 09 00 78 79 7a', 7],
    ['< 5 bytes at a var start (1 stray byte)', '00 06 00 00 01 00 41 00 00 07', 9],
    [
      '< 5 bytes at a var start (key without value length)',
      '00 08 00 00 01 00 41 00 00 01 00 42',
      12,
    ],
    ['key length 0xffff in a small block', '00 06 00 00 ff ff 41 42 43 44', 4],
  ])('rejects %s', (_name, bytes, offset) => {
    const err = (() => {
      try {
        decodePacket(hex(bytes));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(UwsgiError);
    expect(err).toMatchObject({ code: 'UWSGI_ERR_VARS_MALFORMED', offset });
  });

  it('rejects trailing garbage after the last pair, split or not', () => {
    const bytes = hex('00 07 00 00 01 00 41 00 00 ff ff');
    expect(() => decodePacket(bytes)).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_MALFORMED' }),
    );
    const d = new PacketDecoder(collector().handler);
    d.push(bytes.subarray(0, 6));
    expect(() => d.push(bytes.subarray(6))).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_MALFORMED', offset: 9 }),
    );
  });

  it('allows empty values, including the last var', () => {
    const vars: Array<[string, string]> = [
      ['A', ''],
      ['B', 'x'],
      ['C', ''],
    ];
    expect(decodePacket(encodePacket(vars)).vars).toEqual(vars);
  });

  it('keeps ordered byte-exact duplicates', () => {
    const vars: Array<[string, string]> = [
      ['HTTP_X_UNDER', 'one'],
      ['PATH_INFO', '/'],
      ['HTTP_X_UNDER', 'two'],
      ['HTTP_X_UNDER', 'one'],
    ];
    expect(decodePacket(encodePacket(vars)).vars).toEqual(vars);
  });

  it('maps every byte 0x00-0xFF to one char in latin1 (never lossy UTF-8)', () => {
    const all = new Uint8Array(256).map((_, i) => i);
    const block = concat(hex('01 00 4b 00 01'), all);
    const packet = concat(hex('00 05 01 00'), block);
    const value = decodePacket(packet).vars[0]![1];
    expect(value.length).toBe(256);
    expect(codes(value)).toEqual([...all]);
    // Short values and values in blocks with length fields >= 0x80 too.
    for (const b of [0x00, 0x7f, 0x80, 0x81, 0x9f, 0xa0, 0xff]) {
      const v = String.fromCharCode(b);
      expect(decodePacket(encodePacket([['K', v]])).vars).toEqual([['K', v]]);
      expect(decodePacket(encodePacket([['K', v.repeat(200)]])).vars).toEqual([
        ['K', v.repeat(200)],
      ]);
    }
  });

  it('caps the var count and the block size, failing cleanly', () => {
    const many = Array.from({ length: 11 }, (_, i): [string, string] => [`K${i}`, 'v']);
    expect(() => decodePacket(encodePacket(many), { maxVars: 10 })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_TOO_MANY' }),
    );
    expect(decodePacket(encodePacket(many), { maxVars: 11 }).vars).toHaveLength(11);
    const packet = encodePacket([['K', 'v'.repeat(100)]]);
    expect(() => decodePacket(packet, { maxVarsSize: 100 })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_TOO_LARGE', offset: 1 }),
    );
  });

  it('fails over-limit datasize at the header, before buffering any vars byte', () => {
    const { seen, handler } = collector();
    const d = new PacketDecoder(handler, { maxVarsSize: 16384 });
    d.push(hex('00 01'));
    expect(() => d.push(hex('40 00 41 41'))).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_TOO_LARGE' }),
    );
    expect(d.state).toBe('failed');
    expect(d.bytesConsumed).toBe(4);
    expect(seen.header).toBeUndefined();
  });

  it.each([
    ['zero bytes', ''],
    ['inside the header', '00 10'],
    ['inside the vars', '00 10 00 00 04 00'],
  ])('EOF %s: truncated', (_name, bytes) => {
    const d = new PacketDecoder(collector().handler);
    d.push(hex(bytes));
    expect(() => d.end()).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_PACKET_TRUNCATED', offset: hex(bytes).length }),
    );
  });

  it('EOF inside a declared body: truncated; open-ended body: completes', () => {
    const short = new PacketDecoder(collector(() => 10).handler);
    short.push(concat(GET, ascii('12345')));
    expect(() => short.end()).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_PACKET_TRUNCATED' }),
    );
    const { seen, handler } = collector(() => undefined);
    const open = new PacketDecoder(handler);
    open.push(GET);
    open.end();
    expect(seen.ended).toBe(1);
    open.end();
    expect(seen.ended).toBe(1);
  });

  it('reports modifiers as sent (modifier1 30, control packets, unknown ones)', () => {
    for (const [m1, m2] of [
      [MODIFIER1.MANAGE_PATH_INFO, 0],
      [MODIFIER1.PING, 0],
      [5, 3],
      [255, 255],
    ] as const) {
      const p = decodePacket(encodePacket([], { modifier1: m1, modifier2: m2 }));
      expect([p.modifier1, p.modifier2]).toEqual([m1, m2]);
    }
  });

  it('stays failed until reset(), then decodes a valid packet', () => {
    const { seen, handler } = collector();
    const d = new PacketDecoder(handler);
    let first: unknown;
    try {
      d.push(hex('00 05 00 00 00 00 01 00 78'));
    } catch (err) {
      first = err;
    }
    expect(() => d.push(GET)).toThrow(first as Error);
    expect(() => d.end()).toThrow(first as Error);
    d.reset();
    expect(d.state).toBe('header');
    expect(d.bytesConsumed).toBe(0);
    d.push(GET);
    expect(seen.vars).toHaveLength(2);
    expect(d.state).toBe('done');
  });

  it('a throwing callback fails the decoder and propagates unchanged', () => {
    const boom = new Error('boom');
    const d = new PacketDecoder({
      onVars() {
        throw boom;
      },
    });
    expect(() => d.push(GET)).toThrow(boom);
    expect(d.state).toBe('failed');
  });

  it('rejects a bad onVars result and bad options', () => {
    const d = new PacketDecoder({ onVars: () => -1 });
    expect(() => d.push(GET)).toThrow(expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' }));
    expect(() => new PacketDecoder({ onVars: () => 0 }, { maxVarsSize: -1 })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' }),
    );
    expect(
      () => new PacketDecoder({ onVars: () => 0 }, { encoding: 'ascii' as unknown as 'utf8' }),
    ).toThrow(expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' }));
  });

  it('decodePacket ignores bytes after the packet and reports byteLength', () => {
    const p = decodePacket(concat(GET, ascii('body'), GET));
    expect(p.byteLength).toBe(GET.length);
    expect(p.vars).toHaveLength(2);
    expect(() => decodePacket(GET.subarray(0, GET.length - 1))).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_PACKET_TRUNCATED' }),
    );
  });

  it('utf8 mode decodes non-ASCII keys and values and refuses invalid UTF-8 with its offset', () => {
    const vars: Array<[string, string]> = [
      ['HTTP_X_Ü', 'żółw 🐢'],
      ['K', 'v'.repeat(300)],
    ];
    const packet = encodePacket(vars, { encoding: 'utf8' });
    expect(decodePacket(packet, { encoding: 'utf8' }).vars).toEqual(vars);
    expect(() => decodePacket(hex('00 06 00 00 01 00 41 01 00 c3'), { encoding: 'utf8' })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_ENCODING', offset: 9 }),
    );
  });
});
