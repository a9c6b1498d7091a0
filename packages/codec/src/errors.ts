/**
 * The codec's single error class and its closed list of codes (STYLE.md section 4). Users match
 * on `err.code`; every code has an anchored entry in docs/errors.md, kept in step by a test.
 */

/** Every code a `UwsgiError` from this package can carry. Adding one is a contract change. */
export const UWSGI_ERROR_CODES = [
  'UWSGI_ERR_PACKET_TRUNCATED',
  'UWSGI_ERR_VARS_TOO_LARGE',
  'UWSGI_ERR_VARS_TOO_MANY',
  'UWSGI_ERR_VARS_MALFORMED',
  'UWSGI_ERR_VARS_ENCODING',
  'UWSGI_ERR_ARG_INVALID',
  'UWSGI_ERR_REQUEST_INVALID',
  'UWSGI_ERR_RESPONSE_MALFORMED',
  'UWSGI_ERR_RESPONSE_TOO_LARGE',
] as const;

/** One of `UWSGI_ERROR_CODES`. */
export type UwsgiErrorCode = (typeof UWSGI_ERROR_CODES)[number];

/** Extra fields of a `UwsgiError`. */
export interface UwsgiErrorOptions {
  /** Stream offset (bytes since the decoder or parser started or was reset) of the failure. */
  readonly offset?: number;
  readonly cause?: unknown;
}

/**
 * Thrown by every function and class of `@uwsgi-ts/codec` for bad input or bad arguments.
 *
 * `code` is stable; `message` is for humans. `offset` is set for wire errors (decoder, response
 * head parser): the stream offset of the byte that revealed the problem, counted from the first
 * byte pushed since construction or the last `reset()`.
 */
export class UwsgiError extends Error {
  override readonly name = 'UwsgiError';
  readonly code: UwsgiErrorCode;
  readonly offset: number | undefined;

  constructor(code: UwsgiErrorCode, message: string, options: UwsgiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.offset = options.offset;
  }
}
