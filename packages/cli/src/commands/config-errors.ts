import {
  type ConfigIssue,
  type ContainerConfig,
  formatIssue,
  readConfig,
} from '@uwsgi-ts/container';
import { type CliIo, write } from '../io.ts';

/** The issues of a `UWSGI_ERR_CONFIG_INVALID` error (matched by code, per STYLE.md), else undefined. */
export function configIssues(err: unknown): readonly ConfigIssue[] | undefined {
  if (err === null || typeof err !== 'object') return undefined;
  const { code, issues } = err as { code?: unknown; issues?: unknown };
  return code === 'UWSGI_ERR_CONFIG_INVALID' && Array.isArray(issues)
    ? (issues as ConfigIssue[])
    : undefined;
}

/** `UWSGI_ERR_LISTEN: cannot bind ... (cause: listen EADDRINUSE ...)` */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  let text =
    typeof code === 'string' && !err.message.includes(code)
      ? `${code}: ${err.message}`
      : err.message;
  let cause: unknown = err.cause;
  for (let depth = 0; cause instanceof Error && depth < 3; depth += 1) {
    // Our errors usually say their cause already ("cannot load app x: missing ) ..."): once.
    if (!text.includes(cause.message)) text += ` (cause: ${cause.message})`;
    cause = cause.cause;
  }
  return text;
}

/**
 * Reads a config for a command that only inspects it (route, nginx): its issues go to stderr
 * one per line, as `check` prints them, and the result is undefined (the command exits 1).
 */
export async function readConfigOrReport(
  file: string,
  io: CliIo,
): Promise<ContainerConfig | undefined> {
  try {
    return await readConfig(file, { env: io.env, cwd: io.cwd });
  } catch (err) {
    const issues = configIssues(err);
    if (issues === undefined) throw err;
    await write(io.stderr, issues.map((issue) => `${formatIssue(issue)}\n`).join(''));
    return undefined;
  }
}
