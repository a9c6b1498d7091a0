/**
 * A real nginx per test file (RELIABILITY.md section 4): own prefix in a mkdtemp dir, generated
 * nginx.conf (no daemon, no master, one worker, pid/error log/temp paths under the prefix),
 * `listen 127.0.0.1:<free port>`, uwsgi_pass locations (proxy_pass ones for WebSockets). Tests
 * skip when nginx is absent.
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { launchFrontEnd, type RunningFrontEnd } from './front-end.ts';

export const NGINX_BIN = process.env['NGINX_BIN'] ?? '/usr/sbin/nginx';
export const HAS_NGINX = existsSync(NGINX_BIN);
/** The distribution's stock params (Debian's adds `HTTP_HOST $host`; PROTOCOL.md section 5). */
export const UWSGI_PARAMS = '/etc/nginx/uwsgi_params';

export interface NginxLocation {
  /** The `location` argument: `/`, `/api/`, `= /exact`. */
  readonly path: string;
  /**
   * `uwsgi_pass` target in nginx syntax: `unix:/abs/app.sock` or `127.0.0.1:3031` (the
   * container's ready-line addresses have exactly these forms).
   */
  readonly upstream: string;
  /** `include uwsgi_params` first (default true). */
  readonly params?: boolean;
  /** More directives inside the location (`uwsgi_buffering off`, `uwsgi_param X y` ...). */
  readonly directives?: readonly string[];
  /**
   * `proxy_pass http://<upstream>` (an HTTP listener, `127.0.0.1:port`) instead of `uwsgi_pass`,
   * no uwsgi_params; WebSocket locations add the upgrade headers in `directives`.
   */
  readonly proxy?: boolean;
}

export interface NginxOptions {
  readonly locations: readonly NginxLocation[];
  /** Server-level directives (`underscores_in_headers on`, `client_max_body_size 8m` ...). */
  readonly server?: readonly string[];
  /** http-level directives. */
  readonly http?: readonly string[];
}

/** A running nginx (front-end.ts). */
export type Nginx = RunningFrontEnd<'nginx'>;

function renderConfig(dir: string, port: number, options: NginxOptions): string {
  const indent = (lines: readonly string[], n: number) =>
    lines.map((l) => `${' '.repeat(n)}${l.endsWith('}') ? l : `${l};`}`).join('\n');
  const locations = options.locations
    .map((loc) => {
      const body =
        loc.proxy === true
          ? [...(loc.directives ?? []), `proxy_pass http://${loc.upstream}`]
          : [
              ...(loc.params === false ? [] : [`include ${UWSGI_PARAMS}`]),
              ...(loc.directives ?? []),
              `uwsgi_pass ${loc.upstream}`,
            ];
      return `    location ${loc.path} {\n${indent(body, 6)}\n    }`;
    })
    .join('\n');
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  uwsgi_read_timeout 20s;
${indent(options.http ?? [], 2)}
  server {
    listen 127.0.0.1:${port};
${indent(options.server ?? [], 4)}
${locations}
  }
}
`;
}

/** Starts nginx and resolves once it accepts connections (front-end.ts). */
export function startNginx(options: NginxOptions): Promise<Nginx> {
  return launchFrontEnd({
    name: 'nginx',
    bin: NGINX_BIN,
    logFile: 'error.log',
    async render(dir, port) {
      const config = renderConfig(dir, port, options);
      const confPath = join(dir, 'nginx.conf');
      await writeFile(confPath, config);
      return { config, args: ['-p', dir, '-c', confPath, '-e', join(dir, 'error.log')] };
    },
  });
}
