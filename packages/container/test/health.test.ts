/**
 * Config `health`: uwsgi listeners answer the health path themselves (no app, no access record,
 * not counted), on both transports; other methods, paths and bodies still reach the app.
 */
import { connect } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { decodeVars, encodePacket, encodeVars } from '@uwsgi-ts/codec';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/index.ts';
import { type Container, createContainer } from '../src/container.ts';
import {
  healthAnswer,
  healthAnswerPacket,
  healthAnswerRaw,
  healthPathBytes,
} from '../src/protocol/health.ts';
import { tempDir } from './fixtures/apps/harness.ts';

const HELLO = new URL('./fixtures/apps/hello.mjs', import.meta.url).pathname;

/** One request; `split` sends it a byte per write (the decoder's path instead of the raw one). */
function exchange(
  path: string,
  vars: Record<string, string>,
  body = '',
  split = false,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect(path);
    socket.setNoDelay(true);
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    const bytes = Buffer.concat([encodePacket(vars), Buffer.from(body)]);
    if (!split) {
      socket.end(bytes);
      return;
    }
    let i = 0;
    const next = () => {
      if (i === bytes.length) {
        socket.end();
        return;
      }
      socket.write(bytes.subarray(i, i + 1), () => setImmediate(next));
      i++;
    };
    next();
  });
}

function get(uri: string, method = 'GET', extra: Record<string, string> = {}) {
  return {
    REQUEST_METHOD: method,
    REQUEST_URI: uri,
    PATH_INFO: uri.split('?')[0] ?? uri,
    QUERY_STRING: uri.split('?')[1] ?? '',
    SERVER_PROTOCOL: 'HTTP/1.1',
    CONTENT_LENGTH: '',
    REMOTE_ADDR: '127.0.0.1',
    HTTP_HOST: 'example.test',
    ...extra,
  };
}

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function start(transport: 'net' | 'fast', health: string | undefined) {
  const tmp = await tempDir();
  cleanup.push(tmp.cleanup);
  const sock = join(tmp.dir, 'app.sock');
  const text = [
    'listeners:',
    '  - protocol: uwsgi',
    `    address: ${sock}`,
    'mounts:',
    '  - path: /',
    `    app: ${HELLO}`,
    'log: { access: true, format: json, level: info }',
    `transport: ${transport}`,
    ...(health === undefined ? [] : [`health: ${health}`]),
    '',
  ].join('\n');
  const lines: string[] = [];
  const stdout = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const container: Container = createContainer(parseConfig(text, { cwd: tmp.dir }), { stdout });
  await container.start();
  cleanup.push(() => container.close({ timeoutMs: 0 }));
  const accessRecords = async () => {
    await container.close({ timeoutMs: 0 }); // flushes batched access records
    return lines.map((l) => JSON.parse(l)).filter((r) => r.msg === 'request');
  };
  return { sock, container, accessRecords };
}

describe.each(['net', 'fast'] as const)('health path (%s transport)', (transport) => {
  it('answers GET and HEAD itself: no app, no access record, not counted', async () => {
    const s = await start(transport, '/healthz');
    const got = await exchange(s.sock, get('/healthz?probe=1'));
    expect(got).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n' +
        'Cache-Control: no-store\r\nConnection: close\r\n\r\nok\n',
    );
    const head = await exchange(s.sock, get('/healthz', 'HEAD'));
    expect(head.endsWith('Connection: close\r\n\r\n')).toBe(true);
    expect(s.container.stats().requests).toBe(0);
    expect(await s.accessRecords()).toEqual([]);
  });

  it('answers a packet that arrives in pieces the same way', async () => {
    const s = await start(transport, '/healthz');
    const got = await exchange(s.sock, get('/healthz'), '', true);
    expect(got.endsWith('\r\n\r\nok\n')).toBe(true);
    const other = await exchange(s.sock, get('/other'), '', true);
    expect(other).toContain('"app":"hello"');
    expect(s.container.stats().requests).toBe(1);
  });

  it('other paths, methods and requests with a body reach the app', async () => {
    const s = await start(transport, '/healthz');
    const cases = [
      await exchange(s.sock, get('/healthz/x')),
      await exchange(s.sock, get('/healthz', 'POST', { CONTENT_LENGTH: '2' }), 'hi'),
      await exchange(s.sock, get('/healthz', 'GET', { CONTENT_LENGTH: '2' }), 'hi'),
    ];
    for (const got of cases) expect(got).toContain('"app":"hello"');
    expect(s.container.stats().requests).toBe(3);
    expect(await s.accessRecords()).toHaveLength(3);
  });

  it('is off by default: the path is an ordinary request', async () => {
    const s = await start(transport, undefined);
    expect(await exchange(s.sock, get('/healthz'))).toContain('"url":"/healthz"');
  });
});

