/**
 * One vassal process as the emperor sees it: forked detached (it leads its own process group,
 * which its workers and whatever the apps spawn share), its IPC messages, and the group kill
 * that leaves nothing behind. Knows nothing of files or states (emperor/vassal.ts does).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { workerExecArgv } from '../supervisor/worker-process.ts';
import {
  type EmperorMessage,
  isVassalMessage,
  VASSAL_ENV,
  type VassalMessage,
} from '../vassal/ipc.ts';

export interface VassalExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The fork itself failed (EAGAIN, EMFILE...): there never was a process. */
  readonly error?: string;
}

export interface ForkOptions {
  readonly entry: string;
  readonly env: NodeJS.ProcessEnv;
  /** Pipe the vassal's output here instead of inheriting the emperor's stdout/stderr. */
  readonly stdout?: NodeJS.WritableStream | undefined;
}

export interface VassalProcessOptions extends ForkOptions {
  readonly name: string;
  /** A spare (emperor/spares.ts) forked earlier with the same `ForkOptions`: used, not forked. */
  readonly spare?: ChildProcess | undefined;
  readonly onMessage: (message: VassalMessage) => void;
  readonly onExit: (exit: VassalExit) => void;
}

/**
 * Forks `vassal/entry.js` detached: a new session and process group, which is everything this
 * vassal will run. `name` (unknown for a spare: it arrives with `start`) labels its logs.
 */
export function forkVassal(options: ForkOptions, name?: string): ChildProcess {
  const out = options.stdout === undefined ? 'inherit' : 'pipe';
  const child = fork(options.entry, [], {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
    env: name === undefined ? options.env : { ...options.env, [VASSAL_ENV]: name },
    execArgv: workerExecArgv(process.execArgv),
    serialization: 'json',
  });
  if (options.stdout !== undefined) {
    child.stdout?.pipe(options.stdout, { end: false });
    child.stderr?.pipe(options.stdout, { end: false });
  }
  child.on('error', () => undefined);
  return child;
}

/** SIGKILL to a process group (a vassal leads its own: its pid). */
export function killGroup(pid: number | undefined): void {
  if (pid === undefined || pid <= 0) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is empty already.
  }
}

export class VassalProcess {
  readonly pid: number;
  readonly startedAt = Date.now();
  readyAt: number | undefined;
  lastHeard = Date.now();
  readonly exited: Promise<VassalExit>;
  #exit: VassalExit | undefined;
  /** Undefined when the fork threw (E2BIG, ...): there is no process, only its exit. */
  readonly #child: ChildProcess | undefined;
  #killTimer: NodeJS.Timeout | undefined;
  #killBy = Number.POSITIVE_INFINITY;

  constructor(options: VassalProcessOptions) {
    let child: ChildProcess | undefined;
    let thrown: NodeJS.ErrnoException | undefined;
    try {
      child = options.spare ?? forkVassal(options, options.name);
    } catch (err) {
      thrown = err as NodeJS.ErrnoException;
    }
    this.#child = child;
    this.pid = child?.pid ?? -1;
    child?.on('message', (message: unknown) => {
      this.lastHeard = Date.now();
      if (isVassalMessage(message)) options.onMessage(message);
    });
    this.exited = new Promise((resolve) => {
      const finish = (exit: VassalExit) => {
        if (this.#exit !== undefined) return;
        clearTimeout(this.#killTimer);
        this.#exit = exit;
        // Whatever the vassal left in its group (an app's child, a worker that lost its master)
        // goes with it.
        this.killGroup();
        resolve(exit);
        options.onExit(exit);
      };
      // A fork that fails is a crash like any other (backoff, then a new try), not a vassal
      // starting forever: some errors throw (E2BIG), others (EAGAIN, EMFILE) come as 'error'
      // with no 'exit'. Either way the exit is reported after the caller has the object.
      const failed = (err: NodeJS.ErrnoException) =>
        finish({ code: null, signal: null, error: err.code ?? err.message });
      if (child === undefined) {
        setImmediate(() => failed(thrown ?? new Error('fork failed')));
        return;
      }
      child.once('exit', (code, signal) => finish({ code, signal }));
      child.on('error', (err: NodeJS.ErrnoException) => {
        if (child.pid === undefined) failed(err);
      });
    });
  }

  get alive(): boolean {
    return this.#exit === undefined;
  }

  send(message: EmperorMessage): void {
    if (this.#child?.connected) this.#child.send(message, (err) => void err);
  }

  /**
   * Graceful stop within `timeoutMs`; SIGKILL of the whole group 1 s after that. A later call
   * can only shorten it.
   */
  stop(timeoutMs: number): void {
    if (!this.alive) return;
    const by = Date.now() + timeoutMs + 1000;
    if (by >= this.#killBy) return;
    this.#killBy = by;
    this.send({ type: 'stop', timeoutMs });
    clearTimeout(this.#killTimer);
    this.#killTimer = setTimeout(() => this.killGroup(), timeoutMs + 1000);
  }

  /** SIGKILL to the vassal's process group (its pid: it leads the group). */
  killGroup(): void {
    killGroup(this.pid);
  }
}
