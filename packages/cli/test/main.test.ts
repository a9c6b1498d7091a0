// biome-ignore-all lint/suspicious/noTemplateCurlyInString: config text with ${VAR} references.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { PacketDecoder, type UwsgiVars } from '@uwsgi-ts/codec';
import { configSchema, parseConfig, readConfig } from '@uwsgi-ts/container';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CliIo } from '../src/index.ts';
import { CLI_ERROR_CODES, CliError, main, VERSION } from '../src/index.ts';

interface FakeIo extends CliIo {
  readonly out: () => string;
  readonly err: () => string;
  readonly stdoutStream: PassThrough;
}

function fakeIo(cwd: string, extra: Partial<CliIo> = {}): FakeIo {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const outChunks: Buffer[] = [];
  const errChunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => outChunks.push(c));
  stderr.on('data', (c: Buffer) => errChunks.push(c));
  return {
    stdout,
    stderr,
    env: {},
    cwd,
    ...extra,
    stdoutStream: stdout,
    out: () => Buffer.concat(outChunks).toString('utf8'),
    err: () => Buffer.concat(errChunks).toString('utf8'),
  };
}

let dir: string;
const servers: Server[] = [];
const sockets = new Set<Socket>();

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'uwsgi-ts-cli-'));
});

afterEach(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  await rm(dir, { recursive: true, force: true });
});

const VALID = `listeners:
  - protocol: uwsgi
    address: app.sock
mounts:
  - path: /
    app: ./app.mjs
`;

