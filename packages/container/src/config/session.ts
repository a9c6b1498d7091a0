/**
 * One YAML text on its way to plain data: parse (duplicate keys are errors, aliases bounded),
 * `${VAR}` interpolation, and every issue placed at the `file:line:col` of the node it concerns
 * (JSON Pointers of the parsed data mapped back to YAML nodes). The container config
 * (load.ts) and the emperor's own config (emperor/config.ts) both read their text here.
 */
import type { ErrorObject } from 'ajv';
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
import type { IssueSink } from './checks.ts';
import { interpolate, retype } from './interpolate.ts';
import { type ConfigIssue, formatIssue } from './issues.ts';
import { didYouMean, UWSGI_SPELLINGS } from './suggest.ts';

/**
 * yaml's own default. An alias bomb ("billion laughs": each level aliases the previous one
 * ten times) stays a few hundred bytes of text but expands exponentially in `toJS()`; yaml
 * counts alias expansions against this and throws instead. A real config needs a handful.
 */
const MAX_ALIAS_COUNT = 100;

export interface SessionOptions {
  /** What the text is, in the error message: `invalid ${what} FILE (N issues)`. Default: config. */
  readonly what?: string;
  /** The issue for an empty document (unless loaded as partial). */
  readonly empty?: string;
  /** Top-level keys spelled as uWSGI spells them -> ours, for unknown-key hints. */
  readonly spellings?: Readonly<Record<string, string>>;
}

/** Collects issues for one text and maps JSON Pointers back to YAML positions. */
export class Session implements IssueSink {
  readonly #text: string;
  readonly #file: string;
  readonly #lines = new LineCounter();
  readonly #issues: ConfigIssue[] = [];
  readonly #options: Required<SessionOptions>;
  #doc: Document.Parsed | undefined;

  constructor(text: string, file: string, options: SessionOptions = {}) {
    this.#text = text;
    this.#file = file;
    this.#options = {
      what: 'config',
      empty: 'the file is empty: a config needs at least listeners and mounts',
      spellings: UWSGI_SPELLINGS,
      ...options,
    };
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
      this.add(0, '', this.#options.empty);
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
        err.instancePath === '' && this.#options.spellings[name] !== undefined
          ? `; uWSGI's ${name} is ${this.#options.spellings[name]} here`
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
      `invalid ${this.#options.what} ${this.#file} (${count}):\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
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
