// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about ${VAR} in config text.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  type ConfigIssue,
  formatIssue,
  parseConfig,
  readConfig,
  stringifyConfig,
} from '../src/config/index.ts';
import { didYouMean, editDistance } from '../src/config/suggest.ts';
import type { ContainerError } from '../src/shared/errors.ts';
import { classifyListenAddress, parseListenAddress } from '../src/transport/address.ts';

const fixtures = fileURLToPath(new URL('./fixtures/configs/', import.meta.url));

/** The issues a config text produces, formatted as the CLI prints them. */
function issuesOf(text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, { file: 'conf.yaml', cwd: '/srv/site', env });
  } catch (err) {
    expect(err).toMatchObject({ code: 'UWSGI_ERR_CONFIG_INVALID' });
    return ((err as ContainerError).issues ?? []).map(formatIssue);
  }
  throw new Error('expected the config to be rejected');
}

function errorOf(fn: () => unknown): ContainerError {
  try {
    fn();
  } catch (err) {
    return err as ContainerError;
  }
  throw new Error('expected a throw');
}

const VALID = `listeners:
  - protocol: uwsgi
    address: app.sock
mounts:
  - path: /
    app: ./root.mjs
`;

describe('valid configs', () => {
  it('fills every default and resolves paths against the config directory', async () => {
    const config = await readConfig(join(fixtures, 'minimal.yaml'), { env: {} });
    expect(config).toEqual({
      file: join(fixtures, 'minimal.yaml'),
      listeners: [
        { protocol: 'uwsgi', address: join(fixtures, 'app.sock'), mode: '0660', backlog: 1024 },
      ],
      mounts: [{ path: '/', app: join(fixtures, 'apps/root.mjs'), kind: 'auto', fetchUrl: 'full' }],
      limits: {
        bufferSize: 65535,
        maxVars: 1000,
        maxBodySize: 104857600,
        headerTimeoutMs: 10000,
        bodyTimeoutMs: 60000,
        requestTimeoutMs: 60000,
        maxConnections: 10000,
        reservedFds: 64,
        maxInFlight: 0,
        harakiriMs: 0,
        maxRequests: 0,
        maxRequestsJitter: 0,
        maxLifetimeMs: 0,
        reloadOnRssMb: 0,
        evilReloadOnRssMb: 0,
      },
      log: { access: true, format: 'auto', level: 'info' },
      transport: 'auto',
      strictVars: false,
      strictRequestLine: true,
      shutdownTimeoutMs: 30000,
      workers: 1,
      readyTimeoutMs: 30000,
      reloadMercyMs: 30000,
      restartHistory: 10,
      env: {},
    });
  });

  it('keeps every explicit value', async () => {
    const config = await readConfig('full.yaml', { cwd: fixtures, env: {} });
    expect(config.listeners).toEqual([
      {
        protocol: 'uwsgi',
        address: join(fixtures, 'run/app.sock'),
        mode: '0600',
        backlog: 2048,
        owner: 'www-data',
        group: 33,
      },
      { protocol: 'http', address: '127.0.0.1:0', mode: '0660', backlog: 1024 },
      { protocol: 'http', address: '[::1]:8080', mode: '0660', backlog: 1024 },
    ]);
    expect(config.mounts).toEqual([
      {
        path: '/api/',
        app: join(fixtures, 'apps/api.mjs'),
        export: 'handler',
        kind: 'node',
        fetchUrl: 'full',
      },
      { path: '/', app: '/srv/root.mjs', kind: 'fetch', fetchUrl: 'relative' },
    ]);
    expect(config.limits).toEqual({
      bufferSize: 32768,
      maxVars: 500,
      maxBodySize: 1048576,
      headerTimeoutMs: 5000,
      bodyTimeoutMs: 30000,
      requestTimeoutMs: 0,
      maxConnections: 100,
      reservedFds: 32,
      maxInFlight: 8,
      harakiriMs: 5000,
      maxRequests: 1000,
      maxRequestsJitter: 100,
      maxLifetimeMs: 3600000,
      reloadOnRssMb: 200,
      evilReloadOnRssMb: 400,
    });
    expect(config.log).toEqual({
      access: false,
      format: 'json',
      level: 'debug',
      file: join(fixtures, 'logs/app.log'),
    });
    expect(config.transport).toBe('net');
    expect(config.strictRequestLine).toBe(false);
    expect(config.shutdownTimeoutMs).toBe(5000);
    expect(config.workers).toBe('auto');
    expect(config.readyTimeoutMs).toBe(10000);
    expect(config.reloadMercyMs).toBe(15000);
    expect(config.pidfile).toBe(join(fixtures, 'run/master.pid'));
    expect(config.control).toBe(join(fixtures, 'run/control.sock'));
    expect(config.touchReload).toBe(join(fixtures, 'reload.txt'));
    expect(config.env).toEqual({ NODE_ENV: 'production' });
  });

  it('is deeply frozen', () => {
    const config = parseConfig(VALID, { env: {} });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.listeners)).toBe(true);
    expect(Object.isFrozen(config.listeners[0])).toBe(true);
    expect(Object.isFrozen(config.limits)).toBe(true);
    expect(Object.isFrozen(config.log)).toBe(true);
    expect(() => {
      (config.limits as { bufferSize: number }).bufferSize = 1;
    }).toThrow(TypeError);
  });

  it('without a file resolves against cwd and sets no file', () => {
    const config = parseConfig(VALID, { cwd: '/srv/site', env: {} });
    expect(config.file).toBeUndefined();
    expect(config.listeners[0]?.address).toBe('/srv/site/app.sock');
    expect(config.mounts[0]?.app).toBe('/srv/site/root.mjs');
  });

  it('accepts unix:, absolute paths, fd: and TCP forms, leaving TCP as written', () => {
    const config = parseConfig(
      `listeners:
  - { protocol: uwsgi, address: "unix:rel.sock" }
  - { protocol: uwsgi, address: /run/abs.sock }
  - { protocol: uwsgi, address: "fd:3" }
  - { protocol: http, address: "localhost:3031" }
  - { protocol: http, address: "0.0.0.0:0" }
  - { protocol: http, address: "0.0.0.0:0" }
mounts: [{ path: /, app: a.mjs }]
`,
      { cwd: '/srv', env: {} },
    );
    expect(config.listeners.map((l) => l.address)).toEqual([
      '/srv/rel.sock',
      '/run/abs.sock',
      'fd:3',
      'localhost:3031',
      '0.0.0.0:0',
      '0.0.0.0:0',
    ]);
  });

  it('prints the effective config as YAML that reads back to the same config', () => {
    const config = parseConfig(VALID, { file: 'conf.yaml', cwd: '/srv/site', env: {} });
    const text = stringifyConfig(config);
    expect(text.startsWith('# /srv/site/conf.yaml\n')).toBe(true);
    expect(text).toContain('mode: "0660"');
    const again = parseConfig(text, { file: 'conf.yaml', cwd: '/srv/site', env: {} });
    expect(again).toEqual(config);
  });
});

