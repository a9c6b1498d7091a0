/**
 * HTTP request head <-> nginx-style vars (PROTOCOL.md sections 2, 4, 5, 8).
 *
 * `varsToRequest` is what a uwsgi server needs to dispatch: it reads the vars every front end
 * sends (nginx, Apache, lighttpd, uWSGI's router) with one set of rules, strict where a loose
 * reading has been a smuggling primitive (CONTENT_LENGTH, duplicate framing vars).
 * `requestToVars` goes the other way, exactly as nginx 1.22 with the stock `uwsgi_params` does,
 * for clients and tests.
 */
import {
  decodeUtf8Strict,
  encodeUtf8Strict,
  hasCrLfNul,
  hasCtlOrSpace,
  hasNonLatin1,
  trimOws,
} from './bytes.ts';
import { MODIFIER1 } from './constants.ts';
import { UwsgiError } from './errors.ts';
import { checkEncoding, type UwsgiVars, type VarsEncoding } from './vars.ts';

/** The request schemes a front end can report. */
export type HttpScheme = 'http' | 'https';

/** A request as described by its vars. Strings use the decoder's encoding (latin1 by default). */
export interface UwsgiRequest {
  /** `REQUEST_METHOD`, a token, as sent (not upper-cased). */
  readonly method: string;
  /**
   * The request-target: `REQUEST_URI` (raw, with `?query`), else `PATH_INFO` re-encoded
   * (`%`-escaping what cannot appear raw) + `?` + `QUERY_STRING` when that is non-empty.
   */
  readonly url: string;
  /** `url` before the first `?`. */
  readonly path: string;
  /** `url` after the first `?` (without it); `''` when none. */
  readonly query: string;
  /** `'1.1'` for `HTTP/1.1`; from `SERVER_PROTOCOL`, default `HTTP/1.0`. */
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly httpVersionMinor: number;
  /**
   * `HTTP_*` vars as `[lowercase-name, value]` in var order, duplicates kept as separate
   * entries (nginx 1.22 sends repeated headers as repeated vars). `HTTP_X_FOO` -> `x-foo`.
   * `content-type`/`content-length` come from `CONTENT_TYPE`/`CONTENT_LENGTH` when those are
   * set (at the position of the first such header, else last; later copies dropped); a
   * `content-length` header never passes alone and `transfer-encoding` is dropped when
   * `CONTENT_LENGTH` frames the body (nginx de-chunks and still sends it). Names that are not
   * HTTP tokens once converted are skipped: no front end produces them from a valid header.
   */
  readonly headers: Array<[string, string]>;
  /** Body bytes that follow the vars: `CONTENT_LENGTH`; 0 when absent or empty = no body. */
  readonly contentLength: number;
  /**
   * `UWSGI_SCHEME`, then `HTTP_X_FORWARDED_PROTO` if trusted, then `HTTPS` (`on`/`1`), then
   * `REQUEST_SCHEME`, then `http`; values other than http/https are skipped.
   */
  readonly scheme: HttpScheme;
  /** `HTTP_HOST` if non-empty, else `SERVER_NAME`, else `''`. */
  readonly host: string;
  /** `REMOTE_ADDR` (the front end's peer), `''` when absent. */
  readonly remoteAddress: string;
  /** `REMOTE_PORT` when it is a decimal 0..65535, else `undefined`. */
  readonly remotePort: number | undefined;
  readonly serverName: string;
  /** `SERVER_PORT` when it is a decimal 0..65535, else `undefined`. */
  readonly serverPort: number | undefined;
  /** `SERVER_PROTOCOL`, default `'HTTP/1.0'`. */
  readonly serverProtocol: string;
  /** `SCRIPT_NAME`, default `''` (nginx never sends it). */
  readonly scriptName: string;
  /** `PATH_INFO` (decoded by the front end), default `''`. */
  readonly pathInfo: string;
  /**
   * What the front end left out and `varsToRequest` filled in (empty when nothing): `'method'`
   * (no `REQUEST_METHOD`: `GET`), `'path'` (neither `REQUEST_URI` nor `PATH_INFO`, or both
   * empty: `/`). An nginx `location` with a `uwsgi_param` of its own and no `include uwsgi_params`
   * sends neither (the level's params replace the inherited ones); uWSGI serves such requests.
   */
  readonly defaulted: readonly DefaultedPart[];
}

