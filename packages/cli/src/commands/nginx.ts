/**
 * `uwsgi-ts nginx CONFIG`: an nginx `upstream` and `server` block for a container config: one
 * location per mount (the same segment-boundary prefixes the router uses), `uwsgi_pass` to the
 * config's first uwsgi listener, `include uwsgi_params` in every location (nginx's inheritance
 * trap: a location that sets any `uwsgi_param` loses the inherited ones), and the body size
 * and timeouts taken from the config's limits so nginx and the container agree on them.
 */
import { basename } from 'node:path';
import { type ContainerConfig, type ListenTarget, parseListenAddress } from '@uwsgi-ts/container';
import { usageError } from '../errors.ts';
import { type CliIo, write } from '../io.ts';
import { readConfigOrReport } from './config-errors.ts';

export interface NginxCliOptions {
  /** nginx `listen` argument. Default `80`. */
  readonly listen: string;
  /** nginx `server_name`. Default `_`. */
  readonly serverName: string;
  /** Path of nginx's uwsgi_params. Default `uwsgi_params` (beside nginx.conf). */
  readonly params: string;
}

export async function nginx(file: string, options: NginxCliOptions, io: CliIo): Promise<number> {
  for (const [name, value] of [
    ['--listen', options.listen],
    ['--server-name', options.serverName],
    ['--uwsgi-params', options.params],
  ] as const) {
    if (value === '' || /[\s;{}"'\\]/.test(value)) {
      throw usageError(`${name} must be one nginx word (no spaces, quotes, ; { or })`, 'nginx');
    }
  }
  const config = await readConfigOrReport(file, io);
  if (config === undefined) return 1;
  const listener = config.listeners.find((l) => l.protocol === 'uwsgi');
  if (listener === undefined) {
    await write(
      io.stderr,
      `uwsgi-ts nginx: ${file} has no uwsgi listener for uwsgi_pass (its http listeners take proxy_pass)\n`,
    );
    return 1;
  }
  const server = upstreamServer(parseListenAddress(listener.address));
  if (typeof server !== 'string') {
    await write(io.stderr, `uwsgi-ts nginx: listener ${listener.address}: ${server.error}\n`);
    return 1;
  }
  await write(io.stdout, renderNginx(config, file, server, options));
  return 0;
}

/** The `server` argument of the upstream: what nginx connects to. */
function upstreamServer(target: ListenTarget): string | { error: string } {
  switch (target.kind) {
    case 'unix':
      return nginxWord(`unix:${target.path}`);
    case 'fd':
      return { error: 'an inherited fd has no address nginx could connect to' };
    case 'tcp': {
      if (target.port === 0) return { error: 'port 0 is chosen at bind time: give a fixed port' };
      if (target.host.includes('%'))
        return { error: 'nginx cannot connect to a zoned IPv6 address' };
      // A wildcard bind is reached on loopback.
      const host =
        target.host === '0.0.0.0' ? '127.0.0.1' : target.host === '::' ? '::1' : target.host;
      return host.includes(':') ? `[${host}]:${target.port}` : `${host}:${target.port}`;
    }
  }
}

/**
 * A location argument. nginx matches locations against the decoded URI, so a mount written
 * with escapes (`/a%20b`) is written decoded (`"/a b"`); quoted when nginx would otherwise split
 * or misread it.
 */
function nginxPath(path: string): string {
  let decoded = path;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    // Not UTF-8 once decoded: nginx compares bytes; keep the escapes as written.
  }
  return nginxWord(decoded);
}

/** One nginx parameter: as is when nothing in it is special to nginx's parser, else quoted. */
function nginxWord(text: string): string {
  return /^[A-Za-z0-9/._~!$&'()*+,=:@-]+$/.test(text) ? text : JSON.stringify(text);
}

const seconds = (ms: number) => `${Math.ceil(ms / 1000)}s`;

export function renderNginx(
  config: ContainerConfig,
  file: string,
  server: string,
  options: NginxCliOptions,
): string {
  const name = `uwsgi_ts_${basename(file)
    .replace(/\.ya?ml$/, '')
    .replace(/[^A-Za-z0-9_]/g, '_')}`;
  const limits = config.limits;
  // nginx waits longer than the container's deadline for response headers, so the container's
  // 504 reaches the client instead of nginx's. (harakiriMs bounds a blocked loop, not a wait.)
  const read = limits.requestTimeoutMs === 0 ? '3600s' : seconds(limits.requestTimeoutMs + 5000);
  const pass = [`include ${options.params};`, `uwsgi_pass ${name};`];
  const block = (args: string, lines: readonly string[]) => [
    `    location ${args} {`,
    ...lines.map((l) => `        ${l}`),
    '    }',
  ];
  const mounts = [...config.mounts].sort((a, b) => b.path.length - a.path.length);
  const locations: string[] = [];
  for (const mount of mounts) {
    const prefix = mount.path.length > 1 ? mount.path.replace(/\/$/, '') : '/';
    if (prefix === '/') {
      locations.push(...block('/', pass));
    } else {
      // `/api/` takes `/api/...` (never `/apix`), `= /api` the mount itself: the router's rule.
      locations.push(`    # mount ${mount.path} -> ${mount.app}`);
      locations.push(...block(`= ${nginxPath(prefix)}`, pass));
      locations.push(...block(nginxPath(`${prefix}/`), pass));
    }
  }
  if (config.health !== undefined) {
    locations.push(
      '    # health: answered by the container itself (GET/HEAD), whatever the mounts.',
    );
    locations.push(...block(`= ${nginxPath(config.health)}`, pass));
  }
  if (!config.mounts.some((m) => m.path === '/')) {
    locations.push('    # No "/" mount: the container would answer 404; so does nginx.');
    locations.push(...block('/', ['return 404;']));
  }
  return `${[
    `# nginx for ${config.file ?? file}, from \`uwsgi-ts nginx\`.`,
    '# Put it in the http {} context. nginx must be allowed to connect to the socket (listener',
    '# mode, owner, group).',
    `upstream ${name} {`,
    `    server ${server};`,
    '}',
    '',
    'server {',
    `    listen ${options.listen};`,
    `    server_name ${options.serverName};`,
    '',
    '    # limits.maxBodySize: nginx answers 413 before it reads a larger body (0 is "no limit"',
    '    # to nginx, so a container that takes no body gets 1: the container refuses that byte).',
    `    client_max_body_size ${limits.maxBodySize === 0 ? 1 : limits.maxBodySize};`,
    '    # limits.headerTimeoutMs and limits.bodyTimeoutMs, at the edge too.',
    `    client_header_timeout ${seconds(limits.headerTimeoutMs)};`,
    `    client_body_timeout ${seconds(limits.bodyTimeoutMs)};`,
    "    # limits.requestTimeoutMs + 5 s: the container's own 504 gets through. It is also the",
    '    # longest pause nginx allows between two reads of a response: raise it for slow streams.',
    `    uwsgi_read_timeout ${read};`,
    `    uwsgi_send_timeout ${seconds(limits.bodyTimeoutMs)};`,
    '',
    ...locations,
    '}',
  ].join('\n')}\n`;
}
