/**
 * One vassal's state machine (docs/emperor.md "Life cycle of one vassal"): what its file wants
 * (a validated text, an invalid one, or nothing), what its process serves, and the one step
 * that brings the two together (`#reconcile`). Every wait is a timer of this vassal: a crash
 * loop here never delays another vassal.
 *
 * Longer than the house's ~400 lines on purpose: its invariants (one reload in flight, who
 * waits for which reload, which key runs, failed or crashed) live in the private fields of one
 * class, and each handler below changes several of them together. Splitting the handlers out
 * would make those fields public. The interleavings are tested in
 * test/emperor-vassal.test.ts with real processes.
 */
import type { ChildProcess } from 'node:child_process';
import { parseConfig } from '../config/load.ts';
import type { ContainerConfig } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';
import { History } from '../shared/history.ts';
import type { Logger } from '../shared/log.ts';
import type { VassalFacts } from '../stats/document.ts';
import { Backoff } from '../supervisor/backoff.ts';
import type { VassalMessage } from '../vassal/ipc.ts';
import type { VassalFile } from './scanner.ts';
import { type VassalExit, VassalProcess } from './vassal-process.ts';

export interface VassalContext {
  readonly entry: string;
  readonly env: NodeJS.ProcessEnv;
  readonly stdout: NodeJS.WritableStream | undefined;
  readonly log: Logger;
  readonly mercyMs: number;
  readonly readyTimeoutMs: number;
  readonly heartbeatTimeoutMs: number;
  readonly backoff: { readonly firstMs: number; readonly maxMs: number };
  /** A spare vassal process to use instead of forking (emperor/spares.ts), if one is ready. */
  readonly takeSpare: () => ChildProcess | undefined;
  /** A vassal's boot ended (ready, or its process exited first): the CPU is free again. */
  readonly onBootEnded: () => void;
  /** Called once the vassal is gone for good (file deleted and process exited). */
  readonly onGone: (vassal: Vassal) => void;
  /** Lifecycle events kept (`restartHistory`). */
  readonly historySize: number;
}

/** What a vassal's file asks for, validated. */
interface Desired {
  readonly file: string;
  /** Parsed and validated here, once: the vassal runs it as it is (no YAML or ajv there). */
  readonly config: ContainerConfig;
  /** Content hash of the text and the defaults: equal keys = the same config. */
  readonly key: string;
}

export type VassalState =
  | 'starting'
  | 'serving'
  | 'reloading'
  | 'backoff'
  | 'invalid'
  | 'stopping'
  | 'stopped'
  | 'gone';

/**
 * The variables a vassal file is interpolated with on top of the environment: `${VASSAL}` (the
 * file name without its extension) and `${VASSAL_FILE}` (the file name).
 */
export function vassalVars(name: string): Record<string, string> {
  return { VASSAL: name.replace(/\.ya?ml$/, ''), VASSAL_FILE: name };
}

/** Loyal: served a request and stayed up this long (then a death is respawned at once). */
const LOYAL_AFTER_MS = 1000;

type Waiter = (result: { ok: boolean; error?: string }) => void;

export class Vassal {
  readonly name: string;
  file: string;
  readonly #ctx: VassalContext;
  readonly #backoff: Backoff;
  #desired: Desired | undefined;
  /** The key of the last invalid text reported (reported once per content). */
  #invalidKey: string | undefined;
  #removed = false;
  /** Stopped by an operator (`stop NAME`): stays down until `start NAME` or a new text. */
  #held = false;
  #proc: VassalProcess | undefined;
  /** The key the process serves (or is starting with). */
  #runningKey: string | undefined;
  #reloadingKey: string | undefined;
  /** A reload that failed: not retried until the text changes again. */
  #failedKey: string | undefined;
  #forceReload: string | undefined;
  /** Asked for a reload that has not been sent yet (`reload()` during another reload). */
  #pendingWaiters: Waiter[] = [];
  /** Waiting for the reload in flight. */
  #reloadWaiters: Waiter[] = [];
  #backoffTimer: NodeJS.Timeout | undefined;
  #backoffUntil: number | undefined;
  /** The key that crashed last: a different one (a fix) restarts a backing-off vassal at once. */
  #crashedKey: string | undefined;
  #loyal = false;
  #requests = 0;
  #generation = 0;
  #workers: readonly number[] = [];
  #listeners: readonly { protocol: string; address: string }[] = [];
  #spawns = 0;
  #lastError: string | undefined;
  readonly #history: History;
  #firstSpawnAt: number | undefined;
  #loyalAt: number | undefined;
  /** Why the emperor killed the running process (heartbeat, ready-timeout), if it did. */
  #killReason: string | undefined;
  /** Process exits by reason (crash, heartbeat, ready-timeout, stop). */
  readonly #exits = new Map<string, number>();
  /** Unexpected exits in a row (reset by a loyal run), and when the run of them began. */
  #failures = 0;
  #firstFailureAt: number | undefined;
  #lastFailureAt: number | undefined;

