/**
 * Pipelined responses whose client left. node:http queues the response of a pipelined request
 * until the responses before it finished (lib/_http_server.js, Node 20: `state.outgoing`): such
 * a response has no socket yet. When the socket closes, node:http aborts every unanswered
 * request ('aborted', 'close') and emits 'close' on the response bound to the socket
 * (onServerResponseClose), but never on the queued ones, and `res.destroy()` on one only defers
 * a socket destroy to a 'socket' event that never comes. Their 'close' is what settles a
 * dispatched request (dispatch.ts: access record, stats, deadline) and what apps watch for an
 * abort, so without this a client that pipelines many requests, never reads and leaves had up
 * to ~1,000 of them pending until `requestTimeoutMs`, each then logging a timeout.
 *
 * Only responses queued at the time of their request are tracked: the usual request (one at a
 * time per connection) has its socket already and costs one property read.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

const QUEUED = Symbol('uwsgi-ts.queuedResponses');

type TrackedSocket = Socket & { [QUEUED]?: Set<ServerResponse> };

/** Call for every response when its request arrives; a no-op unless it is queued. */
export function trackQueuedResponse(socket: Socket, res: ServerResponse): void {
  if (res.socket !== null) return;
  const tracked = socket as TrackedSocket;
  let queued = tracked[QUEUED];
  if (queued === undefined) {
    const set = new Set<ServerResponse>();
    queued = set;
    tracked[QUEUED] = set;
    socket.once('close', () => {
      for (const pending of set) closeUnbound(pending);
      set.clear();
    });
  }
  queued.add(res);
  const set = queued;
  res.once('close', () => set.delete(res));
}

/**
 * What node:http does for the response bound to a socket that closed (emitCloseNT in
 * lib/_http_server.js, Node 20): marked destroyed and closed, 'close' emitted. `_closed` keeps
 * node:http from emitting it a second time.
 */
function closeUnbound(res: ServerResponse): void {
  const internal = res as ServerResponse & { _closed?: boolean };
  if (internal._closed === true) return;
  internal.destroyed = true;
  internal._closed = true;
  res.emit('close');
}
