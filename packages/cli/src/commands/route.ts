/**
 * `uwsgi-ts route CONFIG [METHOD] URL`: which mount answers URL and what its app sees, from the
 * router itself (`explainRoute`), without listening or loading an app.
 */
import { explainRoute, type RouteExplanation } from '@uwsgi-ts/container';
import { usageError } from '../errors.ts';
import { type CliIo, write } from '../io.ts';
import { readConfigOrReport } from './config-errors.ts';

const TOKEN = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;

const RELATION: Record<string, string> = {
  longest: 'matches: the longest prefix on a segment boundary',
  shorter: 'matches, but a longer mount does too',
  'not-on-boundary': 'no: a prefix of the path, but not at a "/" (segment boundary)',
  no: 'no',
};

export async function route(
  file: string,
  method: string,
  url: string,
  options: { readonly json: boolean },
  io: CliIo,
): Promise<number> {
  if (!TOKEN.test(method)) throw usageError(`METHOD must be an HTTP token: ${method}`, 'route');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a request target has none.
  if (url === '' || /[\s\x00-\x1f\x7f]/.test(url)) {
    throw usageError('URL must be a request target without spaces or control characters', 'route');
  }
  const config = await readConfigOrReport(file, io);
  if (config === undefined) return 1;
  const q = url.indexOf('?');
  // As protocol/health.ts decides: exactly GET or HEAD, the path as sent, uwsgi listeners only.
  const health =
    config.health !== undefined &&
    config.listeners.some((l) => l.protocol === 'uwsgi') &&
    (method === 'GET' || method === 'HEAD') &&
    (q === -1 ? url : url.slice(0, q)) === config.health;
  const explained = explainRoute(config.mounts, url);
  if (options.json) {
    const doc = {
      method,
      ...explained,
      health,
      candidates: explained.candidates.map((c) => ({
        index: c.index,
        path: c.mount.path,
        app: c.mount.app,
        prefix: c.prefix === '' ? '/' : c.prefix,
        relation: c.relation,
      })),
      match:
        explained.match === undefined
          ? null
          : {
              ...explained.match,
              mount: undefined,
              path: explained.match.mount.path,
              app: explained.match.mount.app,
            },
    };
    await write(io.stdout, `${JSON.stringify(doc, null, 2)}\n`);
  } else {
    await write(io.stdout, render(method, explained, health, config.health));
  }
  return health || explained.match !== undefined ? 0 : 1;
}

function render(
  method: string,
  e: RouteExplanation,
  health: boolean,
  healthPath: string | undefined,
): string {
  const lines = [`${method} ${e.target}`];
  const row = (name: string, value: string) => lines.push(`  ${name.padEnd(12)}${value}`);
  if (health) {
    row(
      'answered by',
      `the container's health check (health: ${healthPath}): 200 "ok", no app (uwsgi listeners)`,
    );
  }
  row('path', e.dotSegmentsResolved ? `${e.path} (dot segments resolved)` : e.path);
  if (e.decodedPath !== e.path) row('decoded', `${e.decodedPath} (what a decoding front end sees)`);
  const m = e.match;
  if (m === undefined) {
    row('mount', health ? 'none (for any other method)' : 'none: the container answers 404');
  } else {
    row(
      'mount',
      `${m.mount.path} (mounts[${m.index}], ${m.mount.app})${health ? ', for other methods or a request with a body' : ''}`,
    );
    row('SCRIPT_NAME', m.scriptName === '' ? '"" (the / mount)' : m.scriptName);
    row('PATH_INFO', m.pathInfo === '' ? '"" (the mount itself)' : m.pathInfo);
    row('req.url', m.url);
    row('req.baseUrl', m.baseUrl === '' ? '""' : m.baseUrl);
    row('originalUrl', m.originalUrl);
    // Built as the adapter builds it (scheme://host + path, so `//x` is a path, not a host),
    // then as `new Request()` has it: dot segments resolved by the URL parser.
    const fetchPath = m.mount.fetchUrl === 'relative' ? m.url : m.originalUrl;
    const fetchUrl = new URL(fetchPath.startsWith('/') ? `http://h${fetchPath}` : fetchPath);
    row(
      'fetch app',
      `request.url http://HOST${fetchUrl.pathname}${fetchUrl.search} (fetchUrl: ${m.mount.fetchUrl})`,
    );
  }
  row('why', e.reason);
  const width = Math.max(...e.candidates.map((c) => c.mount.path.length));
  e.candidates.forEach((c, i) => {
    row(i === 0 ? 'mounts' : '', `${c.mount.path.padEnd(width)}  ${RELATION[c.relation]}`);
  });
  return `${lines.join('\n')}\n`;
}
