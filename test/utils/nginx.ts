/**
 * A real nginx per test file (RELIABILITY.md section 4): own prefix in a mkdtemp dir, generated
 * nginx.conf (no daemon, no master, one worker, pid/error log/temp paths under the prefix),
 * `listen 127.0.0.1:<free port>`, uwsgi_pass locations. Tests skip when nginx is absent.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, waitForConnect } from './net.ts';
import { makeTmpDir, removeTmpDir } from './tmp.ts';

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
}

export interface NginxOptions {
  readonly locations: readonly NginxLocation[];
  /** Server-level directives (`underscores_in_headers on`, `client_max_body_size 8m` ...). */
  readonly server?: readonly string[];
  /** http-level directives. */
  readonly http?: readonly string[];
}

export interface Nginx {
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  readonly config: string;
  /** `http://127.0.0.1:<port><path>`. */
  url(path: string): string;
  errorLog(): Promise<string>;
  /** SIGTERM (fast shutdown), SIGKILL after 5 s; awaits exit; removes the prefix. Idempotent. */
  stop(): Promise<void>;
}

function renderConfig(dir: string, port: number, options: NginxOptions): string {
  const indent = (lines: readonly string[], n: number) =>
    lines.map((l) => `${' '.repeat(n)}${l.endsWith('}') ? l : `${l};`}`).join('\n');
  const locations = options.locations
    .map((loc) => {
      const body = [
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

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(kill);
}

/**
 * Starts nginx and resolves once it accepts connections. The port comes from listen(0)+close,
 * so another process may grab it first: on "Address already in use" it retries with a new one.
 */
export async function startNginx(options: NginxOptions): Promise<Nginx> {
  const dir = await makeTmpDir('nginx');
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const config = renderConfig(dir, port, options);
      const confPath = join(dir, 'nginx.conf');
      await writeFile(confPath, config);
      const child = spawn(NGINX_BIN, ['-p', dir, '-c', confPath, '-e', join(dir, 'error.log')], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      const errorLog = () => readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
      try {
        await waitForConnect(
          { host: '127.0.0.1', port },
          {
            alive: () =>
              child.exitCode !== null || child.signalCode !== null
                ? `nginx exited (${child.exitCode ?? child.signalCode}): ${stderr}`
                : undefined,
          },
        );
      } catch (err) {
        await stopProcess(child);
        const log = `${stderr}\n${await errorLog()}`;
        if (attempt < 5 && log.includes('Address already in use')) continue;
        throw new Error(`nginx did not start: ${(err as Error).message}\n${log}`);
      }
      let stopped: Promise<void> | undefined;
      return {
        port,
        pid: child.pid!,
        dir,
        config,
        url: (path) => `http://127.0.0.1:${port}${path}`,
        errorLog,
        stop() {
          stopped ??= stopProcess(child).then(() => removeTmpDir(dir));
          return stopped;
        },
      };
    }
  } catch (err) {
    await removeTmpDir(dir);
    throw err;
  }
}