describe('environment interpolation', () => {
  const base = (address: string) => `listeners:
  - protocol: uwsgi
    address: ${address}
    backlog: \${BACKLOG:-1024}
mounts:
  - { path: /, app: a.mjs }
`;

  it('substitutes ${VAR} and ${VAR:-default} in string values', () => {
    const env = { DIR: '/run/site', NAME: 'app' };
    const config = parseConfig(base('"${DIR}/${NAME:-x}.sock"'), { env });
    expect(config.listeners[0]?.address).toBe('/run/site/app.sock');
  });

  it('uses the default when the variable is unset or empty', () => {
    for (const env of [{}, { SOCK: '' }]) {
      const config = parseConfig(base('/run/${SOCK:-default}.sock'), { env });
      expect(config.listeners[0]?.address).toBe('/run/default.sock');
    }
  });

  it('reads an unquoted substitution as YAML would, a quoted one as a string', () => {
    const config = parseConfig(base('/run/a.sock'), { env: { BACKLOG: '4096' } });
    expect(config.listeners[0]?.backlog).toBe(4096);
    expect(
      issuesOf(base('/run/a.sock').replace('${BACKLOG:-1024}', '"${BACKLOG}"'), { BACKLOG: '1' }),
    ).toEqual(['conf.yaml:4:14 /listeners/0/backlog must be integer']);
  });

  it('turns $${ into a literal ${ and leaves keys alone', () => {
    const config = parseConfig(base('/run/$${HOME}.sock'), { env: { HOME: '/root' } });
    expect(config.listeners[0]?.address).toBe('/run/${HOME}.sock');
    expect(issuesOf(`\${KEY}: 1\n${base('/a')}`)).toEqual([
      'conf.yaml:1:1 /${KEY} unknown key "${KEY}"',
    ]);
  });

  it('substitutes once: values cannot inject references, YAML structure or other types', () => {
    const inject = (value: string) =>
      parseConfig(base('${SOCK}'), { cwd: '/srv', env: { SOCK: value, OTHER: '/x' } }).listeners[0]
        ?.address;
    expect(inject('/run/${OTHER}.sock')).toBe('/run/${OTHER}.sock');
    expect(issuesOf(base('${SOCK}'), { SOCK: 'a: b' })).toEqual([
      'conf.yaml:3:14 /listeners/0/address is not a valid address: port " b" is not a number from 0 to 65535',
    ]);
    expect(inject('/run/[a, b] # c')).toBe('/run/[a, b] # c');
    // Unquoted, so re-read as YAML would: but only numbers and booleans change type.
    expect(inject('null')).toBe('/srv/null');
    expect(issuesOf(base('${SOCK}'), { SOCK: '3031' })).toEqual([
      'conf.yaml:3:14 /listeners/0/address must be string',
    ]);
  });

  it('reports an unset variable without default at its own position', () => {
    expect(issuesOf(base('/run/${A:-x}/${SOCK}.sock'))).toEqual([
      'conf.yaml:3:27 environment variable SOCK is not set (${SOCK:-default} gives a fallback)',
    ]);
  });

  it('reports malformed references', () => {
    expect(issuesOf(base('"/run/${1BAD}/${ok:-1}/${}"'))).toEqual([
      'conf.yaml:3:20 invalid reference ${1BAD}: use ${NAME} or ${NAME:-default}',
      'conf.yaml:3:37 invalid reference ${}: use ${NAME} or ${NAME:-default}',
    ]);
    expect(issuesOf(base('/run/${SOCK'))).toEqual([
      'conf.yaml:3:19 unterminated "${" (write $${ for a literal "${")',
    ]);
  });

  it('defaults to process.env', () => {
    process.env['UWSGI_TS_CONFIG_TEST_SOCK'] = '/run/from-env.sock';
    try {
      const config = parseConfig(base('${UWSGI_TS_CONFIG_TEST_SOCK}'));
      expect(config.listeners[0]?.address).toBe('/run/from-env.sock');
    } finally {
      delete process.env['UWSGI_TS_CONFIG_TEST_SOCK'];
    }
  });
});

