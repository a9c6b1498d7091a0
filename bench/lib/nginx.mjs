// Starts a private nginx (own prefix, pid, logs and temp paths under `dir`, one worker, loopback
// only) with the given `http {}` body, and waits until it answers.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort, poll, rawHttpGet, spawnTracked, stop } from './proc.mjs';

export const NGINX_BIN = existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx';

/** Debian ships `uwsgi_params` (with its HTTP_HOST addition, PROTOCOL.md section 5) here. */
export const UWSGI_PARAMS = existsSync('/etc/nginx/uwsgi_params')
  ? '/etc/nginx/uwsgi_params'
  : undefined;

/**
 * @param {{ dir: string, server: (port: number) => string, httpExtra?: string }} options
 *   `server(port)` returns the `server {}` blocks (and upstreams) to place in `http {}`.
 */
export async function startNginx({ dir, server, httpExtra = '' }) {
  const tmp = path.join(dir, 'nginx-tmp');
  mkdirSync(tmp, { recursive: true });
  const port = await freePort();
  // A root master would run its worker as `nobody`, which cannot reach sockets in a 0700 mkdtemp
  // dir; keep the worker under our own account instead.
  const userLine = process.getuid?.() === 0 ? 'user root root;' : '';
  const conf = `
daemon off;
master_process on;
${userLine}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${tmp}/client;
  proxy_temp_path ${tmp}/proxy;
  fastcgi_temp_path ${tmp}/fastcgi;
  uwsgi_temp_path ${tmp}/uwsgi;
  scgi_temp_path ${tmp}/scgi;
  ${httpExtra}
  ${server(port)}
}
`;
  const confPath = path.join(dir, 'nginx.conf');
  writeFileSync(confPath, conf);
  const rec = spawnTracked(
    NGINX_BIN,
    ['-p', dir, '-c', confPath, '-e', path.join(dir, 'nginx-error.log')],
    { name: 'nginx' },
  );
  await poll(
    async () => {
      if (rec.exited) throw new Error(`nginx exited: ${rec.stderr.trim()}`);
      return await canConnect(port);
    },
    { what: 'nginx to listen' },
  );
  return { rec, port, pid: rec.child.pid, confPath, stop: () => stop(rec) };
}

export function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/**
 * A private nginx with one location per backend (`/<name>/` -> `uwsgi_pass unix:<sock>`, the
 * stock uwsgi_params), started once every backend answers its hello app
 * (bench/backends/hello-app.mjs) through it.
 * @param {string} dir
 * @param {readonly { name: string, sock: string }[]} backends
 */
export async function startNginxForBackends(dir, backends) {
  const nginx = await startNginx({
    dir,
    server: (port) =>
      [
        '  server {',
        `    listen 127.0.0.1:${port} backlog=4096;`,
        '    keepalive_requests 1000000;',
        ...backends.map(
          (b) => `    location /${b.name}/ { include ${UWSGI_PARAMS}; uwsgi_pass unix:${b.sock}; }`,
        ),
        '  }',
      ].join('\n'),
  });
  for (const b of backends) {
    await poll(
      async () => {
        const r = await rawHttpGet(nginx.port, `/${b.name}/hello`);
        return r.status === 200 && r.body === 'Hello, world!';
      },
      { what: `${b.name} to answer through nginx` },
    );
  }
  return nginx;
}
