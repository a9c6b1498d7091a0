/** `uwsgi-ts run CONFIG` (alias `serve`): one container in this process until a signal. */
import {
  type ContainerConfig,
  createContainer,
  formatIssue,
  readConfig,
} from '@uwsgi-ts/container';
import { type CliIo, write } from '../io.ts';
import { configIssues, describeError } from './config-errors.ts';

export interface ServeOptions {
  readonly logFormat?: ContainerConfig['log']['format'];
}

export async function serve(file: string, options: ServeOptions, io: CliIo): Promise<number> {
  let config: ContainerConfig;
  try {
    config = await readConfig(file, { env: io.env, cwd: io.cwd });
  } catch (err) {
    const issues = configIssues(err);
    if (issues === undefined) throw err;
    await write(io.stderr, issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
    return 1;
  }
  if (options.logFormat !== undefined) {
    config = Object.freeze({
      ...config,
      log: Object.freeze({ ...config.log, format: options.logFormat }),
    });
  }

  const container = createContainer(config, { stdout: io.stdout });
  try {
    await container.start();
  } catch (err) {
    await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
    // start() may have bound some listeners before failing: release them before exiting.
    await container.close({ timeoutMs: 0 }).catch(() => undefined);
    return 1;
  }

  await aborted(io.signal);
  // SIGTERM is a graceful stop (not uWSGI's brutal reload, unbit/uwsgi#515): stop accepting,
  // let in-flight requests finish within shutdownTimeoutMs.
  const graceful = container.close();
  // A second signal means "now": ask for a zero grace period and stop waiting. close() is
  // idempotent, so on a container already closing this may not shorten its wait; the bin shim
  // exits the process once main() returns after a forced stop.
  const forced = aborted(io.forceSignal).then(() => {
    void container.close({ timeoutMs: 0 }).catch(() => undefined);
    return 'forced' as const;
  });
  try {
    const outcome = await Promise.race([graceful, forced]);
    if (outcome === 'forced')
      await write(
        io.stderr,
        'uwsgi-ts: second signal: stopped without waiting for in-flight requests\n',
      );
  } catch (err) {
    await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
    return 1;
  }
  return 0;
}

/** Resolves when `signal` aborts; never, without one. */
function aborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
