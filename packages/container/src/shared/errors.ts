/**
 * The container's one error class and its closed list of codes (STYLE.md section 4). Users
 * match on `err.code`; every code has an anchored entry in `docs/errors.md`, kept in step by
 * `test/errors.test.ts`.
 */
import type { ConfigIssue } from '../config/issues.ts';

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
  /** A transport was used against its contract (`Connection.start()` called twice): a bug. */
  'UWSGI_ERR_TRANSPORT_MISUSE',
  /** Reserved (supervisor): a worker did not report ready in time. */
  'UWSGI_ERR_WORKER_START_TIMEOUT',
  /** Reserved (emperor): a watched directory cannot be read or watched. */
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
