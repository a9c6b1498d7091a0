/** What `main` may touch of the outside world; the bin shim passes the real process. */
export interface CliIo {
  /** Command output: configs, schema, response bodies, and the container's log lines. */
  readonly stdout: NodeJS.WritableStream & { readonly isTTY?: boolean };
  /** Keys for `top` (`q` quits); raw mode is used when it is a terminal. */
  readonly stdin?: NodeJS.ReadableStream & {
    readonly isTTY?: boolean;
    setRawMode?(raw: boolean): unknown;
  };
  /** Diagnostics: config issues, errors, usage mistakes, `request -i` response heads. */
  readonly stderr: NodeJS.WritableStream;
  /** Environment for `${VAR}` interpolation in configs. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Directory relative CLI paths resolve against. */
  readonly cwd: string;
  /**
   * Aborted on the first SIGTERM/SIGINT: `run` stops gracefully, `request` gives up. Without
   * it `run` serves until its container fails.
   */
  readonly signal?: AbortSignal;
  /** Aborted on a second signal: `run` closes every connection at once. */
  readonly forceSignal?: AbortSignal;
  /**
   * Subscribes to a process signal other than SIGTERM/SIGINT (`run`: SIGHUP reload, SIGQUIT
   * immediate stop, SIGUSR1 reopen logs); returns the unsubscribe function.
   */
  readonly onSignal?: (signal: 'SIGHUP' | 'SIGQUIT' | 'SIGUSR1', handler: () => void) => () => void;
}

/** Writes text and resolves once the stream has taken it (keeps ordering with later output). */
export function write(stream: NodeJS.WritableStream, text: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(err) : resolve()));
  });
}
