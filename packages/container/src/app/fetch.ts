/**
 * Fetch handlers (`(request: Request) => Response`, Hono, srvx-style apps) as node:http request
 * listeners, through @hono/node-server's `getRequestListener` (BRIDGE.md "Fetch handlers"): it
 * builds a lazy `Request` (method, URL and headers materialised on first use) and writes string
 * and byte bodies in one `end()`, streams with `drain` back-pressure.
 *
 * The adapter derives the request URL from `Host` and `req.url`, and the scheme from the socket.
 * Behind a uwsgi front end neither is what the client used: the socket is a plain unix or TCP
 * socket even for HTTPS clients, and `req.url` is relative to the mount. So each request is
 * given the external URL: scheme from the uwsgi vars (HTTPS / UWSGI_SCHEME / REQUEST_SCHEME),
 * authority from Host, path from `req.originalUrl` (mount prefix kept; `fetchUrl: relative`
 * gives `req.url` instead).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { getRequestListener, RequestError } from '@hono/node-server';
import type { ContainerRequest } from '../dispatch/types.ts';
import type { FetchHandler, NodeHandler } from './types.ts';

export interface FetchListenerOptions {
  /**
   * `full` (default): `request.url` is the external URL including the mount prefix.
   * `relative`: the prefix is stripped, as `req.url` is for Node handlers.
   */
  readonly fetchUrl?: 'full' | 'relative';
  /**
   * Origin for requests without a Host header and without uwsgi SERVER_NAME (HTTP/1.0
   * clients). Default `http://localhost`.
   */
  readonly baseUrl?: string;
  /**
   * Receives what a fetch handler throws or rejects with; the client gets a 500 (the adapter's
   * own default answers 500 without telling anyone).
   */
  readonly onError?: (err: unknown) => void;
}

/**
 * RFC 3986 authority without userinfo: reg-name (unreserved / sub-delims) or IP literal, then an
 * optional port. Checked before a Host header is spliced into an absolute URL, where `/`, `?`,
 * `#` or `@` would move the boundary between authority and path.
 */
const VALID_HOST = /^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9._~!$&'()*+,;=-]+)(?::[0-9]{0,5})?$/;

/**
 * Wraps a fetch handler into a `NodeHandler`.
 *
 * Errors: a handler that throws or rejects answers 500 (`onError` sees the error); a request the
 * adapter cannot turn into a `Request` (bad Host) answers 400; a response body stream that
 * fails after the headers went out destroys the response (the front end sees a short body).
 */
export function createFetchListener(
  fetch: FetchHandler,
  options: FetchListenerOptions = {},
): NodeHandler {
  const relative = options.fetchUrl === 'relative';
  const base = new URL(options.baseUrl ?? 'http://localhost');
  const onError = options.onError;
  const listener = getRequestListener(fetch as Parameters<typeof getRequestListener>[0], {
    hostname: base.host,
    errorHandler(err: unknown) {
      if (err instanceof RequestError) return textResponse(400, 'Bad Request');
      onError?.(err);
      return textResponse(500, 'Internal Server Error');
    },
  });

  return (incoming: IncomingMessage, outgoing: ServerResponse): Promise<void> | undefined => {
    const req = incoming as ContainerRequest;
    const savedUrl = req.url;
    const path = (relative ? savedUrl : (req.originalUrl ?? savedUrl)) ?? '/';
    const scheme = schemeOf(req);
    const socketScheme = (req.socket as TLSSocket | null)?.encrypted === true ? 'https' : 'http';
    let host = req.headers.host;
    let target: string;
    if (host !== undefined && host !== '' && scheme === socketScheme) {
      // The adapter joins socket scheme, Host (which it validates) and req.url itself.
      target = path;
    } else {
      host ||= serverAuthority(req, scheme) ?? base.host;
      if (!VALID_HOST.test(host)) {
        outgoing.writeHead(400, { 'content-type': 'text/plain', 'content-length': '11' });
        outgoing.end('Bad Request');
        return undefined;
      }
      target = path.charCodeAt(0) === 0x2f ? `${scheme}://${host}${path}` : path;
    }
    // The adapter reads `incoming.url` once, synchronously, before its first await
    // (@hono/node-server 2.x `getRequestListener` -> `newRequest`); put the dispatcher's
    // value back at once so that logs and the app's `env.incoming` see the usual req.url.
    req.url = target;
    try {
      return listener(incoming, outgoing);
    } finally {
      req.url = savedUrl as string;
    }
  };
}

function textResponse(status: number, text: string): Response {
  return new Response(text, { status, headers: { 'content-type': 'text/plain; charset=utf-8' } });
}

function schemeOf(req: ContainerRequest): 'http' | 'https' {
  const uwsgi = req.uwsgi;
  if (uwsgi !== undefined) {
    const s = uwsgi.scheme?.toLowerCase();
    if (s === 'http' || s === 'https') return s;
    const vars = uwsgi.vars;
    if (vars !== undefined) {
      // nginx uwsgi_params sends HTTPS=on for TLS clients (`$https`); uWSGI also honours
      // UWSGI_SCHEME, and REQUEST_SCHEME is nginx's `$scheme`.
      let fromVars: string | undefined;
      for (const [name, value] of vars) {
        if (name === 'HTTPS') {
          const v = value.toLowerCase();
          if (v === 'on' || v === '1') return 'https';
        } else if (
          name === 'UWSGI_SCHEME' ||
          (name === 'REQUEST_SCHEME' && fromVars === undefined)
        ) {
          fromVars = value.toLowerCase();
        }
      }
      if (fromVars === 'https' || fromVars === 'http') return fromVars;
    }
    return 'http';
  }
  return (req.socket as TLSSocket | null)?.encrypted === true ? 'https' : 'http';
}

/** SERVER_NAME[:SERVER_PORT] from uwsgi vars, default ports left out. */
function serverAuthority(req: ContainerRequest, scheme: 'http' | 'https'): string | undefined {
  const vars = req.uwsgi?.vars;
  if (vars === undefined) return undefined;
  let name: string | undefined;
  let port: string | undefined;
  for (const [key, value] of vars) {
    if (key === 'SERVER_NAME') name = value;
    else if (key === 'SERVER_PORT') port = value;
  }
  if (name === undefined || name === '') return undefined;
  // An IPv6 literal needs its brackets in an authority (RFC 3986 section 3.2.2).
  if (name.includes(':') && !name.startsWith('[')) name = `[${name}]`;
  const defaultPort = scheme === 'https' ? '443' : '80';
  return port === undefined || port === '' || port === defaultPort ? name : `${name}:${port}`;
}
