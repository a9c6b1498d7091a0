/**
 * The CLI's error class (STYLE.md section 4). Command-line mistakes are `UWSGI_ERR_CLI_USAGE`:
 * main() prints them with a pointer to --help and exits 2. Runtime failures (a config with
 * issues, a port in use, a failed request) are reported by their command and exit 1; those
 * that are thrown carry their own code (`UWSGI_ERR_CLI_REQUEST_FAILED`).
 */

/** Every code a `CliError` can carry; each has an entry under `## cli` in docs/errors.md. */
export const CLI_ERROR_CODES = ['UWSGI_ERR_CLI_USAGE', 'UWSGI_ERR_CLI_REQUEST_FAILED'] as const;

export type CliErrorCode = (typeof CLI_ERROR_CODES)[number];

export class CliError extends Error {
  override readonly name = 'CliError';
  readonly code: CliErrorCode;
  /** The command whose usage applies, for the "see uwsgi-ts CMD --help" hint. */
  readonly command: string | undefined;

  constructor(
    code: CliErrorCode,
    message: string,
    options: { command?: string; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.command = options.command;
  }
}

export function usageError(message: string, command?: string): CliError {
  return new CliError('UWSGI_ERR_CLI_USAGE', message, command === undefined ? {} : { command });
}
