/** `uwsgi-ts check CONFIG... [--print]`: validate without listening or loading apps. */
import { formatIssue, readConfig, stringifyConfig } from '@uwsgi-ts/container';
import { type CliIo, write } from '../io.ts';
import { configIssues } from './config-errors.ts';

export interface CheckOptions {
  readonly print: boolean;
}

export async function check(
  files: readonly string[],
  options: CheckOptions,
  io: CliIo,
): Promise<number> {
  let failed = 0;
  let printed = 0;
  for (const file of files) {
    try {
      const config = await readConfig(file, { env: io.env, cwd: io.cwd });
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