/** A part of the request a front end did not send (`UwsgiRequest.defaulted`). */
export type DefaultedPart = 'method' | 'path';

const DEFAULTED_NONE: readonly DefaultedPart[] = Object.freeze([]);
const DEFAULTED_METHOD: readonly DefaultedPart[] = Object.freeze(['method']);
const DEFAULTED_PATH: readonly DefaultedPart[] = Object.freeze(['path']);
const DEFAULTED_BOTH: readonly DefaultedPart[] = Object.freeze(['method', 'path']);

/** Options of `varsToRequest`. */
export interface VarsToRequestOptions {
  /**
   * Let `HTTP_X_FORWARDED_PROTO` (a client header unless the front end sets it) choose the
   * scheme. Default `false`.
   */
  readonly trustForwardedProto?: boolean;
  /**
   * The packet's modifier1. 30 (`MANAGE_PATH_INFO`) removes `SCRIPT_NAME` from the front of
   * `PATH_INFO` when it is a prefix on a segment boundary (uWSGI cuts blindly). Default 0.
   */
  readonly modifier1?: number;
  /** Encoding the vars were decoded with; used to re-encode `PATH_INFO`. Default `'latin1'`. */
  readonly encoding?: VarsEncoding;
  /**
   * Refuse (`UWSGI_ERR_REQUEST_INVALID`) a request without `REQUEST_METHOD` or without a path
   * instead of reading it as `GET` / `/` (`UwsgiRequest.defaulted`). Default `false`.
   */
  readonly strictVars?: boolean;
}

/** RFC 9110 section 5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DIGITS = /^[0-9]+$/;
const HTTP_VERSION = /^HTTP\/([0-9])\.([0-9])$/;

export function requestInvalid(message: string): UwsgiError {
  return new UwsgiError('UWSGI_ERR_REQUEST_INVALID', message);
}

function parsePort(value: string | undefined): number | undefined {
  if (value === undefined || value.length === 0 || value.length > 5) return undefined;
  let port = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 48;
    if (d < 0 || d > 9) return undefined;
    port = port * 10 + d;
  }
  return port <= 65535 ? port : undefined;
}

function schemeOf(value: string | undefined): HttpScheme | undefined {
  if (value === undefined) return undefined;
  // What front ends send, without a trimmed and a lower-cased copy.
  if (value === 'http' || value === 'https') return value;
  const v = value.trim().toLowerCase();
  return v === 'http' || v === 'https' ? v : undefined;
}

/**
 * Header name for an `HTTP_*` var, or `null` when it is not a token. Cached: a request carries
 * the same twenty names over and over. The cache is bounded in entries and key length, and
 * holds copies of the keys: a decoded key is a slice of its whole vars block, and keeping the
 * slice would keep the block (up to 64 KiB) alive.
 */
const HEADER_NAMES = new Map<string, string | null>();
const HEADER_NAMES_MAX = 1024;
const HEADER_NAME_KEY_MAX = 64;

export function headerNameOf(key: string): string | null {
  const cached = HEADER_NAMES.get(key);
  if (cached !== undefined) return cached;
  const cacheable = HEADER_NAMES.size < HEADER_NAMES_MAX && key.length <= HEADER_NAME_KEY_MAX;
  let own = key;
  if (cacheable) {
    const codes: number[] = [];
    for (let i = 0; i < key.length; i++) codes.push(key.charCodeAt(i));
    own = String.fromCharCode(...codes);
  }
  // Derived from the copy, so a cached name cannot be a slice of the block either.
  const name = own.slice(5).toLowerCase().replaceAll('_', '-');
  const result = TOKEN.test(name) ? name : null;
  if (cacheable) HEADER_NAMES.set(own, result);
  return result;
}

/** Chars a path keeps raw (RFC 3986 pchar + `/`); the rest is `%`-escaped. */
const PATH_RAW = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

