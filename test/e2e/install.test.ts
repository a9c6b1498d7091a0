/**
 * The packages as they leave the repository (issue 10): `scripts/pack.mjs` packs codec,
 * container and cli with `pnpm pack`; each tarball holds exactly the built files it needs
 * (dist/ .js + .d.ts for every source file, package.json, README.md, LICENSE, and the bin or
 * schema.json), its package.json has no `workspace:` range and points only at packed files.
 * Then the README's "Install globally": `npm install -g` of the three tarballs into a fresh
 * prefix, and `<prefix>/bin/uwsgi-ts` runs `--version`, `check`, and `run` (one HTTP request,
 * one uwsgi request through the installed `request`, SIGTERM, exit 0).
 *
 * Third-party dependencies come from the npm registry (or npm's cache, `--prefer-offline`); ours
 * come from the tarballs only (all three on one command line: cli alone would ask the registry
 * for @uwsgi-ts/container). Skipped when npm is not on PATH (pack.mjs needs npx too).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  assertBuilt,
  REPO_ROOT,
  type RunningContainer,
  runCli,
  runCommand,
  startContainer,
} from '../utils/cli.ts';
import { writeConfig } from '../utils/config.ts';
import { request } from '../utils/http-client.ts';
import { parseTarget } from '../utils/net.ts';
import { readTarball } from '../utils/tarball.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';

const HAS_NPM = spawnSync('npm', ['--version'], { stdio: 'ignore' }).status === 0;

interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly private?: boolean;
  readonly license?: string;
  readonly engines?: { readonly node?: string };
  readonly exports?: Record<string, unknown>;
  readonly main?: string;
  readonly types?: string;
  readonly bin?: Record<string, string>;
  readonly dependencies?: Record<string, string>;
}

/** The publishable packages, dependencies first, and what each ships beside dist/. */
const PACKAGES = [
  { dir: 'codec', extra: [] },
  { dir: 'container', extra: ['schema.json', 'stats.schema.json'] },
  { dir: 'cli', extra: ['bin/uwsgi-ts.js'] },
] as const;
type PackageDir = (typeof PACKAGES)[number]['dir'];

const workspaceManifest = (dir: PackageDir): Manifest =>
  JSON.parse(readFileSync(join(REPO_ROOT, 'packages', dir, 'package.json'), 'utf8')) as Manifest;

/** package.json, README.md, LICENSE, the extras, and dist/X.js + dist/X.d.ts per src/X.ts. */
async function expectedFiles(dir: PackageDir, extra: readonly string[]): Promise<string[]> {
  const sources = (await readdir(join(REPO_ROOT, 'packages', dir, 'src'), { recursive: true }))
    .map((f) => f.split('\\').join('/'))
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  const built = sources.flatMap((f) => {
    const stem = f.slice(0, -'.ts'.length);
    return [`dist/${stem}.js`, `dist/${stem}.d.ts`];
  });
  return ['package.json', 'README.md', 'LICENSE', ...extra, ...built].sort();
}

