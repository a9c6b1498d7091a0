/** Encoder (PROTOCOL.md section 8 "Encoder"), vars/array blocks and headers. */
import { describe, expect, it } from 'vitest';
import {
  decodeVars,
  encodeHeader,
  encodePacket,
  encodePong,
  encodeVars,
  MAX_DATASIZE,
  readHeader,
} from '../src/index.ts';
import { ascii, concat, hex } from './helpers.ts';

const invalid = expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' });

describe('encoder', () => {
  it('writes datasize over the vars block as u16 LE, full u16 LE field lengths', () => {
    const value = 'v'.repeat(0x1234);
    const packet = encodePacket([['KEY', value]]);
    const size = 2 + 3 + 2 + 0x1234;
    expect(packet.subarray(0, 4)).toEqual(Uint8Array.of(0, size & 0xff, size >> 8, 0));
    expect(packet.subarray(4, 9)).toEqual(concat(hex('03 00'), ascii('KEY')));
    expect(packet.subarray(9, 11)).toEqual(hex('34 12'));
    expect(readHeader(packet).datasize).toBe(size);
  });

  it('refuses a block over 65535 instead of wrapping the u16 (CVE-2020-11984)', () => {
    expect(encodePacket([['K', 'v'.repeat(MAX_DATASIZE - 5)]]).length).toBe(4 + MAX_DATASIZE);
    expect(() => encodePacket([['K', 'v'.repeat(MAX_DATASIZE - 4)]])).toThrow(invalid);
    const many = Array.from({ length: 700 }, (_, i): [string, string] => [`K${i}`, 'x'.repeat(90)]);
    expect(() => encodePacket(many)).toThrow(invalid);
    expect(() => encodeVars([['K', 'v'.repeat(65536)]])).toThrow(invalid);
  });

  it('refuses modifiers outside 0..255 and bad header fields', () => {
    expect(() => encodePacket([], { modifier1: 256 })).toThrow(invalid);
    expect(() => encodePacket([], { modifier2: -1 })).toThrow(invalid);
    expect(() => encodePacket([], { modifier1: 1.5 })).toThrow(invalid);
    expect(() => encodeHeader({ modifier1: 0, datasize: 65536, modifier2: 0 })).toThrow(invalid);
    expect(encodeHeader({ modifier1: 255, datasize: 65535, modifier2: 255 })).toEqual(
      hex('ff ff ff ff'),
    );
  });

  it('refuses empty names, non-latin1 chars in latin1 mode and lone surrogates in utf8 mode', () => {
    expect(() => encodePacket([['', 'v']])).toThrow(invalid);
    expect(() => encodePacket([['K', 'ā']])).toThrow(invalid);
    expect(() => encodePacket([['K', '\ud800']], { encoding: 'utf8' })).toThrow(invalid);
    expect(() => encodePacket([['K', 1 as unknown as string]])).toThrow(invalid);
    expect(() => encodePong('ā')).toThrow(invalid);
  });

  it('accepts a record as well as ordered pairs', () => {
    expect(encodePacket({ A: '1', B: '' })).toEqual(
      encodePacket([
        ['A', '1'],
        ['B', ''],
      ]),
    );
    function* pairs(): Generator<[string, string]> {
      yield ['A', '1'];
    }
    expect(encodePacket(pairs())).toEqual(encodePacket([['A', '1']]));
  });

  it('encodeVars/decodeVars work on the block alone', () => {
    const block = encodeVars([['A', 'b']]);
    expect(block).toEqual(hex('01 00 41 01 00 62'));
    expect(decodeVars(block)).toEqual([['A', 'b']]);
    expect(() => decodeVars(hex('01 00 41 05 00 62'))).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_VARS_MALFORMED', offset: 3 }),
    );
  });

  it('readHeader needs 4 bytes', () => {
    expect(() => readHeader(hex('00 01 02'))).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_PACKET_TRUNCATED' }),
    );
    expect(readHeader(hex('ff 00 01 02 03'), 1)).toEqual({
      modifier1: 0,
      datasize: 0x0201,
      modifier2: 3,
    });
  });
});