describe('usage', () => {
  it('no arguments: usage on stderr, exit 2', async () => {
    const io = fakeIo(dir);
    expect(await main([], io)).toBe(2);
    expect(io.err()).toContain('Usage: uwsgi-ts COMMAND [options]');
    expect(io.out()).toBe('');
  });

  it('--help and help list every command; exit 0', async () => {
    for (const argv of [['--help'], ['-h'], ['help']]) {
      const io = fakeIo(dir);
      expect(await main(argv, io)).toBe(0);
      for (const name of [
        'run CONFIG',
        'reload CONFIG|SOCKET',
        'check CONFIG...',
        'request ADDRESS [METHOD] PATH',
        'schema',
      ]) {
        expect(io.out()).toContain(name);
      }
      expect(io.out()).toContain('(alias: serve)');
    }
  });

  it('COMMAND --help works without the required arguments', async () => {
    for (const name of [
      'run',
      'serve',
      'emperor',
      'reload',
      'check',
      'route',
      'request',
      'schema',
    ]) {
      const io = fakeIo(dir);
      expect(await main([name, '--help'], io)).toBe(0);
      expect(io.out()).toMatch(/^Usage: uwsgi-ts (run|emperor|reload|check|route|request|schema)/);
    }
    const io = fakeIo(dir);
    expect(await main(['help', 'request'], io)).toBe(0);
    expect(io.out()).toContain("-H, --header 'Name: value'");
    expect(io.out()).toContain('--timeout MS');
  });

  it('--version everywhere prints the package.json version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8'));
    expect(VERSION).toBe(pkg.version);
    for (const argv of [['--version'], ['-v'], ['check', '--version'], ['request', '-v']]) {
      const io = fakeIo(dir);
      expect(await main(argv, io)).toBe(0);
      expect(io.out()).toBe(`${pkg.version}\n`);
    }
  });

  it.each([
    [['frob'], "unknown command 'frob'", 'uwsgi-ts --help'],
    [['--frob'], "unknown option '--frob'", 'uwsgi-ts --help'],
    [['check'], 'missing argument: check CONFIG...', 'uwsgi-ts check --help'],
    [['run', 'a.yaml', 'b.yaml'], 'unexpected argument: b.yaml', 'uwsgi-ts run --help'],
    [['check', '--nope', 'a.yaml'], "Unknown option '--nope'", 'uwsgi-ts check --help'],
    [
      ['run', '--log-format', 'xml', 'a.yaml'],
      '--log-format must be one of json, pretty, auto',
      'uwsgi-ts run --help',
    ],
    [
      ['run', 'a.yaml', '--log-format'],
      "Option '--log-format <value>' argument missing",
      'uwsgi-ts run --help',
    ],
    [
      ['request', '/tmp/x.sock', '/', '--timeout', 'soon'],
      '--timeout must be a whole number',
      'uwsgi-ts request --help',
    ],
    [
      ['request', '/tmp/x.sock', '/', '-H', 'nocolon'],
      'invalid header "nocolon"',
      'uwsgi-ts request --help',
    ],
    [
      ['request', '/tmp/x.sock', 'GET', 'nope'],
      'PATH must start with "/"',
      'uwsgi-ts request --help',
    ],
    [['request', 'host:port', '/'], 'invalid address "host:port"', 'uwsgi-ts request --help'],
    [['request', '/tmp/x.sock', 'G T', '/'], 'invalid method "G T"', 'uwsgi-ts request --help'],
    [
      ['request', '/tmp/x.sock', '/', '-d', 'a', '--data-file', 'b'],
      'give the body with either --data or --data-file, not both',
      'uwsgi-ts request --help',
    ],
    [['schema', 'extra'], 'unexpected argument: extra', 'uwsgi-ts schema --help'],
    [['help', 'frob'], "unknown command 'frob'", 'uwsgi-ts help --help'],
  ])('%j is a usage error: exit 2', async (argv, message, help) => {
    const io = fakeIo(dir);
    expect(await main(argv, io)).toBe(2);
    expect(io.err()).toContain(`uwsgi-ts: ${message}`);
    expect(io.err()).toContain(`See '${help}'.`);
    expect(io.out()).toBe('');
  });

  it('CliError carries the closed code list', () => {
    expect(CLI_ERROR_CODES).toEqual(['UWSGI_ERR_CLI_USAGE', 'UWSGI_ERR_CLI_REQUEST_FAILED']);
    const err = new CliError('UWSGI_ERR_CLI_USAGE', 'm', { command: 'run' });
    expect(err).toMatchObject({ name: 'CliError', code: 'UWSGI_ERR_CLI_USAGE', command: 'run' });
  });

  it('every CLI code is documented under ## cli in docs/errors.md, and only those', async () => {
    const doc = await readFile(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
    const start = doc.search(/^## cli\s*$/m);
    expect(start).toBeGreaterThanOrEqual(0);
    const rest = doc.slice(start + 3);
    const end = rest.search(/^## /m);
    const section = end < 0 ? rest : rest.slice(0, end);
    const documented = [...section.matchAll(/<a id="(uwsgi_err_[a-z0-9_]+)">/g)].map((m) =>
      (m[1] ?? '').toUpperCase(),
    );
    expect(documented.sort()).toEqual([...CLI_ERROR_CODES].sort());
  });
});

describe('check', () => {
  beforeEach(async () => {
    // `check` requires every mount's app file to exist.
    await writeFile(join(dir, 'app.mjs'), 'export default (req, res) => res.end();\n');
    await writeFile(join(dir, 'a.mjs'), 'export default (req, res) => res.end();\n');
  });

  it('valid files: "FILE: ok" on stdout, exit 0', async () => {
    await writeFile(join(dir, 'a.yaml'), VALID);
    await writeFile(join(dir, 'b.yaml'), VALID.replace('app.sock', 'b.sock'));
    const io = fakeIo(dir);
    expect(await main(['check', 'a.yaml', 'b.yaml'], io)).toBe(0);
    expect(io.out()).toBe('a.yaml: ok\nb.yaml: ok\n');
    expect(io.err()).toBe('');
  });

  it('prints every issue of every file, one per line, and exits 1', async () => {
    await writeFile(join(dir, 'good.yaml'), VALID);
    await writeFile(
      join(dir, 'bad.yaml'),
      'listeners:\n  - protocol: uwsgi\n    address: ${SOCK}\nmounts:\n  - path: api\n    app: a.mjs\n',
    );
    await writeFile(join(dir, 'typo.yaml'), `${VALID}transprot: net\n`);
    const io = fakeIo(dir, { env: { SOCK: 'x.sock' } });
    expect(await main(['check', 'good.yaml', 'bad.yaml', 'typo.yaml', 'missing.yaml'], io)).toBe(1);
    expect(io.out()).toBe('good.yaml: ok\n');
    expect(io.err()).toBe(
      [
        'bad.yaml:5:11 /mounts/0/path must match pattern "^/"',
        'typo.yaml:7:1 /transprot unknown key "transprot"; did you mean "transport"?',
        'missing.yaml cannot read the file (ENOENT)',
        '',
      ].join('\n'),
    );
  });

  it('interpolates from io.env', async () => {
    await writeFile(join(dir, 'env.yaml'), VALID.replace('app.sock', '${SOCK}'));
    const unset = fakeIo(dir);
    expect(await main(['check', 'env.yaml'], unset)).toBe(1);
    expect(unset.err()).toBe(
      'env.yaml:3:14 environment variable SOCK is not set (${SOCK:-default} gives a fallback)\n',
    );
    expect(await main(['check', 'env.yaml'], fakeIo(dir, { env: { SOCK: 's.sock' } }))).toBe(0);
  });

  it('every app file must exist and be a readable file, reported at its line', async () => {
    await mkdir(join(dir, 'adir'));
    await writeFile(
      join(dir, 'apps.yaml'),
      'listeners:\n  - { protocol: uwsgi, address: app.sock }\nmounts:\n  - { path: /a, app: ./a.mjs }\n  - { path: /b, app: ./missing.mjs }\n  - { path: /c, app: ./adir }\n',
    );
    const io = fakeIo(dir);
    expect(await main(['check', 'apps.yaml'], io)).toBe(1);
    expect(io.err()).toBe(
      [
        `apps.yaml:5:22 /mounts/1/app app file ${join(dir, 'missing.mjs')} does not exist`,
        `apps.yaml:6:22 /mounts/2/app app file ${join(dir, 'adir')} is not a file`,
        '',
      ].join('\n'),
    );
  });

  it('--print writes the effective configs as one YAML stream', async () => {
    await writeFile(join(dir, 'a.yaml'), VALID);
    await writeFile(join(dir, 'b.yaml'), VALID.replace('app.sock', 'b.sock'));
    const io = fakeIo(dir);
    expect(await main(['check', '--print', 'a.yaml', 'b.yaml'], io)).toBe(0);
    const [first = '', second = '', ...others] = io.out().split(/^---\n/m);
    expect(others).toEqual([]);
    expect(first).toContain(`# ${join(dir, 'a.yaml')}`);
    expect(first).toContain('bufferSize: 65535');
    expect(parseConfig(first, { cwd: dir, file: 'a.yaml', env: {} })).toEqual(
      await readConfig('a.yaml', { cwd: dir, env: {} }),
    );
    expect(second).toContain(`address: ${join(dir, 'b.sock')}`);
  });
});

describe('check --vassal-defaults', () => {
  beforeEach(async () => {
    await writeFile(join(dir, 'a.mjs'), 'export default (req, res) => res.end();\n');
  });

  it('reads each file as the emperor reads a vassal: the defaults under it, ${VASSAL} from its name', async () => {
    await writeFile(
      join(dir, 'defaults.yaml'),
      'listeners:\n  - protocol: uwsgi\n    address: ${VASSAL}.sock\nworkers: 3\n',
    );
    await writeFile(join(dir, 'shop.yaml'), 'mounts:\n  - path: /\n    app: a.mjs\n');
    await writeFile(join(dir, 'bad.yaml'), 'mounts:\n  - path: /\n    app: a.mjs\nworkers: four\n');
    const plain = fakeIo(dir);
    expect(await main(['check', 'shop.yaml'], plain)).toBe(1);
    expect(plain.err()).toContain("must have required property 'listeners'");
    const io = fakeIo(dir);
    expect(
      await main(['check', '--vassal-defaults', 'defaults.yaml', '--print', 'shop.yaml'], io),
    ).toBe(0);
    expect(io.out()).toContain(`address: ${join(dir, 'shop.sock')}`);
    expect(io.out()).toContain('workers: 3');
    const bad = fakeIo(dir);
    expect(await main(['check', '--vassal-defaults', 'defaults.yaml', 'bad.yaml'], bad)).toBe(1);
    expect(bad.err()).toMatch(/^bad\.yaml:4:10 \/workers /);
    const missing = fakeIo(dir);
    expect(await main(['check', '--vassal-defaults', 'nope.yaml', 'shop.yaml'], missing)).toBe(1);
    expect(missing.err()).toBe('nope.yaml: cannot read the file (ENOENT)\n');
  });
});

describe('route', () => {
  const CONFIG =
    'listeners:\n  - { protocol: uwsgi, address: app.sock }\nmounts:\n  - { path: /api, app: ./api.mjs }\n  - { path: /, app: ./root.mjs }\nhealth: /healthz\n';

  it('names the mount, SCRIPT_NAME, PATH_INFO, what the app sees and why; exit 0', async () => {
    await writeFile(join(dir, 'conf.yaml'), CONFIG);
    const io = fakeIo(dir);
    expect(await main(['route', 'conf.yaml', 'POST', '/api/users/42?x=1'], io)).toBe(0);
    expect(io.out()).toBe(
      [
        'POST /api/users/42?x=1',
        '  path        /api/users/42',
        `  mount       /api (mounts[0], ${join(dir, 'api.mjs')})`,
        '  SCRIPT_NAME /api',
        '  PATH_INFO   /users/42',
        '  req.url     /users/42?x=1',
        '  req.baseUrl /api',
        '  originalUrl /api/users/42?x=1',
        '  fetch app   request.url http://HOST/api/users/42?x=1 (fetchUrl: full)',
        '  why         longest mount prefix on a segment boundary: /api',
        '  mounts      /api  matches: the longest prefix on a segment boundary',
        '              /     matches, but a longer mount does too',
        '',
      ].join('\n'),
    );
  });

  it('--json; the health path; nothing matching is exit 1; bad input is a usage error', async () => {
    await writeFile(join(dir, 'conf.yaml'), CONFIG);
    const json = fakeIo(dir);
    expect(await main(['route', 'conf.yaml', '/apix', '--json'], json)).toBe(0);
    const doc = JSON.parse(json.out());
    expect(doc).toMatchObject({
      method: 'GET',
      health: false,
      match: { path: '/', baseUrl: '', url: '/apix', app: join(dir, 'root.mjs') },
    });
    expect(doc.candidates[0]).toMatchObject({ path: '/api', relation: 'not-on-boundary' });

    const health = fakeIo(dir);
    expect(await main(['route', 'conf.yaml', 'HEAD', '/healthz'], health)).toBe(0);
    expect(health.out()).toContain(
      'answered by the container\'s health check (health: /healthz): 200 "ok", no app',
    );
    expect(health.out()).toContain('for other methods or a request with a body');
    // The container compares the method exactly, as sent.
    const lower = fakeIo(dir);
    expect(await main(['route', 'conf.yaml', 'get', '/healthz'], lower)).toBe(0);
    expect(lower.out()).not.toContain('health check');
    const star = fakeIo(dir);
    expect(await main(['route', 'conf.yaml', '*', '--json'], star)).toBe(1);
    expect(JSON.parse(star.out()).candidates.map((c: { relation: string }) => c.relation)).toEqual([
      'no',
      'no',
    ]);

    await writeFile(
      join(dir, 'api-only.yaml'),
      CONFIG.replace('  - { path: /, app: ./root.mjs }\n', ''),
    );
    const none = fakeIo(dir);
    expect(await main(['route', 'api-only.yaml', '/other'], none)).toBe(1);
    expect(none.out()).toContain('mount       none: the container answers 404');

    expect(await main(['route', 'conf.yaml', 'G T', '/'], fakeIo(dir))).toBe(2);
    expect(await main(['route', 'conf.yaml', '/a b'], fakeIo(dir))).toBe(2);
    const missing = fakeIo(dir);
    expect(await main(['route', 'nope.yaml', '/'], missing)).toBe(1);
    expect(missing.err()).toContain('cannot read the file (ENOENT)');
  });
});

describe('nginx', () => {
  it('refuses a config nginx could not reach, and words that would break the block', async () => {
    const mounts = 'mounts:\n  - { path: /, app: ./a.mjs }\n';
    await writeFile(
      join(dir, 'http.yaml'),
      `listeners:\n  - { protocol: http, address: 127.0.0.1:8080 }\n${mounts}`,
    );
    await writeFile(
      join(dir, 'zero.yaml'),
      `listeners:\n  - { protocol: uwsgi, address: 127.0.0.1:0 }\n${mounts}`,
    );
    await writeFile(
      join(dir, 'any.yaml'),
      `listeners:\n  - { protocol: uwsgi, address: 0.0.0.0:3031 }\n${mounts}`,
    );
    const http = fakeIo(dir);
    expect(await main(['nginx', 'http.yaml'], http)).toBe(1);
    expect(http.err()).toContain('has no uwsgi listener for uwsgi_pass');
    const zero = fakeIo(dir);
    expect(await main(['nginx', 'zero.yaml'], zero)).toBe(1);
    expect(zero.err()).toContain('port 0 is chosen at bind time');
    const any = fakeIo(dir);
    expect(await main(['nginx', 'any.yaml', '--server-name', 'example.test'], any)).toBe(0);
    expect(any.out()).toContain('    server 127.0.0.1:3031;\n');
    expect(any.out()).toContain('    server_name example.test;\n');
    expect(any.out()).toContain('    location / {\n        include uwsgi_params;\n');
    expect(await main(['nginx', 'any.yaml', '--listen', '80; evil'], fakeIo(dir))).toBe(2);
    // Limits that nginx spells differently; a socket path nginx would split; the health path.
    await writeFile(
      join(dir, 'odd.yaml'),
      `listeners:\n  - { protocol: uwsgi, address: "my sock;x.sock" }\nmounts:\n  - { path: /api, app: ./a.mjs }\nhealth: /healthz\nlimits:\n  maxBodySize: 0\n  requestTimeoutMs: 0\n  harakiriMs: 1000\n`,
    );
    const odd = fakeIo(dir);
    expect(await main(['nginx', 'odd.yaml'], odd)).toBe(0);
    expect(odd.out()).toContain(
      `    server ${JSON.stringify(`unix:${join(dir, 'my sock;x.sock')}`)};\n`,
    );
    expect(odd.out()).toContain('    client_max_body_size 1;\n');
    expect(odd.out()).toContain('    uwsgi_read_timeout 3600s;\n');
    expect(odd.out()).toContain('    location = /healthz {\n');
    expect(odd.out()).toContain('    location / {\n        return 404;\n');
  });
});

describe('schema', () => {
  it('prints the JSON Schema', async () => {
    const io = fakeIo(dir);
    expect(await main(['schema'], io)).toBe(0);
    expect(JSON.parse(io.out())).toEqual(configSchema);
    const file = await readFile(new URL('../../container/schema.json', import.meta.url), 'utf8');
    expect(io.out()).toBe(file);
  });
});

/** What the in-test uwsgi server saw of one request. */
interface Seen {
  vars: UwsgiVars;
  body: Buffer;
}

/**
 * A minimal uwsgi application server: decodes the packet with the codec, then answers with
 * `respond(seen)` and closes, as uWSGI does.
 */
async function uwsgiServer(
  respond: (seen: Seen, socket: Socket) => void,
): Promise<{ path: string; seen: Seen[] }> {
  const path = join(dir, `s${servers.length}.sock`);
  const seen: Seen[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    const bodyChunks: Buffer[] = [];
    let vars: UwsgiVars = [];
    const decoder = new PacketDecoder({
      onVars(v) {
        vars = v;
        const cl = v.find(([k]) => k === 'CONTENT_LENGTH')?.[1];
        return cl === undefined || cl === '' ? 0 : Number(cl);
      },
      onBody(chunk) {
        bodyChunks.push(Buffer.from(chunk));
      },
      onEnd() {
        const entry = { vars, body: Buffer.concat(bodyChunks) };
        seen.push(entry);
        respond(entry, socket);
      },
    });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, seen };
}

describe('request', () => {
  it('sends the nginx uwsgi_params vars in order, then headers, then the body', async () => {
    const server = await uwsgiServer((_seen, socket) => {
      socket.end(
        'HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello',
      );
    });
    const io = fakeIo(dir);
    const code = await main(
      [
        'request',
        server.path,
        'PUT',
        '/a%20b/c?x=1',
        '-H',
        'X-One: 1',
        '-H',
        'x-two:  two ',
        '-d',
        'payload',
        '--host',
        'example.org:8080',
      ],
      io,
    );
    expect(io.err()).toBe('');
    expect(code).toBe(0);
    expect(io.out()).toBe('hello');
    const [request] = server.seen;
    expect(request?.body.toString()).toBe('payload');
    expect(request?.vars).toEqual([
      ['QUERY_STRING', 'x=1'],
      ['REQUEST_METHOD', 'PUT'],
      ['CONTENT_TYPE', ''],
      ['CONTENT_LENGTH', '7'],
      ['REQUEST_URI', '/a%20b/c?x=1'],
      ['PATH_INFO', '/a b/c'],
      ['DOCUMENT_ROOT', ''],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['REQUEST_SCHEME', 'http'],
      ['REMOTE_ADDR', '127.0.0.1'],
      ['REMOTE_PORT', ''],
      ['SERVER_PORT', '80'],
      ['SERVER_NAME', 'example.org'],
      ['HTTP_HOST', 'example.org:8080'],
      ['HTTP_USER_AGENT', `uwsgi-ts/${VERSION}`],
      ['HTTP_ACCEPT', '*/*'],
      ['HTTP_X_ONE', '1'],
      ['HTTP_X_TWO', 'two'],
      ['HTTP_CONTENT_LENGTH', '7'],
    ]);
  });

  it('GET by default, POST with a body; -i writes the head to stderr', async () => {
    const server = await uwsgiServer((_seen, socket) => {
      socket.end('HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\nbody');
    });
    const io = fakeIo(dir);
    expect(await main(['request', '-i', server.path, '/'], io)).toBe(0);
    expect(io.err()).toBe('HTTP/1.1 200 OK\nX-A: 1\n\n');
    expect(io.out()).toBe('body');
    await writeFile(join(dir, 'upload.bin'), Buffer.alloc(100_000, 7));
    expect(
      await main(['request', server.path, '/up', '--data-file', 'upload.bin'], fakeIo(dir)),
    ).toBe(0);
    expect(server.seen[0]?.vars.find(([k]) => k === 'REQUEST_METHOD')?.[1]).toBe('GET');
    expect(server.seen[1]?.vars.find(([k]) => k === 'REQUEST_METHOD')?.[1]).toBe('POST');
    expect(server.seen[1]?.body).toEqual(Buffer.alloc(100_000, 7));
  });

  it('exit 1 on 4xx/5xx, still streaming the body', async () => {
    const server = await uwsgiServer((_seen, socket) =>
      socket.end('HTTP/1.1 404 Not Found\r\n\r\nmissing'),
    );
    const io = fakeIo(dir);
    expect(await main(['request', server.path, '/nope'], io)).toBe(1);
    expect(io.out()).toBe('missing');
    expect(io.err()).toBe('uwsgi-ts request: the server answered 404 Not Found\n');
    // What an HTTP server says to a uwsgi packet.
    const http = await uwsgiServer((_seen, socket) =>
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n'),
    );
    const io400 = fakeIo(dir);
    expect(await main(['request', http.path, '/'], io400)).toBe(1);
    expect(io400.err()).toBe(
      'uwsgi-ts request: the server answered 400 Bad Request (an HTTP server answers a uwsgi packet with 400: is this a uwsgi listener?)\n',
    );
    // An app's own 400 has headers of its own: no hint.
    const app400 = await uwsgiServer((_seen, socket) =>
      socket.end('HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n{}'),
    );
    const ioApp = fakeIo(dir);
    expect(await main(['request', app400.path, '/'], ioApp)).toBe(1);
    expect(ioApp.err()).toBe('uwsgi-ts request: the server answered 400 Bad Request\n');
  });

  it('accepts the CGI Status: form and skips interim 1xx heads', async () => {
    const server = await uwsgiServer((_seen, socket) =>
      socket.end('HTTP/1.1 100 Continue\r\n\r\nStatus: 302 Found\r\nLocation: /x\r\n\r\n'),
    );
    const io = fakeIo(dir);
    expect(await main(['request', '-i', server.path, '/'], io)).toBe(0);
    expect(io.err()).toBe('HTTP/1.1 100 Continue\n\nHTTP/1.1 302 Found\nLocation: /x\n\n');
  });

  it('--raw writes the response unparsed', async () => {
    const response = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';
    const server = await uwsgiServer((_seen, socket) => socket.end(response));
    const io = fakeIo(dir);
    expect(await main(['request', '--raw', server.path, '/'], io)).toBe(0);
    expect(io.out()).toBe(response);
  });

  it('reports truncated, malformed and missing responses with exit 1', async () => {
    const truncated = await uwsgiServer((_seen, socket) =>
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort'),
    );
    let io = fakeIo(dir);
    expect(await main(['request', truncated.path, '/'], io)).toBe(1);
    expect(io.err()).toBe(
      'uwsgi-ts request: truncated response: Content-Length is 10, received 5 body bytes\n',
    );

    const long = await uwsgiServer((_seen, socket) =>
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nextra'),
    );
    io = fakeIo(dir);
    expect(await main(['request', long.path, '/'], io)).toBe(1);
    expect(io.err()).toBe(
      'uwsgi-ts request: response longer than declared: Content-Length is 1, received 5 body bytes\n',
    );

    const garbage = await uwsgiServer((_seen, socket) => socket.end('NOT HTTP\r\n\r\n'));
    io = fakeIo(dir);
    expect(await main(['request', garbage.path, '/'], io)).toBe(1);
    expect(io.err()).toMatch(/^uwsgi-ts request: malformed response head: /);

    const silent = await uwsgiServer((_seen, socket) => socket.end());
    io = fakeIo(dir);
    expect(await main(['request', silent.path, '/'], io)).toBe(1);
    expect(io.err()).toBe(
      'uwsgi-ts request: the server closed the connection after 0 bytes, before a complete response head (is this a uwsgi listener? a uwsgi server answers every packet)\n',
    );

    // Not a uwsgi server: what came back is quoted, control bytes escaped.
    const ssh = await uwsgiServer((_seen, socket) => socket.end('SSH-2.0-OpenSSH\r\n'));
    io = fakeIo(dir);
    expect(await main(['request', ssh.path, '/'], io)).toBe(1);
    expect(io.err()).toBe(
      'uwsgi-ts request: the server closed the connection after 17 bytes, before a complete response head; it sent "SSH-2.0-OpenSSH\\r\\n"\n',
    );

    io = fakeIo(dir);
    expect(await main(['request', join(dir, 'nobody.sock'), '/'], io)).toBe(1);
    expect(io.err()).toMatch(/^uwsgi-ts request: connect ENOENT /);
  });

  it('--timeout gives up on a server that never answers', async () => {
    const server = await uwsgiServer(() => undefined);
    const io = fakeIo(dir);
    expect(await main(['request', '--timeout', '50', server.path, '/'], io)).toBe(1);
    expect(io.err()).toBe('uwsgi-ts request: no complete response within 50 ms\n');
    expect(server.seen).toHaveLength(1);
  });

  it('io.signal interrupts a pending request', async () => {
    const controller = new AbortController();
    const server = await uwsgiServer(() => controller.abort());
    const io = fakeIo(dir, { signal: controller.signal });
    expect(await main(['request', server.path, '/'], io)).toBe(1);
    expect(io.err()).toBe('uwsgi-ts request: interrupted\n');
  });

  it('connects over TCP too, sending the port as SERVER_PORT', async () => {
    const seen: string[] = [];
    const server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      const decoder = new PacketDecoder({
        onVars(vars) {
          seen.push(vars.find(([k]) => k === 'SERVER_PORT')?.[1] ?? '');
          return 0;
        },
        onEnd: () => socket.end('HTTP/1.0 204 No Content\r\n\r\n'),
      });
      socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    expect(await main(['request', `127.0.0.1:${port}`, 'DELETE', '/x'], fakeIo(dir))).toBe(0);
    expect(seen).toEqual([String(port)]);
  });
});

/** Resolves once `text` appears on the fake stdout; rejects if `running` ends first. */
function waitForStdout(io: FakeIo, text: string, running: Promise<number>): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!io.out().includes(text)) return;
      io.stdoutStream.off('data', check);
      resolve();
    };
    io.stdoutStream.on('data', check);
    check();
    running.then(
      (code) => reject(new Error(`main exited ${code} before "${text}": ${io.err()}`)),
      reject,
    );
  });
}