function hex2(byte: number): string {
  return `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
}

/** Re-encodes a decoded PATH_INFO as a request-target path. */
function escapePath(pathInfo: string, utf8: boolean): string {
  if (PATH_RAW.test(pathInfo)) return pathInfo;
  let out = '';
  for (const ch of pathInfo) {
    if (PATH_RAW.test(ch)) {
      out += ch;
    } else if (!utf8) {
      out += hex2(ch.charCodeAt(0));
    } else {
      for (const b of encodeUtf8Strict(ch) ?? []) out += hex2(b);
    }
  }
  return out;
}

function checkTarget(name: string, value: string): void {
  // A request-target never holds controls, space or DEL (RFC 9112 section 3.2).
  if (hasCtlOrSpace(value)) {
    throw requestInvalid(
      `${name} holds a control char or space: ${JSON.stringify(value.slice(0, 80))}`,
    );
  }
}

function isHttpVar(key: string): boolean {
  // 'HTTP_' = 72 84 84 80 95; cheaper than startsWith on the hot path.
  return (
    key.length > 5 &&
    key.charCodeAt(0) === 72 &&
    key.charCodeAt(1) === 84 &&
    key.charCodeAt(2) === 84 &&
    key.charCodeAt(3) === 80 &&
    key.charCodeAt(4) === 95
  );
}

/**
 * Describes the HTTP request carried by `vars`.
 *
 * Duplicates: differing `REQUEST_METHOD`, `CONTENT_LENGTH` or `HTTP_HOST` values are refused
 * (framing and routing must not depend on which copy a layer reads, RELIABILITY.md U11); any
 * other duplicate var is read last-wins, like uWSGI's Python environ. `UWSGI_*` vars other than
 * `UWSGI_SCHEME` mean nothing here.
 *
 * Missing parts are read as uWSGI serves them (`UwsgiRequest.defaulted`): no
 * `REQUEST_METHOD` is `GET`; neither `REQUEST_URI` nor `PATH_INFO` is the path `/` (with
 * `?QUERY_STRING` when that is set); `strictVars` refuses both instead.
 *
 * @throws {UwsgiError} `UWSGI_ERR_REQUEST_INVALID` when there are no vars at all (datasize 0: no
 * front end sends that for a request); `REQUEST_METHOD` is empty or not a token, or missing
 * under `strictVars`; neither `REQUEST_URI` nor `PATH_INFO` is set under `strictVars`; the target holds
 * a control char or space; `CONTENT_LENGTH` is not digits only or above 2^53 - 1 (`"5x"`,
 * `"+5"`, `" 5"`, `"-1"`); `SERVER_PROTOCOL` is not `HTTP/d.d`; framing vars conflict.
 * `UWSGI_ERR_ARG_INVALID` for bad options.
 */
export function varsToRequest(vars: UwsgiVars, options: VarsToRequestOptions = {}): UwsgiRequest {
  const utf8 = checkEncoding(options.encoding);
  if (vars.length === 0) throw requestInvalid('the packet has no vars (datasize 0)');
  const strict = options.strictVars === true;
  let method: string | undefined;
  let contentLengthVar: string | undefined;
  let contentType: string | undefined;
  let requestUri: string | undefined;
  let pathInfo: string | undefined;
  let queryString: string | undefined;
  let scriptName: string | undefined;
  let serverProtocol: string | undefined;
  let uwsgiScheme: string | undefined;
  let https: string | undefined;
  let requestScheme: string | undefined;
  let serverName: string | undefined;
  let serverPort: string | undefined;
  let remoteAddr: string | undefined;
  let remotePort: string | undefined;
  let httpHost: string | undefined;
  let forwardedProto: string | undefined;

  const headers: Array<[string, string]> = [];
  let framingHeader = false;

  for (let i = 0; i < vars.length; i++) {
    const pair = vars[i]!;
    const key = pair[0];
    const value = pair[1];
    if (isHttpVar(key)) {
      const n = key.length;
      if (n === 9 && key === 'HTTP_HOST') {
        if (httpHost !== undefined && httpHost !== value) {
          throw requestInvalid(
            `conflicting HTTP_HOST values ${JSON.stringify(httpHost)} and ${JSON.stringify(value)}`,
          );
        }
        httpHost = value;
      } else if (n === 22 && key === 'HTTP_X_FORWARDED_PROTO') {
        forwardedProto = value;
      }
      const name = headerNameOf(key);
      if (name !== null) {
        headers.push([name, value]);
        framingHeader ||= isFramingHeader(name);
      }
      continue;
    }
    // Dispatch on length, then on a char or two, so that each name is compared once: a key is
    // a fresh string, and every `===` against a name of the same length compares contents.
    switch (key.length) {
      case 5:
        if (key === 'HTTPS') https = value;
        break;
      case 9:
        if (key === 'PATH_INFO') pathInfo = value;
        break;
      case 11:
        // First char and the one after `_`: R_ REQUEST_URI, RA REMOTE_ADDR, RP REMOTE_PORT,
        // SP SERVER_PORT, SN SERVER_NAME / SCRIPT_NAME (second char E / C).
        switch ((key.charCodeAt(0) << 8) | key.charCodeAt(7)) {
          case 0x525f:
            if (key === 'REQUEST_URI') requestUri = value;
            break;
          case 0x5241:
            if (key === 'REMOTE_ADDR') remoteAddr = value;
            break;
          case 0x5250:
            if (key === 'REMOTE_PORT') remotePort = value;
            break;
          case 0x5350:
            if (key === 'SERVER_PORT') serverPort = value;
            break;
          case 0x534e:
            if (key.charCodeAt(1) === 0x45) {
              if (key === 'SERVER_NAME') serverName = value;
            } else if (key === 'SCRIPT_NAME') {
              scriptName = value;
            }
            break;
          default:
            break;
        }
        break;
      case 12:
        switch (key.charCodeAt(0)) {
          case 0x51:
            if (key === 'QUERY_STRING') queryString = value;
            break;
          case 0x43:
            if (key === 'CONTENT_TYPE') contentType = value;
            break;
          case 0x55:
            if (key === 'UWSGI_SCHEME') uwsgiScheme = value;
            break;
          default:
            break;
        }
        break;
      case 14:
        // REQUEST_METHOD / REQUEST_SCHEME (ninth char M / S), CONTENT_LENGTH.
        if (key.charCodeAt(0) === 0x43) {
          if (key === 'CONTENT_LENGTH') {
            if (contentLengthVar !== undefined && contentLengthVar !== value) {
              throw requestInvalid(
                `conflicting CONTENT_LENGTH values ${JSON.stringify(contentLengthVar)} and ${JSON.stringify(value)}`,
              );
            }
            contentLengthVar = value;
          }
        } else if (key.charCodeAt(8) === 0x4d) {
          if (key === 'REQUEST_METHOD') {
            if (method !== undefined && method !== value) {
              throw requestInvalid(
                `conflicting REQUEST_METHOD values ${JSON.stringify(method)} and ${JSON.stringify(value)}`,
              );
            }
            method = value;
          }
        } else if (key === 'REQUEST_SCHEME') {
          requestScheme = value;
        }
        break;
      case 15:
        if (key === 'SERVER_PROTOCOL') serverProtocol = value;
        break;
      default:
        break;
    }
  }

  // The rules after the pass are shared with viewToRequest (a literal: the locals above stay
  // in registers through the loop, which a FoundVars filled var by var measured slower).
  return finishRequest(
    {
      method,
      contentLengthVar,
      contentType,
      requestUri,
      pathInfo,
      queryString,
      scriptName,
      serverProtocol,
      uwsgiScheme,
      https,
      requestScheme,
      serverName,
      serverPort,
      remoteAddr,
      remotePort,
      httpHost,
      forwardedProto,
      headers,
      framingHeader,
    },
    options,
    utf8,
    strict,
  );
}

/** What a pass over the vars found (request-view.ts `FoundVars`, or varsToRequest's locals), as `finishRequest` reads it. Internal. */
export interface FoundFields {
  readonly method: string | undefined;
  readonly contentLengthVar: string | undefined;
  readonly contentType: string | undefined;
  readonly requestUri: string | undefined;
  readonly pathInfo: string | undefined;
  readonly queryString: string | undefined;
  readonly scriptName: string | undefined;
  readonly serverProtocol: string | undefined;
  readonly uwsgiScheme: string | undefined;
  readonly https: string | undefined;
  readonly requestScheme: string | undefined;
  readonly serverName: string | undefined;
  readonly serverPort: string | undefined;
  readonly remoteAddr: string | undefined;
  readonly remotePort: string | undefined;
  readonly httpHost: string | undefined;
  readonly forwardedProto: string | undefined;
  readonly headers: Array<[string, string]>;
  readonly framingHeader: boolean;
}

/**
 * The request described by the vars a pass found (the rules after the pass: defaults, framing,
 * target, version, scheme). Internal: shared by `varsToRequest` and `viewToRequest`.
 */
export function finishRequest(
  found: FoundFields,
  options: VarsToRequestOptions,
  utf8: boolean,
  strict: boolean,
): UwsgiRequest {
  // Absent is a front end's config that leaves it out; empty is a broken value (RELIABILITY U23).
  const {
    contentLengthVar,
    contentType,
    requestUri,
    pathInfo,
    queryString,
    scriptName,
    serverProtocol,
    uwsgiScheme,
    https,
    requestScheme,
    serverName,
    serverPort,
    remoteAddr,
    remotePort,
    httpHost,
    forwardedProto,
    headers,
    framingHeader,
  } = found;
  let method = found.method;
  const noMethod = method === undefined;
  if (noMethod) {
    if (strict) throw requestInvalid('REQUEST_METHOD is missing');
    method = 'GET';
  } else if (method!.length === 0) {
    throw requestInvalid('REQUEST_METHOD is empty');
  } else if (!TOKEN.test(method!)) {
    throw requestInvalid(`REQUEST_METHOD is not a token: ${JSON.stringify(method!.slice(0, 80))}`);
  }

  // CONTENT_LENGTH alone frames the body. Digits only: uWSGI's "leading digits" reading turns
  // "5x" into 5, a smuggling primitive (PROTOCOL.md section 2). Empty = nginx's "no body".
  let contentLength = 0;
  const framed = contentLengthVar !== undefined && contentLengthVar.length > 0;
  if (framed) {
    const n =
      contentLengthVar!.length <= 16 && DIGITS.test(contentLengthVar!)
        ? Number(contentLengthVar)
        : -1;
    if (n < 0 || !Number.isSafeInteger(n)) {
      throw requestInvalid(
        `CONTENT_LENGTH is not a decimal length: ${JSON.stringify(contentLengthVar!.slice(0, 40))}`,
      );
    }
    contentLength = n;
  }

  let url: string;
  let noPath = false;
  if (requestUri !== undefined && requestUri.length > 0) {
    checkTarget('REQUEST_URI', requestUri);
    url = requestUri;
  } else if (pathInfo !== undefined && pathInfo.length > 0) {
    const query = queryString ?? '';
    checkTarget('QUERY_STRING', query);
    url = escapePath(pathInfo, utf8) + (query.length > 0 ? `?${query}` : '');
  } else if (strict) {
    throw requestInvalid('neither REQUEST_URI nor PATH_INFO is set');
  } else {
    noPath = true;
    const query = queryString ?? '';
    checkTarget('QUERY_STRING', query);
    url = query.length > 0 ? `/?${query}` : '/';
  }
  const q = url.indexOf('?');

  const protocol = serverProtocol ?? 'HTTP/1.0';
  const version = httpVersionOf(protocol);

  const httpsOn = https !== undefined && (https.toLowerCase() === 'on' || https === '1');
  const scheme =
    schemeOf(uwsgiScheme) ??
    (options.trustForwardedProto === true
      ? schemeOf(forwardedProto?.split(',', 1)[0])
      : undefined) ??
    (httpsOn ? 'https' : undefined) ??
    schemeOf(requestScheme) ??
    'http';

  let script = scriptName ?? '';
  let info = pathInfo ?? '';
  if (options.modifier1 === MODIFIER1.MANAGE_PATH_INFO && script.length > 0) {
    const prefix = script.endsWith('/') ? script.slice(0, -1) : script;
    if (info === prefix) {
      info = '';
    } else if (info.startsWith(`${prefix}/`)) {
      info = info.slice(prefix.length);
    }
    script = prefix;
  }

  return {
    method: method as string,
    url,
    path: q === -1 ? url : url.slice(0, q),
    query: q === -1 ? '' : url.slice(q + 1),
    httpVersion: version.text,
    httpVersionMajor: version.major,
    httpVersionMinor: version.minor,
    headers:
      framingHeader || framed || (contentType !== undefined && contentType.length > 0)
        ? reconcileHeaders(headers, contentType, framed ? contentLength : undefined)
        : headers,
    contentLength,
    scheme,
    host: httpHost !== undefined && httpHost.length > 0 ? httpHost : (serverName ?? ''),
    remoteAddress: remoteAddr ?? '',
    remotePort: parsePort(remotePort),
    serverName: serverName ?? '',
    serverPort: parsePort(serverPort),
    serverProtocol: protocol,
    scriptName: script,
    pathInfo: info,
    defaulted: noMethod
      ? noPath
        ? DEFAULTED_BOTH
        : DEFAULTED_METHOD
      : noPath
        ? DEFAULTED_PATH
        : DEFAULTED_NONE,
  };
}

interface HttpVersion {
  readonly text: string;
  readonly major: number;
  readonly minor: number;
}

const HTTP_1_1: HttpVersion = Object.freeze({ text: '1.1', major: 1, minor: 1 });
const HTTP_1_0: HttpVersion = Object.freeze({ text: '1.0', major: 1, minor: 0 });

/** `SERVER_PROTOCOL` `HTTP/d.d` read; the two usual values without a regex match. */
function httpVersionOf(protocol: string): HttpVersion {
  if (protocol === 'HTTP/1.1') return HTTP_1_1;
  if (protocol === 'HTTP/1.0') return HTTP_1_0;
  const version = HTTP_VERSION.exec(protocol);
  if (version === null) {
    throw requestInvalid(
      `SERVER_PROTOCOL is not HTTP/d.d: ${JSON.stringify(protocol.slice(0, 40))}`,
    );
  }
  return {
    text: `${version[1]}.${version[2]}`,
    major: Number(version[1]),
    minor: Number(version[2]),
  };
}

/** `content-type`, `content-length` or `transfer-encoding`: the headers the vars may overrule. */
export function isFramingHeader(name: string): boolean {
  const n = name.length;
  return (
    (n === 12 && name === 'content-type') ||
    (n === 14 && name === 'content-length') ||
    (n === 17 && name === 'transfer-encoding')
  );
}

/**
 * Makes the header list agree with the framing vars: `CONTENT_TYPE` (non-empty) replaces the
 * first `content-type` header in place and drops the others, or is appended; a `content-length`
 * header never passes alone, the first one is replaced by `CONTENT_LENGTH` when that frames the
 * body (or it is appended); `transfer-encoding` is dropped when `CONTENT_LENGTH` frames the body
 * (nginx de-chunks and still forwards the header).
 */
function reconcileHeaders(
  headers: Array<[string, string]>,
  contentType: string | undefined,
  contentLength: number | undefined,
): Array<[string, string]> {
  const typeFromVar = contentType !== undefined && contentType.length > 0;
  const out: Array<[string, string]> = [];
  let typePlaced = false;
  let lengthPlaced = false;
  for (const header of headers) {
    const name = header[0];
    if (name === 'content-type') {
      if (typeFromVar) {
        if (!typePlaced) out.push(['content-type', contentType!]);
        typePlaced = true;
        continue;
      }
    } else if (name === 'content-length') {
      if (contentLength !== undefined && !lengthPlaced) {
        out.push(['content-length', String(contentLength)]);
        lengthPlaced = true;
      }
      continue;
    } else if (name === 'transfer-encoding' && contentLength !== undefined) {
      continue;
    }
    out.push(header);
  }
  if (typeFromVar && !typePlaced) out.push(['content-type', contentType!]);
  if (contentLength !== undefined && !lengthPlaced) {
    out.push(['content-length', String(contentLength)]);
  }
  return out;
}

/** Header values as a record (node:http's `IncomingHttpHeaders` shape) or ordered pairs. */
export type HeadersInput =
  | Iterable<readonly [string, string]>
  | Readonly<Record<string, string | readonly string[] | undefined>>;

/** What `requestToVars` needs: an HTTP request as a client or nginx sees it. */
export interface HttpRequestDescription {
  /** A token, e.g. `GET`. */
  readonly method: string;
  /** Origin-form request-target (`/path?query`), raw. */
  readonly url: string;
  readonly headers: HeadersInput;
  /** Default `'1.1'`. */
  readonly httpVersion?: string;
  /** Default `'http'`; `https` also emits `HTTPS=on`. */
  readonly scheme?: HttpScheme;
  /** Default `''`. */
  readonly remoteAddress?: string;
  /** Default: `REMOTE_PORT` empty. */
  readonly remotePort?: number;
  /** nginx's `server_name`. Default `''`. */
  readonly serverName?: string;
  /** Default 80, or 443 for https. */
  readonly serverPort?: number;
  /**
   * Body size that will follow the packet. Default: the `content-length` header, else empty
   * (no body). Pass it for a chunked request: nginx sends the de-chunked size.
   */
  readonly contentLength?: number;
  /** nginx's `$document_root`. Default `''`. */
  readonly documentRoot?: string;
}

/** Options of `requestToVars`. */
export interface RequestToVarsOptions {
  /**
   * How `PATH_INFO`'s decoded bytes become a string: `'latin1'` (default, one char per byte,
   * what `%FF` gives) or `'utf8'` (invalid UTF-8 is then refused).
   */
  readonly encoding?: VarsEncoding;
}

function argInvalid(message: string): UwsgiError {
  return new UwsgiError('UWSGI_ERR_ARG_INVALID', message);
}

/** nginx forwards header names of letters, digits and `-` (default `ignore_invalid_headers`). */
const NGINX_HEADER_NAME = /^[A-Za-z0-9-]+$/;
const HEX = /^[0-9A-Fa-f]{2}$/;

function collectHeaders(headers: HeadersInput): Array<readonly [string, string]> {
  if (headers === null || typeof headers !== 'object')
    throw argInvalid('headers must be pairs or a record');
  const out: Array<readonly [string, string]> = [];
  if (typeof (headers as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function') {
    for (const pair of headers as Iterable<unknown>) {
      if (!Array.isArray(pair) || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
        throw argInvalid('each header must be a [string, string] pair');
      }
      out.push([pair[0], pair[1]]);
    }
    return out;
  }
  for (const [name, value] of Object.entries(headers as Record<string, unknown>)) {
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      if (typeof v !== 'string') throw argInvalid(`header ${name} must be a string or string[]`);
      out.push([name, v]);
    }
  }
  return out;
}

/** The byte string (one char per byte) of `s` in `encoding`. */
function toByteString(s: string, utf8: boolean): string {
  if (!utf8) {
    if (hasNonLatin1(s)) throw argInvalid(`${JSON.stringify(s.slice(0, 80))} is not latin1`);
    return s;
  }
  const bytes = encodeUtf8Strict(s);
  if (bytes === undefined)
    throw argInvalid(`${JSON.stringify(s.slice(0, 80))} holds a lone surrogate`);
  let out = '';
  for (const b of bytes) out += String.fromCharCode(b);
  return out;
}

/**
 * nginx's `$document_uri` for a raw path: `%XX` decoded (a decoded `/` is a separator), `//`
 * merged, `.` and `..` segments resolved. nginx answers 400 for a bad escape, `%00`, or `..`
 * above the root; so do we (as `UWSGI_ERR_ARG_INVALID`).
 */
function documentUri(rawPath: string, utf8: boolean): string {
  const bytes = toByteString(rawPath, utf8);
  let decoded = '';
  for (let i = 0; i < bytes.length; i++) {
    const ch = bytes[i]!;
    if (ch !== '%') {
      decoded += ch;
      continue;
    }
    const hex = bytes.slice(i + 1, i + 3);
    if (!HEX.test(hex))
      throw argInvalid(`bad %-escape in ${JSON.stringify(rawPath.slice(0, 80))} (nginx: 400)`);
    const byte = Number.parseInt(hex, 16);
    if (byte === 0) throw argInvalid(`%00 in ${JSON.stringify(rawPath.slice(0, 80))} (nginx: 400)`);
    decoded += String.fromCharCode(byte);
    i += 2;
  }
  const segments = decoded.split('/').slice(1);
  const out: string[] = [];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === '..') {
      if (out.length === 0)
        throw argInvalid(
          `${JSON.stringify(rawPath.slice(0, 80))} climbs above the root (nginx: 400)`,
        );
      out.pop();
      if (last) out.push('');
    } else if (seg === '' || seg === '.') {
      if (last) out.push('');
    } else {
      out.push(seg);
    }
  }
  const normalised = `/${out.join('/')}`;
  if (!utf8) return normalised;
  const view = new Uint8Array(normalised.length);
  for (let i = 0; i < normalised.length; i++) view[i] = normalised.charCodeAt(i);
  const text = decodeUtf8Strict(view);
  if (text === undefined)
    throw argInvalid(`the decoded path of ${JSON.stringify(rawPath.slice(0, 80))} is not UTF-8`);
  return text;
}

