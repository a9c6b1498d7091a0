/**
 * A request line with more than one space between its parts (`GET  / HTTP/1.1`,
 * `GET /  HTTP/1.1`). RFC 9112 section 3 allows exactly one SP; llhttp (Node 20) skips the extra
 * ones and hands over the same method, target and version as for the well-formed line, so
 * nothing node:http gives the listener shows them: only the bytes do.
 *
 * The bytes of the read being parsed (llhttp's current buffer) are scanned once per read: one
 * `indexOf` for two spaces, and only a read that has them is searched for this request's line.
 * Limit: the read scanned is the one that completed the head; a request line that came in an
 * earlier read than its head's end (a client sending its head in pieces) is not checked.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

interface ParserWithBuffer {
  /** node_http_parser.cc: a copy of the bytes of the read being parsed. */
  getCurrentBuffer?: () => Buffer;
}

const CLEAN_READ = Symbol('uwsgi-ts.cleanRead');

type ScannedSocket = Socket & { parser?: ParserWithBuffer | null; [CLEAN_READ]?: number };

/** True when `req`'s request line, in the read that completed its head, has a doubled space. */
export function doubledSpaceInRequestLine(req: IncomingMessage): boolean {
  const socket = req.socket as ScannedSocket;
  const read = socket.bytesRead;
  // This read was scanned for an earlier request of a pipelined batch and has no double space.
  if (socket[CLEAN_READ] === read) return false;
  const bytes = socket.parser?.getCurrentBuffer?.();
  if (bytes === undefined) return false;
  if (bytes.indexOf('  ', 0, 'latin1') === -1) {
    socket[CLEAN_READ] = read;
    return false;
  }
  return doubledIn(bytes.toString('latin1'), req.method ?? '', req.url ?? '');
}

/** Searches every line of `text` that starts with `method` for `method SP+ url SP+ HTTP/`. */
function doubledIn(text: string, method: string, url: string): boolean {
  let start = 0;
  while (start < text.length) {
    if (text.startsWith(method, start)) {
      let at = start + method.length;
      const afterMethod = at;
      while (text.charCodeAt(at) === 32) at++;
      const spaces1 = at - afterMethod;
      if (spaces1 > 0 && text.startsWith(url, at)) {
        at += url.length;
        const afterUrl = at;
        while (text.charCodeAt(at) === 32) at++;
        const spaces2 = at - afterUrl;
        if (spaces2 > 0 && text.startsWith('HTTP/', at) && (spaces1 > 1 || spaces2 > 1)) {
          return true;
        }
      }
    }
    const eol = text.indexOf('\n', start);
    if (eol === -1) return false;
    start = eol + 1;
  }
  return false;
}
