/**
 * The emperor's own options: the `emperor:` map of its config file (`uwsgi-ts emperor --config
 * FILE`), with defaults, validated by its JSON Schema. Vassal files are container configs
 * (config/); this is only what the emperor itself needs. docs/emperor.md has every key.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Ajv } from 'ajv';
import { checkStatsAddresses } from '../config/checks.ts';
import type { ConfigIssue } from '../config/issues.ts';
import { formatIssue } from '../config/issues.ts';
import { Session } from '../config/session.ts';
import { ContainerError } from '../shared/errors.ts';
import type { LogConfig } from '../shared/log.ts';

export interface EmperorConfig {
  /** Directories or globs (wildcards in the last segment only), absolute. */
  readonly watch: readonly string[];
  /** A partial container config merged under every vassal file (absolute path). */
  readonly vassalDefaults?: string;
  /** Control socket for `uwsgi-ts emperor status|reload NAME|stop NAME|start NAME`. */
  readonly control?: string;
  readonly pidfile?: string;
  /** Safety-net rescan of every watched directory (ms). Default 2000. */
  readonly rescanMs: number;
  /** Quiet time after the last file-system event before a scan (ms). Default 50. */
  readonly debounceMs: number;
  /** Graceful stop of a vassal before its process group is SIGKILLed (ms). Default 30000. */
  readonly mercyMs: number;
  /** A vassal silent this long is killed and respawned (ms). Default 30000. */
  readonly heartbeatTimeoutMs: number;
  /** A vassal that does not report ready within this is killed (ms). Default 60000. */
  readonly readyTimeoutMs: number;
  readonly backoff: { readonly firstMs: number; readonly maxMs: number };
  /** Largest vassal or defaults file read (bytes); a larger one is reported, not read. 1 MiB. */
  readonly maxFileBytes: number;
  /** Vassal processes kept booted and waiting for a config (emperor/spares.ts). Default 1. */
  readonly spareVassals: number;
  readonly log: LogConfig;
  /** Stats server address (`http://` prefix: over HTTP), unix paths absolute. Off when absent. */
  readonly stats?: string;
  /** Prometheus endpoint address (HTTP). Off when absent. */
  readonly metrics?: string;
  /** Lifecycle events kept per vassal. Default 10. */
  readonly restartHistory: number;
}

const ms = (deflt: number, minimum = 0) => ({ type: 'integer', minimum, default: deflt }) as const;

/** The JSON Schema of the `emperor:` map (the single source of its defaults). */
export const emperorSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    watch: { type: 'array', items: { type: 'string', minLength: 1 }, default: [] },
    vassalDefaults: { type: 'string', minLength: 1 },
    control: { type: 'string', minLength: 1 },
    pidfile: { type: 'string', minLength: 1 },
    rescanMs: ms(2000, 100),
    debounceMs: ms(50),
    mercyMs: ms(30_000),
    heartbeatTimeoutMs: ms(30_000, 1000),
    readyTimeoutMs: ms(60_000, 100),
    spareVassals: { type: 'integer', minimum: 0, maximum: 8, default: 1 },
    maxFileBytes: { type: 'integer', minimum: 1024, maximum: 67_108_864, default: 1_048_576 },
    stats: { type: 'string', minLength: 1 },
    metrics: { type: 'string', minLength: 1 },
    restartHistory: { type: 'integer', minimum: 1, maximum: 1000, default: 10 },
    backoff: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: { firstMs: ms(500, 1), maxMs: ms(30_000, 1) },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: {
          enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
          default: 'info',
        },
        format: { enum: ['json', 'pretty', 'auto'], default: 'auto' },
        access: { type: 'boolean', default: false },
        file: { type: 'string', minLength: 1 },
      },
    },
  },
} as const;

/** Overrides from the command line (paths relative to the cwd). */
export interface EmperorArgs {
  readonly watch?: readonly string[];
  readonly vassalDefaults?: string;
  readonly control?: string;
}

/** The whole file: one map under `emperor:` (so errors point at `/emperor/...`). */
const fileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['emperor'],
  properties: { emperor: emperorSchema },
} as const;

/**
 * The emperor's options: the config file's `emperor:` map (if any; `${VAR}` interpolated from
 * `env` as in container configs, its relative paths against its directory) under the
 * command-line arguments (relative to `cwd`).
 * @throws ContainerError `UWSGI_ERR_CONFIG_INVALID` with `issues` (`file:line:col`).
 */
export async function loadEmperorConfig(
  file: string | undefined,
  args: EmperorArgs,
  cwd: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<EmperorConfig> {
  let data: Record<string, unknown> = { emperor: {} };
  let base = cwd;
  const name = file ?? '<arguments>';
  let session: Session | undefined;
  if (file !== undefined) {
    const path = resolve(cwd, file);
    base = dirname(path);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      throw invalid(name, [
        issue(name, `cannot read the file (${(cause as NodeJS.ErrnoException).code ?? cause})`),
      ]);
    }
    session = new Session(text, file, {
      what: 'emperor config',
      empty: 'the file is empty: an emperor config is one map under the key "emperor:"',
      spellings: {},
    });
    const loaded = session.load(env);
    if (loaded === undefined) session.fail();
    data = loaded as Record<string, unknown>;
  }
  const validate = new Ajv({
    allErrors: true,
    useDefaults: true,
    strict: true,
    verbose: true,
  }).compile(fileSchema);
  if (!validate(data)) {
    if (session === undefined) throw invalid(name, [issue(name, 'invalid arguments')]);
    for (const err of validate.errors ?? []) session.schemaIssue(err);
    session.fail();
  }
  const raw = data.emperor as Omit<EmperorConfig, 'watch'> & { watch: string[] };
  const at = (p: string | undefined, from: string) =>
    p === undefined ? undefined : resolve(from, p);
  const watch = [
    ...raw.watch.map((w) => resolve(base, w)),
    ...(args.watch ?? []).map((w) => resolve(cwd, w)),
  ];
  const vassalDefaults = at(args.vassalDefaults, cwd) ?? at(raw.vassalDefaults, base);
  const control = at(args.control, cwd) ?? at(raw.control, base);
  const pidfile = at(raw.pidfile, base);
  const logFile = at(raw.log.file, base);
  // Only a config file sets them (there is no session without one).
  const operator = session === undefined ? {} : checkStatsAddresses(session, raw, base, '/emperor');
  session?.failIfAny();
  if (watch.length === 0) {
    throw invalid(name, [
      issue(name, 'nothing to watch: give a directory or glob (or emperor.watch)'),
    ]);
  }
  return Object.freeze({
    ...raw,
    watch,
    log: logFile === undefined ? raw.log : { ...raw.log, file: logFile },
    ...(vassalDefaults === undefined ? {} : { vassalDefaults }),
    ...(control === undefined ? {} : { control }),
    ...(pidfile === undefined ? {} : { pidfile }),
    ...operator,
  });
}

function issue(file: string, message: string): ConfigIssue {
  return { file, line: 0, col: 0, path: '', message };
}

function invalid(file: string, issues: ConfigIssue[]): ContainerError {
  return new ContainerError(
    'UWSGI_ERR_CONFIG_INVALID',
    `invalid emperor config ${file}:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
    { issues },
  );
}
