import type { ConfigIssue } from '../shared/errors.ts';

/** Declared in `shared/errors.ts` (the error that carries it); re-exported for config's callers. */
export type { ConfigIssue };

/**
 * `conf.yaml:3:11 /mounts/0/path must match pattern "^/"`: the `file:line:col` prefix that
 * editors and terminals turn into links, then the pointer (omitted for the document root).
 */
export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.col}` : issue.file;
  return issue.path === ''
    ? `${where} ${issue.message}`
    : `${where} ${issue.path} ${issue.message}`;
}
