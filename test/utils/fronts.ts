/**
 * The other real front ends of PROTOCOL.md section 4, one per test file, each like `nginx.ts`:
 * a generated config in a mkdtemp prefix, listening on a free 127.0.0.1 port, run in the
 * foreground, readiness polled (bounded), stopped and awaited in `stop()`.
 *
 * - Apache 2.4 `mod_proxy_uwsgi` (`apache2 -d PREFIX -f PREFIX/apache2.conf -DFOREGROUND`, modules
 *   loaded by our own `LoadModule` lines: no a2enmod, no /etc/apache2);
 * - lighttpd 1.4 `mod_scgi` with `scgi.protocol = "uwsgi"` (`lighttpd -D -f conf`);
 * - uWSGI's own http router (`uwsgi --plugin http --http 127.0.0.1:P --http-to UPSTREAM`, master,
 *   no workers).
 *
 * Each reaches the container over a unix socket (`{ path }`) or TCP (`{ host, port }`). The start
 * knowledge mirrors packages/codec/test/fixtures/capture.mjs (a plain script that records what
 * these front ends send); the environment is fixed the same way (Apache forwards its own `PATH`
 * as a var).
 */
import { existsSync } from 'node:fs';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { launchFrontEnd, type RunningFrontEnd } from './front-end.ts';
import type { Target } from './net.ts';

function firstExisting(...paths: string[]): string {
  return paths.find((p) => existsSync(p)) ?? paths[0]!;
}

export const APACHE_BIN = process.env['APACHE_BIN'] ?? '/usr/sbin/apache2';
/** Where `LoadModule` finds mod_proxy and mod_proxy_uwsgi (Debian's apache2-bin). */
export const APACHE_MODULES = process.env['APACHE_MODULES'] ?? '/usr/lib/apache2/modules';
export const LIGHTTPD_BIN = process.env['LIGHTTPD_BIN'] ?? '/usr/sbin/lighttpd';
/** uwsgi-core's binary; /usr/bin/uwsgi is only an alternatives link to it on Debian. */
export const UWSGI_BIN =
  process.env['UWSGI_BIN'] ?? firstExisting('/usr/bin/uwsgi-core', '/usr/bin/uwsgi');

export const HAS_APACHE =
  existsSync(APACHE_BIN) &&
  existsSync(join(APACHE_MODULES, 'mod_proxy.so')) &&
  existsSync(join(APACHE_MODULES, 'mod_proxy_uwsgi.so'));
export const HAS_LIGHTTPD = existsSync(LIGHTTPD_BIN);
export const HAS_UWSGI_ROUTER = existsSync(UWSGI_BIN);

/** A running front end (front-end.ts), as `Nginx` in nginx.ts. */
export interface FrontEnd extends RunningFrontEnd {
  readonly name: 'apache' | 'lighttpd' | 'uwsgi-router';
}

export interface FrontEndOptions {
  /** The container's uwsgi listener (`container.target('uwsgi', kind)`). */
  readonly upstream: Target;
  /**
   * Path prefixes proxied to the upstream, most specific first (Apache `ProxyPass` and lighttpd
   * `scgi.server` take the first that matches); each becomes the `SCRIPT_NAME` the front end
   * sends. Default `['/']`. The router has no prefixes: it forwards everything.
   */
  readonly prefixes?: readonly string[];
}

/** No local setting may change what the front ends send (Apache forwards `PATH` as a var). */
const FIXED_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C' };

/**
 * Apache 2.4 with mpm_event, mod_proxy and mod_proxy_uwsgi, `ProxyPass / <upstream>`: every path
 * goes to the container. A unix upstream uses mod_proxy's `unix:/path|uwsgi://name/` form.
 *
 * Run as root, Apache's children switch to `User www-data`: the prefix is made traversable
 * (0711) and a unix upstream must be connectable by that user (listener `mode: "0666"` in a
 * private 0711 directory). `AllowEncodedSlashes` keeps its default (Off): a `%2F` in a path is
 * Apache's own 404, never proxied (NoDecode fails in mod_proxy_uwsgi with AH10100 and a 500).
 * Timeouts are short so a broken backend fails the test, not the 30 s hook.
 */
