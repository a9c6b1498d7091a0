/**
 * `uwsgi-ts reload CONFIG|SOCKET` / `--pidfile PATH`: a graceful reload of a running master
 * (docs/supervisor.md "Control socket"). Through the control socket it waits for the outcome and
 * exits 1 with the reason when the reload failed; with a pidfile it can only send SIGHUP.
 */
import { extname, resolve } from 'node:path';
import { readConfig, readPidfile, sendControl } from '@uwsgi-ts/container';
import { usageError } from '../errors.ts';
import { type CliIo, write } from '../io.ts';
import { describeError } from './config-errors.ts';

export const DEFAULT_RELOAD_TIMEOUT_MS = 120_000;

export interface ReloadOptions {
  readonly target?: string;
  readonly pidfile?: string;
  readonly timeoutMs: number;
}

export async function reload(options: ReloadOptions, io: CliIo): Promise<number> {
  let control: string | undefined;
  let pidfile = options.pidfile === undefined ? undefined : resolve(io.cwd, options.pidfile);
  const target = options.target === undefined ? undefined : resolve(io.cwd, options.target);
  if (target !== undefined && ['.yaml', '.yml'].includes(extname(target))) {
    try {
      const config = await readConfig(target, { env: io.env, cwd: io.cwd });
      control = config.control;
      pidfile ??= config.pidfile;
    } catch (err) {
      await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
      return 1;
    }
    if (control === undefined && pidfile === undefined) {
      await write(
        io.stderr,
        `uwsgi-ts: ${options.target} sets neither control nor pidfile: nothing to reach the master through\n`,
      );
      return 1;
    }
  } else if (target !== undefined) {
    control = target;
  } else if (pidfile === undefined) {
    throw usageError('give a CONFIG, a control SOCKET or --pidfile PATH', 'reload');
  }
  try {
    if (control !== undefined && options.pidfile === undefined) {
      const answer = await sendControl(control, 'reload', options.timeoutMs);
      if (answer.ok) {
        await write(io.stdout, `reloaded: generation ${String(answer['generation'])}\n`);
        return 0;
      }
      await write(io.stderr, `uwsgi-ts: ${answer.error ?? 'reload failed'}\n`);
      return 1;
    }
    const pid = readPidfile(pidfile ?? '');
    process.kill(pid, 'SIGHUP');
    await write(
      io.stdout,
      `SIGHUP sent to ${pid}; the outcome is in the master's log (a control socket reports it)\n`,
    );
    return 0;
  } catch (err) {
    await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
    return 1;
  }
}
