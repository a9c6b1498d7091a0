/**
 * The request contract between the listeners (protocol/uwsgi.ts, protocol/http.ts), the
 * dispatcher that fills it in (dispatch.ts) and the apps that read it (app/fetch.ts). Declared
 * once, here: protocol/ and app/ import it from this file, and it imports neither.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ListenerProtocol } from '../config/types.ts';

/**
 * What the request carries after dispatch, beyond `http.IncomingMessage`. The dispatcher sets
 * these fields before it calls a `NodeHandler`; `app/fetch.ts` reads them to build the external
 * URL of fetch requests.
 */
export interface ContainerRequest extends IncomingMessage {
  /** The full raw request target (REQUEST_URI) before mount stripping (Express reads it too). */
  originalUrl?: string;
  /** The mount prefix (SCRIPT_NAME); `''` for the `/` mount. */
  baseUrl?: string;
  uwsgi?: {
    /** The request's uwsgi vars, in packet order (absent on HTTP listeners). */
    readonly vars?: ReadonlyArray<readonly [string, string]>;
    /**
     * Scheme the front end reported (`http` / `https`, from HTTPS / UWSGI_SCHEME /
     * REQUEST_SCHEME), when it reported one.
     */
    readonly scheme?: string;
    /** The mount prefix the request matched, as in the request's own bytes. */
    readonly scriptName: string;
    /** The rest of the path after the mount prefix (`''` when the mount itself was named). */
    readonly pathInfo: string;
  };
}

/** Facts about the connection a request came in on, for routing and the access log. */
export interface RequestOrigin {
  readonly protocol: ListenerProtocol;
  /** Listener display address (`unix:/abs/app.sock`, `127.0.0.1:3031`). */
  readonly listener: string;
  /** The client as the front end reported it (REMOTE_ADDR) or the TCP peer on HTTP. */
  readonly remoteAddress: string | undefined;
  /**
   * HTTP only: the request carries `Expect: 100-continue` and its declared body fits. Dispatch
   * writes `100 Continue` only when it is about to call an app: a 404 (no mount), 503 or 400
   * is the final answer without a 100, and the client does not send the body.
   */
  readonly expectContinue?: boolean;
  /** uwsgi only: the packet's vars and the scheme derived from them. */
  readonly vars?: ReadonlyArray<readonly [string, string]>;
  readonly scheme?: string;
}

/**
 * Routes one request to its app and answers for the app when it cannot (404, 500, 504).
 * The listener has built `req`/`res` and bound `res` to the connection.
 */
export type Dispatch = (req: IncomingMessage, res: ServerResponse, origin: RequestOrigin) => void;

/**
 * Routes one WebSocket handshake the HTTP listener received as node:http's `'upgrade'` event to
 * its app's own server (dispatch/upgrade.ts). `socket` has left node:http's parser; `head` is
 * what the client sent after the request head.
 */
export type UpgradeDispatch = (
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  origin: RequestOrigin,
) => void;
