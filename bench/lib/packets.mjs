// Packet inputs for the benchmarks and the fuzzer, independent of the codec under test: the
// nginx fixtures (packages/codec/test/fixtures, see its manifest.json), a hand-written walker for
// the uwsgi vars block (PROTOCOL.md section 1), and the equivalent HTTP/1.1 request head.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES_DIR = fileURLToPath(
  new URL('../../packages/codec/test/fixtures/', import.meta.url),
);

/** The three benchmark packets by fixture file name (manifest.json of the capture). */
export const BENCH_FIXTURES = {
  'small-get': 'nginx-get-small.bin',
  'cookie-8k': 'nginx-cookie-8k.bin',
  'headers-60': 'nginx-headers-60.bin',
};

/** name -> Buffer for the benchmark fixtures, or undefined if any is missing. */
export function loadBenchFixtures() {
  const out = {};
  for (const [name, file] of Object.entries(BENCH_FIXTURES)) {
    const p = path.join(FIXTURES_DIR, file);
    if (!existsSync(p)) return undefined;
    out[name] = readFileSync(p);
  }
  return out;
}

/** Every non-empty `*.bin` fixture (all front ends), for fuzz seeds. */
export function loadAllFixtures() {
  if (!existsSync(FIXTURES_DIR)) return [];
  return readdirSync(FIXTURES_DIR)
    .filter((f) => f.endsWith('.bin'))
    .sort()
    .map((f) => ({ name: f, bytes: readFileSync(path.join(FIXTURES_DIR, f)) }))
    .filter((f) => f.bytes.length > 0);
}

/**
 * Walks a well-formed packet: header fields, the byte offsets of every u16 length field (for
 * length-field mutations), and the pairs as latin1 strings. Returns undefined when malformed.
 */
export function walkPacket(buf) {
  if (buf.length < 4) return undefined;
  const datasize = buf[1] | (buf[2] << 8);
  const end = 4 + datasize;
  if (buf.length < end) return undefined;
  const lengthFields = [1];
  const vars = [];
  let o = 4;
  while (o < end) {
    if (o + 2 > end) return undefined;
    const kl = buf[o] | (buf[o + 1] << 8);
    lengthFields.push(o);
    o += 2;
    if (kl === 0 || o + kl + 2 > end) return undefined;
    const k = buf.latin1Slice(o, o + kl);
    o += kl;
    const vl = buf[o] | (buf[o + 1] << 8);
    lengthFields.push(o);
    o += 2;
    if (o + vl > end) return undefined;
    vars.push([k, buf.latin1Slice(o, o + vl)]);
    o += vl;
  }
  return { modifier1: buf[0], modifier2: buf[3], datasize, vars, lengthFields, end };
}

function headerName(cgi) {
  return cgi
    .slice(5)
    .toLowerCase()
    .split('_')
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join('-');
}

/**
 * The HTTP/1.1 request head a client sent to produce these vars (as nginx maps headers to
 * HTTP_* vars: PROTOCOL.md section 5), for the llhttp baseline.
 */
