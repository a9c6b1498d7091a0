/**
 * The messages between the emperor (emperor/) and a vassal (vassal/entry.ts), over Node's IPC
 * channel (JSON serialisation). The one contract both sides import; see docs/emperor.md
 * "IPC messages".
 */
import type { ConfigIssue } from '../config/issues.ts';
import type { ErrorInfo } from '../worker/ipc.ts';

export { VASSAL_ENV } from '../shared/log.ts';

/** How often a vassal reports (uWSGI's heartbeat byte, with the counters loyalty needs). */
export const VASSAL_HEARTBEAT_MS = 1000;

/** A vassal's config as the emperor validated it: the exact text, with what it is read with. */
export interface VassalConfigText {
  /** The file's absolute path (issues, relative paths). */
  readonly file: string;
  readonly text: string;
  /** The vassal defaults file, merged under `text`. */
  readonly defaults?: { readonly file: string; readonly text: string };
}

export type EmperorMessage =
  | ({
      readonly type: 'start';
      readonly name: string;
      /** Interpolation variables on top of the environment (`VASSAL`, `VASSAL_FILE`). */
      readonly vars: Readonly<Record<string, string>>;
    } & VassalConfigText)
  | ({ readonly type: 'reload'; readonly trigger: string } & VassalConfigText)
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
