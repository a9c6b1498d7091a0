/**
 * Mount routing: which app serves a request, and how its path splits into SCRIPT_NAME (the
 * mount prefix, `req.baseUrl`) and PATH_INFO (the rest, `req.url`).
 *
 * Pure (no Node APIs): it runs once per request, so everything that depends only on the config
 * is computed in `createRouter()`.
 *
 * Rules (REFERENCE.md section 1, uWSGI `manage-script-name` minus its traps):
 * - the longest mount prefix that ends on a path-segment boundary wins (`/api` takes `/api`,
 *   `/api/` and `/api/x`, never `/apix`), as uWSGI does since unbit/uwsgi PR #755;
 * - one trailing `/` on a mount is ignored; two mounts equal after that are a config error, so
 *   no tie rule is needed (uWSGI silently keeps the first);
 * - `/` is the catch-all and exists only when configured: no match means 404 upstream, never an
 *   implicit default app;
 * - matching is on the raw (still percent-encoded) path of REQUEST_URI, with dot segments
 *   resolved as the WHATWG URL parser does (including `%2e` forms), the query removed and `//`
 *   kept; `scriptName + pathInfo` is always exactly that normalised path;
 * - a request is routed only when the decoded view of its path (percent-decoded, dot segments
 *   resolved again, slashes merged: what nginx matched its `location` against) selects the same
 *   mount; otherwise it matches nothing. This closes the gap where `/api/x%2F..%2F..%2Fadmin` is
 *   `/admin` to the front end but would be `/api` to us.
 */

import type { MountConfig } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';

/** The outcome of routing one request. */
export interface RouteMatch {
  readonly mount: MountConfig;
  /** Position of `mount` in the configured `mounts` array. */
  readonly index: number;
  /**
   * The part of the request path the mount consumed (SCRIPT_NAME, `req.baseUrl`): the request's
   * own bytes, so it may differ from `mount.path` in percent-escape case. `''` for the `/` mount.
   */
  readonly scriptName: string;
  /**
   * The rest of the normalised path (PATH_INFO), `''` when the request named the mount exactly
   * (`/api`); `req.url` is then `/` ({@link mountRelativeUrl}).
   */
  readonly pathInfo: string;
  /** The raw query including its `?`, or `''`. */
  readonly search: string;
}

/**
 * The request target as the mounted app sees it (`req.url`): the path relative to the mount,
 * `/` when the request named the mount exactly, query kept.
 */
export function mountRelativeUrl(match: RouteMatch): string {
  return (match.pathInfo === '' ? '/' : match.pathInfo) + match.search;
}

export interface Router {
  readonly mounts: readonly MountConfig[];
  /**
   * Routes a raw request target (REQUEST_URI or node:http `req.url`: origin form `/p?q`, or
   * absolute form `http://h/p?q`). Returns `undefined` when no mount takes it.
   */
  match(rawTarget: string): RouteMatch | undefined;
}

interface Entry {
  /** Canonical raw prefix without its trailing slash; `''` for the `/` mount. */
  readonly key: string;
  readonly index: number;
  readonly mount: MountConfig;
}

const SLASH = 0x2f;

// Flags from one scan of the path (`scanPath`); regular expressions cost several times more on
// this per-request path.
/** A `.` or `%` right after a `/`: a dot segment (`.`, `%2e`, WHATWG URL) may start there. */
const DOT_HINT = 1;
/** A `%`: escape case must be canonicalised, and the decoded view may differ. */
const PERCENT = 2;
/**
 * `//` (nginx's `merge_slashes` makes it one) or a byte outside printable ASCII (a front end
 * decoding the path sees it as the same byte as its escaped form): the decoded view may differ.
 */
const ODD = 4;

const ABSOLUTE_FORM = /^[a-z][a-z0-9+.-]*:\/\//i;

/**
 * Canonical form of a mount prefix, as it is compared with request paths: dot segments
 * resolved, characters a client would percent-encode in a path (WHATWG "path percent-encode
 * set", non-ASCII as UTF-8) encoded, escape hex digits upper-cased, runs of `/` merged, the
 * trailing `/` removed (except for `/` itself).
 *
 * @example normalizeMountPath('/api/') === '/api'; normalizeMountPath('/café') === '/caf%C3%A9'
 * @throws ContainerError `UWSGI_ERR_CONFIG_INVALID` when `path` does not start with `/`.
 */
export function normalizeMountPath(path: string): string {
  if (path.charCodeAt(0) !== SLASH) {
    throw new ContainerError(
      'UWSGI_ERR_CONFIG_INVALID',
      `mount path ${JSON.stringify(path)} must start with /`,
      {
        issues: [
          { file: '<config>', line: 0, col: 0, path: '', message: 'must match pattern "^/"' },
        ],
      },
    );
  }
  // A mount is a list of non-empty segments: `//` in a mount can only be a typo.
  let p = upperCaseEscapes(encodePathChars(path)).replace(/\/{2,}/g, '/');
  p = removeDotSegments(p, true);
  if (p.length > 1 && p.charCodeAt(p.length - 1) === SLASH) p = p.slice(0, -1);
  return p;
}

