/**
 * Live captures from the installed nginx, so the committed fixtures
 * (packages/codec/test/fixtures) cannot drift from what nginx really sends: every nginx
 * fixture is replayed as the HTTP request it came from and the live packet must equal it
 * (modulo the run's ports and prefix); fresh requests check the stock uwsgi_params promises
 * (PROTOCOL.md section 5) through the codec's decoders.
 */
import { readFileSync } from 'node:fs';
import * as net from 'node:net';
import { decodePacket, PacketDecoder, varsToRequest } from '@uwsgi-ts/codec';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAS_NGINX, type Nginx, startNginx } from '../utils/nginx.ts';
import { parseRawPacket, type Recorder, startRecorder } from '../utils/recorder.ts';

const FIXTURES = new URL('../../packages/codec/test/fixtures/', import.meta.url);

interface ManifestEntry {
  readonly file: string;
  readonly empty?: boolean;
}
const manifest = JSON.parse(readFileSync(new URL('manifest.json', FIXTURES), 'utf8')) as {
  captures: ManifestEntry[];
};
const nginxFixtures = manifest.captures.filter((c) => c.file.startsWith('nginx-') && !c.empty);

/** Vars that depend on the run (ports, nginx prefix), not on the request. */
const RUN_SPECIFIC = new Set(['REMOTE_PORT', 'SERVER_PORT', 'DOCUMENT_ROOT']);

const NGINX_PARAMS_ORDER = [
  'QUERY_STRING',
  'REQUEST_METHOD',
  'CONTENT_TYPE',
  'CONTENT_LENGTH',
  'REQUEST_URI',
  'PATH_INFO',
  'DOCUMENT_ROOT',
  'SERVER_PROTOCOL',
  'REQUEST_SCHEME',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'SERVER_PORT',
  'SERVER_NAME',
  'HTTP_HOST',
];

/**
 * Sends raw request bytes and reads one response: the head, then Content-Length body bytes
 * (none for HEAD). Replayed curl requests have no `Connection: close`, so nginx would keep the
 * connection open: the response length, not the close, ends the exchange.
 */
function rawHttp(port: number, bytes: Buffer): Promise<string> {
  const isHead = bytes.subarray(0, 5).toString('latin1') === 'HEAD ';
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const s = net.connect(port, '127.0.0.1', () => s.write(bytes));
    const timer = setTimeout(() => s.destroy(new Error('nginx response timed out')), 10_000);
    const done = (err?: Error) => {
      clearTimeout(timer);
      s.destroy();
      if (err) reject(err);
      else resolve(data.toString('latin1'));
    };
    s.on('data', (c: Buffer) => {
      data = Buffer.concat([data, c]);
      const end = data.indexOf('\r\n\r\n');
      if (end < 0) return;
      const cl = /\r\ncontent-length: *(\d+)/i.exec(data.toString('latin1', 0, end));
      const want = isHead ? 0 : Number(cl?.[1] ?? Number.POSITIVE_INFINITY);
      if (data.length - end - 4 >= want) done();
    });
    s.on('error', done);
    s.on('close', () => done());
  });
}

/**
 * Rebuilds the HTTP request a captured nginx packet came from: request line from
 * REQUEST_METHOD/REQUEST_URI/SERVER_PROTOCOL, one header line per HTTP_* var in order
 * (nginx forwards headers in arrival order, `_` back to `-`), the body re-chunked when
 * HTTP_TRANSFER_ENCODING says chunked.
 */
function rebuildRequest(vars: ReadonlyArray<readonly [string, string]>, body: Buffer): Buffer {
  const get = (k: string) => vars.find(([key]) => key === k)?.[1] ?? '';
  const lines = [`${get('REQUEST_METHOD')} ${get('REQUEST_URI')} ${get('SERVER_PROTOCOL')}`];
  for (const [k, v] of vars) {
    if (k.startsWith('HTTP_')) lines.push(`${k.slice(5).replaceAll('_', '-')}: ${v}`);
  }
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  if (get('HTTP_TRANSFER_ENCODING') !== 'chunked') return Buffer.concat([head, body]);
  const size = Buffer.from(`${body.length.toString(16)}\r\n`, 'latin1');
  return Buffer.concat([head, size, body, Buffer.from('\r\n0\r\n\r\n', 'latin1')]);
}

