/** Loopback helpers: free ports, bounded readiness polling, listener address parsing. */
import * as net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';

/**
 * A port that was free a moment ago (listen(0), read, close). Another process can take it
 * before it is used, so callers that bind it (nginx) retry on EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', resolve);
  });
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Where a container or nginx listens: a TCP host:port or a unix socket path. */
export type Target = { readonly host: string; readonly port: number } | { readonly path: string };

/**
 * Parses a listener address as printed in the ready line: `unix:/abs/path`, `/abs/path`,
 * `127.0.0.1:40123` or `[::1]:40123`.
 */
export function parseTarget(address: string): Target {
  if (address.startsWith('unix:')) return { path: address.slice('unix:'.length) };
  if (address.startsWith('/')) return { path: address };
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(address);
  if (!m) throw new Error(`not a listener address: ${address}`);
  return { host: m[1]!, port: Number(m[2]) };
}

export function connect(target: Target): net.Socket {
  return 'path' in target ? net.connect(target.path) : net.connect(target.port, target.host);
}

/** One connect attempt: true when accepted (closed again at once). */
export function canConnect(target: Target): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(target);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Polls until `target` accepts connections. Bounded: `attempts` tries `intervalMs` apart
 * (RELIABILITY.md section 4: at most 100 x 100 ms); `alive` aborts early when the process
 * that should listen has died.
 */
export async function waitForConnect(
  target: Target,
  options: { attempts?: number; intervalMs?: number; alive?: () => string | undefined } = {},
): Promise<void> {
  const { attempts = 250, intervalMs = 20 } = options;
  for (let i = 0; i < attempts; i++) {
    const dead = options.alive?.();
    if (dead !== undefined) throw new Error(dead);
    if (await canConnect(target)) return;
    await delay(intervalMs);
  }
  throw new Error(`nothing accepted on ${JSON.stringify(target)} after ${attempts} attempts`);
}

/**
 * Polls `probe` until it returns true; bounded like `waitForConnect`. Used for conditions with
 * no event to wait on (a process's fd count returning to baseline).
 */
export async function pollUntil(
  probe: () => boolean | Promise<boolean>,
  options: { attempts?: number; intervalMs?: number; what?: string } = {},
): Promise<void> {
  const { attempts = 100, intervalMs = 50 } = options;
  for (let i = 0; i < attempts; i++) {
    if (await probe()) return;
    await delay(intervalMs);
  }
  throw new Error(`timed out waiting for ${options.what ?? 'condition'}`);
}
