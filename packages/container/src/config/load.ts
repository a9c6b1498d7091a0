/**
 * readConfig / parseConfig: YAML text -> `${VAR}` interpolation -> JSON Schema (ajv, defaults
 * filled) -> semantic checks -> paths resolved -> deep-frozen `ContainerConfig`.
 *
 * Every problem becomes a `ConfigIssue` with the `file:line:col` of the YAML node it concerns,
 * and all of them are reported together in one `ContainerError` (`UWSGI_ERR_CONFIG_INVALID`):
 * a config is fixed in one edit, not one error per run. Nothing here listens, imports apps or
 * touches the network; the rest of the container only ever sees the frozen result.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Ajv, type ValidateFunction } from 'ajv';
import { ContainerError } from '../shared/errors.ts';
import { classifyListenAddress } from '../transport/address.ts';
import {
  checkAppFiles,
  checkListeners,
  checkMounts,
  checkStatsAddresses,
  type RawConfig,
} from './checks.ts';
import { type ConfigIssue, formatIssue } from './issues.ts';
import { configSchema } from './schema.ts';
import { Session } from './session.ts';
import type { ContainerConfig } from './types.ts';

export interface ParseConfigOptions {
  /**
   * The file the text came from, as the user named it: used verbatim in issues
   * (`conf.yaml:3:11`), made absolute for `ContainerConfig.file`, and its directory is the base
   * of relative `address` and `app` paths. Default: none (`<config>` in issues, base = `cwd`).
   */
  readonly file?: string;
  /** Variables for `${VAR}` interpolation. Default: `process.env`. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Directory that a relative `file` (or, without a file, relative paths) resolve against. Default: `process.cwd()`. */
  readonly cwd?: string;
  /**
   * A partial config merged *under* the file (the emperor's `vassalDefaults`): interpolated
   * with the same `env`, then maps merge key by key and any other value of the file wins.
   * Its issues are reported against `defaults.file`. Default: none.
   */
  readonly defaults?: { readonly text: string; readonly file: string };
  /** Also require every mount's `app` to be a readable file (`uwsgi-ts check`). Default off. */
  readonly checkApps?: boolean;
}

export type ReadConfigOptions = Omit<ParseConfigOptions, 'file'>;

let compiled: ValidateFunction | undefined;

/**
 * Compiles the config schema now rather than at the first `parseConfig` (the emperor does, so
 * the first vassal file it validates is as quick as the next).
 */
export function prepareConfigValidator(): void {
  validator();
}

/** The schema is compiled on first use, once per process (ajv compiles to JS; ~ms, not per file). */
function validator(): ValidateFunction {
  if (compiled === undefined) {
    const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, verbose: true });
    compiled = ajv.compile(configSchema);
  }
  return compiled;
}

/**
 * Reads and validates a YAML config file.
 *
 * @throws {ContainerError} `UWSGI_ERR_CONFIG_INVALID` with `issues` (also when the file cannot
 *   be read: one issue without a position, `cause` = the fs error).
 */
export async function readConfig(
  file: string,
  options: ReadConfigOptions = {},
): Promise<ContainerConfig> {
  let text: string;
  try {
    text = await readFile(resolve(options.cwd ?? process.cwd(), file), 'utf8');
  } catch (cause) {
    const reason = (cause as NodeJS.ErrnoException).code ?? (cause as Error).message;
    const issue: ConfigIssue = {
      file,
      line: 0,
      col: 0,
      path: '',
      message: `cannot read the file (${reason})`,
    };
    throw new ContainerError('UWSGI_ERR_CONFIG_INVALID', `invalid config: ${formatIssue(issue)}`, {
      cause,
      issues: [issue],
    });
  }
  return parseConfig(text, { ...options, file });
}

/**
 * Validates config text. Same result and errors as `readConfig`.
 *
 * @throws {ContainerError} `UWSGI_ERR_CONFIG_INVALID` with `issues`.
 */
export function parseConfig(text: string, options: ParseConfigOptions = {}): ContainerConfig {
  const cwd = options.cwd ?? process.cwd();
  const absFile = options.file === undefined ? undefined : resolve(cwd, options.file);
  const session = new Session(text, options.file ?? '<config>');
  const env = options.env ?? process.env;
  let data = session.load(env);
  if (data === undefined) session.fail();
  if (options.defaults !== undefined) {
    const defaults = new Session(options.defaults.text, options.defaults.file);
    const under = defaults.load(env, { partial: true });
    if (under === undefined) defaults.fail();
    if (!isPlainObject(under)) defaults.add(0, '', 'vassal defaults must be a map of config keys');
    defaults.failIfAny();
    data = mergeUnder(under, data);
  }

  const explicitModes = listenersWithKey(data, 'mode');
  if (!validator()(data)) {
    for (const err of validator().errors ?? []) session.schemaIssue(err);
    session.fail();
  }
  const raw = data as unknown as RawConfig;
  const base = absFile === undefined ? cwd : dirname(absFile);
  checkListeners(session, raw, base, explicitModes);
  checkMounts(session, raw);
  const operatorAddresses = checkStatsAddresses(session, raw, base);
  if (options.checkApps === true) checkAppFiles(session, raw, base);
  session.failIfAny();

  const config: ContainerConfig = {
    ...(absFile === undefined ? {} : { file: absFile }),
    listeners: raw.listeners.map((listener) => {
      const address = classifyListenAddress(listener.address, { baseDir: base });
      // Absolute from here on, so the transport never needs to know where the file was.
      return address.kind === 'unix' ? { ...listener, address: resolve(address.path) } : listener;
    }),
    mounts: raw.mounts.map((mount) => ({ ...mount, app: resolve(base, mount.app) })),
    limits: raw.limits,
    log: raw.log.file === undefined ? raw.log : { ...raw.log, file: resolve(base, raw.log.file) },
    transport: raw.transport,
    ...(raw.health === undefined ? {} : { health: raw.health }),
    strictVars: raw.strictVars,
    strictRequestLine: raw.strictRequestLine,
    shutdownTimeoutMs: raw.shutdownTimeoutMs,
    workers: raw.workers,
    readyTimeoutMs: raw.readyTimeoutMs,
    reloadMercyMs: raw.reloadMercyMs,
    ...(raw.pidfile === undefined ? {} : { pidfile: resolve(base, raw.pidfile) }),
    ...(raw.control === undefined ? {} : { control: resolve(base, raw.control) }),
    ...(raw.touchReload === undefined ? {} : { touchReload: resolve(base, raw.touchReload) }),
    ...operatorAddresses,
    restartHistory: raw.restartHistory,
    env: raw.env,
  };
  return deepFreeze(config);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `over` on top of `under`: maps merge key by key, any other value of `over` wins. */
function mergeUnder(under: unknown, over: unknown): unknown {
  if (!isPlainObject(under) || !isPlainObject(over)) return over === undefined ? under : over;
  const out: Record<string, unknown> = { ...under };
  for (const [key, value] of Object.entries(over)) out[key] = mergeUnder(under[key], value);
  return out;
}

/** Indexes of listeners whose YAML sets `key` (before defaults are filled in). */
function listenersWithKey(data: unknown, key: string): ReadonlySet<number> {
  const listeners = (data as { listeners?: unknown } | null)?.listeners;
  const found = new Set<number>();
  if (!Array.isArray(listeners)) return found;
  listeners.forEach((listener, index) => {
    if (listener !== null && typeof listener === 'object' && key in listener) found.add(index);
  });
  return found;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
