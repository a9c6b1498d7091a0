/**
 * `${NAME}` / `${NAME:-default}` substitution in config string values, and the re-reading of
 * substituted plain scalars. Pure: the caller maps token positions back to the YAML source.
 */
import { isScalar, parseDocument } from 'yaml';

/**
 * Substitutes `${NAME}` and `${NAME:-default}` in `value` from `env`; `$${` is a literal `${`.
 * `:-` takes the default when the variable is unset or empty, as in POSIX sh. Each bad
 * reference (unset without default, malformed, unterminated) is passed to `report` with its
 * exact source text; the result is then undefined.
 */
export function interpolate(
  value: string,
  env: Readonly<Record<string, string | undefined>>,
  report: (token: string, message: string) => void,
): string | undefined {
  let out = '';
  let ok = true;
  let i = 0;
  while (i < value.length) {
    if (value.startsWith('$${', i)) {
      out += '${';
      i += 3;
      continue;
    }
    if (!value.startsWith('${', i)) {
      out += value[i];
      i += 1;
      continue;
    }
    const close = value.indexOf('}', i + 2);
    if (close < 0) {
      report('${', 'unterminated "${" (write $${ for a literal "${")');
      return undefined;
    }
    const token = value.slice(i, close + 1);
    const match = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/.exec(value.slice(i + 2, close));
    i = close + 1;
    if (match === null) {
      report(token, `invalid reference ${token}: use \${NAME} or \${NAME:-default}`);
      ok = false;
      continue;
    }
    const [, name = '', fallback] = match;
    const current = env[name];
    if (fallback !== undefined && (current === undefined || current === '')) {
      out += fallback;
    } else if (current === undefined) {
      report(
        token,
        `environment variable ${name} is not set (\${${name}:-default} gives a fallback)`,
      );
      ok = false;
    } else {
      out += current;
    }
  }
  return ok ? out : undefined;
}

/** How YAML 1.2 core would read `text` had it been written as a plain scalar. */
export function retype(text: string): unknown {
  const doc = parseDocument(text, { version: '1.2' });
  if (doc.errors.length > 0 || !isScalar(doc.contents)) return text;
  const value = doc.contents.value;
  return typeof value === 'number' || typeof value === 'boolean' ? value : text;
}
