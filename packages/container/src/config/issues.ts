/** One problem found in a config file, with the position a human or an editor can jump to. */
export interface ConfigIssue {
  /** The file as the caller named it (`<config>` for in-memory text). */
  readonly file: string;
  /** 1-based line; 0 when the problem concerns the whole file (it could not be read). */
  readonly line: number;
  /** 1-based column; 0 together with `line`. */
  readonly col: number;
  /** JSON Pointer into the config (`/mounts/0/path`); `''` for the document itself. */
  readonly path: string;
  /** What is wrong, ajv wording for schema errors (`must match pattern "^/"`). */
  readonly message: string;
  /** Set when the issue corresponds to a more specific container code (`UWSGI_ERR_MOUNT_CONFLICT`). */
  readonly code?: 'UWSGI_ERR_MOUNT_CONFLICT';
}

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
