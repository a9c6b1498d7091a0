/**
 * The kernel's accept queue of each listening socket (uWSGI `listen_queue`): how many
 * connections wait for an accept, and the backlog they may not exceed. Read from `ss` (iproute2,
 * sock_diag: the only source for unix sockets) and, for TCP when `ss` is missing, from
 * /proc/net/tcp and tcp6, whose `rx_queue` of a LISTEN socket is its accept queue. Sockets are
 * matched by inode (`/proc/self/fd/N` -> `socket:[INODE]`), so an equal address of another
 * process is never read.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, readlink } from 'node:fs/promises';

export interface QueueReading {
  /** Connections waiting for accept(2). */
  readonly queue: number;
  /** The socket's backlog; undefined when only /proc was available (it does not show it). */
  readonly maxQueue: number | undefined;
}

/** The socket inode behind `fd` of this process, or undefined. */
export async function socketInode(fd: number): Promise<string | undefined> {
  try {
    return /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/self/fd/${fd}`))?.[1];
  } catch {
    return undefined;
  }
}

/** Readings by socket inode, for the listening sockets of the machine's namespace. */
export async function readListenQueues(): Promise<Map<string, QueueReading>> {
  const fromSs = await ssReadings();
  if (fromSs !== undefined) return fromSs;
  return procReadings();
}

let ssMissing = false;

function ssReadings(): Promise<Map<string, QueueReading> | undefined> {
  if (ssMissing) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    execFile(
      'ss',
      ['-H', '-l', '-n', '-x', '-t', '-e'],
      { timeout: 2000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout) => {
        if (err !== null) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') ssMissing = true;
          resolve(undefined);
          return;
        }
        resolve(parseSs(stdout));
      },
    );
  });
}

/**
 * `ss -Hlnxte` lines: `u_str LISTEN RECVQ SENDQ PATH INODE * 0 ...` for unix sockets (the
 * socket inode follows the path; `ino:` there is the file's), `tcp LISTEN RECVQ SENDQ LOCAL
 * PEER ... ino:INODE ...` for TCP. For a listening socket Recv-Q is the accept queue and Send-Q
 * the backlog.
 */
export function parseSs(text: string): Map<string, QueueReading> {
  const out = new Map<string, QueueReading>();
  for (const line of text.split('\n')) {
    const head = /^(\S+)\s+LISTEN\s+(\d+)\s+(\d+)\s+/.exec(line);
    if (head === null) continue;
    const reading = { queue: Number(head[2]), maxQueue: Number(head[3]) };
    const inode =
      head[1] === 'u_str' || head[1] === 'u_seq'
        ? /\s(\d+)\s+\*\s+\d+/.exec(line.slice(head[0].length - 1))?.[1]
        : /\bino:(\d+)/.exec(line)?.[1];
    if (inode !== undefined) out.set(inode, reading);
  }
  return out;
}

async function procReadings(): Promise<Map<string, QueueReading>> {
  const out = new Map<string, QueueReading>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local rem st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const fields = line.trim().split(/\s+/);
      if (fields[3] !== '0A') continue;
      const rx = fields[4]?.split(':')[1];
      const inode = fields[9];
      if (rx === undefined || inode === undefined) continue;
      out.set(inode, { queue: Number.parseInt(rx, 16), maxQueue: undefined });
    }
  }
  return out;
}

let somaxconnValue: number | undefined;

/** `net.core.somaxconn`, the kernel's cap on a listen backlog (4096 when unreadable). */
export function somaxconn(): number {
  if (somaxconnValue === undefined) {
    try {
      somaxconnValue = Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8').trim()) || 4096;
    } catch {
      somaxconnValue = 4096;
    }
  }
  return somaxconnValue;
}
