/**
 * Listener addresses (pure): the YAML `address` string to a `ListenTarget`, and a target back
 * to the display form used in logs and the ready record.
 *
 * Accepted forms, in the order they are recognised:
 * - `unix:/abs/path.sock`, any string containing `/`, or a bare file name such as `app.sock`
 *   (a unix socket path; relative ones resolve against `baseDir`);
 * - `fd:N` (an already-bound listening fd inherited from a supervisor);
 * - `[v6addr]:port` and `host:port` (TCP; port 0 asks the kernel for any free port).
 *
 * A bare `:port` is refused on purpose: it would bind every interface, and a uwsgi listener
 * trusts its vars (REMOTE_ADDR, HTTPS...) as coming from the front end (RELIABILITY.md
 * invariant 4). Spell out `0.0.0.0:port` when that is really wanted.
 */
import { isAbsolute, resolve } from 'node:path';
import { ContainerError } from '../shared/errors.ts';
import type { ListenTarget } from './types.ts';

/** Socket file mode used when a listener gives none (uWSGI users expect group access). */
export const DEFAULT_UNIX_MODE = 0o660;

export interface ParseListenAddressOptions {
  /** Octal string such as `"0660"` or a number; unix sockets only. Default 0o660. */
  readonly mode?: string | number;
  /** Directory relative unix paths resolve against (the config file's directory). Default cwd. */
  readonly baseDir?: string;
}

/**
 * Parses a listener address.
 * @throws ContainerError `UWSGI_ERR_LISTEN` when the string is no recognised form.
 */
export function parseListenAddress(
  address: string,
  options: ParseListenAddressOptions = {},
): ListenTarget {
  const text = address.trim();
  // A bare file name (`app.sock`) is a socket beside the config file; a bare number is not.
  const bareName = !text.includes(':') && !/^\d*$/.test(text);
  if (text.startsWith('unix:') || text.includes('/') || bareName) {
    const raw = text.startsWith('unix:') ? text.slice('unix:'.length) : text;
    if (raw === '' || raw.includes('\0')) throw invalid(address, 'empty or NUL in unix path');
    const path = isAbsolute(raw) ? raw : resolve(options.baseDir ?? process.cwd(), raw);
    return { kind: 'unix', path, mode: parseMode(options.mode, address) };
  }
  if (text.startsWith('fd:')) {
    const fd = parsePort(text.slice(3), Number.MAX_SAFE_INTEGER);
    if (fd === undefined) throw invalid(address, 'fd must be a non-negative integer');
    return { kind: 'fd', fd };
  }
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw invalid(address, 'expected [v6addr]:port');
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw invalid(address, 'expected host:port or a unix socket path');
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw invalid(address, 'IPv6 hosts need brackets: [::1]:port');
  }
  if (host === '') throw invalid(address, 'host is required (use 0.0.0.0:port for all interfaces)');
  const port = parsePort(portText, 65535);
  if (port === undefined) throw invalid(address, 'port must be an integer 0-65535');
  return { kind: 'tcp', host, port };
}

/** Display form: `unix:/abs/path.sock`, `127.0.0.1:3031`, `[::1]:3031` or `fd:3`. */
export function formatListenTarget(target: ListenTarget): string {
  switch (target.kind) {
    case 'unix':
      return `unix:${target.path}`;
    case 'fd':
      return `fd:${target.fd}`;
    case 'tcp':
      return target.host.includes(':')
        ? `[${target.host}]:${target.port}`
        : `${target.host}:${target.port}`;
  }
}

function parseMode(mode: string | number | undefined, address: string): number {
  if (mode === undefined) return DEFAULT_UNIX_MODE;
  const value =
    typeof mode === 'number'
      ? mode
      : /^0?[0-7]{3}$/.test(mode)
        ? Number.parseInt(mode, 8)
        : Number.NaN;
  if (!Number.isInteger(value) || value < 0 || value > 0o777) {
    throw invalid(address, `mode ${String(mode)} is not an octal permission such as "0660"`);
  }
  return value;
}

function parsePort(text: string, max: number): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const value = Number(text);
  return value <= max ? value : undefined;
}

function invalid(address: string, reason: string): ContainerError {
  return new ContainerError('UWSGI_ERR_LISTEN', `invalid listener address "${address}": ${reason}`);
}