export function startApache(options: FrontEndOptions): Promise<FrontEnd> {
  const up = options.upstream;
  const target =
    'path' in up ? `"unix:${up.path}|uwsgi://uwsgi-ts/"` : `uwsgi://${up.host}:${up.port}/`;
  return launchFrontEnd<FrontEnd['name']>({
    env: FIXED_ENV,
    name: 'apache',
    bin: APACHE_BIN,
    logFile: 'error.log',
    async render(dir, port) {
      const config = [
        `ServerRoot "${dir}"`,
        `DefaultRuntimeDir "${dir}"`,
        `PidFile "${dir}/apache2.pid"`,
        `ErrorLog "${dir}/error.log"`,
        'LogLevel warn',
        `Mutex file:${dir} default`,
        `Listen 127.0.0.1:${port}`,
        'ServerName 127.0.0.1',
        `LoadModule mpm_event_module ${APACHE_MODULES}/mod_mpm_event.so`,
        `LoadModule authz_core_module ${APACHE_MODULES}/mod_authz_core.so`,
        `LoadModule proxy_module ${APACHE_MODULES}/mod_proxy.so`,
        `LoadModule proxy_uwsgi_module ${APACHE_MODULES}/mod_proxy_uwsgi.so`,
        'User www-data',
        'Group www-data',
        'StartServers 1',
        'ServerLimit 1',
        'ThreadsPerChild 8',
        'MaxRequestWorkers 8',
        'Timeout 15',
        'ProxyTimeout 15',

        `DocumentRoot "${dir}"`,
        ...(options.prefixes ?? ['/']).map((p) => `ProxyPass ${p} ${target}`),
        '',
      ].join('\n');
      const file = join(dir, 'apache2.conf');
      await writeFile(file, config);
      await chmod(dir, 0o711);
      return { config, args: ['-d', dir, '-f', file, '-DFOREGROUND'] };
    },
  });
}

/**
 * lighttpd 1.4 with mod_scgi speaking uwsgi (`scgi.protocol = "uwsgi"`), `scgi.server` for `/`.
 * It buffers request bodies (to `server.upload-dirs` past a small size: kept in the prefix).
 */
export function startLighttpd(options: FrontEndOptions): Promise<FrontEnd> {
  const up = options.upstream;
  const backend =
    'path' in up ? `"socket" => "${up.path}"` : `"host" => "${up.host}", "port" => ${up.port}`;
  return launchFrontEnd<FrontEnd['name']>({
    env: FIXED_ENV,
    name: 'lighttpd',
    bin: LIGHTTPD_BIN,
    logFile: 'error.log',
    async render(dir, port) {
      const config = [
        `server.document-root = "${dir}"`,
        `server.upload-dirs = ( "${dir}" )`,
        'server.bind = "127.0.0.1"',
        `server.port = ${port}`,
        `server.errorlog = "${dir}/error.log"`,
        `server.pid-file = "${dir}/lighttpd.pid"`,
        'server.modules += ( "mod_scgi" )',
        'scgi.protocol = "uwsgi"',
        `scgi.server = ( ${(options.prefixes ?? ['/'])
          .map((p) => `"${p}" => (( ${backend}, "check-local" => "disable" ))`)
          .join(', ')} )`,
        '',
      ].join('\n');
      const file = join(dir, 'lighttpd.conf');
      await writeFile(file, config);
      return { config, args: ['-D', '-f', file] };
    },
  });
}

/**
 * uWSGI 2.0's http router as a pure front end: master + http gateway, no workers, `--http-to`
 * the container (a unix path or host:port). `--die-on-term` makes SIGTERM a shutdown (in 2.0 it
 * is a reload otherwise); `--http-chunked-input` relays chunked request bodies.
 */
export function startUwsgiRouter(options: FrontEndOptions): Promise<FrontEnd> {
  const up = options.upstream;
  const to = 'path' in up ? up.path : `${up.host}:${up.port}`;
  return launchFrontEnd<FrontEnd['name']>({
    env: FIXED_ENV,
    name: 'uwsgi-router',
    bin: UWSGI_BIN,
    async render(_dir, port) {
      const args = [
        '--plugin',
        'http',
        '--master',
        '--die-on-term',
        '--http',
        `127.0.0.1:${port}`,
        '--http-to',
        to,
        '--http-timeout',
        '15',
        // Relay chunked request bodies (raw, still chunked); without it the router forwards
        // the head of a chunked request and drops its body (docs/fronts.md).
        '--http-chunked-input',
      ];
      return { config: `uwsgi ${args.join(' ')}`, args };
    },
  });
}
