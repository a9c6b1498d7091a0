/**
 * `startEmperor(config)`: watches the config directories and runs one vassal (a supervised
 * container: vassal/entry.ts, a master and its workers) per file, as `uwsgi-ts emperor` does.
 * The emperor never loads an app, parses a request or binds a listener. Signals stay with the
 * caller (the CLI maps them onto `reloadAll()`, `stop()` and `reopenLogs()`). docs/emperor.md
 * has the process model.
 */
import { statSync, writeFileSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { prepareConfigValidator } from '../config/load.ts';
import { createLogger, flushLogger, type Logger, reopenLogFiles } from '../shared/log.ts';
import { emperorDocument } from '../stats/document.ts';
import { emperorMetrics } from '../stats/metrics.ts';
import { listenMetrics, listenStats, type OperatorEndpoint } from '../stats/server.ts';
import { type ControlServer, listenControl, removePidfile } from '../supervisor/control.ts';
import type { EmperorConfig } from './config.ts';
import { Scanner, type ScanResult } from './scanner.ts';
import { SPARE_AFTER_BOOT_MS, SparePool } from './spares.ts';
import { Vassal, type VassalContext } from './vassal.ts';

export {
  type EmperorArgs,
  type EmperorConfig,
  emperorSchema,
  loadEmperorConfig,
} from './config.ts';
export { vassalVars } from './vassal.ts';

export interface EmperorOptions {
  /** Environment of the vassals (and of their `${VAR}` interpolation); default `process.env`. */
  readonly env?: NodeJS.ProcessEnv;
  /** Where the emperor's and the vassals' logs go; default `process.stdout` (inherited). */
  readonly stdout?: NodeJS.WritableStream & { readonly isTTY?: boolean | undefined };
  /** Absolute path of `vassal/entry.js`; default: beside this module in `dist`. */
  readonly vassalEntry?: string;
}

export interface Emperor {
  readonly pid: number;
  readonly logger: Logger;
  /** Every vassal's state, pid, counters and last events. */
  status(): { pid: number; spares: number; vassals: Record<string, unknown>[] };
  /** Reloads every vassal, one after another (SIGHUP). */
  reloadAll(trigger?: string): Promise<void>;
  /** Graceful stop of every vassal (`mercyMs`, or less), then the emperor's own resources. */
  stop(timeoutMs?: number): Promise<void>;
  reopenLogs(): void;
  /** The stats server's document (uWSGI's emperor fields: `vassals[]`, `blacklist[]`). */
  statsDocument(): Record<string, unknown>;
  /** The Prometheus text the metrics endpoint serves. */
  metrics(): Promise<string>;
  readonly stopped: Promise<void>;
}

/** How often vassals' readiness and heartbeats are checked. */
const CHECK_MS = 1000;

/**
 * Scans the watched directories, starts a vassal for each valid file, then watches.
 * @throws ContainerError `UWSGI_ERR_EMPEROR_WATCH` (a directory or the defaults cannot be
 *   read), `UWSGI_ERR_LISTEN` (the control socket); nothing is left running.
 */
export async function startEmperor(
  config: EmperorConfig,
  options: EmperorOptions = {},
): Promise<Emperor> {
  const log = createLogger(config.log, {
    // `log.file` wins over the caller's stdout, as for a master (supervisor/master.ts).
    ...(options.stdout === undefined || config.log.file !== undefined
      ? {}
      : { stdout: options.stdout }),
    sharedOutput: true,
    bindings: { role: 'emperor' },
  });
  const vassals = new Map<string, Vassal>();
  let stopping = false;
  const fork = {
    entry: options.vassalEntry ?? defaultVassalEntry(),
    env: options.env ?? process.env,
    stdout:
      options.stdout === undefined || options.stdout === process.stdout
        ? undefined
        : options.stdout,
  };
  const spares = new SparePool(config.spareVassals, fork, log);
  const ctx: VassalContext = {
    ...fork,
    takeSpare: () => spares.take(),
    onBootEnded: () => spares.schedule(SPARE_AFTER_BOOT_MS),
    log,
    mercyMs: config.mercyMs,
    readyTimeoutMs: config.readyTimeoutMs,
    heartbeatTimeoutMs: config.heartbeatTimeoutMs,
    backoff: config.backoff,
    historySize: config.restartHistory,
    onGone: (vassal) => {
      if (vassals.get(vassal.name) === vassal) vassals.delete(vassal.name);
    },
  };

  const onScan = (result: ScanResult) => {
    if (stopping) return;
    for (const [name, found] of result.files) {
      let vassal = vassals.get(name);
      if (vassal === undefined) {
        vassal = new Vassal(name, found.file, ctx);
        vassals.set(name, vassal);
      }
      vassal.update(found, result.defaults);
    }
    for (const [name, vassal] of vassals) {
      if (!result.files.has(name)) vassal.remove();
    }
  };
  const scanner = new Scanner({
    watch: config.watch,
    ...(config.vassalDefaults === undefined ? {} : { vassalDefaults: config.vassalDefaults }),
    debounceMs: config.debounceMs,
    rescanMs: config.rescanMs,
    maxFileBytes: config.maxFileBytes,
    log,
    onScan,
  });
  const check = setInterval(() => {
    const now = Date.now();
    for (const vassal of vassals.values()) vassal.check(now);
  }, CHECK_MS);

  const status = () => ({
    pid: process.pid,
    spares: spares.size,
    vassals: [...vassals.values()].map((v) => v.status()),
  });
  const vassalFacts = () =>
    [...vassals.values()].map((v) => {
      let modified: number | null = null;
      try {
        modified = statSync(v.file).mtimeMs;
      } catch {
        // Deleted: the vassal is on its way out.
      }
      return v.facts(modified);
    });
  const statsDocument = () =>
    emperorDocument({ watch: config.watch, spares: spares.size, vassals: vassalFacts() });
  const metrics = () => emperorMetrics(vassalFacts());
  const byName = (name: string | undefined): Vassal => {
    if (stopping) throw new Error('the emperor is stopping');
    const vassal = name === undefined ? undefined : vassals.get(name);
    if (vassal === undefined) throw new Error(`no vassal ${JSON.stringify(name ?? '')}`);
    return vassal;
  };
  let reloadingAll: Promise<void> | undefined;
  const reloadAll = (trigger = 'operator'): Promise<void> => {
    reloadingAll ??= (async () => {
      log.info({ event: 'reload-all', trigger, vassals: vassals.size }, 'reloading every vassal');
      // One after another: a host does not boot every app at once.
      for (const vassal of [...vassals.values()]) {
        if (stopping) break;
        await vassal.reload(trigger);
      }
    })().finally(() => {
      reloadingAll = undefined;
    });
    return reloadingAll;
  };

  // Ajv compiles the config schema once (about 65 ms): before the first file, not during it.
  prepareConfigValidator();
  let control: ControlServer | undefined;
  let statsEndpoint: OperatorEndpoint | undefined;
  let metricsEndpoint: OperatorEndpoint | undefined;
  const closeEndpoints = () =>
    Promise.all([statsEndpoint?.close(), metricsEndpoint?.close()]).then(() => undefined);
  try {
    if (config.stats !== undefined) {
      statsEndpoint = await listenStats(config.stats, async () => statsDocument(), log);
    }
    if (config.metrics !== undefined) {
      metricsEndpoint = await listenMetrics(config.metrics, metrics, log);
    }
    await scanner.start();
    if (config.control !== undefined) {
      control = await listenControl(
        config.control,
        {
          status: async () => status(),
          reload: async (name) => {
            if (name === undefined) {
              await reloadAll('control');
              return {};
            }
            const result = await byName(name).reload('control');
            if (!result.ok) throw new Error(result.error);
            return {};
          },
          stop: async (name) => {
            await byName(name).stop();
            return {};
          },
          start: async (name) => {
            byName(name).start();
            return {};
          },
        },
        log,
      );
    }
    if (config.pidfile !== undefined) writeFileSync(config.pidfile, `${process.pid}\n`);
  } catch (err) {
    stopping = true;
    clearInterval(check);
    spares.close();
    await scanner.close();
    control?.close();
    await closeEndpoints();
    await Promise.all([...vassals.values()].map((v) => v.stop(0)));
    throw err;
  }
  // After the first vassals' boot, not during it (two cores are easily saturated).
  spares.schedule();
  log.info(
    {
      event: 'started',
      watch: config.watch,
      vassals: [...vassals.keys()],
      control: config.control,
      ...(statsEndpoint === undefined ? {} : { stats: statsEndpoint.address }),
      ...(metricsEndpoint === undefined ? {} : { metrics: metricsEndpoint.address }),
    },
    'emperor watching',
  );

  let stopPromise: Promise<void> | undefined;
  let onStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    onStopped = resolve;
  });
  return {
    pid: process.pid,
    logger: log,
    status,
    statsDocument,
    metrics,
    reloadAll,
    reopenLogs: () => {
      reopenLogFiles();
      for (const vassal of vassals.values()) vassal.reopenLogs();
    },
    stopped,
    stop(timeoutMs = config.mercyMs) {
      stopping = true;
      const all = [...vassals.values()].map((v) => v.stop(timeoutMs));
      stopPromise ??= (async () => {
        log.info({ event: 'stopping', vassals: vassals.size, timeoutMs }, 'emperor stopping');
        clearInterval(check);
        control?.close();
        spares.close();
        await scanner.close();
        await Promise.all(all);
        await closeEndpoints();
        removePidfile(config.pidfile);
        log.info({ event: 'stopped' }, 'emperor stopped');
        flushLogger(log);
        onStopped();
      })();
      return stopPromise;
    },
  };
}

/** `vassal/entry.js` in `dist` (from the TypeScript sources too: Node 20 cannot fork a `.ts`). */
function defaultVassalEntry(): string {
  const here = fileURLToPath(import.meta.url);
  const entry = join(dirname(here), '..', 'vassal', 'entry.js');
  if (here.endsWith('.ts')) {
    return entry.replace(`${sep}src${sep}vassal${sep}`, `${sep}dist${sep}vassal${sep}`);
  }
  return entry;
}
