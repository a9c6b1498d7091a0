/**
 * `uwsgi-ts route`: why a request target goes to the mount it goes to (or to none), in words an
 * operator can check against nginx. The verdict is `createRouter().match()` itself, the one the
 * dispatcher uses; this module only lays out the pieces that led to it. Pure, like mounts.ts.
 */
import type { MountConfig } from '../config/types.ts';
import {
  absoluteFormPath,
  createRouter,
  decodedView,
  isSegmentPrefix,
  mountRelativeUrl,
  normalizeMountPath,
  normalizeRequestPath,
  type RouteMatch,
  upperCaseEscapes,
} from './mounts.ts';

export type CandidateRelation =
  /** The longest prefix on a segment boundary: the winner (if the decoded view agrees). */
  | 'longest'
  /** Also a prefix on a segment boundary, but shorter (the `/` catch-all, `/api` under `/api/v2`). */
  | 'shorter'
  /** The path starts with it, but not at a `/` (`/api` is not a prefix of `/apix`). */
  | 'not-on-boundary'
  | 'no';

export interface RouteExplanation {
  readonly target: string;
  /** The path routed on: query removed, absolute form reduced, dot segments resolved. */
  readonly path: string;
  /** What a decoding front end sees (escapes decoded, `//` merged, dots resolved again). */
  readonly decodedPath: string;
  /** Dot segments (`.`, `..`, `%2e`) changed the path. */
  readonly dotSegmentsResolved: boolean;
  readonly candidates: readonly {
    readonly index: number;
    readonly mount: MountConfig;
    /** The mount's canonical prefix as compared (`''` for `/`). */
    readonly prefix: string;
    readonly relation: CandidateRelation;
  }[];
  /** The route, with what the app sees; undefined when nothing matches (404). */
  readonly match:
    | (RouteMatch & {
        readonly url: string;
        readonly baseUrl: string;
        readonly originalUrl: string;
      })
    | undefined;
  /** One sentence: why this mount, or why none. */
  readonly reason: string;
}

export function explainRoute(mounts: readonly MountConfig[], target: string): RouteExplanation {
  const router = createRouter(mounts);
  const matched = router.match(target);
  const path = normalizeRequestPath(target);
  const q = target.indexOf('?');
  const part = q === -1 ? target : target.slice(0, q);
  // The path before dot segments were resolved (absolute form reduced as the router does).
  const rawPath = part.startsWith('/') ? part : absoluteFormPath(part);
  const compared = upperCaseEscapes(path);
  const prefixes = mounts.map((mount, index) => {
    const canonical = normalizeMountPath(mount.path);
    return { index, mount, prefix: canonical === '/' ? '' : canonical };
  });
  const isPath = compared.startsWith('/');
  const onBoundary = (prefix: string) => isPath && isSegmentPrefix(prefix, compared);
  const longest = prefixes
    .filter((p) => onBoundary(p.prefix))
    .sort((a, b) => b.prefix.length - a.prefix.length)[0];
  const candidates = prefixes.map((p) => ({
    ...p,
    relation: (onBoundary(p.prefix)
      ? p === longest
        ? 'longest'
        : 'shorter'
      : isPath && compared.startsWith(p.prefix)
        ? 'not-on-boundary'
        : 'no') as CandidateRelation,
  }));
  const decodedPath = path.startsWith('/') ? asUtf8(decodedView(path)) : path;
  const match =
    matched === undefined
      ? undefined
      : {
          ...matched,
          url: mountRelativeUrl(matched),
          baseUrl: matched.scriptName,
          originalUrl: target,
        };
  return {
    target,
    path,
    decodedPath,
    dotSegmentsResolved: path !== rawPath && isPath,
    candidates,
    match,
    reason: reasonOf(path, decodedPath, longest, match),
  };
}

function reasonOf(
  path: string,
  decodedPath: string,
  longest: { mount: MountConfig; prefix: string } | undefined,
  match: RouteExplanation['match'],
): string {
  if (!path.startsWith('/')) {
    return `${JSON.stringify(path)} is not a path (origin or absolute form): no mount takes it`;
  }
  if (match !== undefined) {
    if (match.mount.path === '/' || longest?.prefix === '') {
      return 'no longer mount prefix matches on a segment boundary: the / catch-all takes it';
    }
    return `longest mount prefix on a segment boundary: ${match.mount.path}`;
  }
  if (longest !== undefined) {
    return (
      `the path selects ${longest.mount.path}, but a decoding front end sees ${JSON.stringify(decodedPath)}, ` +
      'which selects another mount (or none): a request that means two things matches nothing (404)'
    );
  }
  // A `/` mount is a segment prefix of every path, so nothing matching means there is none.
  return 'no mount prefix matches on a segment boundary and there is no / catch-all mount: 404';
}

/** The decoded view holds one char per byte; shown as UTF-8 text when it is valid UTF-8. */
function asUtf8(bytes: string): string {
  if (!/[\x80-\xff]/.test(bytes)) return bytes;
  const text = new TextDecoder('utf-8', { fatal: false }).decode(
    Uint8Array.from(bytes, (c) => c.charCodeAt(0)),
  );
  return text.includes('\ufffd') ? bytes : text;
}