describe('run', () => {
  const config = (extra = '') => `listeners:
  - protocol: uwsgi
    address: app.sock
mounts:
  - path: /
    app: ./app.mjs
shutdownTimeoutMs: 10000
${extra}`;

  beforeEach(async () => {
    await writeFile(
      join(dir, 'app.mjs'),
      `export default function handler(req, res) {
  if (req.url === '/hang') return globalThis.__uwsgiTsHang?.();
  res.setHeader('Content-Type', 'text/plain');
  res.end('hi ' + req.url);
}
`,
    );
  });

  it('serves until io.signal aborts, then closes gracefully and exits 0', async () => {
    await writeFile(join(dir, 'conf.yaml'), config());
    const controller = new AbortController();
    const io = fakeIo(dir, { signal: controller.signal });
    const running = main(['serve', '--log-format', 'json', 'conf.yaml'], io);
    try {
      await waitForStdout(io, '"msg":"ready"', running);
      const ready = JSON.parse(
        io
          .out()
          .split('\n')
          .find((l) => l.includes('"msg":"ready"')) ?? '{}',
      );
      expect(ready.listeners).toEqual([
        { protocol: 'uwsgi', address: `unix:${join(dir, 'app.sock')}` },
      ]);
      const client = fakeIo(dir);
      expect(await main(['request', 'unix:app.sock', '/hello?x=1'], client)).toBe(0);
      expect(client.out()).toBe('hi /hello?x=1');
    } finally {
      controller.abort();
    }
    expect(await running).toBe(0);
    expect(io.err()).toBe('');
  });

  it('a second signal stops without waiting for in-flight requests', async () => {
    // A grace period long enough that waiting for it would be unmistakable.
    await writeFile(
      join(dir, 'conf.yaml'),
      config().replace('shutdownTimeoutMs: 10000', 'shutdownTimeoutMs: 1500'),
    );
    // The app runs in a worker process: it says on stdout (piped into io.stdout) that the
    // request arrived, and never answers it.
    await writeFile(
      join(dir, 'app.mjs'),
      `export default function handler(req, res) {
  if (req.url === '/hang') { process.stdout.write('hang-arrived\\n'); return; }
  res.end('hi');
}
`,
    );
    const graceful = new AbortController();
    const force = new AbortController();
    const io = fakeIo(dir, { signal: graceful.signal, forceSignal: force.signal });
    const running = main(['run', '--log-format', 'json', 'conf.yaml'], io);
    let pending: Promise<number> | undefined;
    try {
      await waitForStdout(io, '"msg":"ready"', running);
      pending = main(['request', join(dir, 'app.sock'), '/hang'], fakeIo(dir));
      await waitForStdout(io, 'hang-arrived', running);
    } finally {
      graceful.abort();
      force.abort();
    }
    const started = performance.now();
    expect(await running).toBe(0);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(io.err()).toBe(
      'uwsgi-ts: second signal: stopped without waiting for in-flight requests\n',
    );
    // The abandoned request ends without a response once its connection is closed.
    expect(await pending).toBe(1);
  }, 10_000);

  it('an invalid config prints its issues and exits 1', async () => {
    await writeFile(join(dir, 'conf.yaml'), config('threads: 4\n'));
    const io = fakeIo(dir);
    expect(await main(['run', 'conf.yaml'], io)).toBe(1);
    expect(io.err()).toBe('conf.yaml:8:1 /threads unknown key "threads"\n');
  });

  it('a start failure is reported with its code and exits 1', async () => {
    await writeFile(join(dir, 'conf.yaml'), config().replace('./app.mjs', './missing.mjs'));
    const io = fakeIo(dir);
    expect(await main(['run', '--log-format', 'json', 'conf.yaml'], io)).toBe(1);
    // The worker's own error, carried by the master's boot failure.
    expect(io.err()).toMatch(/^uwsgi-ts: UWSGI_ERR_WORKER_BOOT: UWSGI_ERR_APP_LOAD: /);
  });
});