describe('schema issues', () => {
  it('reports every problem at once with file:line:col and path', async () => {
    const err = await readConfig('invalid.yaml', { cwd: fixtures, env: {} }).catch((e) => e);
    expect(err).toMatchObject({ code: 'UWSGI_ERR_CONFIG_INVALID' });
    expect((err as ContainerError).issues?.map(formatIssue)).toEqual([
      'invalid.yaml:2:15 /listeners/0/protocol must be one of: uwsgi, http; did you mean "uwsgi"?',
      'invalid.yaml:5:11 /mounts/0/path must match pattern "^/"',
      'invalid.yaml:7:1 /limit unknown key "limit"; did you mean "limits"?',
    ]);
    expect((err as Error).message).toBe(
      [
        'invalid config invalid.yaml (3 issues):',
        '  invalid.yaml:2:15 /listeners/0/protocol must be one of: uwsgi, http; did you mean "uwsgi"?',
        '  invalid.yaml:5:11 /mounts/0/path must match pattern "^/"',
        '  invalid.yaml:7:1 /limit unknown key "limit"; did you mean "limits"?',
      ].join('\n'),
    );
  });

  it('gives issues as plain records', () => {
    const err = errorOf(() => parseConfig(`${VALID}transprot: net\n`, { file: 'c.yaml', env: {} }));
    expect(err.issues).toEqual<ConfigIssue[]>([
      {
        file: 'c.yaml',
        line: 7,
        col: 1,
        path: '/transprot',
        message: 'unknown key "transprot"; did you mean "transport"?',
      },
    ]);
  });

  it('suggests the camelCase key for kebab-case and uWSGI spellings', () => {
    expect(issuesOf(`${VALID}limits:\n  buffer-size: 8192\n  maxvars: 10\n  timeout: 1\n`)).toEqual(
      [
        'conf.yaml:8:3 /limits/buffer-size unknown key "buffer-size"; did you mean "bufferSize"?',
        'conf.yaml:9:3 /limits/maxvars unknown key "maxvars"; did you mean "maxVars"?',
        'conf.yaml:10:3 /limits/timeout unknown key "timeout"',
      ],
    );
    expect(issuesOf(`${VALID}harakiri: 30\n`)).toEqual([
      'conf.yaml:7:1 /harakiri unknown key "harakiri"; uWSGI\'s harakiri is limits.requestTimeoutMs here',
    ]);
  });

  it('names missing keys, empty lists, wrong types and ranges', () => {
    expect(issuesOf('mounts: []\n')).toEqual([
      "conf.yaml:1:1 must have required property 'listeners'",
      'conf.yaml:1:9 /mounts must list at least one mount',
    ]);
    expect(issuesOf('listeners: []\nmounts: [{ path: / }]\n')).toEqual([
      'conf.yaml:1:12 /listeners must list at least one listener',
      "conf.yaml:2:10 /mounts/0 must have required property 'app'",
    ]);
    expect(
      issuesOf(
        `${VALID}limits: { bufferSize: 65536, maxBodySize: -1, headerTimeoutMs: 1.5 }\nlog: { access: "yes" }\n`,
      ),
    ).toEqual([
      'conf.yaml:7:23 /limits/bufferSize must be <= 65535',
      'conf.yaml:7:43 /limits/maxBodySize must be >= 0',
      'conf.yaml:7:64 /limits/headerTimeoutMs must be integer',
      'conf.yaml:8:16 /log/access must be boolean',
    ]);
    expect(issuesOf('- listeners\n')).toEqual(['conf.yaml:1:1 must be object']);
  });

  it('explains an unquoted or malformed socket mode', () => {
    const withMode = (mode: string) => VALID.replace('app.sock\n', `app.sock\n    mode: ${mode}\n`);
    expect(issuesOf(withMode('0660'))).toEqual([
      'conf.yaml:4:11 /listeners/0/mode must be a quoted octal string such as "0660" (unquoted, 660 is a YAML number)',
    ]);
    expect(issuesOf(withMode('"0689"'))).toEqual([
      'conf.yaml:4:11 /listeners/0/mode must be an octal mode string such as "0660"',
    ]);
  });

  it('points into the anchored node for values reached through an alias', () => {
    expect(
      issuesOf(
        `x: &l { protocol: uwsgi, address: a.sock, backlog: 0 }\n${VALID.replace('  - protocol: uwsgi\n    address: app.sock', '  - *l')}`,
      ),
    ).toEqual([
      'conf.yaml:1:1 /x unknown key "x"',
      'conf.yaml:1:52 /listeners/0/backlog must be >= 1',
    ]);
  });
});

