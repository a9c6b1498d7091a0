/**
 * Responses the container writes on behalf of an app (404, 413, 500, 504...), through the app's
 * own `ServerResponse`, so both listeners share Node's header validation and framing.
 */
import { type ServerResponse, STATUS_CODES } from 'node:http';
import { sealResponse } from '../bridge/response.ts';

/**
 * Answers `status` with a short text body unless headers already went out, in which case the
 * response is destroyed (the front end sees a truncated answer, never a second status line).
 * A response the app has already ended is left alone.
 * Afterwards the response is sealed: an app that answers late (after a 504) or keeps writing
 * (after its handler threw) has its calls ignored instead of throwing ERR_HTTP_HEADERS_SENT
 * into an unrelated callback and taking the process down.
 */
export function respondOnBehalf(res: ServerResponse, status: number): void {
  // The app has answered completely (its bytes may still be flushing) or the peer is gone.
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) {
    res.destroy();
    sealResponse(res);
    return;
  }
  for (const name of res.getHeaderNames()) res.removeHeader(name);
  // The app may have left the request half-read or in an unknown state: do not reuse the
  // connection (HTTP listener; uwsgi connections always close).
  res.shouldKeepAlive = false;
  const body = `${status} ${STATUS_CODES[status] ?? 'Error'}\n`;
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
  sealResponse(res);
}
