/** STYLE.md section 4: the code list and docs/errors.md stay in step, in both directions. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decodePacket, UWSGI_ERROR_CODES, UwsgiError } from '../src/index.ts';

const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');

/** The `## codec` section: from its heading to the next `## ` heading. */
function codecSection(): string {
  const start = doc.indexOf('\n## codec\n');
  expect(start).toBeGreaterThanOrEqual(0);
  const next = doc.indexOf('\n## ', start + 1);
  return next === -1 ? doc.slice(start) : doc.slice(start, next);
}

describe('error codes', () => {
  it('every code has an anchored entry with a heading in the codec section', () => {
    const section = codecSection();
    for (const code of UWSGI_ERROR_CODES) {
      expect(section, code).toContain(`<a id="${code.toLowerCase()}"></a>\n### \`${code}\``);
    }
  });

  it('every uwsgi_err_ anchor in the codec section is a code in the list', () => {
    const anchors = [...codecSection().matchAll(/<a id="(uwsgi_err_[a-z0-9_]+)">/g)].map((m) =>
      m[1]!.toUpperCase(),
    );
    expect(anchors.length).toBeGreaterThan(0);
    for (const anchor of anchors) expect(UWSGI_ERROR_CODES as readonly string[]).toContain(anchor);
    expect(new Set(anchors).size).toBe(anchors.length);
  });

  it('codes are unique and follow UWSGI_ERR_<AREA>_<WHAT>', () => {
    expect(new Set(UWSGI_ERROR_CODES).size).toBe(UWSGI_ERROR_CODES.length);
    for (const code of UWSGI_ERROR_CODES) expect(code).toMatch(/^UWSGI_ERR_[A-Z0-9]+_[A-Z0-9_]+$/);
  });

  it('a thrown error has name, code, offset, message and cause', () => {
    let caught: unknown;
    try {
      decodePacket(Uint8Array.of(0, 5, 0, 0, 0, 0, 1, 0, 0x78));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(UwsgiError);
    expect(caught).toBeInstanceOf(Error);
    const err = caught as UwsgiError;
    expect(err.name).toBe('UwsgiError');
    expect(err.code).toBe('UWSGI_ERR_VARS_MALFORMED');
    expect(err.offset).toBe(4);
    expect(err.message).toMatch(/zero-length key/);
    expect(String(err)).toMatch(/^UwsgiError: /);
    const cause = new Error('inner');
    const wrapped = new UwsgiError('UWSGI_ERR_ARG_INVALID', 'outer', { cause });
    expect(wrapped.cause).toBe(cause);
    expect(wrapped.offset).toBeUndefined();
  });
});
