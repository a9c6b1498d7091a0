// Captures the uwsgi packets real nginx sends for given HTTP requests: nginx `uwsgi_pass` to a raw
// unix-socket listener that records exactly header + datasize + CONTENT_LENGTH bytes and answers
// with an empty 200. Framing is read by hand here (PROTOCOL.md section 1) so the capture does not
// depend on the codec under test.
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startNginx, UWSGI_PARAMS } from './nginx.mjs';

const BROWSER_HEADERS = [
  ['Host', 'shop.example.com'],
  ['User-Agent', 'Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0'],
  ['Accept', 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'],
  ['Accept-Language', 'en-US,en;q=0.5'],
  ['Accept-Encoding', 'gzip, deflate, br, zstd'],
  ['Connection', 'keep-alive'],
  ['Upgrade-Insecure-Requests', '1'],
];

function cookie(bytes) {
  // Realistic shape: many name=value pairs of base64-ish tokens, `; `-separated.
  const parts = [];
  let n = 0;
  let len = 0;
  while (len < bytes) {
    const v = `ck${n}=${Buffer.from(`session-token-${n}-${'x'.repeat(40)}`).toString('base64')}`;
    parts.push(v);
    len += v.length + 2;
    n++;
  }
  return parts.join('; ').slice(0, bytes);
}

/** The three benchmark requests: name -> HTTP/1.1 request head (string, latin1). */
export function benchRequests() {
  const head = (line, headers) =>
    `${line}\r\n${headers.map(([k, v]) => `${k}: ${v}`).join('\r\n')}\r\n\r\n`;
  const many = [...BROWSER_HEADERS];
  for (let i = many.length; i < 60; i++) {
    many.push([`X-Custom-Header-${i}`, `value-${i}-${'abcdefgh'.repeat(2)}`]);
  }
  return {
    'small-get': head('GET /hello?name=world HTTP/1.1', [
      ['Host', 'example.com'],
      ['User-Agent', 'curl/7.88.1'],
      ['Accept', '*/*'],
    ]),
    'cookie-8k': head('GET /account/orders?page=2 HTTP/1.1', [
      ...BROWSER_HEADERS,
      ['Cookie', cookie(8192)],
    ]),
    'headers-60': head('GET /api/v1/items?limit=50&offset=100 HTTP/1.1', many),
  };
}

/**
 * Sends each request through a private nginx and returns name -> { http: Buffer, packet: Buffer }.
 */
export async function captureNginxPackets(requests = benchRequests()) {
  if (!UWSGI_PARAMS) throw new Error('/etc/nginx/uwsgi_params not found');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'uwsgi-ts-capture-'));
  const sock = path.join(dir, 'cap.sock');
  let lastPacket;
  const server = net.createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 4) return;
      const datasize = buf.readUInt16LE(1);
      if (buf.length < 4 + datasize) return;
      lastPacket = Buffer.from(buf);
      c.end('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    });
    c.on('error', () => {});
  });
  await new Promise((resolve) => server.listen(sock, resolve));
  const nginx = await startNginx({
    dir,
    // An 8 KiB Cookie line needs header buffers larger than the default 8k.
    httpExtra: 'large_client_header_buffers 4 32k;',
    server: (port) => `
  server {
    listen 127.0.0.1:${port};
    server_name shop.example.com;
    location / { include ${UWSGI_PARAMS}; uwsgi_pass unix:${sock}; }
  }`,
  });
  try {
    const out = {};
    for (const [name, http] of Object.entries(requests)) {
      lastPacket = undefined;
      const status = await sendRaw(nginx.port, http);
      if (status !== 200 || !lastPacket)
        throw new Error(`capture of ${name}: nginx status ${status}`);
      out[name] = { http: Buffer.from(http, 'latin1'), packet: lastPacket };
    }
    return out;
  } finally {
    await nginx.stop();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  }
}

function sendRaw(port, http) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    s.on('connect', () => s.write(http.replace('Connection: keep-alive', 'Connection: close')));
    s.on('data', (d) => {
      text += d.toString('latin1');
    });
    s.on('error', reject);
    s.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)));
    // Requests without `Connection: close` are answered and then left open by nginx.
    s.on('data', () => {
      if (text.includes('\r\n\r\n')) s.end();
    });
  });
}
