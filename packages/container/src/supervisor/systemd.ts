/**
 * systemd socket activation (sd_listen_fds(3)): when `LISTEN_PID` is this process and
 * `LISTEN_FDS` is N, the fds 3..3+N-1 are listening sockets systemd (or
 * `systemd-socket-activate`) bound for us. Each is matched to a config listener by its local
 * address, read from procfs (`/proc/self/fd/N` -> `socket:[inode]` -> `/proc/net/{unix,tcp,tcp6}`),
 * so the config stays the one description of the listeners.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import type { ListenTarget } from '../transport/types.ts';

const SD_LISTEN_FDS_START = 3;

type Described =
  | { readonly fd: number; readonly kind: 'unix'; readonly path: string }
  | { readonly fd: number; readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly fd: number; readonly kind: 'unknown' };

export class SystemdSockets {
  readonly #free: Described[];

  constructor(described: Described[]) {
    this.#free = described;
  }

  /** The passed fd whose address is `target`'s, removed from the pool; undefined if none. */
  take(target: ListenTarget): number | undefined {
    const index = this.#free.findIndex((d) => matches(d, target));
    if (index < 0) return undefined;
    const [found] = this.#free.splice(index, 1);
    return found?.fd;
  }

  /** Passed fds no listener claimed (logged by the master). */
  unclaimed(): readonly Described[] {
    return this.#free;
  }
}

/**
 * The sockets passed by systemd, or undefined when this process was not socket-activated.
 * The variables are removed from `env` (sd_listen_fds' unset_environment), so workers and the
 * apps' children never take them for theirs.
 */
export function systemdSockets(env: NodeJS.ProcessEnv, pid: number): SystemdSockets | undefined {
  const listenPid = env['LISTEN_PID'];
  const listenFds = env['LISTEN_FDS'];
  if (listenPid === undefined || listenFds === undefined) return undefined;
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_FDNAMES'];
  if (Number(listenPid) !== pid || !/^\d+$/.test(listenFds)) return undefined;
  const count = Number(listenFds);
  const inodes = socketTable();
  const described: Described[] = [];
  for (let fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + count; fd++) {
    let inode: string | undefined;
    try {
      inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
    } catch {
      inode = undefined;
    }
    const address = inode === undefined ? undefined : inodes.get(inode);
    described.push(address === undefined ? { fd, kind: 'unknown' } : { fd, ...address });
  }
  return new SystemdSockets(described);
}

function matches(d: Described, target: ListenTarget): boolean {
  if (d.kind === 'unix') return target.kind === 'unix' && target.path === d.path;
  if (d.kind === 'tcp' && target.kind === 'tcp') {
    if (d.port !== target.port) return false;
    const host = target.host === 'localhost' ? '127.0.0.1' : target.host;
    return d.host === host || (d.host === '::' && host === '::') || d.host === `::ffff:${host}`;
  }
  return false;
}

type Address = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

/** inode -> local address of every unix and TCP socket of the host's network namespace. */
function socketTable(): Map<string, Address> {
  const table = new Map<string, Address>();
  for (const line of lines('/proc/net/unix')) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = line.trim().split(/\s+/);
    if (f[6] !== undefined && f[7] !== undefined) table.set(f[6], { kind: 'unix', path: f[7] });
  }
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of lines(file)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      const local = f[1];
      const inode = f[9];
      if (local === undefined || inode === undefined || !local.includes(':')) continue;
      const [hex, portHex] = local.split(':') as [string, string];
      table.set(inode, { kind: 'tcp', host: decodeHost(hex), port: Number.parseInt(portHex, 16) });
    }
  }
  return table;
}

function lines(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(1);
  } catch {
    return [];
  }
}

/** procfs prints addresses as 32-bit words in host (little-endian) order. */
function decodeHost(hex: string): string {
  const words: number[] = [];
  for (let i = 0; i < hex.length; i += 8) {
    const word = hex.slice(i, i + 8);
    // Reverse the bytes of the word.
    words.push(...[6, 4, 2, 0].map((o) => Number.parseInt(word.slice(o, o + 2), 16)));
  }
  if (words.length === 4) return words.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2)
    groups.push((((words[i] ?? 0) << 8) | (words[i + 1] ?? 0)).toString(16));
  const v6 = groups.join(':');
  if (v6 === '0:0:0:0:0:0:0:0') return '::';
  if (v6.startsWith('0:0:0:0:0:ffff:')) return `::ffff:${words.slice(12).join('.')}`;
  return v6.replace(/(^|:)0(:0)+(:|$)/, '::');
}