/**
 * The path the router matches on, from a raw request target: query removed, absolute form
 * reduced to its path, dot segments (`.`, `..`, `%2e`, `.%2E`...) resolved like the WHATWG URL
 * parser (never above `/`), everything else, `//` and escapes included, left untouched.
 * A target that is not a path (`*`) is returned as is and matches no mount.
 */
export function normalizeRequestPath(rawTarget: string): string {
  const q = rawTarget.indexOf('?');
  return normalizePathPart(q === -1 ? rawTarget : rawTarget.slice(0, q));
}

/**
 * Builds the routing table once per config.
 *
 * @throws ContainerError `UWSGI_ERR_MOUNT_CONFLICT` when two mounts are the same prefix after
 *   normalisation (`/api` and `/api/`, or `/a%41` and `/aA`, which a front end decodes alike).
 * @throws ContainerError `UWSGI_ERR_CONFIG_INVALID` for a mount path not starting with `/`.
 */
export function createRouter(mounts: readonly MountConfig[]): Router {
  const raw: Entry[] = [];
  const decoded: Entry[] = [];
  const seen = new Map<string, number>();
  for (const [index, mount] of mounts.entries()) {
    const canonical = normalizeMountPath(mount.path);
    const key = canonical === '/' ? '' : canonical;
    const decodedKey = decodedViewOfKey(key);
    const previous = seen.get(decodedKey);
    if (previous !== undefined) {
      throw new ContainerError(
        'UWSGI_ERR_MOUNT_CONFLICT',
        `mounts[${previous}] (${JSON.stringify(mounts[previous]?.path)}) and mounts[${index}] ` +
          `(${JSON.stringify(mount.path)}) are the same prefix once normalised (${canonical}): ` +
          'a trailing slash, escapes or dot segments do not make a different mount',
      );
    }
    seen.set(decodedKey, index);
    raw.push({ key, index, mount });
    decoded.push({ key: decodedKey, index, mount });
  }
  // Longest first, so the first hit is the longest match. Keys are unique, so equal lengths
  // cannot both match one path on a segment boundary.
  raw.sort((a, b) => b.key.length - a.key.length);
  decoded.sort((a, b) => b.key.length - a.key.length);
  const frozenMounts = Object.freeze([...mounts]);

  return {
    mounts: frozenMounts,
    match(rawTarget: string): RouteMatch | undefined {
      const q = rawTarget.indexOf('?');
      let path = q === -1 ? rawTarget : rawTarget.slice(0, q);
      if (path.charCodeAt(0) !== SLASH) {
        path = absoluteFormPath(path);
        if (path.charCodeAt(0) !== SLASH) return undefined;
      }
      const flags = scanPath(path);
      if ((flags & DOT_HINT) !== 0) path = removeDotSegments(path, true);
      // Escape case never changes length, so indexes into the canonical copy are indexes into
      // the request's own text (RFC 3986 section 6.2.2.1: `%2f` and `%2F` are the same octet).
      const entry = longestPrefix((flags & PERCENT) !== 0 ? upperCaseEscapes(path) : path, raw);
      if ((flags & (PERCENT | ODD)) !== 0) {
        const other = longestPrefix(decodedView(path), decoded);
        if (other?.index !== entry?.index) return undefined;
      }
      if (entry === undefined) return undefined;
      const cut = entry.key.length;
      return {
        mount: entry.mount,
        index: entry.index,
        scriptName: cut === 0 ? '' : path.slice(0, cut),
        pathInfo: cut === 0 ? path : path.slice(cut),
        search: q === -1 ? '' : rawTarget.slice(q),
      };
    },
  };
}

function scanPath(path: string): number {
  let flags = 0;
  let prev = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === SLASH) {
      if (prev === SLASH) flags |= ODD;
    } else if (c === 0x2e) {
      if (prev === SLASH) flags |= DOT_HINT;
    } else if (c === 0x25) {
      flags |= prev === SLASH ? PERCENT | DOT_HINT : PERCENT;
    } else if (c < 0x21 || c > 0x7e) {
      flags |= ODD;
    }
    prev = c;
  }
  return flags;
}

function longestPrefix(path: string, entries: readonly Entry[]): Entry | undefined {
  for (const entry of entries) {
    if (isSegmentPrefix(entry.key, path)) return entry;
  }
  return undefined;
}

/**
 * The matching rule: `key` (a canonical mount prefix, `''` for `/`) is a prefix of `path` that
 * ends on a segment boundary (`/api` of `/api` and `/api/x`, never of `/apix`).
 */
export function isSegmentPrefix(key: string, path: string): boolean {
  const n = key.length;
  return (
    path.length >= n && path.startsWith(key) && (path.length === n || path.charCodeAt(n) === SLASH)
  );
}

function normalizePathPart(target: string): string {
  const path = target.charCodeAt(0) === SLASH ? target : absoluteFormPath(target);
  if (path.charCodeAt(0) !== SLASH || (scanPath(path) & DOT_HINT) === 0) return path;
  return removeDotSegments(path, true);
}

