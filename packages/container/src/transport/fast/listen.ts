/**
 * The `fast` uwsgi transport (issue 4): Node's stream handles driven directly, without
 * `net.Socket` and the streams state machine on top of them. This module is its entry and its
 * listening half; `socket.ts` is the per-connection shim, `internals.ts` every Node internal
 * both rely on and the probe that checks them.
 *
 * Why: nginx opens a new uwsgi connection for every request and never reuses it (BRIDGE.md,
 * "Per-connection cost"), so per-connection set-up decides throughput. A `net.Socket` costs
 * ~43 µs of CPU per request behind nginx; the same work on the handles `net` is built on costs
 * ~15 µs, level with uWSGI in C. What this transport keeps from `net` is the listening part
 * (`net.Server` binds, resolves hosts, adopts inherited fds); from each accepted handle on it
 * reads into one reused buffer (a request body the sink keeps into buffers of its own), writes
 * with the handle's own write calls and closes without shutdown/EOF round trips.
 *
 * Every Node internal it relies on is declared and probed in `internals.ts`, and each use is
 * marked `INTERNAL:` with what it relies on. `createFastTransport()` returns `{ unavailable }`
 * when the probe finds anything different, so the selector can fall back to the `net` transport.
 */
import { createServer, type Server } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { ContainerError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/log.ts';
import { listenServer } from '../listen.ts';
import type { Connection, Listening, ListenOptions, Transport } from '../types.ts';
import { type Internals, loadInternals, type ServerHandle } from './internals.ts';
import { FastSocket } from './socket.ts';

/**
 * The fast transport, or why it cannot run here (the selector then uses `net` and logs the
 * reason once). Probing happens once per process; later calls return the same verdict.
 * Accept errors (EMFILE...) are logged on `log` when given, as the net transport does.
 */
export function createFastTransport(log?: Logger): Transport | { unavailable: string } {
  const internals = loadInternals();
  if (typeof internals === 'string') return { unavailable: internals };
  return {
    name: 'fast',
    listen: (options, onConnection) => listenFast(internals, options, onConnection, log),
  };
}

async function listenFast(
  ix: Internals,
  options: ListenOptions,
  onConnection: (conn: Connection) => void,
  log: Logger | undefined,
): Promise<Listening> {
  // net.Server does the binding (transport/listen.ts: stale unix sockets, mode, host resolution,
  // inherited fds); we take over each accepted handle from there.
  const server = createServer();
  let hooked: ContainerError | undefined;
  // Registered before listenServer's own 'listening' listener, so the hook is in place before
  // anything else runs: net emits 'listening' on nextTick after setupListenHandle, before the
  // event loop can poll the new socket for a connection.
  server.once('listening', () => {
    hooked = hookAccept(ix, server, onConnection, log);
  });
  const listening = await listenServer(server, options);
  if (hooked !== undefined) {
    await listening.close();
    throw hooked;
  }
  return listening;
}

/**
 * INTERNAL: `net.Server#_handle` is the listening Pipe/TCP handle, and C++ calls its
 * `onconnection(status, clientHandle)` for every accepted connection (src/connection_wrap.cc).
 * `net` installs its own in setupListenHandle; we replace it. Returns an error when the handle
 * is not a real Pipe/TCP (a cluster round-robin worker gets a stand-in, and handle passing per
 * connection would cost more than this transport saves: BRIDGE.md).
 */
function hookAccept(
  ix: Internals,
  server: Server,
  onConnection: (conn: Connection) => void,
  log: Logger | undefined,
): ContainerError | undefined {
  const handle = (server as unknown as { _handle?: ServerHandle | null })._handle;
  const [Pipe, TCP] = ix.handleClasses;
  const isTcp = TCP !== undefined && handle instanceof TCP;
  if (
    handle == null ||
    typeof handle.onconnection !== 'function' ||
    !(isTcp || (Pipe !== undefined && handle instanceof Pipe))
  ) {
    return new ContainerError(
      'UWSGI_ERR_TRANSPORT_UNAVAILABLE',
      'the fast transport needs a Pipe or TCP listening handle (not a cluster round-robin worker); use transport: net',
    );
  }
  handle.onconnection = (status, client) => {
    if (status !== 0 || client === undefined) {
      // Accept errors (EMFILE, ENFILE...): libuv sheds the connection with its spare fd and keeps
      // accepting, as with the net transport.
      log?.warn({ code: getSystemErrorName(status) }, 'accept failed');
      return;
    }
    const conn = new FastSocket(ix, client, isTcp);
    try {
      onConnection(conn);
    } catch (err) {
      conn.destroy();
      throw err;
    }
  };
  return undefined;
}
