/**
 * Binding a `net.Server` (or `http.Server`, which extends it) to a `ListenTarget`. Shared by the
 * `net` uwsgi transport and the HTTP listener.
 *
 * Unix sockets: a path that already exists is probed with a connect. A live socket means another
 * instance serves it: refuse (RELIABILITY.md R16) instead of stealing it. ECONNREFUSED means a
 * stale file left by a crash: unlink it. Anything that is not a socket is never deleted. The
 * socket file is created under a umask derived from `mode`, so its permissions are never wider
 * than configured, not even between bind(2) and a later chmod(2) (R15).
 */

import type { Stats } from 'node:fs';
import { chmodSync } from 'node:fs';
import { lstat as lstatRaw, unlink } from 'node:fs/promises';
import { connect, type Server } from 'node:net';
import { ContainerError } from '../shared/errors.ts';
import { forgetSocketStat } from '../shared/stat-buffer.ts';
import { formatListenTarget } from './address.ts';
import type { Listening, ListenOptions, ListenTarget } from './types.ts';

/** lstat of a path that may be a socket, without leaving a socket in Node's stat buffer. */
async function lstat(path: string): Promise<Stats> {
  try {
    return await lstatRaw(path);
  } finally {
    forgetSocketStat();
  }
}

/** How long the liveness probe of an existing unix socket may take before it counts as live. */
const PROBE_TIMEOUT_MS = 1000;

/**
 * Binds `server` and resolves once it accepts.
 * @throws ContainerError `UWSGI_ERR_LISTEN` (cause: the system error) when binding fails or a
 *   unix path is held by a live process or is not a socket.
 */
export async function listenServer(server: Server, options: ListenOptions): Promise<Listening> {
  const { target, backlog } = options;
  if (target.kind === 'unix') await clearStaleSocket(target.path);
  await bind(server, target, backlog);
  let address = options.address ?? formatListenTarget(target);
  if (target.kind === 'tcp') {
    const bound = server.address();
    if (bound !== null && typeof bound === 'object') {
      address = formatListenTarget({ kind: 'tcp', host: bound.address, port: bound.port });
    }
  }
  // The inode we created: on close only that file is removed, never a successor's socket.
  const ino = target.kind === 'unix' ? (await lstat(target.path)).ino : undefined;
  let closing: Promise<void> | undefined;
  return {
    address,
    close() {
      closing ??= closeServer(server, target, ino);
      return closing;
    },
  };
}

function bind(server: Server, target: ListenTarget, backlog: number): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const onError = (err: Error) => {
      server.removeListener('listening', onListening);
      reject(
        new ContainerError(
          'UWSGI_ERR_LISTEN',
          `cannot listen on ${formatListenTarget(target)}: ${err.message}`,
          { cause: err },
        ),
      );
    };
    const onListening = () => {
      server.removeListener('error', onError);
      resolvePromise();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    switch (target.kind) {
      case 'tcp':
        server.listen({ host: target.host, port: target.port, backlog });
        break;
      case 'fd':
        // Positional: net.Server#listen ignores `options.backlog` when given an fd (lib/net.js
        // passes only the positional backlog for the handle form) and would listen with 511.
        server.listen({ fd: target.fd }, backlog);
        break;
      case 'unix': {
        // bind(2) happens synchronously inside listen() on the primary (net.js setupListenHandle
        // -> createServerHandle -> handle.bind), so the umask only needs to cover this call.
        // A umask of ~mode makes bind(2) create the file with exactly `mode` (0777 & ~umask).
        const previous = trySetUmask(0o777 & ~target.mode);
        if (previous === undefined) {
          // Worker threads cannot set the umask: fix the mode before anyone learns that we
          // listen (prepended, so it runs before onListening resolves and while onError can
          // still reject). Synchronous, so no chmod is left in flight when the caller closes.
          server.prependOnceListener('listening', () => {
            try {
              chmodSync(target.path, target.mode);
            } catch (err) {
              server.emit('error', err);
            }
          });
        }
        try {
          server.listen({ path: target.path, backlog });
        } finally {
          if (previous !== undefined) process.umask(previous);
        }
        break;
      }
    }
  });
}

function trySetUmask(mask: number): number | undefined {
  try {
    return process.umask(mask);
  } catch {
    // process.umask(mask) throws in worker threads; chmod after bind is the fallback there.
    return undefined;
  }
}

/**
 * Makes `path` free for a new unix socket: absent -> nothing; a stale socket (connect refused)
 * -> unlinked; a live socket or anything that is not a socket -> `UWSGI_ERR_LISTEN`.
 */
export async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new ContainerError('UWSGI_ERR_LISTEN', `cannot inspect ${path}: ${String(err)}`, {
      cause: err,
    });
  }
  if (!isSocket) {
    throw new ContainerError(
      'UWSGI_ERR_LISTEN',
      `cannot listen on unix:${path}: the path exists and is not a socket`,
    );
  }
  if (await isLive(path)) {
    const cause = Object.assign(new Error(`listen EADDRINUSE: address already in use ${path}`), {
      code: 'EADDRINUSE',
    });
    throw new ContainerError(
      'UWSGI_ERR_LISTEN',
      `cannot listen on unix:${path}: another process is accepting on it`,
      { cause },
    );
  }
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new ContainerError('UWSGI_ERR_LISTEN', `cannot remove stale socket ${path}`, {
        cause: err,
      });
    }
  }
}

/** Connect probe: refused (or gone) = stale; accepted, timed out or anything else = live. */
function isLive(path: string): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const probe = connect({ path });
    const done = (live: boolean) => {
      clearTimeout(timer);
      probe.destroy();
      resolvePromise(live);
    };
    const timer = setTimeout(() => done(true), PROBE_TIMEOUT_MS);
    probe.once('connect', () => done(true));
    probe.once('error', (err: NodeJS.ErrnoException) =>
      done(err.code !== 'ECONNREFUSED' && err.code !== 'ENOENT'),
    );
  });
}

async function closeServer(
  server: Server,
  target: ListenTarget,
  ino: number | undefined,
): Promise<void> {
  await new Promise<void>((resolvePromise) => {
    if (!server.listening) {
      resolvePromise();
      return;
    }
    // close() stops accepting at once; its callback waits for open connections, which are not
    // this function's business (the container drains them), so resolve on the handle closing.
    server.close();
    setImmediate(resolvePromise);
  });
  if (target.kind === 'unix') {
    // libuv unlinks the path of a closed pipe server itself; make sure, but only if the file is
    // still the socket this listener created.
    try {
      const st = await lstat(target.path);
      if (st.isSocket() && st.ino === ino) await unlink(target.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}