describe('YAML problems are issues, not crashes', () => {
  it('tab indentation', async () => {
    const err = await readConfig(join(fixtures, 'tabs.yaml'), { env: {} }).catch((e) => e);
    expect(err).toMatchObject({ code: 'UWSGI_ERR_CONFIG_INVALID' });
    const issue = (err as ContainerError).issues?.[0];
    expect(issue).toMatchObject({ line: 2, col: 1, path: '' });
    expect(issue?.message).toMatch(/tab/i);
  });

  it('duplicate keys', () => {
    expect(issuesOf(`${VALID}mounts: []\n`)).toEqual([
      'conf.yaml:7:1 Map keys must be unique: each key may appear once',
    ]);
  });

  it('alias bombs', async () => {
    const started = performance.now();
    const err = await readConfig(join(fixtures, 'alias-bomb.yaml'), { env: {} }).catch((e) => e);
    expect(performance.now() - started).toBeLessThan(1000);
    expect((err as ContainerError).issues?.map(formatIssue)).toEqual([
      `${join(fixtures, 'alias-bomb.yaml')}:3:8 too many alias expansions: Excessive alias count indicates a resource exhaustion attack`,
    ]);
  });

  it('unclosed quotes, several documents, empty files', () => {
    expect(issuesOf('listeners: "oops\n')).toEqual(['conf.yaml:2:1 Missing closing "quote']);
    expect(issuesOf(`${VALID}---\n${VALID}`)[0]).toMatch(/^conf\.yaml:7:1 .*multiple documents/i);
    expect(issuesOf('')).toEqual([
      'conf.yaml:1:1 the file is empty: a config needs at least listeners and mounts',
    ]);
    expect(issuesOf('# only a comment\n')).toHaveLength(1);
  });

  it('an unreadable file is an issue without position, with the fs error as cause', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'uwsgi-ts-config-'));
    try {
      const err = await readConfig('missing.yaml', { cwd: dir }).catch((e) => e);
      expect(err).toMatchObject({ code: 'UWSGI_ERR_CONFIG_INVALID', cause: { code: 'ENOENT' } });
      expect((err as ContainerError).issues?.map(formatIssue)).toEqual([
        'missing.yaml cannot read the file (ENOENT)',
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('semantic checks', () => {
  const listeners = (...addresses: string[]) =>
    `listeners:\n${addresses.map((a) => `  - protocol: http\n    address: "${a}"\n`).join('')}mounts:\n  - { path: /, app: a.mjs }\n`;

  it('rejects duplicate mounts after trailing-slash normalisation as UWSGI_ERR_MOUNT_CONFLICT', () => {
    const err = errorOf(() =>
      parseConfig(
        'listeners: [{ protocol: uwsgi, address: a.sock }]\nmounts:\n  - { path: /api, app: a.mjs }\n  - { path: /, app: b.mjs }\n  - { path: /api/, app: c.mjs }\n',
        { file: 'conf.yaml', env: {} },
      ),
    );
    expect(err.code).toBe('UWSGI_ERR_CONFIG_INVALID');
    expect(err.issues).toEqual([
      {
        file: 'conf.yaml',
        line: 5,
        col: 13,
        path: '/mounts/2/path',
        message:
          'UWSGI_ERR_MOUNT_CONFLICT: "/api/" is the same prefix as "/api" (/mounts/0, line 3); one trailing slash is ignored',
        code: 'UWSGI_ERR_MOUNT_CONFLICT',
      },
    ]);
  });

  it('rejects mount prefixes that can never match', () => {
    const mount = (path: string) =>
      `listeners: [{ protocol: uwsgi, address: a.sock }]\nmounts:\n  - path: "${path}"\n    app: a.mjs\n`;
    expect(issuesOf(mount('/a?b'))).toEqual([
      'conf.yaml:3:11 /mounts/0/path must not contain "?" or "#": a mount matches the path only',
    ]);
    expect(issuesOf(mount('/a b'))[0]).toContain('whitespace');
    for (const path of ['/a//b', '/a/./b', '/..', '//']) {
      expect(issuesOf(mount(path))).toEqual([
        'conf.yaml:3:11 /mounts/0/path must not contain empty, "." or ".." segments',
      ]);
    }
  });

  it('rejects duplicate listener addresses, except port 0', () => {
    expect(
      issuesOf(
        listeners('127.0.0.1:3031', '[::1]:0', '[::1]:0', 'LOCALHOST:3031', '127.0.0.1:3031'),
      ),
    ).toEqual([
      'conf.yaml:11:14 /listeners/4/address listens on the same address as /listeners/0 (line 3)',
    ]);
    expect(
      issuesOf(
        'listeners:\n  - { protocol: uwsgi, address: a.sock }\n  - { protocol: http, address: ./a.sock }\nmounts: [{ path: /, app: a.mjs }]\n',
      ),
    ).toEqual([
      'conf.yaml:3:32 /listeners/1/address listens on the same address as /listeners/0 (line 2)',
    ]);
  });

  it('rejects malformed addresses with the reason', () => {
    expect(
      issuesOf(
        listeners(
          '3031',
          ':3031',
          '::1:3031',
          'host:65536',
          'host:x',
          '[nope]:1',
          '@abstract',
          'bad_host:1',
        ),
      ),
    ).toEqual([
      'conf.yaml:3:14 /listeners/0/address is not a valid address: a bare port is ambiguous: write 127.0.0.1:3031 (or ./3031 for a unix socket)',
      'conf.yaml:5:14 /listeners/1/address is not a valid address: the host is empty: write 127.0.0.1:PORT, or 0.0.0.0:PORT / [::]:PORT to listen on every interface',
      'conf.yaml:7:14 /listeners/2/address is not a valid address: an IPv6 address needs brackets: [::1]:3031',
      'conf.yaml:9:14 /listeners/3/address is not a valid address: port "65536" is not a number from 0 to 65535',
      'conf.yaml:11:14 /listeners/4/address is not a valid address: port "x" is not a number from 0 to 65535',
      'conf.yaml:13:14 /listeners/5/address is not a valid address: "nope" is not an IPv6 address',
      'conf.yaml:15:14 /listeners/6/address is not a valid address: abstract unix sockets (@name) are not supported',
      'conf.yaml:17:14 /listeners/7/address is not a valid address: "bad_host" is not an IPv4 address or host name',
    ]);
  });

  it('refuses what the container would refuse to bind, with the same reason', () => {
    // transport/address.ts is the one parser: config reports its reason as an issue, the
    // container throws it as UWSGI_ERR_LISTEN. Where the two parsers used to differ, the
    // stricter rule won (no trimming, host names checked, at most 5 port and 9 fd digits).
    const bad = [' 127.0.0.1:3031', 'fd:1234567890', '127.0.0.1:003031', 'bad_host:1', '@x'];
    expect(issuesOf(listeners(...bad))).toEqual(
      bad.map((address, index) => {
        const check = classifyListenAddress(address);
        expect(check.kind, address).toBe('invalid');
        const reason = check.kind === 'invalid' ? check.reason : '';
        expect(() => parseListenAddress(address), address).toThrow(
          expect.objectContaining({
            code: 'UWSGI_ERR_LISTEN',
            message: `invalid listener address "${address}": ${reason}`,
          }),
        );
        return `conf.yaml:${3 + 2 * index}:14 /listeners/${index}/address is not a valid address: ${reason}`;
      }),
    );
  });

  it('rejects mode on a TCP listener and unix paths longer than sun_path', () => {
    expect(
      issuesOf(
        `listeners:\n  - { protocol: http, address: "127.0.0.1:1", mode: "0600" }\n  - { protocol: uwsgi, address: /${'x'.repeat(120)}.sock }\nmounts: [{ path: /, app: a.mjs }]\n`,
      ),
    ).toEqual([
      'conf.yaml:2:53 /listeners/0/mode applies to unix sockets only; remove it from this TCP listener',
      expect.stringMatching(
        /^conf\.yaml:3:33 \/listeners\/1\/address unix socket path is 126 bytes once resolved .*; the system limit is 10[37]$/,
      ),
    ]);
  });
});

describe('helpers', () => {
  it('didYouMean stays quiet when nothing is close', () => {
    expect(didYouMean('wrokers', ['workers', 'mounts'])).toBe('; did you mean "workers"?');
    expect(didYouMean('log', ['mounts', 'listeners'])).toBe('');
    expect(editDistance('uswgi', 'uwsgi')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(didYouMean('SHUTDOWN_TIMEOUT_MS', ['shutdownTimeoutMs'])).toBe(
      '; did you mean "shutdownTimeoutMs"?',
    );
  });

  it('formatIssue omits the position of whole-file issues and the empty path', () => {
    expect(
      formatIssue({ file: 'a.yaml', line: 3, col: 11, path: '/mounts/0/path', message: 'm' }),
    ).toBe('a.yaml:3:11 /mounts/0/path m');
    expect(formatIssue({ file: 'a.yaml', line: 0, col: 0, path: '', message: 'm' })).toBe(
      'a.yaml m',
    );
  });
});
