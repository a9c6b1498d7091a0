/**
 * Checks the schema cannot express: address syntax, duplicate listeners and mounts, unix path
 * length, mount prefixes that could never match. They run on schema-valid data only.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { resolve } from 'node:path';
import type { ConfigIssue } from './issues.ts';
import type { ContainerConfig } from './types.ts';

/**
 * Longest unix socket path bind(2) accepts: `sun_path` is 108 bytes on Linux and 104 on the
 * BSDs and macOS, one of which holds the terminating NUL.
 */
const MAX_UNIX_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? Mutable<T[K]> : T[K] };
export type RawConfig = Mutable<Omit<ContainerConfig, 'file'>>;

/** Where checks report: an issue at a JSON Pointer, and the line of another pointer. */
export interface IssueSink {
  at(path: string, message: string, code?: ConfigIssue['code']): void;
  lineOf(path: string): number;
}

export type AddressClass =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number }
  | { readonly kind: 'unix'; readonly path: string }
  | { readonly kind: 'fd'; readonly fd: number }
  | { readonly kind: 'invalid'; readonly reason: string };

const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * The address forms transport/address.ts listens on: `unix:PATH` or anything containing `/`
 * (a unix socket path), `fd:N` (an inherited listening socket, e.g. systemd's fd 3),
 * `[v6]:port`, `host:port`; and, for config files only, a name with neither `/` nor `:`
 * (`app.sock`), which is a socket file beside the config. A bare number is refused rather than
 * guessed: it is either a port without a host or a socket file named like one.
 */
export function classifyAddress(address: string): AddressClass {
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    return path === ''
      ? { kind: 'invalid', reason: 'the unix socket path is empty' }
      : { kind: 'unix', path };
  }
  if (address.includes('\0')) return { kind: 'invalid', reason: 'NUL in a unix socket path' };
  if (address.includes('/')) return { kind: 'unix', path: address };
  if (address.startsWith('fd:')) {
    const fd = address.slice(3);
    return /^\d{1,9}$/.test(fd)
      ? { kind: 'fd', fd: Number(fd) }
      : { kind: 'invalid', reason: `"${fd}" is not a file descriptor number` };
  }
  if (address.startsWith('@')) {
    return { kind: 'invalid', reason: 'abstract unix sockets (@name) are not supported' };
  }
  const v6 = /^\[([^\]]*)\]:(\d+)$/.exec(address);
  let host: string;
  let portText: string;
  if (v6 !== null) {
    host = v6[1] ?? '';
    portText = v6[2] ?? '';
    if (!isIPv6(host)) return { kind: 'invalid', reason: `"${host}" is not an IPv6 address` };
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) {
      if (/^\d+$/.test(address)) {
        return {
          kind: 'invalid',
          reason: `a bare port is ambiguous: write 127.0.0.1:${address} (or ./${address} for a unix socket)`,
        };
      }
      return { kind: 'unix', path: address };
    }
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(':')) {
      return { kind: 'invalid', reason: 'an IPv6 address needs brackets: [::1]:3031' };
    }
    if (host === '') {
      return {
        kind: 'invalid',
        reason:
          'the host is empty: write 127.0.0.1:PORT, or 0.0.0.0:PORT / [::]:PORT to listen on every interface',
      };
    }
    if (!isIPv4(host) && !HOSTNAME.test(host)) {
      return { kind: 'invalid', reason: `"${host}" is not an IPv4 address or host name` };
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    return { kind: 'invalid', reason: `port "${portText}" is not a number from 0 to 65535` };
  }
  return { kind: 'tcp', host: host.toLowerCase(), port: Number(portText) };
}

export function checkListeners(
  session: IssueSink,
  config: RawConfig,
  base: string,
  explicitModes: ReadonlySet<number>,
): void {
  const seen = new Map<string, number>();
  config.listeners.forEach((listener, index) => {
    const path = `/listeners/${index}`;
    const address = classifyAddress(listener.address);
    let key: string | undefined;
    if (address.kind === 'invalid') {
      session.at(`${path}/address`, `is not a valid address: ${address.reason}`);
      return;
    }
    if (address.kind === 'unix') {
      const absolute = resolve(base, address.path);
      const bytes = Buffer.byteLength(absolute);
      if (bytes > MAX_UNIX_PATH_BYTES) {
        session.at(
          `${path}/address`,
          `unix socket path is ${bytes} bytes once resolved (${absolute}); the system limit is ${MAX_UNIX_PATH_BYTES}`,
        );
      }
      key = `unix:${absolute}`;
    } else if (address.kind === 'fd') {
      key = `fd:${address.fd}`;
    } else {
      if (explicitModes.has(index)) {
        session.at(
          `${path}/mode`,
          'applies to unix sockets only; remove it from this TCP listener',
        );
      }
      // Port 0 asks the kernel for a fresh port each time: two of them never collide.
      if (address.port !== 0) key = `tcp:${address.host}:${address.port}`;
    }
    if (key === undefined) return;
    const first = seen.get(key);
    if (first === undefined) {
      seen.set(key, index);
      return;
    }
    session.at(
      `${path}/address`,
      `listens on the same address as /listeners/${first} (line ${session.lineOf(`/listeners/${first}/address`)})`,
    );
  });
}

export function checkMounts(session: IssueSink, config: RawConfig): void {
  const seen = new Map<string, number>();
  config.mounts.forEach((mount, index) => {
    const path = `/mounts/${index}/path`;
    const prefix =
      mount.path.length > 1 && mount.path.endsWith('/') ? mount.path.slice(0, -1) : mount.path;
    // The router compares prefixes with the request path segment by segment; characters that
    // can never reach it in a path, or segments a front end has already resolved away, would
    // make a mount that silently never matches.
    if (/[?#]/.test(prefix)) {
      session.at(path, 'must not contain "?" or "#": a mount matches the path only');
      return;
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point.
    if (/[\s\x00-\x1f\x7f]/.test(prefix)) {
      session.at(path, 'must not contain whitespace or control characters');
      return;
    }
    if (
      mount.path !== '/' &&
      prefix
        .slice(1)
        .split('/')
        .some((s) => s === '' || s === '.' || s === '..')
    ) {
      session.at(path, 'must not contain empty, "." or ".." segments');
      return;
    }
    const first = seen.get(prefix);
    if (first === undefined) {
      seen.set(prefix, index);
      return;
    }
    const other = config.mounts[first]?.path ?? prefix;
    session.at(
      path,
      `UWSGI_ERR_MOUNT_CONFLICT: "${mount.path}" is the same prefix as "${other}" (/mounts/${first}, line ${session.lineOf(`/mounts/${first}/path`)}); one trailing slash is ignored`,
      'UWSGI_ERR_MOUNT_CONFLICT',
    );
  });
}
