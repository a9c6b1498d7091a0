/**
 * Container configs for e2e tests, written per test into a tmp dir. JSON is valid YAML 1.2, so
 * the file is plain JSON with a .yaml name (no YAML quoting pitfalls in generated configs).
 */
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const APPS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'apps');

/**
 * The uwsgi `transport` under test: CI runs the suites with `UWSGI_TS_TRANSPORT=net` and
 * `=fast`; unset = the config default (`auto`).
 */
export const TRANSPORT = process.env['UWSGI_TS_TRANSPORT'] as 'net' | 'fast' | 'auto' | undefined;

export interface MountSpec {
  readonly path: string;
  /** File name in test/fixtures/apps, or an absolute path. */
  readonly app: string;
  readonly export?: string;
  readonly kind?: 'auto' | 'node' | 'fetch';
  readonly fetchUrl?: 'full' | 'relative';
}

export interface ConfigSpec {
  readonly mounts: readonly MountSpec[];
  readonly limits?: Readonly<Record<string, number>>;
  readonly shutdownTimeoutMs?: number;
  /** Default: uwsgi on `app.sock` (unix, in the config dir), uwsgi TCP 127.0.0.1:0, http 127.0.0.1:0. */
  readonly listeners?: ReadonlyArray<{
    protocol: 'uwsgi' | 'http';
    address: string;
    mode?: string;
  }>;
  readonly accessLog?: boolean;
}

/** Writes `<dir>/<name>` and returns its absolute path. */
export async function writeConfig(
  dir: string,
  spec: ConfigSpec,
  name = 'uwsgi-ts.yaml',
): Promise<string> {
  const config: Record<string, unknown> = {
    listeners: spec.listeners ?? [
      { protocol: 'uwsgi', address: 'app.sock' },
      { protocol: 'uwsgi', address: '127.0.0.1:0' },
      { protocol: 'http', address: '127.0.0.1:0' },
    ],
    mounts: spec.mounts.map((m) => ({
      ...m,
      app: m.app.startsWith('/') ? m.app : join(APPS_DIR, m.app),
    })),
    log: { format: 'json', access: spec.accessLog ?? true, level: 'info' },
    ...(spec.limits ? { limits: spec.limits } : {}),
    ...(spec.shutdownTimeoutMs !== undefined ? { shutdownTimeoutMs: spec.shutdownTimeoutMs } : {}),
    ...(TRANSPORT ? { transport: TRANSPORT } : {}),
  };
  const file = join(dir, name);
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}
