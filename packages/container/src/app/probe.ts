/**
 * `uwsgi-ts check --load`: each app of a config imported in a child process, as a worker would
 * (the config's `env:` over the inherited environment, the same loader), and reported by shape
 * or by error; the child exits afterwards, so nothing an app starts outlives the check.
 */
import { fork } from 'node:child_process';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ContainerConfig } from '../config/types.ts';
import { workerExecArgv } from '../supervisor/worker-process.ts';

export type ProbeResult =
  | {
      readonly path: string;
      readonly app: string;
      readonly ok: true;
      readonly kind: string;
      readonly shape: string;
    }
  | {
      readonly path: string;
      readonly app: string;
      readonly ok: false;
      readonly code?: string;
      readonly message: string;
    };

/**
 * Loads every mount's app of `config` in one child process; resolves with one result per mount.
 * A child that does not finish within `timeoutMs` (an app whose import never settles) is killed
 * and the mounts it did not report say so.
 */
export function probeApps(
  config: ContainerConfig,
  options: { readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv },
): Promise<ProbeResult[]> {
  return new Promise((resolve) => {
    const child = fork(probeEntry(), [], {
      env: { ...(options.env ?? process.env), ...config.env },
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      serialization: 'json',
      // The workers' flags (a loader such as --import tsx), without the test runner's conditions.
      execArgv: workerExecArgv(process.execArgv),
    });
    const results: ProbeResult[] = [];
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < 4096) stderr += chunk;
    });
    child.on('message', (message: unknown) => {
      if (typeof message === 'object' && message !== null && 'path' in message) {
        results.push(message as ProbeResult);
      }
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('error', () => undefined);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const why =
        signal === 'SIGKILL'
          ? `not loaded within ${options.timeoutMs} ms`
          : `the probe process exited (${signal ?? `code ${code}`})${stderr === '' ? '' : `: ${stderr.trim().split('\n').at(-1)}`}`;
      for (const mount of config.mounts.slice(results.length)) {
        results.push({ path: mount.path, app: mount.app, ok: false, message: why });
      }
      resolve(results);
    });
    child.send({ mounts: config.mounts });
  });
}

/** `app/probe-entry.js` in `dist` (from the sources too: Node 20 cannot fork a `.ts`). */
function probeEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const entry = join(dirname(here), 'probe-entry.js');
  if (here.endsWith('.ts')) {
    return entry.replace(`${sep}src${sep}app${sep}`, `${sep}dist${sep}app${sep}`);
  }
  return entry;
}
