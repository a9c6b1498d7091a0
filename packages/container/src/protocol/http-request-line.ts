/**
 * A request line with more than one space between its parts (`GET  / HTTP/1.1`,
 * `GET /  HTTP/1.1`). RFC 9112 section 3 allows exactly one SP; llhttp (Node 20) skips the extra
 * ones and hands over the same method, target and version as for the well-formed line, so
 * nothing node:http gives the listener shows them: only the bytes do.
 *
 * The bytes of the read being parsed (llhttp's current buffer, the read that completed this
 * head) are scanned once per read: one `indexOf` for two spaces. Only a read that has them is
 * looked at further, and then only where this request's line must be: at the start of the read
 * for its first request, and for each pipelined request after it, right after the previous
 * request's head and declared body (a cursor kept per socket and read). Body bytes are never
 * taken for a request line. Limits (a miss, never a wrong 400): a request line that came in an
 * earlier read than its head's end (a head sent in pieces), or one after a chunked body in the
 * same read, is not checked.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

interface ParserWithBuffer {
  /** node_http_parser.cc: a copy of the bytes of the read being parsed. */
  getCurrentBuffer?: () => Buffer;
}

/** Where, in the read `read` (the socket's bytesRead then), the next request's line starts. */
interface Cursor {
  read: number;
  /** -1: the read has no doubled space at all. */
  at: number;
}

const CURSOR = Symbol('uwsgi-ts.requestLineCursor');

type ScannedSocket = Socket & { parser?: ParserWithBuffer | null; [CURSOR]?: Cursor };

/** True when `req`'s request line, in the read that completed its head, has a doubled space. */
export function doubledSpaceInRequestLine(req: IncomingMessage): boolean {
  const socket = req.socket as ScannedSocket;
  const read = socket.bytesRead;
  let cursor = socket[CURSOR];
  if (cursor?.read === read && cursor.at === -1) return false;
  const bytes = socket.parser?.getCurrentBuffer?.();
  if (bytes === undefined) return false;
  if (cursor === undefined) {
    cursor = { read, at: 0 };
    socket[CURSOR] = cursor;
  } else if (cursor.read !== read) {
    cursor.read = read;
    cursor.at = 0;
  }
  if (cursor.at === 0 && bytes.indexOf('  ', 0, 'latin1') === -1) {
    cursor.at = -1;
    return false;
  }
  const text = bytes.toString('latin1');
  let at = cursor.at;
  // RFC 9112 section 2.2: empty lines before a request line are ignored.
  while (text.charCodeAt(at) === 13 || text.charCodeAt(at) === 10) at++;
  const doubled = doubledAt(text, at, req.method ?? '', req.url ?? '');
  // The next pipelined request starts after this head and its declared body.
  const headEnd = text.indexOf('\r\n\r\n', at);
  // A chunked body's end is not known here: the rest of this read is left unchecked.
  const chunked = req.headers['transfer-encoding'] !== undefined;
  cursor.at =
    headEnd === -1 || chunked
      ? text.length
      : headEnd + 4 + Number(req.headers['content-length'] ?? 0);
  return doubled;
}

/** `method SP+ url SP+ HTTP/` at `at`, with more than one SP in either place. */
function doubledAt(text: string, at: number, method: string, url: string): boolean {
  if (!text.startsWith(method, at)) return false;
  let i = at + method.length;
  const afterMethod = i;
  while (text.charCodeAt(i) === 32) i++;
  const spaces1 = i - afterMethod;
  if (spaces1 === 0 || !text.startsWith(url, i)) return false;
  i += url.length;
  const afterUrl = i;
  while (text.charCodeAt(i) === 32) i++;
  const spaces2 = i - afterUrl;
  return spaces2 > 0 && text.startsWith('HTTP/', i) && (spaces1 > 1 || spaces2 > 1);
}
