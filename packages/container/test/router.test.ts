import { describe, expect, it } from 'vitest';
import type { MountConfig } from '../src/config/types.ts';
import { createRouter, normalizeMountPath, normalizeRequestPath } from '../src/router/mounts.ts';

const mount = (path: string): MountConfig => ({
  path,
  app: `/apps${path === '/' ? '/root' : path}.mjs`,
  kind: 'auto',
  fetchUrl: 'full',
});

/** [request target, mount path or undefined, scriptName, pathInfo] */
type Row = readonly [string, string | undefined, string?, string?];

function check(router: ReturnType<typeof createRouter>, rows: readonly Row[]): void {
  for (const [target, mountPath, scriptName, pathInfo] of rows) {
    const m = router.match(target);
    if (mountPath === undefined) {
      expect(m, target).toBeUndefined();
      continue;
    }
    expect(m?.mount.path, target).toBe(mountPath);
    expect(m?.scriptName, target).toBe(scriptName);
    expect(m?.pathInfo, target).toBe(pathInfo);
    expect(`${m?.scriptName}${m?.pathInfo}`, target).toBe(normalizeRequestPath(target));
  }
}

describe('router: REFERENCE.md section 1 table, uwsgi-ts rules', () => {
  // uWSGI observed `mount=/a`, `mount=/a/b` and a root app with manage-script-name.
  const router = createRouter([mount('/a'), mount('/a/b'), mount('/')]);

  it('longest segment-boundary prefix wins; the root app is the catch-all', () => {
    check(router, [
      ['/a/b/c', '/a/b', '/a/b', '/c'],
      ['/a/bc', '/a', '/a', '/bc'],
      ['/a', '/a', '/a', ''],
      ['/a/', '/a', '/a', '/'],
      ['/a/b', '/a/b', '/a/b', ''],
      ['/ab', '/', '', '/ab'],
      ['/', '/', '', '/'],
    ]);
  });

  it('without a / mount, unmatched paths match nothing (404), never a default app', () => {
    const noRoot = createRouter([mount('/a'), mount('/a/b')]);
    check(noRoot, [
      ['/zzz', undefined],
      ['/ab', undefined],
      ['/', undefined],
      ['/a/bc', '/a', '/a', '/bc'],
    ]);
  });

  it('removes the query and reports it separately', () => {
    expect(router.match('/a/b/c?x=1&y=/a')).toMatchObject({
      scriptName: '/a/b',
      pathInfo: '/c',
      search: '?x=1&y=/a',
    });
    expect(router.match('/a?')).toMatchObject({ scriptName: '/a', pathInfo: '', search: '?' });
    expect(router.match('/a')?.search).toBe('');
  });

  it('reports the mount index', () => {
    expect(router.match('/a/b/x')?.index).toBe(1);
    expect(router.match('/q')?.index).toBe(2);
  });
});

describe('router: trailing slashes and conflicts', () => {
  it('one trailing slash on a mount is ignored', () => {
    const router = createRouter([mount('/api/')]);
    check(router, [
      ['/api', '/api/', '/api', ''],
      ['/api/', '/api/', '/api', '/'],
      ['/api/x', '/api/', '/api', '/x'],
      ['/apix', undefined],
    ]);
  });

  it.each([
    ['/api', '/api/'],
    ['/api/', '/api'],
    ['/', '/'],
    ['/a%2fb', '/a%2Fb'],
    ['/caf%C3%A9', '/café'],
    ['/aA', '/a%41'],
    ['/a/./b', '/a/b'],
    ['/a//b', '/a/b'],
    ['/x/..', '/'],
    ['/%2F', '/'],
  ])('%s and %s conflict: UWSGI_ERR_MOUNT_CONFLICT', (p1, p2) => {
    expect(() => createRouter([mount('/other'), mount(p1), mount(p2)])).toThrow(
      expect.objectContaining({
        code: 'UWSGI_ERR_MOUNT_CONFLICT',
        message: expect.stringContaining('mounts[1]'),
      }),
    );
  });

  it('a mount path without a leading slash is a config error', () => {
    expect(() => createRouter([mount('api')])).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_CONFIG_INVALID' }),
    );
  });
});

