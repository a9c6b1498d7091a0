/**
 * `main(argv, io)`: the whole CLI as a function from arguments to an exit code. It never
 * exits the process, reads `process.argv` or installs signal handlers (bin/uwsgi-ts.js does
 * that), so tests run it in-process with fake streams.
 *
 * Exit codes: 0 success, 1 runtime failure, 2 usage error (`UWSGI_ERR_CLI_USAGE`).
 */
import { readFileSync } from 'node:fs';
import { check } from './commands/check.ts';
import { emperor } from './commands/emperor.ts';
import { nginx } from './commands/nginx.ts';
import { DEFAULT_RELOAD_TIMEOUT_MS, reload } from './commands/reload.ts';
import { DEFAULT_REQUEST_TIMEOUT_MS, request } from './commands/request.ts';
import { route } from './commands/route.ts';
import { schema } from './commands/schema.ts';
import { serve } from './commands/serve.ts';
import { top } from './commands/top.ts';
import { CliError, usageError } from './errors.ts';
import { type CliIo, write } from './io.ts';
import {
  type CommandSpec,
  findCommand,
  type OptionValues,
  parseCommandLine,
  stringOption,
  stringsOption,
} from './options.ts';
import { commandUsage, globalUsage } from './usage.ts';

/** From package.json: one level up from both src/ and dist/. */
export const VERSION: string = (
  JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;

const LOG_FORMATS = ['json', 'pretty', 'auto'] as const;

export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    return await dispatch(argv, io);
  } catch (err) {
    if (err instanceof CliError && err.code === 'UWSGI_ERR_CLI_USAGE') {
      const help = err.command === undefined ? 'uwsgi-ts --help' : `uwsgi-ts ${err.command} --help`;
      await write(io.stderr, `uwsgi-ts: ${err.message}\nSee '${help}'.\n`);
      return 2;
    }
    // A bug, not a user error: say so, with the stack, and fail.
    await write(io.stderr, `uwsgi-ts: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}

async function dispatch(argv: readonly string[], io: CliIo): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    await write(io.stderr, globalUsage(VERSION));
    return 2;
  }
  if (first === '--help' || first === '-h') {
    await write(io.stdout, globalUsage(VERSION));
    return 0;
  }
  if (first === '--version' || first === '-v') {
    await write(io.stdout, `${VERSION}\n`);
    return 0;
  }
  const command = findCommand(first);
  if (command === undefined) {
    throw usageError(
      first.startsWith('-')
        ? `unknown option '${first}' (give a command first)`
        : `unknown command '${first}'`,
    );
  }
  const { values, positionals } = parseCommandLine(command, rest);
  if (values['help'] === true) {
    await write(io.stdout, commandUsage(command));
    return 0;
  }
  if (values['version'] === true) {
    await write(io.stdout, `${VERSION}\n`);
    return 0;
  }
  return run(command, values, positionals, io);
}

async function run(
  command: CommandSpec,
  values: OptionValues,
  positionals: readonly string[],
  io: CliIo,
): Promise<number> {
  switch (command.name) {
    case 'run': {
      const logFormat = stringOption(values, 'log-format');
      if (logFormat !== undefined && !(LOG_FORMATS as readonly string[]).includes(logFormat)) {
        throw usageError(`--log-format must be one of ${LOG_FORMATS.join(', ')}`, 'run');
      }
      return serve(
        positionals[0] ?? '',
        logFormat === undefined ? {} : { logFormat: logFormat as (typeof LOG_FORMATS)[number] },
        io,
      );
    }
    case 'emperor': {
      const timeout = stringOption(values, 'timeout');
      if (timeout !== undefined && !/^\d{1,10}$/.test(timeout)) {
        throw usageError('--timeout must be a whole number of milliseconds', 'emperor');
      }
      const optional = <K extends string, V>(key: K, value: V | undefined) =>
        (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
      return emperor(
        {
          positionals,
          ...optional('config', stringOption(values, 'config')),
          ...optional('vassalDefaults', stringOption(values, 'vassal-defaults')),
          ...optional('control', stringOption(values, 'control')),
          json: values['json'] === true,
          timeoutMs: timeout === undefined ? DEFAULT_RELOAD_TIMEOUT_MS : Number(timeout),
        },
        io,
      );
    }
    case 'reload': {
      const timeout = stringOption(values, 'timeout');
      if (timeout !== undefined && !/^\d{1,10}$/.test(timeout)) {
        throw usageError('--timeout must be a whole number of milliseconds', 'reload');
      }
      const pidfile = stringOption(values, 'pidfile');
      return reload(
        {
          ...(positionals[0] === undefined ? {} : { target: positionals[0] }),
          ...(pidfile === undefined ? {} : { pidfile }),
          timeoutMs: timeout === undefined ? DEFAULT_RELOAD_TIMEOUT_MS : Number(timeout),
        },
        io,
      );
    }
    case 'check':
      return check(
        positionals,
        {
          print: values['print'] === true,
          load: values['load'] === true,
          vassalDefaults: stringOption(values, 'vassal-defaults'),
        },
        io,
      );
    case 'request': {
      const [address = '', second = '', third] = positionals;
      const timeout = stringOption(values, 'timeout');
      if (timeout !== undefined && !/^\d{1,10}$/.test(timeout)) {
        throw usageError('--timeout must be a whole number of milliseconds', 'request');
      }
      const optional = <K extends string, V>(key: K, value: V | undefined) =>
        (value === undefined ? {} : { [key]: value }) as { [P in K]?: V };
      return request(
        {
          address,
          ...optional('method', third === undefined ? undefined : second),
          path: third ?? second,
          headers: stringsOption(values, 'header'),
          ...optional('data', stringOption(values, 'data')),
          ...optional('dataFile', stringOption(values, 'data-file')),
          ...optional('host', stringOption(values, 'host')),
          include: values['include'] === true,
          raw: values['raw'] === true,
          timeoutMs: timeout === undefined ? DEFAULT_REQUEST_TIMEOUT_MS : Number(timeout),
          userAgent: `uwsgi-ts/${VERSION}`,
        },
        io,
      );
    }
    case 'route': {
      const [config = '', second = '', third] = positionals;
      return route(
        config,
        third === undefined ? 'GET' : second,
        third ?? second,
        { json: values['json'] === true },
        io,
      );
    }
    case 'nginx':
      return nginx(
        positionals[0] ?? '',
        {
          listen: stringOption(values, 'listen') ?? '80',
          serverName: stringOption(values, 'server-name') ?? '_',
          params: stringOption(values, 'uwsgi-params') ?? 'uwsgi_params',
        },
        io,
      );
    case 'top': {
      const interval = stringOption(values, 'interval');
      if (interval !== undefined && (!/^\d{1,9}$/.test(interval) || Number(interval) < 100)) {
        throw usageError('--interval must be a whole number of milliseconds, at least 100', 'top');
      }
      const count = values['once'] === true ? '1' : stringOption(values, 'count');
      if (count !== undefined && (!/^\d{1,9}$/.test(count) || Number(count) < 1)) {
        throw usageError('--count must be a positive whole number', 'top');
      }
      return top(
        positionals[0] ?? '',
        {
          intervalMs: interval === undefined ? 1000 : Number(interval),
          count: count === undefined ? undefined : Number(count),
        },
        io,
      );
    }
    case 'schema':
      return schema(io);
    case 'help': {
      const topic = positionals[0];
      if (topic === undefined) {
        await write(io.stdout, globalUsage(VERSION));
        return 0;
      }
      const target = findCommand(topic);
      if (target === undefined) throw usageError(`unknown command '${topic}'`, 'help');
      await write(io.stdout, commandUsage(target));
      return 0;
    }
  }
}
