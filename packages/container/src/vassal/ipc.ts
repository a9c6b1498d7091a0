/**
 * The messages between the emperor (emperor/) and a vassal (vassal/entry.ts), over Node's IPC
 * channel (JSON serialisation). The one contract both sides import; see docs/emperor.md
 * "IPC messages".
 */
import type { ConfigIssue } from '../config/issues.ts';
import type { ContainerConfig } from '../config/types.ts';
import type { ErrorInfo } from '../worker/ipc.ts';

export { VASSAL_ENV } from '../shared/log.ts';

/** How often a vassal reports (uWSGI's heartbeat byte, with the counters loyalty needs). */
export const VASSAL_HEARTBEAT_MS = 1000;

/**
 * A vassal's config is parsed and validated by the emperor (once, before anything is touched)
 * and sent whole: the vassal never reads YAML, so it needs neither yaml nor ajv (about 140 ms
 * of its boot) and runs exactly the config the emperor accepted.
 */
export type EmperorMessage =
  | {
      readonly type: 'start';
      readonly name: string;
      /** The vassal file's absolute path (logs). */
      readonly file: string;
      readonly config: ContainerConfig;
    }
  | {
      readonly type: 'reload';
      readonly trigger: string;
      readonly file: string;
      readonly config: ContainerConfig;
    }
  | { readonly type: 'stop'; readonly timeoutMs: number }
  | { readonly type: 'reopen-logs' };

export interface VassalCounters {
  readonly generation: number;
  /** Requests the current workers served (their last heartbeats). */
  readonly requests: number;
  readonly workers: readonly number[];
}

export type VassalMessage =
  | ({
      readonly type: 'ready';
      readonly listeners: readonly { readonly protocol: string; readonly address: string }[];
    } & VassalCounters)
  | {
      readonly type: 'boot-failed';
      readonly error: ErrorInfo;
      readonly issues?: readonly ConfigIssue[];
    }
  | ({ readonly type: 'heartbeat' } & VassalCounters)
  | ({ readonly type: 'reloaded' } & VassalCounters)
  | {
      readonly type: 'reload-failed';
      readonly error: ErrorInfo;
      readonly issues?: readonly ConfigIssue[];
    };

const EMPEROR_TYPES = new Set(['start', 'reload', 'stop', 'reopen-logs']);
const VASSAL_TYPES = new Set(['ready', 'boot-failed', 'heartbeat', 'reloaded', 'reload-failed']);

export function isEmperorMessage(value: unknown): value is EmperorMessage {
  return (
    typeof value === 'object' &&
    value !== null &&
    EMPEROR_TYPES.has((value as { type?: unknown }).type as string)
  );
}

export function isVassalMessage(value: unknown): value is VassalMessage {
  return (
    typeof value === 'object' &&
    value !== null &&
    VASSAL_TYPES.has((value as { type?: unknown }).type as string)
  );
}
