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
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import {
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  parseDocument,
  Scalar,
  visit,
} from 'yaml';
import { ContainerError } from '../shared/errors.ts';
import { classifyListenAddress } from '../transport/address.ts';
import { checkListeners, checkMounts, type IssueSink, type RawConfig } from './checks.ts';
import { interpolate, retype } from './interpolate.ts';
import { type ConfigIssue, formatIssue } from './issues.ts';
import { configSchema } from './schema.ts';
import { didYouMean, UWSGI_SPELLINGS } from './suggest.ts';
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
}

export type ReadConfigOptions = Omit<ParseConfigOptions, 'file'>;

/**
 * yaml's own default. An alias bomb ("billion laughs": each level aliases the previous one
 * ten times) stays a few hundred bytes of text but expands exponentially in `toJS()`; yaml
 * counts alias expansions against this and throws instead. A real config needs a handful.
 */
const MAX_ALIAS_COUNT = 100;

let compiled: ValidateFunction | undefined;

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
    shutdownTimeoutMs: raw.shutdownTimeoutMs,
    workers: raw.workers,
    readyTimeoutMs: raw.readyTimeoutMs,
    reloadMercyMs: raw.reloadMercyMs,
    ...(raw.pidfile === undefined ? {} : { pidfile: resolve(base, raw.pidfile) }),
    ...(raw.control === undefined ? {} : { control: resolve(base, raw.control) }),
    ...(raw.touchReload === undefined ? {} : { touchReload: resolve(base, raw.touchReload) }),
    env: raw.env,
  };
  return deepFreeze(config);
}

/** Collects issues for one text and maps JSON Pointers back to YAML positions. */
class Session implements IssueSink {
  readonly #text: string;
  readonly #file: string;
  readonly #lines = new LineCounter();
  readonly #issues: ConfigIssue[] = [];
  #doc: Document.Parsed | undefined;

  constructor(text: string, file: string) {
    this.#text = text;
    this.#file = file;
  }