/**
 * RFC 9112 section 3.2.2: a server must accept the absolute form (`http://host/p`); route on its
 * path. Anything else that does not start with `/` (`*`) is returned unchanged.
 */
export function absoluteFormPath(target: string): string {
  if (!ABSOLUTE_FORM.test(target)) return target;
  const slash = target.indexOf('/', target.indexOf('//') + 2);
  return slash === -1 ? '/' : target.slice(slash);
}

/**
 * RFC 3986 section 5.2.4 as the WHATWG URL parser applies it to special URLs: `.` segments
 * vanish, `..` drops the previous segment (never above the root), and a final `.` or `..`
 * leaves a trailing slash. With `percentDots`, `%2e` counts as `.` (WHATWG "single-dot" and
 * "double-dot" segments), since browsers and nginx treat `/%2e%2e/` as `/../`.
 */
function removeDotSegments(path: string, percentDots: boolean): string {
  const segments = path.slice(1).split('/');
  const out: string[] = [];
  const last = segments.length - 1;
  for (let i = 0; i <= last; i++) {
    const segment = segments[i] as string;
    const dots = dotCount(segment, percentDots);
    if (dots === 0) {
      out.push(segment);
      continue;
    }
    if (dots === 2) out.pop();
    if (i === last) out.push('');
  }
  return `/${out.join('/')}`;
}

/** 1 for a single-dot segment, 2 for a double-dot segment, else 0. */
function dotCount(segment: string, percentDots: boolean): number {
  const n = segment.length;
  if (n === 0 || n > 6) return 0;
  if (segment === '.') return 1;
  if (segment === '..') return 2;
  if (!percentDots || n < 3) return 0;
  const s = segment.toLowerCase();
  if (s === '%2e') return 1;
  return s === '.%2e' || s === '%2e.' || s === '%2e%2e' ? 2 : 0;
}

/**
 * What a decoding front end sees: every `%XX` decoded to its byte (one char per byte, like the
 * codec's latin1 strings), dot segments resolved again (an encoded `/` can create new ones) and
 * runs of `/` merged (nginx `merge_slashes on`, its default).
 */
export function decodedView(path: string): string {
  const bytes = decodeEscapes(path);
  const merged = bytes.includes('//') ? bytes.replace(/\/{2,}/g, '/') : bytes;
  return merged.includes('/.') ? removeDotSegments(merged, false) : merged;
}

/** Decoded view of a mount key, in key form (`''` for the root, no trailing `/`). */
function decodedViewOfKey(key: string): string {
  if (key === '') return '';
  const view = decodedView(key);
  return view.charCodeAt(view.length - 1) === SLASH ? view.slice(0, -1) : view;
}

/** Each valid `%XX` becomes the char with code XX (one char per byte); others stay literal. */
function decodeEscapes(path: string): string {
  let i = path.indexOf('%');
  if (i === -1) return path;
  let out = '';
  let from = 0;
  for (; i !== -1; i = path.indexOf('%', i + 1)) {
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) continue;
    out += path.slice(from, i) + String.fromCharCode(hi * 16 + lo);
    from = i + 3;
    i += 2;
  }
  return out + path.slice(from);
}

/** Upper-cases the hex digits of escapes; returns `path` itself when there is nothing to do. */
export function upperCaseEscapes(path: string): string {
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i + 1)) {
    const a = path.charCodeAt(i + 1);
    const b = path.charCodeAt(i + 2);
    if (hexValue(a) >= 0 && hexValue(b) >= 0 && (a >= 0x61 || b >= 0x61)) {
      return path.replace(/%[0-9a-f]{2}/gi, (e) => e.toUpperCase());
    }
  }
  return path;
}

/** 0-15 for an ASCII hex digit, -1 otherwise (also for NaN past the end). */
function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x61 + 10 : -1;
}

/**
 * WHATWG URL "path percent-encode set": C0 controls, space, `"`, `#`, `<`, `>`, `?`, `` ` ``,
 * `{`, `}`, DEL and non-ASCII (as UTF-8), plus a `%` that does not start an escape. Mount paths
 * are written by people (`/café`, `/a b`); requests arrive encoded.
 */
function encodePathChars(path: string): string {
  if (/^(?:[!$&-;=@-_a-z|~]|%[0-9a-fA-F]{2})*$/.test(path)) return path;
  const encoder = new TextEncoder();
  let out = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i] as string;
    const code = ch.charCodeAt(0);
    if (ch === '%' && /^[0-9a-fA-F]{2}$/.test(path.slice(i + 1, i + 3))) {
      out += ch;
    } else if (code > 0x20 && code < 0x7f && !'"#<>?`{}%'.includes(ch)) {
      out += ch;
    } else {
      const cp = path.codePointAt(i) as number;
      const char = String.fromCodePoint(cp);
      i += char.length - 1;
      for (const byte of encoder.encode(char)) {
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
      }
    }
  }
  return out;
}
