/**
 * Listener addresses (pure): the one parser of the YAML `address` string, used by config
 * (issues with `file:line:col`, via `classifyListenAddress`) and by the container when it binds
 * (`parseListenAddress`, which throws), and a target back to the display form used in logs and
 * the ready record.
 *
 * Accepted forms, in the order they are recognised:
 * - `unix:PATH`, or any string containing `/` (a unix socket path; relative ones resolve
 *   against `baseDir`, the config file's directory);
 * - `fd:N` (an already-bound listening fd inherited from a supervisor, e.g. systemd's fd 3);
 * - `[v6addr]:port` and `host:port` (TCP, host an IPv4 address or a host name; port 0 asks the
 *   kernel for any free port);
 * - a name with neither `/` nor `:` such as `app.sock`: a socket file beside the config.
 *
 * Refused on purpose: a bare number (a port without a host, or a socket file named like one?),
 * a bare `:port` (it would bind every interface, and a uwsgi listener trusts its vars
 * (REMOTE_ADDR, HTTPS...) as coming from the front end, RELIABILITY.md invariant 4: spell out
 * `0.0.0.0:port` when that is really wanted), unbracketed IPv6, abstract sockets (`@name`).
 * Nothing is trimmed: a space is part of a path, and never of a host.
 */
import { isIPv4, isIPv6 } from 'node:net';
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

/** A listen target, or why the address is none (phrased to follow "is not a valid address: "). */
export type ListenAddressCheck =
  | ListenTarget
  | { readonly kind: 'invalid'; readonly reason: string };

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses a listener address.
 * @throws ContainerError `UWSGI_ERR_LISTEN` when the string is no recognised form (the message
 *   gives the reason {@link classifyListenAddress} found).
 */
export function parseListenAddress(
  address: string,
  options: ParseListenAddressOptions = {},
): ListenTarget {
  const target = classifyListenAddress(address, options);
  if (target.kind === 'invalid') {
    throw new ContainerError(
      'UWSGI_ERR_LISTEN',
      `invalid listener address "${address}": ${target.reason}`,
    );
  }
  return target;
}

/** {@link parseListenAddress} without the throw: config turns the reason into an issue. */
export function classifyListenAddress(
  address: string,
  options: ParseListenAddressOptions = {},
): ListenAddressCheck {
  if (address === '') return invalid('the address is empty');
  const prefixed = address.startsWith('unix:');
  if (prefixed || address.includes('/') || address.includes('\0')) {
    const raw = prefixed ? address.slice('unix:'.length) : address;
    if (raw === '') return invalid('the unix socket path is empty');
    if (raw.includes('\0')) return invalid('NUL in a unix socket path');
    return unix(raw, options);
  }
  if (address.startsWith('fd:')) {
    const fd = address.slice(3);
    return /^\d{1,9}$/.test(fd)
      ? { kind: 'fd', fd: Number(fd) }
      : invalid(`"${fd}" is not a file descriptor number`);
  }
  if (address.startsWith('@')) return invalid('abstract unix sockets (@name) are not supported');
  const v6 = /^\[([^\]]*)\]:(\d+)$/.exec(address);
  let host: string;
  let portText: string;
  if (v6 !== null) {
    host = v6[1] ?? '';
    portText = v6[2] ?? '';
    if (!isIPv6(host)) return invalid(`"${host}" is not an IPv6 address`);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) {
      if (/^\d*$/.test(address)) {
        return invalid(
          `a bare port is ambiguous: write 127.0.0.1:${address} (or ./${address} for a unix socket)`,
        );
      }
      return unix(address, options);
    }
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(':')) return invalid('an IPv6 address needs brackets: [::1]:3031');
    if (host === '') {
      return invalid(
        'the host is empty: write 127.0.0.1:PORT, or 0.0.0.0:PORT / [::]:PORT to listen on every interface',
      );
    }
    if (!isIPv4(host) && !HOSTNAME.test(host)) {
      return invalid(`"${host}" is not an IPv4 address or host name`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    return invalid(`port "${portText}" is not a number from 0 to 65535`);
  }
  return { kind: 'tcp', host, port: Number(portText) };
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

function unix(raw: string, options: ParseListenAddressOptions): ListenAddressCheck {
  const mode = parseMode(options.mode);
  if (mode === undefined) {
    return invalid(`mode ${String(options.mode)} is not an octal permission such as "0660"`);
  }
  const path = isAbsolute(raw) ? raw : resolve(options.baseDir ?? process.cwd(), raw);
  return { kind: 'unix', path, mode };
}

function parseMode(mode: string | number | undefined): number | undefined {
  if (mode === undefined) return DEFAULT_UNIX_MODE;
  const value =
    typeof mode === 'number'
      ? mode
      : /^0?[0-7]{3}$/.test(mode)
        ? Number.parseInt(mode, 8)
        : Number.NaN;
  return Number.isInteger(value) && value >= 0 && value <= 0o777 ? value : undefined;
}

function invalid(reason: string): ListenAddressCheck {
  return { kind: 'invalid', reason };
}
