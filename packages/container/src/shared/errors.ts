/**
 * The container's one error class and its closed list of codes (STYLE.md section 4). Users
 * match on `err.code`; every code has an anchored entry in `docs/errors.md`, kept in step by
 * `test/errors.test.ts`.
 */

/**
 * One problem found in a config file, with the position a human or an editor can jump to. It
 * lives here, beside the error that carries it, so this ground floor imports nothing from
 * config/; `config/issues.ts` formats it.
 */
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

/** Every code a `ContainerError` can carry. Adding one means adding its `docs/errors.md` entry. */
export const CONTAINER_ERROR_CODES = [
  /** The config failed to parse or validate; `issues` holds every problem with its location. */
  'UWSGI_ERR_CONFIG_INVALID',
  /** Two mounts claim the same prefix once one trailing slash is ignored. */
  'UWSGI_ERR_MOUNT_CONFLICT',
  /** An app module could not be imported; `cause` is the loader's error. */
  'UWSGI_ERR_APP_LOAD',
  /** An app module loaded but exported nothing usable as a handler. */
  'UWSGI_ERR_APP_EXPORT',
  /** A listener could not be bound; `cause` carries the system error (EADDRINUSE, EACCES...). */
  'UWSGI_ERR_LISTEN',
  /** The requested uwsgi transport cannot run on this Node build. */
  'UWSGI_ERR_TRANSPORT_UNAVAILABLE',
  /** A transport `Connection` was driven against its contract (`start()` twice): a bug above it. */
  'UWSGI_ERR_TRANSPORT_STATE',
  /** A worker process did not report ready within `readyTimeoutMs`. */
  'UWSGI_ERR_WORKER_START_TIMEOUT',
  /** A worker process failed to boot (its apps did not load, a listener failed) or exited first. */
  'UWSGI_ERR_WORKER_BOOT',
  /** A graceful reload was refused or failed; the old generation keeps serving. */
  'UWSGI_ERR_RELOAD_FAILED',
  /** The supervisor's control socket or pidfile could not be used (no master, bad answer). */
  'UWSGI_ERR_CONTROL',
  /** `start()` was called on a container that is closing or closed. */
  'UWSGI_ERR_CLOSED',
  /** `start()` was aborted through its `AbortSignal`; everything bound so far was released. */
  'UWSGI_ERR_ABORTED',
  /** Emperor: a watched directory or the vassal defaults file cannot be read, or a glob has wildcards outside its file name. */
  'UWSGI_ERR_EMPEROR_WATCH',
  /** Reserved (emperor): a vassal file was refused by the owner/mode policy. */
  'UWSGI_ERR_EMPEROR_OWNER',
] as const;

export type ContainerErrorCode = (typeof CONTAINER_ERROR_CODES)[number];

export interface ContainerErrorOptions {
  /** The underlying error (import failure, system error from bind...). */
  readonly cause?: unknown;
  /** For `UWSGI_ERR_CONFIG_INVALID`: every problem found, in document order. */
  readonly issues?: readonly ConfigIssue[];
}

export class ContainerError extends Error {
  override readonly name = 'ContainerError';
  readonly code: ContainerErrorCode;
  /** Present on `UWSGI_ERR_CONFIG_INVALID`: one entry per problem, never empty. */
  readonly issues?: readonly ConfigIssue[];

  constructor(code: ContainerErrorCode, message: string, options: ContainerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.issues !== undefined) this.issues = Object.freeze([...options.issues]);
  }
}

/** True for any error carrying one of the container codes (works across module copies). */
export function isContainerError(err: unknown): err is ContainerError {
  if (!(err instanceof Error)) return false;
  const code: unknown = (err as Error & { code?: unknown }).code;
  return typeof code === 'string' && (CONTAINER_ERROR_CODES as readonly string[]).includes(code);
}
