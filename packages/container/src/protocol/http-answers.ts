/** The HTTP listener's answers to what node:http could not parse (its 'clientError'). */
import { STATUS_CODES } from 'node:http';

/** node:http's own answers to a client error (lib/_http_server.js socketOnError, Node 20). */
export function clientErrorAnswer(code: string | undefined): { status: number; bytes: Buffer } {
  const status =
    code === 'HPE_HEADER_OVERFLOW'
      ? 431
      : code === 'HPE_CHUNK_EXTENSIONS_OVERFLOW'
        ? 413
        : code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : 400;
  return {
    status,
    bytes: Buffer.from(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\n\r\n`,
      'ascii',
    ),
  };
}

/** A parse error (llhttp's `HPE_*`) or a missed head/request deadline: a request was coming. */
export function isRequestError(code: string | undefined): boolean {
  return code !== undefined && (code.startsWith('HPE_') || code === 'ERR_HTTP_REQUEST_TIMEOUT');
}
