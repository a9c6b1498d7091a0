import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MountConfig } from '../src/config/types.ts';
import {
  createRouter,
  normalizeMountPath,
  normalizeRequestPath,
  type Router,
} from '../src/router/mounts.ts';

const TIME_LIMIT_MS = 2_000;
const settings = { numRuns: 3_000, interruptAfterTimeLimit: TIME_LIMIT_MS };

const mount = (path: string): MountConfig => ({
  path,
  app: '/app.mjs',
  kind: 'auto',
  fetchUrl: 'full',
});

/** Plain segments: no escapes and no empty segments, so raw and decoded views always agree. */
const plainSegment = fc.constantFrom('a', 'b', 'ab', 'api', 'a.b', '-', '.', '..');
/** Everything the normaliser treats specially. */
const trickySegment = fc.constantFrom(
  'a',
  'ab',
  '',
  '.',
  '..',
  '%2e',
  '%2E%2e',
  '.%2e',
  '%2F',
  '%2f..',
  '%41',
  'caf%C3%A9',
  '%',
  '?',
);

const mountPaths = (segment: fc.Arbitrary<string>) =>
  fc.array(
    fc.tuple(fc.array(segment, { maxLength: 3 }), fc.boolean()).map(([segs, slash]) => {
      const p = `/${segs.join('/')}`;
      return slash && p !== '/' ? `${p}/` : p;
    }),
    { minLength: 1, maxLength: 5 },
  );

const targets = (segment: fc.Arbitrary<string>) =>
  fc
    .tuple(fc.array(segment, { maxLength: 6 }), fc.option(fc.constantFrom('?', '?q=/a/..', '?x')))
    .map(([segs, query]) => `/${segs.join('/')}${query ?? ''}`);

/** The router, or undefined when the generated mounts conflict (asserted separately). */
function tryRouter(paths: readonly string[]): Router | undefined {
  try {
    return createRouter(paths.map(mount));
  } catch (err) {
    expect(err).toMatchObject({ code: 'UWSGI_ERR_MOUNT_CONFLICT' });
    return undefined;
  }
}

/** Reference model on segment arrays: which mount's segments are a prefix of the path's. */
function modelMatch(paths: readonly string[], target: string): number | undefined {
  const segsOf = (p: string): string[] => {
    // Normalised mount: dot segments resolved, then one trailing slash dropped.
    const resolved = normalizeRequestPath(p);
    const n = resolved.length > 1 && resolved.endsWith('/') ? resolved.slice(0, -1) : resolved;
    return n === '/' ? [] : n.slice(1).split('/');
  };
  const pathSegs = normalizeRequestPath(target).slice(1).split('/');
  let best: number | undefined;
  let bestLength = -1;
  paths.forEach((p, i) => {
    const s = segsOf(p);
    if (s.length > pathSegs.length || s.length <= bestLength) return;
    if (s.every((seg, k) => seg === pathSegs[k])) {
      best = i;
      bestLength = s.length;
    }
  });
  return best;
}

describe('router properties', () => {
  it('plain paths: the longest segment-prefix mount wins, as the segment model says', () => {
    fc.assert(
      fc.property(mountPaths(plainSegment), targets(plainSegment), (paths, target) => {
        const router = tryRouter(paths);
        if (router === undefined) return;
        const m = router.match(target);
        expect(m?.index).toBe(modelMatch(paths, target));
      }),
      settings,
    );
  });

  it('any path: scriptName + pathInfo === normalised path, cut on a segment boundary', () => {
    fc.assert(
      fc.property(mountPaths(trickySegment), targets(trickySegment), (paths, target) => {
        const router = tryRouter(paths);
        if (router === undefined) return;
        const m = router.match(target);
        if (m === undefined) return;
        const path = normalizeRequestPath(target);
        expect(m.scriptName + m.pathInfo).toBe(path);
        expect(m.pathInfo === '' || m.pathInfo.startsWith('/')).toBe(true);
        expect(m.scriptName === '' || m.scriptName.startsWith('/')).toBe(true);
        expect(m.scriptName.endsWith('/') && m.scriptName !== '/').toBe(false);
        // The consumed prefix is the mount (up to escape case): never a partial segment.
        const canonical = normalizeMountPath(m.mount.path);
        expect(m.scriptName.replace(/%[0-9a-f]{2}/gi, (e) => e.toUpperCase())).toBe(
          canonical === '/' ? '' : canonical,
        );
        expect(target.slice(target.indexOf('?') === -1 ? target.length : target.indexOf('?'))).toBe(
          m.search,
        );
      }),
      settings,
    );
  });

  it('any path: a longer matching mount is never passed over', () => {
    fc.assert(
      fc.property(mountPaths(trickySegment), targets(trickySegment), (paths, target) => {
        const router = tryRouter(paths);
        if (router === undefined) return;
        const m = router.match(target);
        if (m === undefined) return;
        const path = normalizeRequestPath(target);
        for (const other of router.mounts) {
          const single = createRouter([other]).match(path);
          if (single === undefined) continue;
          expect(single.scriptName.length).toBeLessThanOrEqual(m.scriptName.length);
        }
      }),
      settings,
    );
  });
});
