/** viewToRequest held to varsToRequest: fixtures of every front end and generated vars. */
import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodePacket,
  decodePacketView,
  decodeVarsView,
  encodeVars,
  UwsgiError,
  type UwsgiRequest,
  type VarsEncoding,
  type VarsToRequestOptions,
  varsToRequest,
  viewToRequest,
} from '../src/index.ts';

const BUDGET = { interruptAfterTimeLimit: 2000, numRuns: 500 } as const;

type Outcome = { request: UwsgiRequest } | { error: [string, string] };

function attempt(fn: () => UwsgiRequest): Outcome {
  try {
    return { request: fn() };
  } catch (err) {
    if (!(err instanceof UwsgiError)) throw err;
    return { error: [err.code, err.message] };
  }
}

const FIXTURES = new URL('./fixtures/', import.meta.url);
const fixtures = readdirSync(FIXTURES)
  .filter((f) => f.endsWith('.bin'))
  .sort()
  .map((file) => ({ file, bytes: new Uint8Array(readFileSync(new URL(file, FIXTURES))) }))
  .filter((f) => f.bytes.length > 0);

describe('viewToRequest equals varsToRequest', () => {
  for (const { file, bytes } of fixtures) {
    it(file, () => {
      for (const options of [
        {},
        { strictVars: true },
        { trustForwardedProto: true, modifier1: 30 },
      ] as VarsToRequestOptions[]) {
        const eager = attempt(() => varsToRequest(decodePacket(bytes).vars, options));
        expect(attempt(() => viewToRequest(decodePacketView(bytes).vars, options))).toEqual(eager);
      }
    });
  }

  const NAMES = [
    'REQUEST_METHOD',
    'REQUEST_URI',
    'PATH_INFO',
    'QUERY_STRING',
    'SCRIPT_NAME',
    'SERVER_PROTOCOL',
    'CONTENT_LENGTH',
    'CONTENT_TYPE',
    'HTTPS',
    'UWSGI_SCHEME',
    'REQUEST_SCHEME',
    'SERVER_NAME',
    'SERVER_PORT',
    'REMOTE_ADDR',
    'REMOTE_PORT',
    'HTTP_HOST',
    'HTTP_X_FORWARDED_PROTO',
    'HTTP_CONTENT_TYPE',
    'HTTP_CONTENT_LENGTH',
    'HTTP_TRANSFER_ENCODING',
    'HTTP_COOKIE',
    'HTTP_X_A_B',
    'HTTP_',
    'HTTP_BAD NAME',
    'HTTP_\u00e9',
    'REQUEST_METHOX',
    'SERVER_NAMF',
    'SCRIPT_NAMF',
    'X',
  ];
  const VALUES = ['', 'GET', 'POST', '/a?b', '/\u00ff x', '5', '05', '5x', 'HTTP/1.1', 'HTTP/2'];
  const value = fc.oneof(
    fc.constantFrom(...VALUES),
    fc.string({ maxLength: 12 }),
    fc.string({ unit: 'grapheme', maxLength: 6 }),
  );
  const vars = fc.array(fc.tuple(fc.constantFrom(...NAMES), value), { maxLength: 14 });
  const options = fc.record(
    {
      strictVars: fc.boolean(),
      trustForwardedProto: fc.boolean(),
      modifier1: fc.constantFrom(0, 30),
      encoding: fc.constantFrom<VarsEncoding>('latin1', 'utf8'),
    },
    { requiredKeys: [] },
  );

  it('on generated vars, duplicates and bad values included', () => {
    fc.assert(
      fc.property(vars, options, (pairs, opts) => {
        const encoding = opts.encoding ?? 'latin1';
        let block: Uint8Array;
        try {
          block = encodeVars(pairs, { encoding });
        } catch {
          return; // not encodable in latin1: no front end sends it
        }
        // At an odd offset of a larger buffer: names are read as words at any alignment.
        const host = new Uint8Array(block.length + 7);
        host.set(block, 3);
        const view = decodeVarsView(host.subarray(3, 3 + block.length), { encoding });
        const eager = attempt(() => varsToRequest(view.toArray(), opts));
        expect(attempt(() => viewToRequest(view, opts))).toEqual(eager);
      }),
      BUDGET,
    );
  });
});
