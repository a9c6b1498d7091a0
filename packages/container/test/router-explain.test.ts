import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MountConfig } from '../src/config/types.ts';
import { explainRoute } from '../src/router/explain.ts';
import { createRouter } from '../src/router/mounts.ts';

const mount = (path: string): MountConfig => ({
  path,
  app: `/srv${path === '/' ? '/root' : path}.mjs`,
  kind: 'auto',
  fetchUrl: 'full',
});
const MOUNTS = ['/api', '/api/v2', '/hono', '/'].map(mount);

describe('explainRoute', () => {
  it('the longest prefix on a segment boundary, every mount placed, what the app sees', () => {
    const e = explainRoute(MOUNTS, '/api/v2/users?x=1');
    expect(e.match).toMatchObject({
      index: 1,
      scriptName: '/api/v2',
      pathInfo: '/users',
      url: '/users?x=1',
      baseUrl: '/api/v2',
      originalUrl: '/api/v2/users?x=1',
    });
    expect(e.candidates.map((c) => [c.mount.path, c.relation])).toEqual([
      ['/api', 'shorter'],
      ['/api/v2', 'longest'],
      ['/hono', 'no'],
      ['/', 'shorter'],
    ]);
    expect(e.reason).toBe('longest mount prefix on a segment boundary: /api/v2');
  });

  it('not on a segment boundary; the catch-all; dot segments; a path that means two things', () => {
    const apix = explainRoute(MOUNTS, '/apix');
    expect(apix.candidates[0]?.relation).toBe('not-on-boundary');
    expect(apix.match?.mount.path).toBe('/');
    expect(apix.reason).toMatch(/the \/ catch-all takes it/);

    const dots = explainRoute(MOUNTS, '/api/%2e%2e/hono/x');
    expect(dots.path).toBe('/hono/x');
    expect(dots.dotSegmentsResolved).toBe(true);
    expect(dots.match).toMatchObject({ scriptName: '/hono', pathInfo: '/x' });

    const two = explainRoute(MOUNTS, '/api/x%2F..%2F..%2Fhono');
    expect(two.decodedPath).toBe('/hono');
    expect(two.match).toBeUndefined();
    expect(two.reason).toMatch(/a decoding front end sees "\/hono"/);

    const none = explainRoute([mount('/api')], '/other');
    expect(none.match).toBeUndefined();
    expect(none.reason).toMatch(/no \/ catch-all mount: 404/);
    expect(explainRoute([mount('/api')], '*').reason).toMatch(/is not a path/);
  });

  it("its verdict is the router's, and the candidate marked longest is the one that matched", () => {
    const router = createRouter(MOUNTS);
    const segment = fc.constantFrom('api', 'v2', 'hono', 'apix', '.', '..', '%2e', '%2F', 'x', '');
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 5 }), fc.boolean(), (segments, query) => {
        const target = `/${segments.join('/')}${query ? '?q=1' : ''}`;
        const e = explainRoute(MOUNTS, target);
        const m = router.match(target);
        expect(e.match?.index).toBe(m?.index);
        expect(e.match?.pathInfo).toBe(m?.pathInfo);
        if (m !== undefined) {
          expect(e.candidates.find((c) => c.relation === 'longest')?.index).toBe(m.index);
        }
      }),
      { numRuns: 500 },
    );
  });
});
