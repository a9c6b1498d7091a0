/**
 * `uwsgi-ts check CONFIG... [--print] [--load] [--vassal-defaults FILE]`: validate without
 * listening or loading apps (--load: import them in a child process and report each); with --vassal-defaults, each CONFIG as the emperor reads a vassal file.
 */
import { readFile } from 'node:fs/promises';
import { basename, relative, resolve } from 'node:path';
import {
  type ContainerConfig,
  formatIssue,
  type ProbeResult,
  probeApps,
  readConfig,
  stringifyConfig,
  vassalVars,
} from '@uwsgi-ts/container';
import { type CliIo, write } from '../io.ts';
import { configIssues } from './config-errors.ts';

export interface CheckOptions {
  readonly print: boolean;
  /** Import every app in a child process and report its shape or its error. */
  readonly load?: boolean;
  /** Read each CONFIG as a vassal: these defaults merged under it, `${VASSAL}` from its name. */
  readonly vassalDefaults?: string | undefined;
}

export async function check(
  files: readonly string[],
  options: CheckOptions,
  io: CliIo,
): Promise<number> {
  let failed = 0;
  let printed = 0;
  let defaults: { file: string; text: string } | undefined;
  if (options.vassalDefaults !== undefined) {
    const path = resolve(io.cwd, options.vassalDefaults);
    try {
      defaults = { file: options.vassalDefaults, text: await readFile(path, 'utf8') };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      await write(io.stderr, `${options.vassalDefaults}: cannot read the file (${code})\n`);
      return 1;
    }
  }
  for (const file of files) {
    try {
      const config = await readConfig(file, {
        cwd: io.cwd,
        checkApps: true,
        ...(defaults === undefined
          ? { env: io.env }
          : { env: { ...io.env, ...vassalVars(basename(file)) }, defaults }),
      });
      if (options.print) {
        // One YAML stream: `---` between documents keeps the output parseable as a whole.
        await write(io.stdout, `${printed > 0 ? '---\n' : ''}${stringifyConfig(config)}`);
        printed += 1;
      } else if (options.load !== true) {
        await write(io.stdout, `${file}: ok\n`);
      }
      if (options.load === true && !(await loadApps(file, config, options.print, io))) failed += 1;
    } catch (err) {
      const issues = configIssues(err);
      if (issues === undefined) throw err;
      failed += 1;
      await write(io.stderr, issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
    }
  }
  return failed > 0 ? 1 : 0;
}

/**
 * `--load`: every app imported in a child process. All loaded: `FILE: ok` and one line per
 * mount with the shape found (stdout); else each failure on stderr and false.
 */
async function loadApps(
  file: string,
  config: ContainerConfig,
  printed: boolean,
  io: CliIo,
): Promise<boolean> {
  const results = await probeApps(config, {
    timeoutMs: config.readyTimeoutMs,
    env: { ...process.env, ...io.env },
  });
  const where = (r: ProbeResult) => {
    const app = relative(io.cwd, r.app);
    return `${r.path}: ${app.startsWith('..') ? r.app : `./${app}`}`;
  };
  const failures = results.filter((r) => !r.ok);
  if (failures.length === 0) {
    const lines = results.map((r) => `  ${where(r)}: ${r.ok ? r.shape : ''}\n`).join('');
    await write(printed ? io.stderr : io.stdout, `${printed ? '' : `${file}: ok\n`}${lines}`);
    return true;
  }
  for (const r of failures) {
    if (r.ok) continue;
    const code = r.code === undefined || r.message.startsWith(r.code) ? '' : `${r.code}: `;
    await write(io.stderr, `${file}: ${where(r)}: ${code}${r.message}\n`);
  }
  return false;
}
