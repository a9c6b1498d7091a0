import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Server } from 'node:net';

/**
 * What every mounted app is reduced to: a node:http `request` listener. A returned promise is
 * awaited by the dispatcher only to report a rejection (500 before headers, destroy after).
 */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

/**
 * A WinterTC-style fetch handler (Hono, srvx, Bun/Deno style): `env` is
 * `{ incoming, outgoing }` when called through `app/fetch.ts` (@hono/node-server's bindings).
 */
export type FetchHandler = (request: Request, env?: unknown) => Response | Promise<Response>;

export type LoadedAppKind = 'node' | 'fetch';

export interface LoadedApp {
  /** The request listener to call; fetch handlers are already wrapped (`app/fetch.ts`). */
  readonly handler: NodeHandler;
  /** How the module's app answers: `fetch` apps were wrapped into `handler`. */
  readonly kind: LoadedAppKind;
  /**
   * Where the app was found and what it is, for logs and errors, e.g. `default export (Express
   * app)`, `fetch export (fetch handler)`, `listen() on import (http.Server)`.
   */
  readonly shape: string;
  /**
   * The app's own `http.Server` / `https.Server` when the module has one (exported, listen()ed on during import,
   * a Fastify instance's `server`): the HTTP listener emits WebSocket handshakes on it as
   * `'upgrade'` (req, socket, head), where `ws` and Socket.IO listen (dispatch/upgrade.ts).
   */
  readonly server?: Server;
  /** Present when the app holds resources of its own to release (Fastify `onClose` hooks). */
  close?(): Promise<void>;
}
