/** PROTOCOL.md section 9: hand-derived vectors A-M, bytes written out. */
import { describe, expect, it } from 'vitest';
import {
  decodeArray,
  decodePacket,
  encodeArray,
  encodeHeader,
  encodePacket,
  encodePing,
  encodePong,
  isPing,
  isPong,
  MODIFIER1,
  PacketDecoder,
  readHeader,
  varsToRequest,
} from '../src/index.ts';
import { ascii, codes, collector, concat, hex } from './helpers.ts';

const B = hex(
  '00 3e 00 00 0e 00 52 45 51 55 45 53 54 5f 4d 45 54 48 4f 44 03 00 47 45 54 09 00 50 41 54 48 5f 49 4e 46 4f 01 00 2f 0f 00 53 45 52 56 45 52 5f 50 52 4f 54 4f 43 4f 4c 08 00 48 54 54 50 2f 31 2e 31',
);
const I_HEAD = hex(
  '00 29 00 00 0e 00 52 45 51 55 45 53 54 5f 4d 45 54 48 4f 44 04 00 50 4f 53 54 0e 00 43 4f 4e 54 45 4e 54 5f 4c 45 4e 47 54 48 01 00 35',
);

describe('PROTOCOL.md section 9 vectors', () => {
  it('A: header only is valid framing with no vars; HTTP dispatch rejects it', () => {
    const p = decodePacket(hex('00 00 00 00'));
    expect(p).toEqual({ modifier1: 0, modifier2: 0, vars: [], byteLength: 4 });
    expect(() => varsToRequest(p.vars)).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_REQUEST_INVALID' }),
    );
  });

  it('B: minimal GET (66 bytes)', () => {
    expect(B.length).toBe(66);
    const p = decodePacket(B);
    expect(p.vars).toEqual([
      ['REQUEST_METHOD', 'GET'],
      ['PATH_INFO', '/'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
    ]);
    expect(p.byteLength).toBe(66);
    expect(encodePacket(p.vars)).toEqual(B);
    const r = varsToRequest(p.vars);
    expect(r).toMatchObject({ method: 'GET', url: '/', httpVersion: '1.1', contentLength: 0 });
  });

  it('C: empty value', () => {
    const bytes = hex('00 10 00 00 0c 00 51 55 45 52 59 5f 53 54 52 49 4e 47 00 00');
    expect(decodePacket(bytes).vars).toEqual([['QUERY_STRING', '']]);
    expect(encodePacket([['QUERY_STRING', '']])).toEqual(bytes);
  });

  it('D: UTF-8 value is latin1 by default, text with encoding utf8', () => {
    const bytes = hex('00 14 00 00 0b 00 48 54 54 50 5f 58 5f 4e 41 4d 45 05 00 63 61 66 c3 a9');
    const latin1 = decodePacket(bytes).vars[0]!;
    expect(latin1[0]).toBe('HTTP_X_NAME');
    expect(codes(latin1[1])).toEqual([0x63, 0x61, 0x66, 0xc3, 0xa9]);
    expect(latin1[1]).toBe('cafÃ©');
    expect(decodePacket(bytes, { encoding: 'utf8' }).vars).toEqual([['HTTP_X_NAME', 'café']]);
    expect(encodePacket([['HTTP_X_NAME', 'café']], { encoding: 'utf8' })).toEqual(bytes);
    expect(encodePacket([['HTTP_X_NAME', 'cafÃ©']])).toEqual(bytes);
  });

  it('E: invalid UTF-8 stays byte-exact in latin1, refused in utf8 mode', () => {
    const bytes = hex('00 0f 00 00 09 00 50 41 54 48 5f 49 4e 46 4f 02 00 2f ff');
    const [key, value] = decodePacket(bytes).vars[0]!;
    expect(key).toBe('PATH_INFO');
    expect(codes(value)).toEqual([0x2f, 0xff]);
    expect(encodePacket([[key, value]])).toEqual(bytes);
    expect(() => decodePacket(bytes, { encoding: 'utf8' })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_ENCODING', offset: 17 }),
    );
  });

  it('F: zero-length key is rejected', () => {
    expect(() => decodePacket(hex('00 05 00 00 00 00 01 00 78'))).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_MALFORMED', offset: 4 }),
    );
  });

  it('G: value overrun is rejected (val_len 9, 3 left)', () => {
    expect(() => decodePacket(hex('00 08 00 00 01 00 41 09 00 78 79 7a'))).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_MALFORMED', offset: 7 }),
    );
  });

  it('H: short block then EOF: truncated, no vars delivered', () => {
    const { seen, handler } = collector();
    const d = new PacketDecoder(handler);
    d.push(concat(hex('00 57 00 00'), new Uint8Array(77)));
    expect(d.state).toBe('vars');
    expect(() => d.end()).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_PACKET_TRUNCATED', offset: 81 }),
    );
    expect(seen.vars).toBeUndefined();
    expect(d.state).toBe('failed');
  });

  it('I: POST with a 5-byte body right after the block', () => {
    const { seen, handler } = collector(
      (vars) => varsToRequest([...vars, ['PATH_INFO', '/']]).contentLength,
    );
    const d = new PacketDecoder(handler);
    const packet = concat(I_HEAD, ascii('hello'));
    expect(d.push(packet)).toBe(packet.length);
    expect(seen.vars).toEqual([
      ['REQUEST_METHOD', 'POST'],
      ['CONTENT_LENGTH', '5'],
    ]);
    expect(concat(...seen.body)).toEqual(ascii('hello'));
    expect(seen.ended).toBe(1);
    expect(d.state).toBe('done');
    expect(d.bytesConsumed).toBe(50);
  });

  it('J: maximum datasize 65535 with a 65530-byte value', () => {
    const value = new Uint8Array(65530).fill(0x61);
    const bytes = concat(hex('00 ff ff 00 01 00 58 fa ff'), value);
    const p = decodePacket(bytes);
    expect(p.byteLength).toBe(65539);
    expect(p.vars[0]![0]).toBe('X');
    expect(p.vars[0]![1].length).toBe(65530);
    expect(encodePacket(p.vars)).toEqual(bytes);
    // 65536 cannot be encoded.
    expect(() => encodePacket([['X', 'a'.repeat(65531)]])).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' }),
    );
  });

  it('K: duplicate keys are kept in order', () => {
    const bytes = concat(
      hex('00 27 00 00'),
      hex('0a 00'),
      ascii('HTTP_X_DUP'),
      hex('05 00'),
      ascii('first'),
      hex('0a 00'),
      ascii('HTTP_X_DUP'),
      hex('06 00'),
      ascii('second'),
    );
    const p = decodePacket(bytes);
    expect(p.vars).toEqual([
      ['HTTP_X_DUP', 'first'],
      ['HTTP_X_DUP', 'second'],
    ]);
    // Map view is last-wins.
    expect(new Map(p.vars).get('HTTP_X_DUP')).toBe('second');
    const r = varsToRequest([['REQUEST_METHOD', 'GET'], ['REQUEST_URI', '/'], ...p.vars]);
    expect(r.headers).toEqual([
      ['x-dup', 'first'],
      ['x-dup', 'second'],
    ]);
  });

  it('L: ping 64 00 00 00 -> pong 64 00 00 01', () => {
    expect(encodePing()).toEqual(hex('64 00 00 00'));
    expect(encodePong()).toEqual(hex('64 00 00 01'));
    expect(isPing(readHeader(hex('64 00 00 00')))).toBe(true);
    expect(isPong(readHeader(hex('64 00 00 00')))).toBe(false);
    expect(isPong(readHeader(hex('64 00 00 01')))).toBe(true);
    expect(isPing(readHeader(hex('00 00 00 00')))).toBe(false);
    expect(encodePong('busy')).toEqual(concat(hex('64 04 00 01'), ascii('busy')));
  });

  it('M: RPC request and reply (array form)', () => {
    const request = hex('ad 0e 00 00 05 00 68 65 6c 6c 6f 05 00 77 6f 72 6c 64');
    const header = readHeader(request);
    expect(header).toEqual({ modifier1: MODIFIER1.RPC, datasize: 14, modifier2: 0 });
    expect(decodeArray(request.subarray(4))).toEqual(['hello', 'world']);
    const items = encodeArray(['hello', 'world']);
    expect(
      concat(
        encodeHeader({ modifier1: MODIFIER1.RPC, datasize: items.length, modifier2: 0 }),
        items,
      ),
    ).toEqual(request);
    const reply = hex('ad 08 00 00 68 69 20 77 6f 72 6c 64');
    const payload = ascii('hi world');
    expect(
      concat(encodeHeader({ modifier1: 173, datasize: payload.length, modifier2: 0 }), payload),
    ).toEqual(reply);
  });
});
