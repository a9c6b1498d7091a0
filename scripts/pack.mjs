#!/usr/bin/env node
// Packs @uwsgi-ts/codec, @uwsgi-ts/container and @uwsgi-ts/cli into npm tarballs (issue 10),
// for a global install outside the repository (README.md "Install globally"):
//
//   npx -y pnpm@12.4.2 run build
//   npm install -g $(node scripts/pack.mjs /tmp/uwsgi-ts-pack)
//
// Packs with `pnpm pack`, not `npm pack`: pnpm rewrites the `workspace:*` ranges to the packed
// versions and applies `publishConfig.exports` (the exports map without the `source` condition,
// whose src/ is not in the tarball). The packages' `files` fields decide what goes in:
// test/e2e/install.test.ts checks each tarball's file list and packed package.json.
//
// Prints the tarball paths, one per line, dependencies first; pnpm's own output goes to stderr.
// DIR defaults to .tmp/pack in the repository and is created if missing. Needs a build first
// (exit 1 with the command to run when a dist/ is missing).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Dependency order: `npm install -g` of these paths, in this order, installs the CLI. */
const PACKAGES = ['codec', 'container', 'cli'];

const dest = resolve(process.argv[2] ?? join(ROOT, '.tmp', 'pack'));

for (const name of PACKAGES) {
  if (!existsSync(join(ROOT, 'packages', name, 'dist', 'index.js'))) {
    process.stderr.write(
      `packages/${name}/dist is missing: run \`npx -y pnpm@12.4.2 run build\` first\n`,
    );
    process.exit(1);
  }
}
mkdirSync(dest, { recursive: true });

// The pnpm the repository pins (`packageManager`), through npx as everywhere else in the repo.
const rootManifest = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const pnpm = String(rootManifest.packageManager);

const tarballs = [];
for (const name of PACKAGES) {
  const result = spawnSync(
    'npx',
    ['-y', pnpm, 'pack', '--pack-destination', dest, '--json', '--reporter', 'silent'],
    { cwd: join(ROOT, 'packages', name), encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  );
  if (result.status !== 0) {
    process.stderr.write(`${result.error ?? ''}${result.stdout}`);
    process.stderr.write(
      `pnpm pack failed in packages/${name} (${result.status ?? result.signal})\n`,
    );
    process.exit(1);
  }
  let filename;
  try {
    filename = JSON.parse(result.stdout).filename;
  } catch {
    process.stderr.write(`pnpm pack in packages/${name}: no JSON on stdout:\n${result.stdout}\n`);
    process.exit(1);
  }
  // pnpm prints the bare file name when packing into a destination; either way, in dest.
  tarballs.push(resolve(dest, filename));
}
process.stdout.write(tarballs.map((t) => `${t}\n`).join(''));
