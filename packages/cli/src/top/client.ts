/**
 * Reads a stats document the way uWSGI's tools do: `http://...` with a GET, anything else as
 * uWSGI's raw stats protocol (connect, read until the server closes). A unix socket is a path
 * (`unix:` prefix optional), TCP is `host:port`.
 */
import { get } from 'node:http';
import { connect } from 'node:net';

/** Largest document read (bytes): a stats document of 1024 workers is far below. */
const MAX_BYTES = 64 * 1024 * 1024;

export function fetchStats(address: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return (
    address.startsWith('http://') ? viaHttp(address, timeoutMs) : viaSocket(address, timeoutMs)
  ).then((text) => {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error('the stats server sent something other than a JSON object');
    }
    return parsed as Record<string, unknown>;
  });
}

function viaSocket(address: string, timeoutMs: number): Promise<string> {
  const bare = address.startsWith('unix:') ? address.slice('unix:'.length) : address;
  const tcp = /^(\[[^\]]+\]|[^/:]+):(\d+)$/.exec(bare);
  return new Promise((resolve, reject) => {
    const socket = tcp
      ? connect({ host: (tcp[1] ?? '').replace(/^\[|\]$/g, ''), port: Number(tcp[2]) })
      : connect({ path: bare });
    const chunks: Buffer[] = [];
    let size = 0;
    socket.setTimeout(timeoutMs, () =>
      socket.destroy(new Error(`no answer within ${timeoutMs} ms`)),
    );
    socket.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BYTES) socket.destroy(new Error('the stats document is too large'));
      else chunks.push(chunk);
    });
    socket.on('error', reject);
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function viaHttp(address: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(address, { timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`HTTP ${res.statusCode} from ${address}`));
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
