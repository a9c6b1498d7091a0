/**
 * `uwsgi-ts run CONFIG` (alias `serve`): a master that binds the listeners and supervises
 * `workers` worker processes until a signal (docs/supervisor.md). SIGTERM/SIGINT stop
 * gracefully (a second one: now), SIGHUP reloads, SIGQUIT stops at once, SIGUSR1 reopens logs.
 */
import {
  type ContainerConfig,
  formatIssue,
  readConfig,
  type Supervisor,
  startSupervisor,
} from '@uwsgi-ts/container';
import { type CliIo, write } from '../io.ts';
import { configIssues, describeError } from './config-errors.ts';

export interface ServeOptions {
  readonly logFormat?: ContainerConfig['log']['format'];
}

/** SIGQUIT: workers get no grace; the master kills what is left after this. */
const QUIT_TIMEOUT_MS = 0;

export async function serve(file: string, options: ServeOptions, io: CliIo): Promise<number> {
  const load = async (): Promise<ContainerConfig> => {
    const config = await readConfig(file, { env: io.env, cwd: io.cwd });
    if (options.logFormat === undefined) return config;
    return Object.freeze({
      ...config,
      log: Object.freeze({ ...config.log, format: options.logFormat }),
    });
  };
  let config: ContainerConfig;
  try {
    config = await load();
  } catch (err) {
    const issues = configIssues(err);
    if (issues === undefined) throw err;
    await write(io.stderr, issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
    return 1;
  }

  // Subscribed before the start: a SIGHUP's default action would end the master. Signals that
  // arrive while the first generation starts act once it serves.
  let supervisor: Supervisor | undefined;
  let early: 'SIGHUP' | 'SIGQUIT' | undefined;
  const unsubscribe = [
    io.onSignal?.('SIGHUP', () => {
      if (supervisor === undefined) early ??= 'SIGHUP';
      else supervisor.reload('SIGHUP').catch(() => undefined);
    }),
    io.onSignal?.('SIGUSR1', () => supervisor?.reopenLogs()),
    io.onSignal?.('SIGQUIT', () => {
      if (supervisor === undefined) {
        early = 'SIGQUIT';
        return;
      }
      supervisor.logger.warn('SIGQUIT: stopping now');
      void supervisor.stop(QUIT_TIMEOUT_MS);
    }),
  ];
  const unsubscribeAll = () => {
    for (const off of unsubscribe) off?.();
  };
  try {
    supervisor = await startSupervisor(config, {
      reloadConfig: load,
      env: { ...io.env },
      stdout: io.stdout,
    });
  } catch (err) {
    unsubscribeAll();
    await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
    return 1;
  }
  const running = supervisor;
  if (early === 'SIGHUP') running.reload('SIGHUP').catch(() => undefined);
  if (early === 'SIGQUIT') void running.stop(QUIT_TIMEOUT_MS);

  try {
    await Promise.race([aborted(io.signal), running.stopped]);
    // SIGTERM is a graceful stop (not uWSGI's brutal reload, unbit/uwsgi#515): workers stop
    // accepting and finish in-flight requests within shutdownTimeoutMs.
    const graceful = running.stop();
    // A second signal means "now": zero grace for every worker.
    let forced = false;
    void aborted(io.forceSignal).then(() => {
      forced = true;
      void running.stop(0);
    });
    await graceful;
    if (forced) {
      await write(
        io.stderr,
        'uwsgi-ts: second signal: stopped without waiting for in-flight requests\n',
      );
    }
  } catch (err) {
    await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
    return 1;
  } finally {
    unsubscribeAll();
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
