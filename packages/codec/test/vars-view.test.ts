/**
 * The lazy vars view (vars-view.ts): held to the eager decode on every fixture and on hostile
 * blocks, byte-exact, and through the push decoder.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  type DecoderViewHandler,
  decodePacket,
  decodePacketView,
  decodeVars,
  decodeVarsView,
  encodePacket,
  encodeVars,
  PacketDecoder,
  type PacketHeader,
  UwsgiError,
  type VarsView,
} from '../src/index.ts';
import { ascii, concat, expectViewMatches, hex } from './helpers.ts';

const FIXTURES = new URL('./fixtures/', import.meta.url);
const fixtures = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.bin'))
  .sort()
  .map((file) => ({ file, bytes: new Uint8Array(readFileSync(new URL(file, FIXTURES))) }))
  .filter((f) => f.bytes.length > 0);

interface Outcome {
  readonly vars?: Array<[string, string]>;
  readonly error?: { code: string; message: string; offset: number | undefined };
}

function outcome(fn: () => Array<[string, string]>): Outcome {
  try {
    return { vars: fn() };
  } catch (err) {
    if (!(err instanceof UwsgiError)) throw err;
    return { error: { code: err.code, message: err.message, offset: err.offset } };
  }
}

describe('decodeVarsView', () => {
  it('reads by name, first value wins, duplicates in order', () => {
    const block = encodeVars([
      ['REQUEST_METHOD', 'GET'],
      ['HTTP_COOKIE', 'a=1'],
      ['QUERY_STRING', ''],
      ['HTTP_COOKIE', 'b=2'],
    ]);
    const view = decodeVarsView(block);
    expect(view.size).toBe(4);
    expect(view.get('REQUEST_METHOD')).toBe('GET');
    expect(view.get('HTTP_COOKIE')).toBe('a=1');
    expect(view.getAll('HTTP_COOKIE')).toEqual(['a=1', 'b=2']);
    expect(view.get('QUERY_STRING')).toBe('');
    expect(view.has('QUERY_STRING')).toBe(true);
    expect(view.get('PATH_INFO')).toBeUndefined();
    expect(view.getAll('PATH_INFO')).toEqual([]);
    expect(view.has('PATH_INFO')).toBe(false);
    // Names are compared exactly: no case folding, no prefix match.
    expect(view.get('request_method')).toBeUndefined();
    expect(view.get('REQUEST_METHO')).toBeUndefined();
    expect(view.get('')).toBeUndefined();
    expect(view.get('HTTP_\u0100')).toBeUndefined();
    expect(view.encoding).toBe('latin1');
  });

  it('is byte-exact: latin1 chars, raw value bytes, the block itself', () => {
    const block = concat(
      hex('04 00'),
      ascii('PATH'),
      hex('04 00 2f ff 80 00'),
      hex('02 00'),
      Uint8Array.of(0xe9, 0x41),
      hex('00 00'),
    );
    const view = decodeVarsView(block);
    expect(view.get('PATH')).toBe('/\u00ff\u0080\u0000');
    expect(view.get('\u00e9A')).toBe('');
    expect(view.getBytes('PATH')).toEqual(Uint8Array.of(0x2f, 0xff, 0x80, 0));
    expect(view.getBytes('\u00e9A')).toEqual(new Uint8Array(0));
    expect(view.getBytes('NOPE')).toBeUndefined();
    expect(view.block()).toEqual(block);
    expect(view.bytes).toBe(block);
    expect(view.byteOffset).toBe(0);
    expect(view.byteLength).toBe(block.length);
    expect(encodeVars(view)).toEqual(block);
    expectViewMatches(view, decodeVars(block));
  });

  it('decodes utf8 strictly, reads by utf8 name, re-encodes exactly', () => {
    const pairs: Array<[string, string]> = [
      ['PATH_INFO', '/caf\u00e9/\u{1f600}'],
      ['X_\u00e9', 'v'],
      ['A', 'plain'],
    ];
    const block = encodeVars(pairs, { encoding: 'utf8' });
    const view = decodeVarsView(block, { encoding: 'utf8' });
    expect(view.encoding).toBe('utf8');
    expectViewMatches(view, pairs);
    expect(view.get('X_\u00e9')).toBe('v');
    expect(encodeVars(view, { encoding: 'utf8' })).toEqual(block);
    // The same bytes in latin1: one char per byte.
    const latin1 = decodeVarsView(block);
    expect(latin1.get('PATH_INFO')).toBe('/caf\u00c3\u00a9/\u00f0\u009f\u0098\u0080');
    expect(latin1.get('X_\u00c3\u00a9')).toBe('v');
    expect(latin1.get('X_\u00e9')).toBeUndefined();
  });

  it('refuses invalid utf8 at construction, as decodeVars does', () => {
    const block = concat(hex('01 00'), ascii('A'), hex('02 00 c3 28'));
    const eager = outcome(() => decodeVars(block, { encoding: 'utf8' }));
    const lazy = outcome(() => [...decodeVarsView(block, { encoding: 'utf8' })]);
    expect(eager.error?.code).toBe('UWSGI_ERR_VARS_ENCODING');
    expect(lazy).toEqual(eager);
    expect(decodeVarsView(block).get('A')).toBe('\u00c3(');
  });

  it('an empty block is a view of no vars', () => {
    const view = decodeVarsView(new Uint8Array(0));
    expect(view.size).toBe(0);
    expect([...view]).toEqual([]);
    expect(view.get('A')).toBeUndefined();
  });

  it('checks options as decodeVars does', () => {
    for (const options of [{ maxVars: -1 }, { maxVars: 1.5 }, { encoding: 'ascii' }] as const) {
      const eager = outcome(() => decodeVars(new Uint8Array(0), options as never));
      expect(eager.error?.code).toBe('UWSGI_ERR_ARG_INVALID');
      expect(outcome(() => [...decodeVarsView(new Uint8Array(0), options as never)])).toEqual(
        eager,
      );
    }
  });

  it('string(from, to) reads a field scanned by offsets, and refuses ranges outside', () => {
    const block = concat(new Uint8Array(3), encodeVars([['HOST', 'example.org']]));
    const view = decodeVarsView(block.subarray(3));
    const seen: string[] = [];
    view.scan({
      onVar(_b, ks, ke, vs, ve) {
        seen.push(view.string(ks, ke), view.string(vs, ve));
        return true;
      },
    });
    expect(seen).toEqual(['HOST', 'example.org']);
    expect(() => view.string(0, 100)).toThrow(RangeError);
  });
});

describe('hostile blocks: the same error, code, message and offset as decodeVars', () => {
  const cases: Array<[string, Uint8Array, { maxVars?: number }?]> = [
    ['zero-length key', hex('00 00 01 00 41')],
    ['key overruns', hex('05 00 41 42')],
    ['key without a value length', hex('01 00 41 00')],
    ['value overruns', hex('01 00 41 05 00 42')],
    ['one stray byte', hex('01 00 41 01 00 42 07')],
    ['four stray bytes', hex('01 00 41 01 00 42 07 00 41 41')],
    ['length 0xffff', hex('ff ff 41')],
    [
      'too many',
      encodeVars([
        ['A', '1'],
        ['B', '2'],
        ['C', '3'],
      ]),
      { maxVars: 2 },
    ],
    ['maxVars 0, one var', encodeVars([['A', '']]), { maxVars: 0 }],
    ['high length bytes, then garbage', concat(encodeVars([['K', 'x'.repeat(200)]]), hex('80'))],
  ];
  for (const [name, block, options] of cases) {
    it(name, () => {
      const eager = outcome(() => decodeVars(block, options));
      expect(eager.error).toBeDefined();
      expect(outcome(() => [...decodeVarsView(block, options)])).toEqual(eager);
      // As a packet: offsets shifted by the header, through both one-shot decoders.
      const packet = concat(Uint8Array.of(0, block.length & 0xff, block.length >> 8, 0), block);
      const p = outcome(() => decodePacket(packet, options).vars);
      expect(p.error?.offset).toBe((eager.error?.offset ?? 0) + 4);
      expect(outcome(() => [...decodePacketView(packet, options).vars])).toEqual(p);
    });
  }

  it('a truncated packet and a datasize over the limit', () => {
    const packet = encodePacket([['A', 'b']]);
    for (const [bytes, options] of [
      [packet.subarray(0, 2), {}],
      [packet.subarray(0, packet.length - 1), {}],
      [packet, { maxVarsSize: 3 }],
    ] as const) {
      const eager = outcome(() => decodePacket(bytes, options).vars);
      expect(eager.error).toBeDefined();
      expect(outcome(() => [...decodePacketView(bytes, options).vars])).toEqual(eager);
    }
  });
});

describe('fixtures (every front end): the view equals decodePacket', () => {
  for (const { file, bytes } of fixtures) {
    it(file, () => {
      const eager = decodePacket(bytes);
      const lazy = decodePacketView(bytes);
      expect(lazy.modifier1).toBe(eager.modifier1);
      expect(lazy.modifier2).toBe(eager.modifier2);
      expect(lazy.byteLength).toBe(eager.byteLength);
      expectViewMatches(lazy.vars, eager.vars);
      expect(lazy.vars.block()).toEqual(bytes.subarray(4, eager.byteLength));
      expect(encodePacket(lazy.vars, eager)).toEqual(bytes.subarray(0, eager.byteLength));
      for (const encoding of ['utf8', 'latin1'] as const) {
        const e = outcome(() => decodePacket(bytes, { encoding }).vars);
        expect(outcome(() => [...decodePacketView(bytes, { encoding }).vars])).toEqual(e);
      }
    });
  }
});

describe('detach', () => {
  it('copies the block out of memory that is then reused', () => {
    const pairs: Array<[string, string]> = [
      ['REQUEST_URI', '/a?b'],
      ['HTTP_USER_AGENT', 'u'.repeat(300)],
    ];
    for (const size of [1, 40, 5000]) {
      const read = new Uint8Array(8192);
      const block = encodeVars([...pairs, ['PAD', 'p'.repeat(size)]]);
      read.set(block, 7);
      const view = decodeVarsView(read.subarray(7, 7 + block.length));
      expect(view.get('REQUEST_URI')).toBe('/a?b');
      expect(view.detach()).toBe(view);
      expect(view.bytes).not.toBe(read);
      read.fill(0x41);
      expectViewMatches(view, [...pairs, ['PAD', 'p'.repeat(size)]]);
      expect(view.block()).toEqual(block);
      expect(view.detach()).toBe(view);
    }
  });

  it('views detached one after another do not share bytes', () => {
    const read = new Uint8Array(64);
    const views: VarsView[] = [];
    for (let i = 0; i < 3000; i++) {
      const block = encodeVars([['N', String(i)]]);
      read.set(block);
      views.push(decodeVarsView(read.subarray(0, block.length)).detach());
    }
    expect(views.map((view) => view.get('N'))).toEqual(views.map((_, i) => String(i)));
  });
});

describe('PacketDecoder with onVarsView', () => {
  function run(chunks: Uint8Array[], bodyLength = 0) {
    const seen: { views: VarsView[]; headers: PacketHeader[]; body: number[]; ended: number } = {
      views: [],
      headers: [],
      body: [],
      ended: 0,
    };
    const handler: DecoderViewHandler = {
      onVarsView(view, header) {
        seen.views.push(view);
        seen.headers.push(header);
        return bodyLength;
      },
      onBody(chunk) {
        seen.body.push(...chunk);
      },
      onEnd() {
        seen.ended++;
      },
    };
    const decoder = new PacketDecoder(handler);
    for (const c of chunks) decoder.push(c);
    return { seen, decoder };
  }

  const packet = concat(
    encodePacket([
      ['REQUEST_METHOD', 'POST'],
      ['CONTENT_LENGTH', '3'],
      ['HTTP_X', 'y'.repeat(150)],
    ]),
    ascii('abc'),
  );

  it('gives the view, then the body, for every split of the packet', () => {
    const vars = decodePacket(packet).vars;
    for (let cut = 0; cut <= packet.length; cut++) {
      const { seen, decoder } = run([packet.subarray(0, cut), packet.subarray(cut)], 3);
      expect(seen.views).toHaveLength(1);
      expectViewMatches(seen.views[0]!, vars);
      expect(String.fromCharCode(...seen.body)).toBe('abc');
      expect(seen.ended).toBe(1);
      expect(decoder.state).toBe('done');
      expect(decoder.bytesConsumed).toBe(packet.length);
    }
  });

  it('reads a whole block in place and a split one from its own copy', () => {
    const whole = run([packet], 3).seen.views[0]!;
    expect(whole.bytes.buffer).toBe(packet.buffer);
    const split = run([packet.subarray(0, 10), packet.subarray(10)], 3).seen.views[0]!;
    expect(split.bytes.buffer).not.toBe(packet.buffer);
    // Already its own: detach keeps it.
    const bytes = split.bytes;
    expect(split.detach().bytes).toBe(bytes);
  });

  it('fails as the eager decoder does on a bad block', () => {
    const bad = hex('00 05 00 00 00 00 01 00 41');
    const eager = new PacketDecoder({ onVars: () => 0 });
    const lazy = new PacketDecoder({ onVarsView: () => 0 });
    const e = outcome(() => {
      eager.push(bad);
      return [];
    });
    const l = outcome(() => {
      lazy.push(bad);
      return [];
    });
    expect(e.error?.code).toBe('UWSGI_ERR_VARS_MALFORMED');
    expect(l).toEqual(e);
    expect(lazy.state).toBe('failed');
    expect(lazy.bytesConsumed).toBe(eager.bytesConsumed);
  });

  it('takes onVarsView over onVars when a handler has both, and needs one of them', () => {
    let used = '';
    const d = new PacketDecoder({
      onVars: () => {
        used = 'onVars';
        return 0;
      },
      onVarsView: () => {
        used = 'onVarsView';
        return 0;
      },
    } as DecoderViewHandler);
    d.push(encodePacket([['A', 'b']]));
    expect(used).toBe('onVarsView');
    expect(() => new PacketDecoder({} as DecoderViewHandler)).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' }),
    );
  });
});
