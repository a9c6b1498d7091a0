import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  CONTAINER_ERROR_CODES,
  ContainerError,
  type ContainerErrorCode,
  isContainerError,
} from '../src/shared/errors.ts';

/** Codes anchored (`<a id="uwsgi_err_...">`) in one `## area` section of docs/errors.md. */
function documentedCodes(area: string): string[] {
  const doc = readFileSync(new URL('../../../docs/errors.md', import.meta.url), 'utf8');
  const start = doc.search(new RegExp(`^## ${area}\\s*$`, 'm'));
  expect(start, `docs/errors.md has no "## ${area}" section`).toBeGreaterThanOrEqual(0);
  const rest = doc.slice(start + 3);
  const end = rest.search(/^## /m);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/<a id="(uwsgi_err_[a-z0-9_]+)">/g)].map((m) =>
    (m[1] ?? '').toUpperCase(),
  );
}

describe('ContainerError', () => {
  it('every code is documented in docs/errors.md, and every documented container code exists', () => {
    const documented = documentedCodes('container');
    expect([...documented].sort()).toEqual([...CONTAINER_ERROR_CODES].sort());
    expect(new Set(documented).size).toBe(documented.length);
  });

  it('codes are UWSGI_ERR_ upper snake case and are unique', () => {
    for (const code of CONTAINER_ERROR_CODES) expect(code).toMatch(/^UWSGI_ERR_[A-Z]+(_[A-Z]+)*$/);
    expect(new Set(CONTAINER_ERROR_CODES).size).toBe(CONTAINER_ERROR_CODES.length);
  });

  it('code -> class -> name, with cause and frozen issues', () => {
    for (const code of CONTAINER_ERROR_CODES) {
      const cause = new Error('inner');
      const err = new ContainerError(code as ContainerErrorCode, 'msg', { cause });
      expect(err).toBeInstanceOf(Error);
      expect(err).toMatchObject({ name: 'ContainerError', code, message: 'msg', cause });
      expect(err.issues).toBeUndefined();
      expect(isContainerError(err)).toBe(true);
    }
    const issue = { file: 'a.yaml', line: 1, col: 1, path: '', message: 'm' };
    const err = new ContainerError('UWSGI_ERR_CONFIG_INVALID', 'bad', { issues: [issue] });
    expect(err.issues).toEqual([issue]);
    expect(Object.isFrozen(err.issues)).toBe(true);
    expect('cause' in err).toBe(false);
    expect(String(err)).toBe('ContainerError: bad');
  });

  it('isContainerError rejects other errors', () => {
    expect(isContainerError(new Error('x'))).toBe(false);
    expect(isContainerError(Object.assign(new Error('x'), { code: 'ENOENT' }))).toBe(false);
    expect(isContainerError({ code: 'UWSGI_ERR_LISTEN' })).toBe(false);
  });
});