/**
 * The vars nginx 1.22 sends for `request` with the stock `uwsgi_params` (upstream
 * `conf/uwsgi_params`, PROTOCOL.md section 5), in its order: `QUERY_STRING`, `REQUEST_METHOD`,
 * `CONTENT_TYPE`, `CONTENT_LENGTH`, `REQUEST_URI`, `PATH_INFO`, `DOCUMENT_ROOT`,
 * `SERVER_PROTOCOL`, `REQUEST_SCHEME`, `HTTPS` (only for https), `REMOTE_ADDR`, `REMOTE_PORT`,
 * `SERVER_PORT`, `SERVER_NAME`, then one `HTTP_*` var per header line in order (duplicates as
 * separate vars, `Content-*` included). Bodiless requests get empty `CONTENT_TYPE` and
 * `CONTENT_LENGTH`, as nginx sends. Header names with chars other than letters, digits and `-`
 * are dropped (nginx's default `ignore_invalid_headers`); values are trimmed of SP/HTAB.
 *
 * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID` for what nginx answers 400 to: a method that is
 * not a token, a target that is not origin-form or holds controls/space, a bad `%` escape, `%00`,
 * `..` above the root, CR/LF/NUL in a header value, two `content-length` headers or a
 * non-decimal one; a bad `httpVersion`, port or `contentLength`.
 */