  constructor(name: string, file: string, ctx: VassalContext) {
    this.name = name;
    this.file = file;
    this.#ctx = ctx;
    this.#history = new History(ctx.historySize);
    this.#backoff = new Backoff({
      firstMs: ctx.backoff.firstMs,
      maxMs: ctx.backoff.maxMs,
      minServingMs: LOYAL_AFTER_MS,
    });
  }

  get state(): VassalState {
    if (this.#proc === undefined) {
      if (this.#removed) return 'gone';
      if (this.#held) return 'stopped';
      if (this.#backoffTimer !== undefined) return 'backoff';
      return this.#desired === undefined ? 'invalid' : 'starting';
    }
    if (this.#removed || this.#held || this.#stopping) return 'stopping';
    if (this.#proc.readyAt === undefined) return 'starting';
    return this.#reloadingKey === undefined ? 'serving' : 'reloading';
  }

  #stopping = false;
  #mtimeMs: number | undefined;

  /** The scan found the file (maybe changed): validate, then act. */
  update(
    found: VassalFile,
    defaults: { file: string; text: string; hash: string } | undefined,
  ): void {
    this.file = found.file;
    const touched = this.#mtimeMs !== undefined && found.mtimeMs !== this.#mtimeMs;
    this.#mtimeMs = found.mtimeMs;
    const key = defaults === undefined ? found.hash : `${found.hash}+${defaults.hash}`;
    if (this.#removed) {
      // Deleted, then back before the old process was gone: it comes back.
      this.#removed = false;
    }
    if (touched && key === this.#desired?.key && this.#backoffTimer !== undefined && !this.#held) {
      // `touch` on a throttled vassal (its app was fixed): retry now, as uWSGI operators do.
      // (A changed text is handled below: it is validated first, then it is what starts.)
      this.#ctx.log.info(
        { vassal: this.name, event: 'retry' },
        'vassal file touched: retrying now',
      );
      this.start();
      return;
    }
    if (key === this.#desired?.key || key === this.#invalidKey) return;
    let config: ContainerConfig;
    try {
      if (found.error !== undefined) {
        throw new ContainerError('UWSGI_ERR_CONFIG_INVALID', found.error, {
          issues: [{ file: found.file, line: 0, col: 0, path: '', message: found.error }],
        });
      }
      config = parseConfig(found.text, {
        file: found.file,
        env: { ...this.#ctx.env, ...vassalVars(this.name) },
        ...(defaults === undefined
          ? {}
          : { defaults: { file: defaults.file, text: defaults.text } }),
      });
    } catch (err) {
      this.#invalidKey = key;
      const issues = err instanceof ContainerError ? err.issues : undefined;
      this.#lastError = issues?.[0]?.message ?? (err as Error).message;
      this.#record('invalid', this.#lastError);
      this.#ctx.log.error(
        {
          vassal: this.name,
          event: 'invalid',
          file: found.file,
          issues,
          serving: this.#proc?.readyAt === undefined ? false : this.#runningKey !== undefined,
        },
        this.#proc === undefined
          ? 'vassal config invalid: not started'
          : 'vassal config invalid: the running vassal keeps serving its last good config',
      );
      return;
    }
    this.#invalidKey = undefined;
    this.#failedKey = undefined;
    const first = this.#desired === undefined;
    this.#desired = { file: found.file, config, key };
    this.#held = false;
    if (!first) this.#record('changed');
    if (this.#backoffTimer !== undefined && key !== this.#crashedKey) {
      // A fixed file: no reason to wait out the throttle.
      this.#cancelBackoff();
    }
    this.#reconcile();
  }

  /** The file is gone: stop gracefully (then the group is killed), then forget the vassal. */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    this.#desired = undefined;
    this.#invalidKey = undefined;
    this.#record('removed');
    this.#reconcile();
  }

  /** Operator `stop NAME` (and the emperor stopping): down until `start()` or a new text. */
  stop(timeoutMs = this.#ctx.mercyMs): Promise<void> {
    this.#held = true;
    this.#cancelBackoff();
    this.#stopProcess(timeoutMs);
    return this.#proc?.exited.then(() => undefined) ?? Promise.resolve();
  }

  /** Operator `start NAME`: undoes `stop()`; a backing-off vassal spawns now. */
  start(): void {
    this.#held = false;
    this.#cancelBackoff();
    this.#reconcile();
  }

  /** Graceful reload with the current text (SIGHUP, `reload NAME`); resolves with the result. */
  reload(trigger: string): Promise<{ ok: boolean; error?: string }> {
    if (this.#proc === undefined || this.#desired === undefined || this.#stopping) {
      return Promise.resolve({ ok: false, error: `vassal ${this.name} is ${this.state}` });
    }
    return new Promise((resolve) => {
      this.#pendingWaiters.push(resolve);
      this.#forceReload = trigger;
      this.#reconcile();
    });
  }

  reopenLogs(): void {
    this.#proc?.send({ type: 'reopen-logs' });
  }

  /** Checked every second by the emperor: a silent or never-ready vassal is killed. */
  check(now: number): void {
    const proc = this.#proc;
    if (proc === undefined || this.#stopping) return;
    if (proc.readyAt === undefined && now - proc.startedAt > this.#ctx.readyTimeoutMs) {
      this.#lastError = `not ready within ${this.#ctx.readyTimeoutMs} ms`;
      this.#ctx.log.error(
        { vassal: this.name, event: 'ready-timeout', vassalPid: proc.pid },
        'vassal never became ready: killed',
      );
      this.#killReason = 'ready-timeout';
      proc.killGroup();
    } else if (proc.readyAt !== undefined && now - proc.lastHeard > this.#ctx.heartbeatTimeoutMs) {
      this.#killReason = 'heartbeat';
      this.#lastError = `no heartbeat for ${now - proc.lastHeard} ms`;
      this.#ctx.log.error(
        { vassal: this.name, event: 'heartbeat', vassalPid: proc.pid },
        'vassal heartbeat lost: killed',
      );
      proc.killGroup();
    }
  }

  /** Whether a process of this vassal is alive (the emperor waits for none before exiting). */
  get exited(): Promise<unknown> {
    return this.#proc?.exited ?? Promise.resolve();
  }

  status(): Record<string, unknown> {
    const proc = this.#proc;
    return {
      name: this.name,
      file: this.file,
      state: this.state,
      pid: proc?.pid ?? null,
      generation: this.#generation,
      workers: this.#workers,
      listeners: this.#listeners,
      loyal: this.#loyal,
      requests: this.#requests,
      spawns: this.#spawns,
      since: proc === undefined ? null : new Date(proc.readyAt ?? proc.startedAt).toISOString(),
      ...(this.#backoffUntil === undefined
        ? {}
        : { throttledUntil: new Date(this.#backoffUntil).toISOString() }),
      ...(this.#lastError === undefined ? {} : { lastError: this.#lastError }),
      history: this.#history.list(),
    };
  }

  /** What the stats document and the metrics say of this vassal. */
  facts(fileModifiedAt: number | null): VassalFacts {
    const proc = this.#proc;
    return {
      name: this.name,
      file: this.file,
      state: this.state,
      pid: proc?.pid ?? null,
      generation: this.#generation,
      workers: this.#workers,
      requests: this.#requests,
      loyal: this.#loyal,
      spawns: this.#spawns,
      firstSpawnAt: this.#firstSpawnAt ?? null,
      startedAt: proc?.startedAt ?? null,
      readyAt: proc?.readyAt ?? null,
      loyalAt: this.#loyal ? (this.#loyalAt ?? null) : null,
      lastHeard: proc?.lastHeard ?? null,
      fileModifiedAt,
      throttledUntil: this.#backoffUntil ?? null,
      failures: this.#failures,
      firstFailureAt: this.#firstFailureAt ?? null,
      lastFailureAt: this.#lastFailureAt ?? null,
      lastError: this.#lastError ?? null,
      exits: Object.fromEntries(this.#exits),
      history: this.#history.list(),
    };
  }

  /** Ends a throttle: no timer, no `throttledUntil`. */
  #cancelBackoff(): void {
    clearTimeout(this.#backoffTimer);
    this.#backoffTimer = undefined;
    this.#backoffUntil = undefined;
  }

  #record(event: string, detail?: string): void {
    this.#history.record(event, detail, this.#proc?.pid);
  }

  /** The one place that acts: compares what the file wants with what runs. */
  #reconcile(): void {
    const proc = this.#proc;
    if (this.#removed || this.#held) {
      if (proc !== undefined) this.#stopProcess(this.#ctx.mercyMs);
      else if (this.#removed) this.#ctx.onGone(this);
      this.#cancelBackoff();
      return;
    }
    const desired = this.#desired;
    if (desired === undefined) return;
    if (proc === undefined) {
      if (this.#backoffTimer === undefined) this.#spawn(desired);
      return;
    }
    if (this.#stopping || proc.readyAt === undefined || this.#reloadingKey !== undefined) return;
    const changed = desired.key !== this.#runningKey && desired.key !== this.#failedKey;
    if (!changed && this.#forceReload === undefined) return;
    const trigger = changed ? 'config change' : (this.#forceReload ?? 'operator');
    this.#forceReload = undefined;
    this.#reloadingKey = desired.key;
    // A config change satisfies a pending forced reload too: a new generation either way.
    this.#reloadWaiters.push(...this.#pendingWaiters);
    this.#pendingWaiters = [];
    this.#ctx.log.info(
      { vassal: this.name, event: 'reloading', trigger, vassalPid: proc.pid },
      'vassal reloading',
    );
    proc.send({ type: 'reload', trigger, file: desired.file, config: desired.config });
  }

  #spawn(desired: Desired): void {
    const proc = new VassalProcess({
      entry: this.#ctx.entry,
      name: this.name,
      env: this.#ctx.env,
      ...(this.#ctx.stdout === undefined ? {} : { stdout: this.#ctx.stdout }),
      spare: this.#ctx.takeSpare(),
      onMessage: (message) => this.#onMessage(proc, message),
      onExit: (exit) => this.#onExit(proc, exit),
    });
    this.#proc = proc;
    this.#stopping = false;
    this.#runningKey = desired.key;
    this.#failedKey = undefined;
    this.#loyal = false;
    this.#requests = 0;
    this.#spawns++;
    this.#firstSpawnAt ??= Date.now();
    this.#killReason = undefined;
    this.#record('spawned', `pid ${proc.pid}`);
    this.#ctx.log.info(
      { vassal: this.name, event: 'spawned', vassalPid: proc.pid, file: desired.file },
      'vassal spawned',
    );
    proc.send({ type: 'start', name: this.name, file: desired.file, config: desired.config });
  }

  #stopProcess(timeoutMs: number): void {
    const proc = this.#proc;
    if (proc === undefined) return;
    if (!this.#stopping) {
      this.#ctx.log.info(
        { vassal: this.name, event: 'stopping', vassalPid: proc.pid, timeoutMs },
        'vassal stopping',
      );
    }
    this.#stopping = true;
    proc.stop(timeoutMs);
    this.#settleReloads({ ok: false, error: 'the vassal is stopping' });
  }

  /** Answers the waiters of the reload in flight (and, with `pending`, those not sent yet). */
  #settleReloads(result: { ok: boolean; error?: string }, pending = false): void {
    const waiters = this.#reloadWaiters;
    this.#reloadWaiters = [];
    if (pending) {
      waiters.push(...this.#pendingWaiters);
      this.#pendingWaiters = [];
      this.#forceReload = undefined;
    }
    for (const waiter of waiters) waiter(result);
  }

  #onMessage(proc: VassalProcess, message: VassalMessage): void {
    if (proc !== this.#proc) return;
    switch (message.type) {
      case 'ready':
        proc.readyAt = Date.now();
        this.#ctx.onBootEnded();
        this.#generation = message.generation;
        this.#workers = message.workers;
        this.#listeners = message.listeners;
        this.#lastError = undefined;
        this.#record('ready', `generation ${message.generation}`);
        this.#ctx.log.info(
          {
            vassal: this.name,
            event: 'ready',
            vassalPid: proc.pid,
            listeners: message.listeners,
            workers: message.workers,
            bootMs: proc.readyAt - proc.startedAt,
          },
          'vassal ready',
        );
        this.#reconcile();
        return;
      case 'heartbeat':
        this.#counters(message);
        return;
      case 'reloaded': {
        this.#counters(message);
        if (this.#reloadingKey === undefined) return; // its own SIGHUP: same config, new workers
        this.#runningKey = this.#reloadingKey;
        this.#failedKey = undefined;
        this.#reloadingKey = undefined;
        this.#lastError = undefined;
        this.#record('reloaded', `generation ${message.generation}`);
        this.#ctx.log.info(
          {
            vassal: this.name,
            event: 'reloaded',
            vassalPid: proc.pid,
            generation: message.generation,
            workers: message.workers,
          },
          'vassal reloaded',
        );
        this.#settleReloads({ ok: true });
        this.#reconcile();
        return;
      }
      case 'reload-failed':
        if (this.#reloadingKey === undefined) return; // its own SIGHUP; its master logged why
        this.#failedKey = this.#reloadingKey;
        this.#reloadingKey = undefined;
        this.#lastError = message.issues?.[0]?.message ?? message.error.message;
        this.#record('reload-failed', this.#lastError);
        this.#ctx.log.error(
          {
            vassal: this.name,
            event: 'reload-failed',
            vassalPid: proc.pid,
            error: message.error,
            issues: message.issues,
          },
          'vassal reload failed: the previous generation keeps serving',
        );
        this.#settleReloads({ ok: false, error: message.error.message });
        this.#reconcile();
        return;
      case 'boot-failed':
        this.#lastError = message.issues?.[0]?.message ?? message.error.message;
        this.#ctx.log.error(
          {
            vassal: this.name,
            event: 'boot-failed',
            vassalPid: proc.pid,
            error: message.error,
            issues: message.issues,
          },
          'vassal failed to start',
        );
        return;
    }
  }

  #counters(message: { generation: number; requests: number; workers: readonly number[] }): void {
    this.#generation = message.generation;
    this.#workers = message.workers;
    this.#requests = message.requests;
    if (!this.#loyal && message.requests > 0) {
      this.#loyal = true;
      this.#loyalAt = Date.now();
      this.#ctx.log.info(
        { vassal: this.name, event: 'loyal' },
        'vassal loyal: served its first request',
      );
    }
  }

  #onExit(proc: VassalProcess, exit: VassalExit): void {
    if (proc.readyAt === undefined) this.#ctx.onBootEnded();
    if (proc !== this.#proc) return;
    this.#proc = undefined;
    this.#reloadingKey = undefined;
    this.#workers = [];
    const wasStopping = this.#stopping;
    this.#stopping = false;
    this.#settleReloads({ ok: false, error: 'the vassal exited' }, true);
    const reason = wasStopping ? 'stop' : (this.#killReason ?? 'crash');
    this.#exits.set(reason, (this.#exits.get(reason) ?? 0) + 1);
    if (wasStopping) {
      this.#history.record('stopped', undefined, proc.pid);
      this.#ctx.log.info(
        {
          vassal: this.name,
          event: 'stopped',
          vassalPid: proc.pid,
          code: exit.code,
          signal: exit.signal,
        },
        'vassal stopped',
      );
      this.#reconcile();
      return;
    }
    const now = Date.now();
    const serving = proc.readyAt === undefined ? undefined : now - proc.readyAt;
    const delay = this.#backoff.next(now - proc.startedAt, this.#loyal ? serving : undefined);
    const how =
      exit.error !== undefined
        ? `fork failed: ${exit.error}`
        : exit.signal === null
          ? `code ${exit.code}`
          : `signal ${exit.signal}`;
    this.#lastError ??= `exited with ${how}`;
    this.#history.record(
      'crashed',
      this.#killReason === undefined ? how : `${how} (${this.#killReason})`,
      proc.pid,
    );
    if (delay > 0) {
      this.#failures++;
      this.#firstFailureAt ??= now;
      this.#lastFailureAt = now;
    } else {
      this.#failures = 0;
      this.#firstFailureAt = undefined;
    }
    this.#ctx.log.error(
      {
        vassal: this.name,
        event: 'crashed',
        vassalPid: proc.pid,
        code: exit.code,
        signal: exit.signal,
        loyal: this.#loyal,
        uptimeMs: now - proc.startedAt,
      },
      'vassal exited unexpectedly',
    );
    this.#crashedKey = this.#runningKey;
    if (delay > 0) {
      this.#backoffUntil = now + delay;
      this.#record('throttled', `${delay} ms`);
      this.#ctx.log.warn(
        {
          vassal: this.name,
          event: 'throttled',
          delayMs: delay,
          until: new Date(this.#backoffUntil).toISOString(),
        },
        'vassal throttled',
      );
      this.#backoffTimer = setTimeout(() => {
        this.#cancelBackoff();
        this.#reconcile();
      }, delay);
    }
    this.#reconcile();
  }
}