  /** YAML -> interpolated plain data; undefined when the document itself is unusable. */
  load(env: Readonly<Record<string, string | undefined>>, { partial = false } = {}): unknown {
    // prettyErrors off: positions come from our LineCounter and messages stay one line.
    // uniqueKeys (yaml's default) turns a duplicate key into an error instead of last-wins.
    const doc = parseDocument(this.#text, {
      lineCounter: this.#lines,
      prettyErrors: false,
      uniqueKeys: true,
      version: '1.2',
    });
    this.#doc = doc;
    for (const err of doc.errors) {
      this.add(err.pos[0], '', yamlMessage(err.code, err.message));
    }
    if (doc.errors.length > 0) return undefined;
    if (doc.contents === null) {
      if (partial) return {};
      this.add(0, '', 'the file is empty: a config needs at least listeners and mounts');
      return undefined;
    }
    this.#interpolate(doc, env);
    if (this.#issues.length > 0) return undefined;
    try {
      return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (err) {
      // The only throw toJS has for a document that parsed cleanly is the alias limit.
      this.add(firstAliasOffset(doc), '', `too many alias expansions: ${(err as Error).message}`);
      return undefined;
    }
  }

  /**
   * Replaces `${NAME}` and `${NAME:-default}` in string values (keys are left alone) from
   * `env`; `$${` is a literal `${`. `:-` takes the default when the variable is unset or
   * empty, as in POSIX sh. A plain (unquoted) scalar is then re-read as YAML would read the
   * substituted text, so `backlog: ${BACKLOG}` is a number while `mode: "${MODE}"` stays a
   * string: the same value as if it had been typed in that place.
   */
  #interpolate(doc: Document.Parsed, env: Readonly<Record<string, string | undefined>>): void {
    visit(doc, {
      Scalar: (key, node) => {
        if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('${')) return;
        // Point at the reference itself when the source spells it out verbatim (no escapes or
        // line folding in between), else at the start of the scalar.
        const start = node.range?.[0] ?? 0;
        const source = this.#text.slice(start, node.range?.[1] ?? start);
        let searchFrom = 0;
        const at = (token: string): number => {
          const found = source.indexOf(token, searchFrom);
          if (found < 0) return start;
          searchFrom = found + token.length;
          return start + found;
        };
        const result = interpolate(node.value, env, (token, message) => {
          this.add(at(token), '', message);
        });
        if (result === undefined) return;
        node.value = node.type === Scalar.PLAIN ? retype(result) : result;
      },
    });
  }

  schemaIssue(err: ErrorObject): void {
    const segments = pointerSegments(err.instancePath);
    if (err.keyword === 'additionalProperties') {
      const name = String((err.params as { additionalProperty: string }).additionalProperty);
      const allowed = Object.keys(
        (err.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties ??
          {},
      );
      const hint =
        err.instancePath === '' && UWSGI_SPELLINGS[name] !== undefined
          ? `; uWSGI's ${name} is ${UWSGI_SPELLINGS[name]} here`
          : didYouMean(name, allowed);
      const keyNode = this.#keyNode(segments, name);
      this.#issues.push({
        ...this.#position(keyNode?.range?.[0] ?? this.#offsetOf(segments)),
        path: `${err.instancePath}/${escapePointer(name)}`,
        message: `unknown key "${name}"${hint}`,
      });
      return;
    }
    this.#issues.push({
      ...this.#position(this.#offsetOf(segments)),
      path: err.instancePath,
      message: schemaMessage(err),
    });
  }

  /** An issue about the value at a JSON Pointer of the validated data. */
  at(path: string, message: string, code?: ConfigIssue['code']): void {
    this.#issues.push({
      ...this.#position(this.#offsetOf(pointerSegments(path))),
      path,
      message,
      ...(code === undefined ? {} : { code }),
    });
  }

  /** 1-based line of the node at a JSON Pointer, for messages that point at another node. */
  lineOf(path: string): number {
    return this.#position(this.#offsetOf(pointerSegments(path))).line;
  }

  add(offset: number, path: string, message: string): void {
    this.#issues.push({ ...this.#position(offset), path, message });
  }

  failIfAny(): void {
    if (this.#issues.length > 0) this.fail();
  }

  fail(): never {
    const issues = [...this.#issues].sort((a, b) => a.line - b.line || a.col - b.col);
    const count = issues.length === 1 ? '1 issue' : `${issues.length} issues`;
    throw new ContainerError(
      'UWSGI_ERR_CONFIG_INVALID',
      `invalid config ${this.#file} (${count}):\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
      { issues },
    );
  }

  #position(offset: number): Pick<ConfigIssue, 'file' | 'line' | 'col'> {
    const { line, col } = this.#lines.linePos(offset);
    return { file: this.#file, line: Math.max(line, 1), col: Math.max(col, 1) };
  }

  /**
   * Offset of the deepest YAML node on the path. Values that ajv filled in from defaults have
   * no node, so the walk stops at the nearest ancestor that exists in the text.
   */
  #offsetOf(segments: readonly string[]): number {
    let node: unknown = this.#doc?.contents;
    let offset = rangeStart(node) ?? 0;
    for (const segment of segments) {
      node = this.#child(node, segment);
      const start = rangeStart(node);
      if (start === undefined) break;
      offset = start;
    }
    return offset;
  }

  #keyNode(segments: readonly string[], name: string): Node | undefined {
    let node: unknown = this.#doc?.contents;
    for (const segment of segments) node = this.#child(node, segment);
    node = this.#deref(node);
    if (!isMap(node)) return undefined;
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === name);
    return pair?.key as Node | undefined;
  }

  #child(node: unknown, segment: string): unknown {
    node = this.#deref(node);
    if (isMap(node)) {
      const pair = node.items.find(
        (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === segment,
      );
      return pair?.value ?? undefined;
    }
    if (isSeq(node)) return node.items[Number(segment)];
    return undefined;
  }

  #deref(node: unknown): unknown {
    // An alias stands for its anchor's node: errors inside it point at the anchored text.
    return isAlias(node) && this.#doc !== undefined ? node.resolve(this.#doc) : node;
  }
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

function rangeStart(node: unknown): number | undefined {
  if (node === null || typeof node !== 'object') return undefined;
  const range = (node as { range?: readonly number[] | null }).range;
  return range?.[0];
}

function firstAliasOffset(doc: Document.Parsed): number {
  let offset = 0;
  visit(doc, {
    Alias: (_key, node) => {
      offset = node.range?.[0] ?? 0;
      return visit.BREAK;
    },
  });
  return offset;
}

/** yaml's messages, with the fix spelled out for the two that people hit most. */
function yamlMessage(code: string, message: string): string {
  const text = message.replace(/\s+at line \d+, column \d+[\s\S]*$/, '');
  if (code === 'TAB_AS_INDENT') return `${text} (YAML indentation must use spaces)`;
  if (code === 'DUPLICATE_KEY') return `${text}: each key may appear once`;
  return text;
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

function schemaMessage(err: ErrorObject): string {
  const last = err.instancePath.slice(err.instancePath.lastIndexOf('/') + 1);
  switch (err.keyword) {
    case 'enum': {
      const allowed = (err.params as { allowedValues: readonly unknown[] }).allowedValues;
      const list = allowed.map((v) => String(v)).join(', ');
      const hint = typeof err.data === 'string' ? didYouMean(err.data, allowed.map(String)) : '';
      return `must be one of: ${list}${hint}`;
    }
    case 'type':
      if (last === 'mode' && typeof err.data === 'number') {
        return `must be a quoted octal string such as "0660" (unquoted, ${err.data} is a YAML number)`;
      }
      return err.message ?? 'has the wrong type';
    case 'pattern':
      if (last === 'mode') return 'must be an octal mode string such as "0660"';
      return err.message ?? 'does not match';
    case 'minItems':
      if (err.instancePath === '/listeners') return 'must list at least one listener';
      if (err.instancePath === '/mounts') return 'must list at least one mount';
      return err.message ?? 'has too few items';
    default:
      return err.message ?? `fails ${err.keyword}`;
  }
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
