/** @uwsgi-ts/cli: the `uwsgi-ts` command, as a function (bin/uwsgi-ts.js is a thin shim). */
export { CLI_ERROR_CODES, CliError, type CliErrorCode } from './errors.ts';
export type { CliIo } from './io.ts';
export { main, VERSION } from './main.ts';
