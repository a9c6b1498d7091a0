/**
 * `uwsgi-ts check CONFIG... [--print] [--vassal-defaults FILE]`: validate without listening or
 * loading apps; with --vassal-defaults, each CONFIG as the emperor reads a vassal file.
 */
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { formatIssue, readConfig, stringifyConfig, vassalVars } from '@uwsgi-ts/container';
import { type CliIo, write } from '../io.ts';
import { configIssues } from './config-errors.ts';

export interface CheckOptions {
  readonly print: boolean;
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
      } else {
        await write(io.stdout, `${file}: ok\n`);
      }
    } catch (err) {
      const issues = configIssues(err);
      if (issues === undefined) throw err;
      failed += 1;
      await write(io.stderr, issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
    }
  }
  return failed > 0 ? 1 : 0;
}