/** Every path an exports map, `main`, `types` or `bin` names. */
function manifestTargets(m: Manifest): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (typeof v === 'string') out.push(v);
    else if (v !== null && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(m.exports);
  walk(m.main);
  walk(m.types);
  walk(m.bin);
  return out.map((p) => p.replace(/^\.\//, ''));
}

const NOT_SHIPPED = /(^|\/)(src|test)\/|\.test\.|(^|\/)tsconfig[^/]*$|\.tsbuildinfo$|\.map$/;

describe.skipIf(!HAS_NPM)(
  `packed tarballs and a global install${HAS_NPM ? '' : ' (skipped: npm is not on PATH)'}`,
  () => {
    let packDir: string;
    const tarballs = new Map<PackageDir, string>();
    const contents = new Map<PackageDir, Map<string, Buffer>>();

    beforeAll(async () => {
      assertBuilt();
      packDir = await makeTmpDir('pack');
      const packed = await runCommand(
        process.execPath,
        [join(REPO_ROOT, 'scripts', 'pack.mjs'), packDir],
        { timeoutMs: 60_000 },
      );
      expect(packed.code, packed.stderr).toBe(0);
      const paths = packed.stdout.trim().split('\n');
      expect(paths).toHaveLength(PACKAGES.length);
      for (const [i, { dir }] of PACKAGES.entries()) {
        const path = paths[i]!;
        expect(path.startsWith(`${packDir}/`)).toBe(true);
        tarballs.set(dir, path);
        contents.set(dir, await readTarball(path));
      }
    }, 90_000);

    afterAll(async () => {
      if (packDir) await removeTmpDir(packDir);
    });

    describe.each(PACKAGES.map((p) => [p.dir, p.extra] as const))(
      '@uwsgi-ts/%s tarball',
      (dir, extra) => {
        it('holds exactly the built files, package.json, README.md and LICENSE', async () => {
          const files = [...contents.get(dir)!.keys()].sort();
          expect(files.filter((f) => NOT_SHIPPED.test(f))).toEqual([]);
          expect(
            files,
            'a dist/ file with no src/ file beside it is stale: rm -rf packages/*/dist, build again',
          ).toEqual(await expectedFiles(dir, extra));
          expect(contents.get(dir)!.get('LICENSE')).toEqual(
            readFileSync(join(REPO_ROOT, 'LICENSE')),
          );
        });

        it('has a publishable package.json: no workspace: range, every target packed', () => {
          const text = contents.get(dir)!.get('package.json')!.toString('utf8');
          expect(text).not.toContain('workspace:');
          const packed = JSON.parse(text) as Manifest;
          const source = workspaceManifest(dir);
          expect(packed).toMatchObject({
            name: source.name,
            version: source.version,
            license: 'MIT',
            engines: { node: expect.stringMatching(/^>=20/) },
          });
          expect(packed.private).toBeUndefined();
          // Siblings pinned to the versions packed beside them.
          for (const [name, range] of Object.entries(packed.dependencies ?? {})) {
            const sibling = PACKAGES.find((p) => `@uwsgi-ts/${p.dir}` === name);
            if (sibling) expect(range).toBe(workspaceManifest(sibling.dir).version);
          }
          // The `source` condition (src/index.ts, for this repo's tests) stays in the workspace
          // manifest and out of the packed one: src/ is not shipped.
          expect(JSON.stringify(packed.exports)).not.toContain('source');
          expect(source.exports?.['.']).toMatchObject({ source: './src/index.ts' });
          const missing = manifestTargets(packed).filter((t) => !contents.get(dir)!.has(t));
          expect(missing).toEqual([]);
        });
      },
    );

    describe('npm install -g of the three tarballs into a clean prefix', () => {
      let prefix: string | undefined;
      let work: string | undefined;
      let container: RunningContainer | undefined;

      afterAll(async () => {
        await container?.kill();
        if (prefix) await removeTmpDir(prefix);
        if (work) await removeTmpDir(work);
      });

      it('puts a working uwsgi-ts on <prefix>/bin', { timeout: 180_000 }, async () => {
        prefix = await makeTmpDir('npm-g');
        work = await makeTmpDir('npm-g-run');
        const install = await runCommand(
          'npm',
          [
            'install',
            '--global',
            '--prefix',
            prefix,
            '--prefer-offline',
            '--no-audit',
            '--no-fund',
            ...PACKAGES.map(({ dir }) => tarballs.get(dir)!),
          ],
          {
            cwd: work,
            timeoutMs: 150_000,
            // `pnpm test` runs under npx, which exports the user's npm config (prefix included)
            // to its children; --prefix decides, and no inherited prefix may blur that.
            env: {
              npm_config_prefix: undefined,
              npm_config_global_prefix: undefined,
              npm_config_local_prefix: undefined,
            },
          },
        );
        expect(install.code, `${install.stdout}\n${install.stderr}`).toBe(0);

        // Ours came from the tarballs: one copy each, at the top of the global tree.
        const lib = join(prefix, 'lib', 'node_modules');
        const fromCli = createRequire(join(lib, '@uwsgi-ts', 'cli', 'package.json'));
        expect(fromCli.resolve('@uwsgi-ts/container/package.json')).toBe(
          join(lib, '@uwsgi-ts', 'container', 'package.json'),
        );
        const fromContainer = createRequire(join(lib, '@uwsgi-ts', 'container', 'package.json'));
        expect(fromContainer.resolve('@uwsgi-ts/codec/package.json')).toBe(
          join(lib, '@uwsgi-ts', 'codec', 'package.json'),
        );

        const bin = join(prefix, 'bin', 'uwsgi-ts');
        const command = [bin] as const;
        const version = await runCli(['--version'], { command, cwd: work });
        expect(version).toMatchObject({ code: 0, stdout: `${workspaceManifest('cli').version}\n` });

        const check = await runCli(['check', 'examples/uwsgi-ts.yaml'], { command });
        expect(check, check.stderr).toMatchObject({
          code: 0,
          stdout: 'examples/uwsgi-ts.yaml: ok\n',
        });

        const config = await writeConfig(work, {
          listeners: [
            { protocol: 'uwsgi', address: 'app.sock' },
            { protocol: 'http', address: '127.0.0.1:0' },
          ],
          mounts: [{ path: '/', app: join(REPO_ROOT, 'examples', 'apps', 'hello.cjs') }],
        });
        container = await startContainer(config, { command });
        // The master is the installed bin, not the repository's.
        expect(readFileSync(`/proc/${container.pid}/cmdline`, 'utf8').split('\0')).toContain(bin);

        const http = parseTarget(container.address('http'));
        const res = await request(`http://127.0.0.1:${'port' in http ? http.port : 0}/x?y=1`);
        expect(res.status).toBe(200);
        expect(res.body.toString()).toBe('hello from uwsgi-ts: GET /x?y=1\n');

        const viaUwsgi = await runCli(['request', join(work, 'app.sock'), 'GET', '/z'], {
          command,
          cwd: work,
        });
        expect(viaUwsgi.code, viaUwsgi.stderr).toBe(0);
        expect(viaUwsgi.stdout).toContain('hello from uwsgi-ts: GET /z');

        expect(await container.stop('SIGTERM')).toEqual({ code: 0, signal: null });
        container = undefined;
      });
    });
  },
);