export function httpHeadFromVars(vars) {
  const get = (k) => vars.find(([n]) => n === k)?.[1] ?? '';
  const lines = [`${get('REQUEST_METHOD')} ${get('REQUEST_URI')} ${get('SERVER_PROTOCOL')}`];
  for (const [k, v] of vars) {
    if (k.startsWith('HTTP_')) lines.push(`${headerName(k)}: ${v}`);
    else if ((k === 'CONTENT_TYPE' || k === 'CONTENT_LENGTH') && v !== '') {
      lines.push(`${k === 'CONTENT_TYPE' ? 'Content-Type' : 'Content-Length'}: ${v}`);
    }
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** The same request as `requestToVars` input (the shape node:http gives a proxy). */
export function requestFromVars(vars) {
  const get = (k) => vars.find(([n]) => n === k)?.[1] ?? '';
  return {
    method: get('REQUEST_METHOD'),
    url: get('REQUEST_URI'),
    httpVersion: get('SERVER_PROTOCOL').replace('HTTP/', ''),
    headers: vars.filter(([k]) => k.startsWith('HTTP_')).map(([k, v]) => [headerName(k), v]),
    scheme: 'http',
    remoteAddress: get('REMOTE_ADDR'),
    remotePort: Number(get('REMOTE_PORT')),
    serverName: get('SERVER_NAME'),
    serverPort: Number(get('SERVER_PORT')),
    documentRoot: get('DOCUMENT_ROOT'),
  };
}

/** Bytes from a hex string with arbitrary whitespace. */
export function hex(s) {
  return Buffer.from(s.replace(/\s+/g, ''), 'hex');
}

/** PROTOCOL.md section 9 vectors that are whole packets (A-G, I, K, L, M; J built). */
export function handVectors() {
  const enc = (pairs) => {
    const parts = [];
    for (const [k, v] of pairs) {
      const kb = Buffer.from(k, 'latin1');
      const vb = Buffer.from(v, 'latin1');
      const kl = Buffer.alloc(2);
      kl.writeUInt16LE(kb.length);
      const vl = Buffer.alloc(2);
      vl.writeUInt16LE(vb.length);
      parts.push(kl, kb, vl, vb);
    }
    const block = Buffer.concat(parts);
    const h = Buffer.from([0, block.length & 0xff, block.length >> 8, 0]);
    return Buffer.concat([h, block]);
  };
  const maxBlock = Buffer.concat([hex('00 ff ff 00 01 00 58 fa ff'), Buffer.alloc(65530, 0x61)]);
  return [
    { name: 'A header only', bytes: hex('00 00 00 00') },
    {
      name: 'B minimal GET',
      bytes: hex(
        '00 3e 00 00 0e 00 52 45 51 55 45 53 54 5f 4d 45 54 48 4f 44 03 00 47 45 54 09 00 50 41 54 48 5f 49 4e 46 4f 01 00 2f 0f 00 53 45 52 56 45 52 5f 50 52 4f 54 4f 43 4f 4c 08 00 48 54 54 50 2f 31 2e 31',
      ),
    },
    {
      name: 'C empty value',
      bytes: hex('00 10 00 00 0c 00 51 55 45 52 59 5f 53 54 52 49 4e 47 00 00'),
    },
    {
      name: 'D utf-8 value',
      bytes: hex('00 14 00 00 0b 00 48 54 54 50 5f 58 5f 4e 41 4d 45 05 00 63 61 66 c3 a9'),
    },
    {
      name: 'E invalid utf-8',
      bytes: hex('00 0f 00 00 09 00 50 41 54 48 5f 49 4e 46 4f 02 00 2f ff'),
    },
    { name: 'F zero-length key', bytes: hex('00 05 00 00 00 00 01 00 78') },
    { name: 'G value overrun', bytes: hex('00 08 00 00 01 00 41 09 00 78 79 7a') },
    {
      name: 'H short then EOF',
      bytes: Buffer.concat([hex('00 57 00 00'), Buffer.alloc(77, 0x41)]),
    },
    {
      name: 'I POST + body',
      bytes: hex(
        '00 29 00 00 0e 00 52 45 51 55 45 53 54 5f 4d 45 54 48 4f 44 04 00 50 4f 53 54 0e 00 43 4f 4e 54 45 4e 54 5f 4c 45 4e 47 54 48 01 00 35 68 65 6c 6c 6f',
      ),
    },
    { name: 'J maximum', bytes: maxBlock },
    {
      name: 'K duplicate keys',
      bytes: enc([
        ['HTTP_X_DUP', 'first'],
        ['HTTP_X_DUP', 'second'],
      ]),
    },
    { name: 'L ping', bytes: hex('64 00 00 00') },
    { name: 'M rpc', bytes: hex('ad 0e 00 00 05 00 68 65 6c 6c 6f 05 00 77 6f 72 6c 64') },
    { name: 'HTTP on uwsgi port', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n') },
  ];
}

/** Encodes pairs into a packet by hand (no codec), for generated valid inputs. */
export function encodeRaw(pairs, modifier1 = 0, modifier2 = 0) {
  let size = 0;
  for (const [k, v] of pairs) size += 4 + k.length + v.length;
  const out = Buffer.allocUnsafe(4 + size);
  out[0] = modifier1;
  out[1] = size & 0xff;
  out[2] = (size >> 8) & 0xff;
  out[3] = modifier2;
  let o = 4;
  for (const [k, v] of pairs) {
    out.writeUInt16LE(k.length, o);
    o += 2 + out.latin1Write(k, o + 2);
    out.writeUInt16LE(v.length, o);
    o += 2 + out.latin1Write(v, o + 2);
  }
  return out;
}
