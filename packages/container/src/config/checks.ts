/**
 * Checks the schema cannot express: address syntax (transport/address.ts, the one listener
 * address parser), duplicate listeners and mounts, unix path length, mount prefixes that could
 * never match. They run on schema-valid data only.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { classifyStatsAddress, normaliseStatsAddress } from '../stats/address.ts';
import { classifyListenAddress } from '../transport/address.ts';
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

export function checkListeners(
  session: IssueSink,
  config: RawConfig,
  base: string,
  explicitModes: ReadonlySet<number>,
): void {
  const seen = new Map<string, number>();
  config.listeners.forEach((listener, index) => {
    const path = `/listeners/${index}`;
    const address = classifyListenAddress(listener.address, { baseDir: base });
    let key: string | undefined;
    if (address.kind === 'invalid') {
      session.at(`${path}/address`, `is not a valid address: ${address.reason}`);
      return;
    }
    if (address.kind === 'unix') {
      const absolute = resolve(address.path);
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
    }
    if (address.kind !== 'unix') {
      for (const field of ['owner', 'group'] as const) {
        if (listener[field] !== undefined) {
          session.at(
            `${path}/${field}`,
            'applies to unix sockets only; remove it from this listener',
          );
        }
      }
    }
    if (address.kind === 'tcp') {
      if (explicitModes.has(index)) {
        session.at(
          `${path}/mode`,
          'applies to unix sockets only; remove it from this TCP listener',
        );
      }
      // Port 0 asks the kernel for a fresh port each time: two of them never collide.
      // Host names are case-insensitive (RFC 4343): LOCALHOST:3031 is localhost:3031.
      if (address.port !== 0) key = `tcp:${address.host.toLowerCase()}:${address.port}`;
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

/**
 * Every mount's `app` is a readable file (what `uwsgi-ts check` adds to the checks `run` makes
 * at load time, so a missing app is found before a deploy, with its line).
 */
export function checkAppFiles(session: IssueSink, config: RawConfig, base: string): void {
  config.mounts.forEach((mount, index) => {
    const file = resolve(base, mount.app);
    let reason: string | undefined;
    try {
      const info = statSync(file);
      if (!info.isFile()) reason = 'is not a file';
      else accessSync(file, constants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      reason = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`;
    }
    if (reason !== undefined) session.at(`/mounts/${index}/app`, `app file ${file} ${reason}`);
  });
}

/**
 * `stats` and `metrics` are addresses the stats server can bind (transport/address.ts forms,
 * relative unix paths against `base`); returns them in their normal form (an invalid one is
 * an issue at `${pointer}/${key}` and left out). The container config and the emperor's
 * (`pointer` `/emperor`) both read them here.
 */
export function checkStatsAddresses(
  session: IssueSink,
  values: { readonly stats?: string | undefined; readonly metrics?: string | undefined },
  base: string,
  pointer = '',
): { stats?: string; metrics?: string } {
  const out: { stats?: string; metrics?: string } = {};
  for (const key of ['stats', 'metrics'] as const) {
    const address = values[key];
    if (address === undefined) continue;
    const parsed = classifyStatsAddress(address, base, key === 'metrics');
    if ('invalid' in parsed) {
      session.at(`${pointer}/${key}`, `is not a valid address: ${parsed.invalid}`);
    } else {
      out[key] = normaliseStatsAddress(parsed);
    }
  }
  return out;
}
