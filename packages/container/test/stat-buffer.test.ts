/**
 * shared/stat-buffer.ts: a stat of a pipe or a socket must not leave Node's shared stat buffer
 * saying so, or module resolution keeps symlinked paths (pnpm) and an app's dependencies are not
 * found. Run in a child process: the resolution state of the test runner is not Node's own.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const dist = `${root}packages/container/dist/index.js`;
const probe = fileURLToPath(new URL('./fixtures/stat-buffer-probe.mjs', import.meta.url));
const from = `${root}examples/apps/x.js`;

describe('stat buffer', () => {
  it.skipIf(!existsSync(dist) || !existsSync(`${root}examples/node_modules/express`))(
    'a logger on a piped stdout leaves module resolution able to follow pnpm symlinks',
    () => {
      const r = spawnSync(process.execPath, [probe, dist, from], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr.trim()).toMatch(
        /\/node_modules\/\.pnpm\/express@[^/]+\/node_modules\/express\/index\.js$/,
      );
    },
  );
});