describe.skipIf(!HAS_NGINX)('live nginx captures', () => {
  let recorder: Recorder;
  let nginx: Nginx;

  beforeAll(async () => {
    recorder = await startRecorder();
    const upstream = `127.0.0.1:${recorder.port}`;
    nginx = await startNginx({
      http: ['large_client_header_buffers 8 16k'],
      locations: [
        { path: '/', upstream },
        // As in capture.mjs: the legacy SCRIPT_NAME hack (PROTOCOL.md section 5).
        {
          path: '/app',
          upstream,
          directives: ['uwsgi_modifier1 30', 'uwsgi_param SCRIPT_NAME /app'],
        },
      ],
    });
  });

  afterAll(async () => {
    await nginx?.stop();
    await recorder?.close();
  });

  it.each(nginxFixtures.map((c) => [c.file]))('%s replays byte-identical', async (file) => {
    const fixture = readFileSync(new URL(file, FIXTURES));
    const want = parseRawPacket(fixture)!;
    const res = await rawHttp(nginx.port, rebuildRequest(want.vars, want.body));
    expect(res.startsWith('HTTP/1.1 200')).toBe(true);
    const live = await recorder.next();
    const got = parseRawPacket(live)!;
    expect(got.modifier1).toBe(want.modifier1);
    expect(got.modifier2).toBe(want.modifier2);
    expect(got.vars.map(([k]) => k)).toEqual(want.vars.map(([k]) => k));
    const stable = (vars: RawPacketVars) => vars.filter(([k]) => !RUN_SPECIFIC.has(k));
    expect(stable(got.vars)).toEqual(stable(want.vars));
    expect(got.body.equals(want.body)).toBe(true);
    // The codec reads the live packet as the independent parser does.
    const decoded = decodePacket(live);
    expect(decoded.vars).toEqual(got.vars.map(([k, v]) => [k, v]));
    expect(decoded.byteLength).toBe(4 + got.datasize);
  });

  it('a fresh GET decodes to what uwsgi_params promises', async () => {
    const res = await rawHttp(
      nginx.port,
      Buffer.from(
        'GET /a%20b/c%2Fd/./e/../f?x=%41&y=1 HTTP/1.1\r\nHost: Example.TEST:8080\r\n' +
          'X-Custom: v1\r\nX-Custom: v2\r\nAccept-Language: fr\r\nConnection: close\r\n\r\n',
        'latin1',
      ),
    );
    expect(res.startsWith('HTTP/1.1 200')).toBe(true);
    const live = await recorder.next();
    const { modifier1, modifier2, vars } = decodePacket(live);
    expect([modifier1, modifier2]).toEqual([0, 0]);
    expect(vars.slice(0, NGINX_PARAMS_ORDER.length).map(([k]) => k)).toEqual(NGINX_PARAMS_ORDER);
    const one = (k: string) => vars.filter(([key]) => key === k).map(([, v]) => v);
    expect(one('REQUEST_URI')).toEqual(['/a%20b/c%2Fd/./e/../f?x=%41&y=1']);
    expect(one('PATH_INFO')).toEqual(['/a b/c/d/f']);
    expect(one('QUERY_STRING')).toEqual(['x=%41&y=1']);
    expect(one('CONTENT_LENGTH')).toEqual(['']);
    expect(one('CONTENT_TYPE')).toEqual(['']);
    expect(one('SERVER_PORT')).toEqual([String(nginx.port)]);
    expect(one('REMOTE_ADDR')).toEqual(['127.0.0.1']);
    // Debian's uwsgi_params: HTTP_HOST is $host (lower-cased, port stripped), client Host dropped.
    expect(one('HTTP_HOST')).toEqual(['example.test']);
    // nginx 1.22 sends each repeated header as its own var.
    expect(one('HTTP_X_CUSTOM')).toEqual(['v1', 'v2']);
    expect(one('HTTP_ACCEPT_LANGUAGE')).toEqual(['fr']);
    expect(one('HTTPS')).toEqual([]);
    expect(one('SCRIPT_NAME')).toEqual([]);

    const req = varsToRequest(vars);
    expect(req).toMatchObject({
      method: 'GET',
      url: '/a%20b/c%2Fd/./e/../f?x=%41&y=1',
      query: 'x=%41&y=1',
      contentLength: 0,
      pathInfo: '/a b/c/d/f',
    });
    expect(req.headers).toContainEqual(['x-custom', 'v1']);
    expect(req.headers).toContainEqual(['x-custom', 'v2']);

    // The push decoder, one byte at a time, agrees.
    let fromPush: ReadonlyArray<readonly [string, string]> | undefined;
    const decoder = new PacketDecoder({
      onVars(v) {
        fromPush = v.map(([k, x]) => [k, x] as const);
        return 0;
      },
    });
    for (let i = 0; i < live.length; i++) decoder.push(live.subarray(i, i + 1));
    decoder.end();
    expect(fromPush).toEqual(vars);
  });

  it('a chunked POST arrives de-chunked with CONTENT_LENGTH and the TE var', async () => {
    const body = Buffer.from('0123456789'.repeat(500));
    const head =
      'POST /up HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
    const chunks = Buffer.concat([
      Buffer.from(`${(1234).toString(16)}\r\n`),
      body.subarray(0, 1234),
      Buffer.from(`\r\n${(body.length - 1234).toString(16)}\r\n`),
      body.subarray(1234),
      Buffer.from('\r\n0\r\n\r\n'),
    ]);
    await rawHttp(nginx.port, Buffer.concat([Buffer.from(head), chunks]));
    const live = await recorder.next();
    const p = decodePacket(live);
    const one = (k: string) => p.vars.filter(([key]) => key === k).map(([, v]) => v);
    expect(one('CONTENT_LENGTH')).toEqual(['5000']);
    expect(one('HTTP_TRANSFER_ENCODING')).toEqual(['chunked']);
    expect(live.subarray(p.byteLength).equals(body)).toBe(true);
    expect(varsToRequest(p.vars)).toMatchObject({ method: 'POST', contentLength: 5000 });
  });
});

type RawPacketVars = ReadonlyArray<readonly [string, string]>;