export function requestToVars(
  request: HttpRequestDescription,
  options: RequestToVarsOptions = {},
): Array<[string, string]> {
  const utf8 = checkEncoding(options.encoding);
  const { method, url } = request;
  if (typeof method !== 'string' || !TOKEN.test(method)) {
    throw argInvalid(`method is not a token: ${JSON.stringify(method)}`);
  }
  if (typeof url !== 'string' || !url.startsWith('/') || hasCtlOrSpace(url)) {
    throw argInvalid(
      `url must be an origin-form target without controls or space: ${JSON.stringify(url)}`,
    );
  }
  const httpVersion = request.httpVersion ?? '1.1';
  if (!/^[0-9]\.[0-9]$/.test(httpVersion))
    throw argInvalid(`httpVersion must be d.d, got ${httpVersion}`);
  const scheme = request.scheme ?? 'http';
  if (scheme !== 'http' && scheme !== 'https')
    throw argInvalid(`scheme must be http or https, got ${String(scheme)}`);
  const port = (name: string, value: number | undefined): string => {
    if (value === undefined) return '';
    if (!Number.isInteger(value) || value < 0 || value > 65535)
      throw argInvalid(`${name} must be 0..65535`);
    return String(value);
  };

  const headerVars: Array<[string, string]> = [];
  let contentType: string | undefined;
  let contentLengthHeader: string | undefined;
  for (const [name, rawValue] of collectHeaders(request.headers)) {
    if (hasCrLfNul(rawValue)) throw argInvalid(`header ${name} holds CR, LF or NUL (nginx: 400)`);
    if (!NGINX_HEADER_NAME.test(name)) continue;
    // nginx strips leading and trailing whitespace from field values.
    const value = trimOws(rawValue);
    const lower = name.toLowerCase();
    if (lower === 'content-type') {
      contentType ??= value;
    } else if (lower === 'content-length') {
      if (contentLengthHeader !== undefined)
        throw argInvalid('two content-length headers (nginx: 400)');
      if (!DIGITS.test(value))
        throw argInvalid(`content-length is not decimal: ${JSON.stringify(value)} (nginx: 400)`);
      contentLengthHeader = value;
    }
    headerVars.push([`HTTP_${name.toUpperCase().replaceAll('-', '_')}`, value]);
  }

  let contentLength = contentLengthHeader ?? '';
  if (request.contentLength !== undefined) {
    if (!Number.isSafeInteger(request.contentLength) || request.contentLength < 0) {
      throw argInvalid(
        `contentLength must be a non-negative safe integer, got ${request.contentLength}`,
      );
    }
    contentLength = String(request.contentLength);
  }

  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const vars: Array<[string, string]> = [
    ['QUERY_STRING', q === -1 ? '' : url.slice(q + 1)],
    ['REQUEST_METHOD', method],
    ['CONTENT_TYPE', contentType ?? ''],
    ['CONTENT_LENGTH', contentLength],
    ['REQUEST_URI', url],
    ['PATH_INFO', documentUri(rawPath, utf8)],
    ['DOCUMENT_ROOT', request.documentRoot ?? ''],
    ['SERVER_PROTOCOL', `HTTP/${httpVersion}`],
    ['REQUEST_SCHEME', scheme],
  ];
  // `uwsgi_param HTTPS $https if_not_empty`: present only under TLS.
  if (scheme === 'https') vars.push(['HTTPS', 'on']);
  vars.push(
    ['REMOTE_ADDR', request.remoteAddress ?? ''],
    ['REMOTE_PORT', port('remotePort', request.remotePort)],
    ['SERVER_PORT', port('serverPort', request.serverPort ?? (scheme === 'https' ? 443 : 80))],
    ['SERVER_NAME', request.serverName ?? ''],
  );
  for (const v of headerVars) vars.push(v);
  return vars;
}
