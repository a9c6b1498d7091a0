/**
 * The master's listening sockets: bound once, never accepted on, handed to every worker as an
 * inherited fd, closed (and a unix socket file removed) only when the master stops for good or a
 * reload drops the listener. See docs/supervisor.md "Binding without accepting".
 */

import { lookup } from 'node:dns/promises';
import { chownSync, closeSync } from 'node:fs';
import * as net from 'node:net';
import { dirname } from 'node:path';
import { getSystemErrorName } from 'node:util';
import type { ContainerConfig, ListenerConfig } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';
import { formatListenTarget, parseListenAddress } from '../transport/address.ts';
import { clearStaleSocket } from '../transport/listen.ts';
import type { ListenTarget } from '../transport/types.ts';
import type { SystemdSockets } from './systemd.ts';
import { resolveGroup, resolveUser } from './users.ts';

export interface BoundSocket {
  /** Identity across reloads: the listener's resolved address (same key = same socket). */
  readonly key: string;
  /** The master's fd, passed to workers as an extra stdio entry. */
  readonly fd: number;
  /** Display form: `unix:/abs.sock` or `host:port` (the actual port when 0 was asked). */
  readonly address: string;
  /** Closes the master's copy; a unix socket file we created is removed. Idempotent. */
  close(): void;
}

/** The listening handle types of Node's `pipe_wrap`/`tcp_wrap`, as far as we use them. */
interface ServerHandle {
  readonly fd: number;
  getsockname?(out: { address?: string; port?: number }): number;
  close(): void;
}

/**
 * INTERNAL: `net._createServerHandle(address, port, addressType, fd, flags)` (lib/net.js) creates
 * a Pipe or TCP server handle and binds it without listening: what `cluster`'s primary does for
 * its SCHED_NONE workers (lib/internal/cluster/shared_handle.js). A public `server.listen()` would
 * start polling the socket in the master, which would then accept connections itself. Returns
 * the handle or a negative errno. Present, with this signature, in Node 20 through 24.
 */
const createServerHandle = (
  net as unknown as {
    _createServerHandle?: (
      address: string | null,
      port: number,
      addressType: number,
      fd?: number,
      flags?: number,
    ) => ServerHandle | number;
  }
)._createServerHandle;

/**
 * The key of a listener: its address after resolving a relative unix path. Port 0 (any free
 * port) names no address: each such listener is its own socket, kept across reloads by its
 * protocol and position among the port-0 listeners.
 */
export function listenerKey(listener: ListenerConfig, config: ContainerConfig): string {
  const target = targetOf(listener, config);
  if (target.kind === 'tcp' && target.port === 0) {
    const ephemeral = config.listeners.filter(
      (l) => l.protocol === listener.protocol && /:0$/.test(l.address.trim()),
    );
    return `${formatListenTarget(target)}#${listener.protocol}${ephemeral.indexOf(listener)}`;
  }
  return formatListenTarget(target);
}

function targetOf(listener: ListenerConfig, config: ContainerConfig): ListenTarget {
  const baseDir = config.file === undefined ? process.cwd() : dirname(config.file);
  return parseListenAddress(listener.address, { mode: listener.mode, baseDir });
}

/**
 * Binds `listener` (or adopts the systemd socket or `fd:N` that stands for it).
 * @throws ContainerError `UWSGI_ERR_LISTEN` (a live or foreign unix path, EADDRINUSE, EACCES,
 *   an unknown owner or group).
 */
export async function bindListener(
  listener: ListenerConfig,
  config: ContainerConfig,
  systemd: SystemdSockets | undefined,
): Promise<BoundSocket> {
  const target = targetOf(listener, config);
  const key = listenerKey(listener, config);
  const display = formatListenTarget(target);
  const fromSystemd = systemd?.take(target);
  if (fromSystemd !== undefined) {
    return { key, fd: fromSystemd, address: display, close: once(() => closeFd(fromSystemd)) };
  }
  if (target.kind === 'fd') {
    return { key, fd: target.fd, address: display, close: once(() => closeFd(target.fd)) };
  }
  if (createServerHandle === undefined) {
    throw new ContainerError(
      'UWSGI_ERR_LISTEN',
      'this Node has no net._createServerHandle: the master cannot bind sockets for its workers',
    );
  }
  if (target.kind === 'unix') return bindUnix(target, listener, key, createServerHandle);
  const { address, family } = net.isIP(target.host)
    ? { address: target.host, family: net.isIP(target.host) }
    : await lookup(target.host);
  const handle = createServerHandle(address, target.port, family);
  if (typeof handle === 'number') throw listenError(display, handle);
  const out: { address?: string; port?: number } = {};
  handle.getsockname?.(out);
  const actual =
    out.port === undefined
      ? display
      : formatListenTarget({ kind: 'tcp', host: out.address ?? address, port: out.port });
  return { key, fd: handle.fd, address: actual, close: once(() => handle.close()) };
}

async function bindUnix(
  target: Extract<ListenTarget, { kind: 'unix' }>,
  listener: ListenerConfig,
  key: string,
  create: NonNullable<typeof createServerHandle>,
): Promise<BoundSocket> {
  const uid = listener.owner === undefined ? -1 : resolveUser(listener.owner, key);
  const gid = listener.group === undefined ? -1 : resolveGroup(listener.group, key);
  await clearStaleSocket(target.path);
  // bind(2) creates the file under the umask: ~mode makes it exactly `mode`, never wider, not
  // even for an instant (RELIABILITY.md R15).
  const previous = process.umask(0o777 & ~target.mode);
  let handle: ServerHandle | number;
  try {
    handle = create(target.path, -1, -1);
  } finally {
    process.umask(previous);
  }
  if (typeof handle === 'number') throw listenError(key, handle);
  const bound = handle;
  try {
    // Before any worker listens: nginx (www-data) can connect from the first accept on.
    if (uid !== -1 || gid !== -1) chownSync(target.path, uid, gid);
  } catch (err) {
    bound.close();
    throw new ContainerError(
      'UWSGI_ERR_LISTEN',
      `cannot set the owner/group of ${target.path}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  // libuv unlinks the path of a bound pipe when its handle closes (src/unix/pipe.c
  // uv__pipe_close): closing the master's handle at exit removes the socket file, once. Workers
  // open the fd (uv_pipe_open), which records no path: their close never unlinks it.
  return { key, fd: bound.fd, address: key, close: once(() => bound.close()) };
}

function listenError(key: string, errno: number): ContainerError {
  const name = getSystemErrorName(errno);
  const cause = Object.assign(new Error(`listen ${name}: ${key}`), { code: name, errno });
  return new ContainerError('UWSGI_ERR_LISTEN', `cannot listen on ${key}: ${name}`, { cause });
}

function closeFd(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // Already closed.
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
