/**
 * Addresses of the stats server (`stats:`) and the metrics endpoint (`metrics:`), parsed with
 * the listeners' parser (transport/address.ts) after an optional `http://` prefix:
 * - `stats: 127.0.0.1:9191` or a socket path: uWSGI's raw stats server (one JSON document per
 *   connection, then close), what uwsgitop and the uWSGI collectors of telegraf, netdata and
 *   metricbeat read;
 * - `stats: http://127.0.0.1:9191`: the same document over HTTP (`GET /`, uWSGI `stats-http`);
 * - `metrics:` is always HTTP (`GET /metrics`); the prefix is optional.
 */
import { classifyListenAddress, formatListenTarget } from '../transport/address.ts';
import type { ListenTarget } from '../transport/types.ts';

export interface StatsAddress {
  /** Serve HTTP (else the raw stats protocol: write the document, close). */
  readonly http: boolean;
  readonly target: ListenTarget;
}

const HTTP_PREFIX = 'http://';

/** The address, or why it is none (phrased to follow "is not a valid address: "). */
export function classifyStatsAddress(
  address: string,
  baseDir: string,
  alwaysHttp = false,
): StatsAddress | { readonly invalid: string } {
  const prefixed = address.startsWith(HTTP_PREFIX);
  const http = alwaysHttp || prefixed;
  const rest = prefixed ? address.slice(HTTP_PREFIX.length) : address;
  // `http://host:port/` as users paste it from a browser: the path is the document's.
  const bare = prefixed && rest.endsWith('/') ? rest.slice(0, -1) : rest;
  const target = classifyListenAddress(bare, { baseDir, mode: 0o660 });
  if (target.kind === 'invalid') return { invalid: target.reason };
  if (target.kind === 'fd') return { invalid: 'an inherited fd cannot serve stats' };
  return { http, target };
}

/** The form written back to the config: unix paths absolute, the `http://` prefix kept. */
export function normaliseStatsAddress(address: StatsAddress): string {
  return `${address.http ? HTTP_PREFIX : ''}${formatListenTarget(address.target)}`;
}
