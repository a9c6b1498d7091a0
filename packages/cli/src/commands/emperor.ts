/**
 * `uwsgi-ts emperor DIR|GLOB...`: one supervised container (a vassal) per config file in the
 * watched directories (docs/emperor.md). SIGTERM/SIGINT stop every vassal gracefully (a second
 * one: now), SIGHUP reloads every vassal one after another, SIGUSR1 reopens log files.
 *
 * `uwsgi-ts emperor status|reload [NAME]|stop NAME|start NAME`: the same over the emperor's
 * control socket (`--control PATH`, or the `control` of `--config FILE`).
 */
import {
  type Emperor,
  type EmperorConfig,
  formatIssue,
  isContainerError,
  loadEmperorConfig,
  sendControl,
  startEmperor,
} from '@uwsgi-ts/container';
import { usageError } from '../errors.ts';
import { type CliIo, write } from '../io.ts';
import { describeError } from './config-errors.ts';

export const EMPEROR_ACTIONS = ['status', 'reload', 'stop', 'start'] as const;
type Action = (typeof EMPEROR_ACTIONS)[number];

export interface EmperorCliOptions {
  readonly positionals: readonly string[];
  readonly config?: string;
  readonly vassalDefaults?: string;
  readonly control?: string;
  readonly json: boolean;
  readonly timeoutMs: number;
}

export async function emperor(options: EmperorCliOptions, io: CliIo): Promise<number> {
  const [first, ...rest] = options.positionals;
  if ((EMPEROR_ACTIONS as readonly string[]).includes(first ?? '')) {
    return control(first as Action, rest, options, io);
  }
  let config: EmperorConfig;
  try {
    config = await loadEmperorConfig(
      options.config,
      {
        watch: options.positionals,
        ...(options.vassalDefaults === undefined ? {} : { vassalDefaults: options.vassalDefaults }),
        ...(options.control === undefined ? {} : { control: options.control }),
      },
      io.cwd,
      io.env,
    );
  } catch (err) {
    await write(io.stderr, `uwsgi-ts: ${describeConfigError(err)}\n`);
    return 1;
  }

  let running: Emperor | undefined;
  let earlyHup = false;
  const unsubscribe = [
    io.onSignal?.('SIGHUP', () => {
      if (running === undefined) earlyHup = true;
      else void running.reloadAll('SIGHUP');
    }),
    io.onSignal?.('SIGUSR1', () => running?.reopenLogs()),
    io.onSignal?.('SIGQUIT', () => void running?.stop(0)),
  ];
  const unsubscribeAll = () => {
    for (const off of unsubscribe) off?.();
  };
  try {
    running = await startEmperor(config, { env: { ...io.env }, stdout: io.stdout });
  } catch (err) {
    unsubscribeAll();
    await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
    return 1;
  }
  const emperorNow = running;
  if (earlyHup) void emperorNow.reloadAll('SIGHUP');
  try {
    await Promise.race([aborted(io.signal), emperorNow.stopped]);
    const graceful = emperorNow.stop();
    void aborted(io.forceSignal).then(() => {
      emperorNow.logger.warn('second signal: stopping every vassal now');
      void emperorNow.stop(0);
    });
    await graceful;
  } finally {
    unsubscribeAll();
  }
  return 0;
}

async function control(
  action: Action,
  args: readonly string[],
  options: EmperorCliOptions,
  io: CliIo,
): Promise<number> {
  const name = args[0];
  if (args.length > 1)
    throw usageError(`unexpected argument: ${args.slice(1).join(' ')}`, 'emperor');
  if (action === 'status' && name !== undefined) {
    throw usageError('status takes no NAME', 'emperor');
  }
  if ((action === 'stop' || action === 'start') && name === undefined) {
    throw usageError(`${action} needs a vassal NAME`, 'emperor');
  }
  let path = options.control;
  if (path === undefined && options.config !== undefined) {
    try {
      path = (await loadEmperorConfig(options.config, { watch: ['.'] }, io.cwd, io.env)).control;
    } catch (err) {
      await write(io.stderr, `uwsgi-ts: ${describeConfigError(err)}\n`);
      return 1;
    }
  }
  if (path === undefined) {
    throw usageError('give --control PATH or --config FILE (with emperor.control)', 'emperor');
  }
  let answer: { ok: boolean; error?: string; [key: string]: unknown };
  try {
    answer = await sendControl(path, action, options.timeoutMs, name);
  } catch (err) {
    await write(io.stderr, `uwsgi-ts: ${describeError(err)}\n`);
    return 1;
  }
  if (!answer.ok) {
    await write(io.stderr, `uwsgi-ts: ${answer.error ?? `${action} failed`}\n`);
    return 1;
  }
  if (action !== 'status') {
    await write(io.stdout, `${action}: ${name ?? 'every vassal'}: ok\n`);
    return 0;
  }
  const vassals = (answer['vassals'] ?? []) as Record<string, unknown>[];
  if (options.json) {
    await write(io.stdout, `${JSON.stringify({ pid: answer['pid'], vassals }, null, 2)}\n`);
    return 0;
  }
  await write(
    io.stdout,
    statusTable(Number(answer['pid']), Number(answer['spares'] ?? 0), vassals),
  );
  return 0;
}

/** The human view of `status`: one line per vassal, then its last events. */
function statusTable(
  pid: number,
  spares: number,
  vassals: readonly Record<string, unknown>[],
): string {
  const rows = [['VASSAL', 'STATE', 'PID', 'GEN', 'WORKERS', 'REQUESTS', 'SPAWNS', 'LAST ERROR']];
  for (const v of vassals) {
    rows.push([
      String(v['name']),
      String(v['state']) +
        (v['throttledUntil'] === undefined ? '' : ` until ${String(v['throttledUntil'])}`),
      v['pid'] === null ? '-' : String(v['pid']),
      String(v['generation']),
      String((v['workers'] as unknown[] | undefined)?.length ?? 0),
      String(v['requests']),
      String(v['spawns']),
      v['lastError'] === undefined ? '' : String(v['lastError']),
    ]);
  }
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const lines = rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
  // Every vassal's events in one timeline (ISO times sort as strings).
  const history = vassals
    .flatMap((v) =>
      ((v['history'] as { at: string; event: string; detail?: string }[] | undefined) ?? []).map(
        (e) => ({ ...e, name: String(v['name']) }),
      ),
    )
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
    .map((e) => `  ${e.at}  ${e.name}  ${e.event}${e.detail === undefined ? '' : `  ${e.detail}`}`);
  return `emperor ${pid}: ${vassals.length} vassal(s), ${spares} spare process(es)\n${lines.join('\n')}\n${
    history.length === 0 ? '' : `\nrecent events:\n${history.join('\n')}\n`
  }`;
}

function describeConfigError(err: unknown): string {
  if (isContainerError(err) && err.issues !== undefined) {
    return `invalid emperor config:\n${err.issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`;
  }
  return describeError(err);
}

/** Resolves when `signal` aborts; never, without one. */
function aborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal === undefined) return;
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
