// What the nginx benchmarks (nginx-bench.mjs, supervisor-bench.mjs) share around the measuring:
// their common command-line options and the versions of the tools they report.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/** The checkout's root, and its CLI (built with `npx tsc -b`). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI_IN_CHECKOUT = 'packages/cli/bin/uwsgi-ts.js';
export const OWN_CLI = path.join(ROOT, CLI_IN_CHECKOUT);

/**
 * Parses the command line with the options every nginx benchmark takes (`--duration`,
 * `--rounds`, `--quick`, `--json`, `--keep`) plus `options`; returns the values and the wrk
 * run lengths they give (`--quick`: 2 s runs, 1 round, 1 s warm-ups).
 */
export function parseBenchArgs(options) {
  const { values: args } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      rounds: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      ...options,
      json: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
  });
  return {
    args,
    duration: args.quick ? 2 : Number(args.duration),
    rounds: args.quick ? 1 : Number(args.rounds),
    warmup: args.quick ? 1 : 2,
  };
}

/** What `cmd args` printed (stdout; on failure stdout and stderr), trimmed. */
export function commandOutput(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
  }
}

export const nginxVersion = () =>
  commandOutput('sh', ['-c', 'nginx -v 2>&1']).replace('nginx version: ', '');
export const wrkVersion = () => commandOutput('sh', ['-c', 'wrk -v 2>&1 | head -1']).split(' [')[0];
/** The machine: kernel and CPUs. */
export const hostInfo = () => ({
  kernel: os.release(),
  cpus: `${os.cpus().length} x ${os.cpus()[0]?.model ?? '?'}`,
});

/**
 * A CLI option (`--cli`, `--base-cli`) given as the CLI's file or as its checkout's root, checked
 * to be built; undefined when not given.
 */
export function resolveCli(given, option) {
  if (given === undefined) return undefined;
  const cli = statSync(given).isDirectory() ? path.join(given, CLI_IN_CHECKOUT) : given;
  if (!existsSync(cli)) throw new Error(`${option}: ${cli} missing`);
  if (!existsSync(path.join(path.dirname(cli), '../dist/index.js'))) {
    throw new Error(`${option}: ${cli} is not built (npx tsc -b in its checkout)`);
  }
  return path.resolve(cli);
}
