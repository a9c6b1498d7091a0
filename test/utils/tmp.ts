/** Per-test temporary directories (mkdtemp under the OS tmpdir), removed by the caller. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A fresh private directory. Unix socket paths must stay under 108 bytes (sun_path), so the
 * prefix is short and lives in the OS tmpdir, not in the repository.
 */
export async function makeTmpDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `uwsgi-ts-${label}-`));
}

export async function removeTmpDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