describe('router: raw-path normalisation', () => {
  const router = createRouter([mount('/api'), mount('/admin'), mount('/')]);

  it('resolves dot segments, also percent-encoded ones, never above the root', () => {
    check(router, [
      ['/api/../admin', '/admin', '/admin', ''],
      ['/api/../admin/x', '/admin', '/admin', '/x'],
      ['/api/%2e%2e/admin', '/admin', '/admin', ''],
      ['/api/%2E%2E/admin', '/admin', '/admin', ''],
      ['/api/.%2e/admin', '/admin', '/admin', ''],
      ['/api/%2e./admin', '/admin', '/admin', ''],
      ['/api/./x', '/api', '/api', '/x'],
      ['/api/%2e/x', '/api', '/api', '/x'],
      ['/../../api/x', '/api', '/api', '/x'],
      ['/api/x/..', '/api', '/api', '/'],
      ['/api/..', '/', '', '/'],
      ['/api/.', '/api', '/api', '/'],
      ['/api/...', '/api', '/api', '/...'],
      ['/api/.x/..y', '/api', '/api', '/.x/..y'],
    ]);
  });

  it('keeps // as is; a leading // is an empty first segment', () => {
    check(router, [
      ['/api//x', '/api', '/api', '//x'],
      ['/api/x//', '/api', '/api', '/x//'],
    ]);
    // nginx (merge_slashes) sees `//api/x` as `/api/x`: the views disagree, so nothing matches.
    expect(router.match('//api/x')).toBeUndefined();
  });

  it('matches on the raw path: %2F is data, not a separator', () => {
    const r = createRouter([mount('/api'), mount('/a%2Fb')]);
    check(r, [
      ['/a%2Fb/x', '/a%2Fb', '/a%2Fb', '/x'],
      // Escape hex case is not significant (RFC 3986 6.2.2.1); the request's own text is kept.
      ['/a%2fb/x', '/a%2Fb', '/a%2fb', '/x'],
      ['/api/a%2Fb', '/api', '/api', '/a%2Fb'],
      ['/api%2Fx', undefined],
    ]);
  });

  it('refuses a path the front end would route elsewhere once decoded', () => {
    check(router, [
      // nginx decodes %2F and resolves the dots: this is /admin to it, /api to a raw matcher.
      ['/api/x%2F..%2F..%2Fadmin', undefined],
      // Encoded unreserved letters: /api for nginx, the catch-all for a raw matcher.
      ['/%61pi/x', undefined],
      // Same mount either way: routed.
      ['/api/a%2Fb', '/api', '/api', '/a%2Fb'],
      ['/api/caf%C3%A9', '/api', '/api', '/caf%C3%A9'],
      ['/api/y/%2e%2e%2fx', '/api', '/api', '/y/%2e%2e%2fx'],
      // `%2e%2e%2f` is one raw segment, but `../` once decoded: /admin to the front end.
      ['/api/%2e%2e%2fadmin', undefined],
    ]);
  });

  it('mount paths are written decoded or encoded alike', () => {
    const r = createRouter([mount('/café'), mount('/a b')]);
    check(r, [
      ['/caf%C3%A9/x', '/café', '/caf%C3%A9', '/x'],
      ['/caf%c3%a9', '/café', '/caf%c3%a9', ''],
      ['/a%20b/', '/a b', '/a%20b', '/'],
    ]);
  });

  it('absolute-form targets route on their path; other forms match nothing', () => {
    check(router, [
      ['http://example.test/api/x?q', '/api', '/api', '/x'],
      ['https://example.test', '/', '', '/'],
      ['*', undefined],
      ['', undefined],
      ['api/x', undefined],
    ]);
  });
});

describe('normalizeMountPath / normalizeRequestPath', () => {
  it.each([
    ['/', '/'],
    ['/api/', '/api'],
    ['/api//', '/api'],
    ['//a///b/', '/a/b'],
    ['/a/./b/../c', '/a/c'],
    ['/café', '/caf%C3%A9'],
    ['/a%2fb', '/a%2Fb'],
    ['/100%', '/100%25'],
    ['/q?x#y', '/q%3Fx%23y'],
  ])('normalizeMountPath(%j) === %j', (input, output) => {
    expect(normalizeMountPath(input)).toBe(output);
  });

  it.each([
    ['/a/b?c', '/a/b'],
    ['/a/%2E%2e/b', '/b'],
    ['/a//b/', '/a//b/'],
    ['/%2e', '/'],
    ['http://h:80/x/../y?z', '/y'],
    ['*', '*'],
  ])('normalizeRequestPath(%j) === %j', (input, output) => {
    expect(normalizeRequestPath(input)).toBe(output);
  });
});
