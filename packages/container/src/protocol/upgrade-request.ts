/**
 * Which requests node:http hands to the HTTP listener's `'upgrade'` listener: WebSocket
 * handshakes only (and CONNECT, which goes to `'connect'` as before).
 *
 * node:http emits `'upgrade'` for every request llhttp flags as an upgrade (`Connection: upgrade`
 * with any `Upgrade`) once the server has an `'upgrade'` listener, and from then on the request
 * is no longer served as a request: its socket leaves the parser. An `Upgrade: h2c` (or any
 * other protocol the container does not route) must still be served over HTTP/1.1, as RFC 9110
 * section 7.8 lets a server ignore Upgrade, and as the listener did before it had an
 * `'upgrade'` listener. The decision is made where node:http makes it (lib/_http_server.js,
 * Node 20, parserOnIncoming):
 *
 *     if (req.upgrade) {
 *       req.upgrade = req.method === 'CONNECT' || server.listenerCount('upgrade') > 0;
 *       if (req.upgrade) return 2;   // skip the body, emit 'upgrade' / 'connect'
 *     }
 *
 * `upgrade` is set from llhttp's flag in parserOnHeadersComplete (lib/_http_common.js) before
 * the headers are added; parserOnIncoming reads it after. This class (the server's
 * `IncomingMessage` option) answers that read with the flag only for CONNECT and WebSocket
 * handshakes, so every other upgrade request takes node:http's path for a server without an
 * `'upgrade'` listener: parsed with its body and served as a normal request.
 */
import { IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { isWebSocketHandshake } from '../dispatch/dispatch.ts';
import type { UpgradeDispatch } from '../dispatch/types.ts';

/** llhttp's upgrade flag, as node:http set it. A symbol key: the base constructor sets it first. */
const FLAG = Symbol('uwsgi-ts.upgradeFlag');

type Flagged = IncomingMessage & { [FLAG]?: boolean | null };

export class WebSocketAwareRequest extends IncomingMessage {}

// An accessor on the prototype (TypeScript types `upgrade` as a data property of IncomingMessage,
// which a class accessor may not override). Own data properties would shadow it: node:http only
// assigns `req.upgrade`, which the setter takes.
Object.defineProperty(WebSocketAwareRequest.prototype, 'upgrade', {
  configurable: true,
  enumerable: true,
  get(this: Flagged): boolean {
    if (this[FLAG] !== true) return false;
    return this.method === 'CONNECT' || isWebSocketHandshake(this);
  },
  set(this: Flagged, value: boolean | null) {
    this[FLAG] = value;
  },
});

/**
 * Hands the `'upgrade'` events of `server` (a server created with `WebSocketAwareRequest`) to
 * `upgrade`; `listener()` is the listener's display address, known once it is bound.
 */
export function routeUpgrades(
  server: Server,
  upgrade: UpgradeDispatch,
  listener: () => string,
): void {
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgrade(req, socket, head, {
      protocol: 'http',
      listener: listener(),
      remoteAddress: socket.remoteAddress,
    });
  });
}
