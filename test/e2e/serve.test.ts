/**
 * The CLI as a user runs it: `uwsgi-ts run` (ready line, serving on every listener, graceful
 * SIGTERM with a request in flight, exit 0), `uwsgi-ts check` exit codes, and
 * `uwsgi-ts request` against the running container.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  REPO_ROOT,
  type RunningContainer,
  runCli,
  startContainer,
} from '../utils/cli.ts';
import { APPS_DIR, TRANSPORT, writeConfig } from '../utils/config.ts';
import { request } from '../utils/http-client.ts';
import { connect, parseTarget } from '../utils/net.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import { encodeRequest, nginxLikeVars, uwsgiRequest } from '../utils/uwsgi-client.ts';

describe(`uwsgi-ts CLI (transport ${TRANSPORT ?? 'default'})`, () => {
  let dir: string;
  let container: RunningContainer | undefined;

  beforeAll(() => {
    assertBuilt();
  });

  beforeEach(async () => {
    dir = await makeTmpDir('e2e-serve');
  });

  afterEach(async () => {
    await container?.kill();
    container = undefined;
    await removeTmpDir(dir);
  });

  it('run: logs one ready line with every listener and mount, then serves on each', async () => {
    const config = await writeConfig(dir, {
      mounts: [
        { path: '/', app: 'plain.mjs' },
        { path: '/express', app: 'express.mjs' },
      ],
    });
    container = await startContainer(config);
    const { ready, listeners } = container;
    expect(listeners.map((l) => l.protocol)).toEqual(['uwsgi', 'uwsgi', 'http']);
    expect(listeners[0]!.address).toBe(`unix:${join(dir, 'app.sock')}`);
    expect(listeners[1]!.address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    expect(listeners[2]!.address).toMatch(/^127\.0\.0\.1:[1-9]\d*$/);
    expect(ready['mounts']).toEqual([
      expect.objectContaining({ path: '/', app: join(APPS_DIR, 'plain.mjs') }),
      expect.objectContaining({ path: '/express', app: join(APPS_DIR, 'express.mjs') }),
    ]);
    expect(container.logs.filter((r) => r.msg === 'ready')).toHaveLength(1);
    // The suites run per transport: make sure the one asked for is the one serving.
    if (TRANSPORT && TRANSPORT !== 'auto') expect(ready['transport']).toBe(TRANSPORT);

    for (const kind of ['unix', 'tcp'] as const) {
      const res = await uwsgiRequest(
        container.target('uwsgi', kind),
        nginxLikeVars('GET', '/express/x?y=1'),
      );
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({
        framework: 'express',
        url: '/x?y=1',
        originalUrl: '/express/x?y=1',
      });
      expect(res.header('connection')).toBe('close');
      expect(res.header('transfer-encoding')).toBeUndefined();
    }
    const http = parseTarget(container.address('http'));
    const res = await request(`http://127.0.0.1:${'port' in http ? http.port : 0}/express/h`);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({ framework: 'express', url: '/h' });

    // Access log: one record per request, with the documented fields.
    const access = await container.waitForLog(
      (r) => r.msg === 'request' && r['url'] === '/express/h',
    );
    expect(access).toMatchObject({ method: 'GET', status: 200, mount: '/express' });

    const exit = await container.stop('SIGTERM');
    expect(exit).toEqual({ code: 0, signal: null });
    // A unix listener removes its socket file when it closes.
    expect(existsSync(join(dir, 'app.sock'))).toBe(false);
  });

  it('run: SIGTERM lets an in-flight request finish, then exits 0', async () => {
    const config = await writeConfig(dir, {
      mounts: [{ path: '/', app: 'plain.mjs' }],
      shutdownTimeoutMs: 10_000,
    });
    container = await startContainer(config);
    const running = container;
    let signalled = false;
    const body = await new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      const s = connect(running.target('uwsgi', 'unix'));
      // A raw client reading to EOF, as a front end does.
      s.once('connect', () => s.write(encodeRequest(nginxLikeVars('GET', '/drip?ms=400'))));
      s.on('data', (c: Buffer) => {
        chunks.push(c);
        // Once the head and the first piece arrived the request is in flight: stop now.
        if (!signalled && Buffer.concat(chunks).includes('first\n')) {
          signalled = true;
          running.child.kill('SIGTERM');
        }
      });
      s.on('error', reject);
      s.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
    expect(body).toMatch(/^HTTP\/1\.1 200 /);
    expect(body.endsWith('first\nlast\n')).toBe(true);
    const exit = await running.exited;
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('run: a second instance on a live socket path exits non-zero; the first keeps serving', async () => {
    const config = await writeConfig(dir, { mounts: [{ path: '/', app: 'plain.mjs' }] });
    container = await startContainer(config);
    const second = await runCli(['run', config, '--log-format', 'json'], { timeoutMs: 10_000 });
    expect(second.code).toBe(1);
    const res = await uwsgiRequest(container.target('uwsgi', 'unix'), nginxLikeVars('GET', '/a'));
    expect(res.status).toBe(200);
    expect(existsSync(join(dir, 'app.sock'))).toBe(true);
    expect(await container.stop()).toEqual({ code: 0, signal: null });
  });

  it('run: after a SIGKILL the stale socket file is reused on restart', async () => {
    const config = await writeConfig(dir, { mounts: [{ path: '/', app: 'plain.mjs' }] });
    const first = await startContainer(config);
    expect(await first.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    // Nobody unlinked it: connecting gives ECONNREFUSED, which marks it stale.
    expect(existsSync(join(dir, 'app.sock'))).toBe(true);
    container = await startContainer(config);
    const res = await uwsgiRequest(container.target('uwsgi', 'unix'), nginxLikeVars('GET', '/b'));
    expect(res.status).toBe(200);
    expect(await container.stop()).toEqual({ code: 0, signal: null });
  });

  it('check: 0 for a valid config, 1 with file:line:col for an invalid one, 2 for usage', async () => {
    const good = await writeConfig(dir, { mounts: [{ path: '/', app: 'plain.mjs' }] });
    const ok = await runCli(['check', good]);
    expect(ok.code, ok.stderr).toBe(0);

    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      `listeners:\n  - protocol: uwsgi\n    address: app.sock\nmounts:\n  - path: nope\n    app: ${join(APPS_DIR, 'plain.mjs')}\nwrokers: 4\n`,
    );
    const r = await runCli(['check', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}:5:`);
    expect(r.stderr).toMatch(/wrokers/);

    const both = await runCli(['check', good, bad]);
    expect(both.code).toBe(1);

    const usage = await runCli(['check']);
    expect(usage.code).toBe(2);
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
  });

  it('the repository root has the uwsgi-ts binary (pnpm exec uwsgi-ts)', () => {
    const bin = join(REPO_ROOT, 'node_modules', '.bin', 'uwsgi-ts');
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    expect(r.status).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('run: exits 1 for an invalid config without listening', async () => {
    const bad = join(dir, 'bad.yaml');
    await writeFile(bad, 'listeners: []\nmounts: 5\n');
    const r = await runCli(['run', bad, '--log-format', 'json'], { timeoutMs: 10_000 });
    expect(r.code).toBe(1);
  });

  it('run: an app with a syntax error is named with file:line:col (ES module, CommonJS) or as in an import', async () => {
    // Written here, not kept as fixtures: the linter would refuse files that do not parse.
    const broken = 'export default function (req, res) {\n  res.end("x"\n}\n';
    await writeFile(join(dir, 'broken.mjs'), broken);
    await writeFile(join(dir, 'broken.cjs'), broken.replace('export default', 'module.exports ='));
    await writeFile(join(dir, 'imports.mjs'), 'import "./dep.mjs";\nexport default () => {};\n');
    await writeFile(join(dir, 'dep.mjs'), 'const x = ;\n');
    const failure = async (app: string) => {
      const config = join(dir, `syntax-${app}.yaml`);
      await writeFile(
        config,
        `listeners:\n  - { protocol: http, address: 127.0.0.1:0 }\nmounts:\n  - { path: /, app: ./${app} }\nworkers: 1\n`,
      );
      const r = await runCli(['run', config, '--log-format', 'json'], { timeoutMs: 15_000 });
      expect(r.code).toBe(1);
      return r.stderr.trim().split('\n').at(-1);
    };
    for (const app of ['broken.mjs', 'broken.cjs']) {
      const file = join(dir, app);
      expect(await failure(app)).toBe(
        `uwsgi-ts: UWSGI_ERR_WORKER_BOOT: UWSGI_ERR_APP_LOAD: cannot load app ${file}: SyntaxError at ${file}:2:11: missing ) after argument list`,
      );
    }
    // A SyntaxError the app throws while it runs is not a parse error: its own message.
    await writeFile(join(dir, 'runtime.mjs'), "JSON.parse('{');\nexport default () => {};\n");
    const runtime = await failure('runtime.mjs');
    expect(runtime).toContain(`cannot load app ${join(dir, 'runtime.mjs')}: `);
    expect(runtime).not.toContain('SyntaxError in the app');
    expect(await failure('imports.mjs')).toBe(
      `uwsgi-ts: UWSGI_ERR_WORKER_BOOT: UWSGI_ERR_APP_LOAD: cannot load app ${join(dir, 'imports.mjs')}: SyntaxError in the app or a module it imports: Unexpected token ';'`,
    );
  });

  it('the example Express app (pnpm symlinked node_modules) loads in a worker whose stdout is a pipe', async () => {
    // A stat of the pipe used to be the last one before the apps loaded: Node's realpath then
    // kept the symlinked path of express and its dependencies were not found (stat-buffer.ts).
    const config = join(dir, 'example-api.yaml');
    await writeFile(
      config,
      `listeners:\n  - { protocol: http, address: 127.0.0.1:0 }\nmounts:\n  - { path: /api, app: ${join(REPO_ROOT, 'examples', 'apps', 'api.mjs')} }\n`,
    );
    container = await startContainer(config);
    const res = await request(`http://${container.address('http')}/api/users/42`);
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ id: '42', name: 'Grace' });
  });

  it('check --load: each app imported in a child process, its shape or its error (with the env: of the config)', async () => {
    await writeFile(join(dir, 'eof.mjs'), 'export default (req, res) => { res.end("x")\n');
    await writeFile(join(dir, 'number.cjs'), 'module.exports = 42;\n');
    await writeFile(
      join(dir, 'needs-env.mjs'),
      'if (process.env.PROBE_TOKEN !== "yes") throw new Error("PROBE_TOKEN unset");\nexport default (req, res) => res.end("ok");\n',
    );
    await writeFile(
      join(dir, 'load.yaml'),
      [
        'listeners:\n  - { protocol: http, address: 127.0.0.1:0 }',
        'mounts:',
        `  - { path: /plain, app: ${join(APPS_DIR, 'plain.mjs')} }`,
        '  - { path: /env, app: ./needs-env.mjs }',
        'env: { PROBE_TOKEN: "yes" }',
        '',
      ].join('\n'),
    );
    const good = await runCli(['check', join(dir, 'load.yaml'), '--load'], { timeoutMs: 20_000 });
    expect(good.stderr).toBe('');
    expect(good.code).toBe(0);
    expect(good.stdout).toMatch(
      /: ok\n {2}\/plain: \S+plain\.mjs: .+\n {2}\/env: \S+needs-env\.mjs: default export/,
    );
    await writeFile(
      join(dir, 'broken.yaml'),
      'listeners:\n  - { protocol: http, address: 127.0.0.1:0 }\nmounts:\n  - { path: /a, app: ./eof.mjs }\n  - { path: /b, app: ./number.cjs }\n',
    );
    const bad = await runCli(['check', join(dir, 'broken.yaml'), '--load'], { timeoutMs: 20_000 });
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    const lines = bad.stderr.trim().split('\n');
    expect(lines[0]).toBe(
      `${join(dir, 'broken.yaml')}: /a: ${join(dir, 'eof.mjs')}: UWSGI_ERR_APP_LOAD: cannot load app ${join(dir, 'eof.mjs')}: SyntaxError at ${join(dir, 'eof.mjs')}:2: Unexpected end of input`,
    );
    expect(lines[1]).toMatch(
      /\/b: .*number\.cjs: UWSGI_ERR_APP_EXPORT: .*exports no usable app\. Exports: default \(number\)/,
    );
    // Without --load the files only have to exist.
    expect((await runCli(['check', join(dir, 'broken.yaml')])).code).toBe(0);
  });

  it('route: its answer for each target is what the running container does with it', async () => {
    const config = await writeConfig(dir, {
      mounts: [
        { path: '/api', app: 'plain.mjs' },
        { path: '/api/v2', app: 'plain.mjs' },
        { path: '/', app: 'plain.mjs' },
      ],
      accessLog: false,
    });
    container = await startContainer(config);
    const unix = container.address('uwsgi', 'unix');
    const targets = [
      '/api/users?x=1',
      '/api',
      '/api/',
      '/apix',
      '/api/v2/a/b',
      '/api/%2e%2e/v2/x',
      '/api//v2/x',
      '/x/../api/y',
      '/api/x%2F..%2F..%2Fother',
    ];
    for (const target of targets) {
      const explained = await runCli(['route', config, 'GET', target, '--json']);
      const doc = JSON.parse(explained.stdout) as {
        match: { baseUrl: string; url: string; originalUrl: string } | null;
      };
      const res = await uwsgiRequest(unix, nginxLikeVars('GET', target));
      if (doc.match === null) {
        expect({ target, status: res.status }).toEqual({ target, status: 404 });
        expect(explained.code).toBe(1);
        continue;
      }
      expect(explained.code).toBe(0);
      const seen = JSON.parse(res.body.toString()) as Record<string, unknown>;
      expect({ target, baseUrl: seen['baseUrl'], url: seen['url'] }).toEqual({
        target,
        baseUrl: doc.match.baseUrl,
        url: doc.match.url,
      });
    }
  });

  it('request: talks uwsgi to the running container', async () => {
    const config = await writeConfig(dir, { mounts: [{ path: '/', app: 'plain.mjs' }] });
    container = await startContainer(config);
    const unix = container.address('uwsgi', 'unix');
    const tcp = container.address('uwsgi', 'tcp');

    const get = await runCli(['request', unix, '/hello?x=1', '-H', 'X-Test: yes']);
    expect(get.code, get.stderr).toBe(0);
    const echo = JSON.parse(get.stdout) as {
      method: string;
      url: string;
      headers: Record<string, string>;
    };
    expect(echo).toMatchObject({ method: 'GET', url: '/hello?x=1' });
    expect(echo.headers['x-test']).toBe('yes');

    const post = await runCli(['request', tcp, 'PUT', '/up', '-d', 'hello body', '-i']);
    expect(post.code, post.stderr).toBe(0);
    expect(JSON.parse(post.stdout)).toMatchObject({ method: 'PUT', bodyLength: 10 });
    expect(post.stderr).toMatch(/^HTTP\/1\.1 200/m);

    // A non-2xx/3xx status is exit 1.
    const fail = await runCli(['request', unix, '/throw']);
    expect(fail.code).toBe(1);

    const exit = await container.stop();
    expect(exit).toEqual({ code: 0, signal: null });
    // Nothing listens any more: a connection error is exit 1.
    const gone = await runCli(['request', tcp, '/', '--timeout', '2000']);
    expect(gone.code).toBe(1);
  });
});