describe('health answer from the raw vars block', () => {
  const name = fc.constantFrom(
    'REQUEST_METHOD',
    'REQUEST_URI',
    'PATH_INFO',
    'CONTENT_LENGTH',
    'QUERY_STRING',
    'HTTP_HOST',
    'REQUEST_URJ',
    'PATH_INFOS',
  );
  const value = fc.oneof(
    fc.constantFrom('GET', 'HEAD', 'POST', 'get', '', '0', '00', '1', '/healthz', '/healthz?x'),
    fc.constantFrom('/healthz/', '/health', '/h\u00e9', '?', '/healthz?', '/healthz#'),
    fc.string({ maxLength: 12 }).map((v) => Buffer.from(v, 'utf8').toString('latin1')),
  );
  const paths = ['/healthz', '/', '/h\u00e9', '/healthz?'];

  it('agrees with healthAnswer on the decoded vars, for any vars', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, value), { maxLength: 8 }),
        fc.constantFrom(...paths),
        (pairs, path) => {
          const block = encodeVars(pairs, { encoding: 'latin1' });
          const raw = healthAnswerRaw(block, 0, block.length, healthPathBytes(path), 1000);
          expect(raw).toBe(healthAnswer(decodeVars(block), path));
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('leaves malformed blocks, too many vars and non-latin1 paths to the decoder', () => {
    const ok = encodeVars([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/healthz'],
    ]);
    const path = healthPathBytes('/healthz');
    expect(healthAnswerRaw(ok, 0, ok.length, path, 1000)).toBeDefined();
    expect(healthAnswerRaw(ok, 0, ok.length, path, 1)).toBeUndefined();
    for (let cut = 1; cut < ok.length; cut++) {
      expect(healthAnswerRaw(ok, 0, ok.length - cut, path, 1000)).toBeUndefined();
    }
    const zeroKey = Buffer.concat([Buffer.from([0, 0, 0, 0]), ok]);
    expect(healthAnswerRaw(zeroKey, 0, zeroKey.length, path, 1000)).toBeUndefined();
    expect(healthPathBytes('/\u5065')).toBeNull();
    expect(healthPathBytes('/healthz?')).toBeNull();
    expect(healthAnswerRaw(ok, 0, ok.length, null, 1000)).toBeUndefined();
  });

  it('reads a whole packet at the start of a first read, and leaves anything else to the decoder', () => {
    const path = healthPathBytes('/healthz');
    const limits = { bufferSize: 4096, maxVars: 1000 };
    const packet = encodePacket(get('/healthz?probe=1'));
    const answer = healthAnswerPacket(packet, path, limits);
    expect(answer).toBeDefined();
    expect(answer).toBe(healthAnswer(decodeVars(packet.subarray(4)), '/healthz'));
    // Body bytes after the packet are not its business.
    expect(healthAnswerPacket(Buffer.concat([packet, Buffer.from('xy')]), path, limits)).toBe(
      answer,
    );
    // Not all there yet (the decoder waits for the rest), or not a request packet.
    for (let cut = 0; cut < packet.length; cut++) {
      expect(healthAnswerPacket(packet.subarray(0, cut), path, limits)).toBeUndefined();
    }
    const ping = encodePacket(get('/healthz'), { modifier1: 100 });
    expect(healthAnswerPacket(ping, path, limits)).toBeUndefined();
    const m30 = encodePacket(get('/healthz'), { modifier1: 30 });
    expect(healthAnswerPacket(m30, path, limits)).toBe(answer);
    // Over bufferSize or maxVars: the decoder refuses it and says why.
    expect(healthAnswerPacket(packet, path, { ...limits, bufferSize: 10 })).toBeUndefined();
    expect(healthAnswerPacket(packet, path, { ...limits, maxVars: 2 })).toBeUndefined();
  });
});

describe('config', () => {
  it('health must be a path', () => {
    const base =
      'listeners: [{ protocol: uwsgi, address: /tmp/x.sock }]\nmounts: [{ path: /, app: a.mjs }]\n';
    expect(() => parseConfig(`${base}health: healthz\n`)).toThrow();
    expect(parseConfig(`${base}health: /healthz\n`).health).toBe('/healthz');
    expect(parseConfig(base).health).toBeUndefined();
  });
});
