/**
 * `varsToRequest` read from a {@link VarsView}: the CGI names are compared as bytes, and strings
 * are made only for the values the request keeps (method, target, headers, the few CGI vars it
 * reports) and the `HTTP_*` names. Same rules, same result, same errors: both passes fill a
 * `FoundVars` and end in `finishRequest` (request-vars.ts).
 */
import {
  FoundVars,
  finishRequest,
  headerNameOf,
  requestInvalid,
  type UwsgiRequest,
  type VarsToRequestOptions,
} from './request-vars.ts';
import { checkEncoding } from './vars.ts';
import type { VarsView } from './vars-view.ts';

/** The CGI vars `varsToRequest` reads, by id (index + 1; 0 = none of them). */
const CGI = [
  'HTTPS',
  'PATH_INFO',
  'REQUEST_URI',
  'REMOTE_ADDR',
  'REMOTE_PORT',
  'SERVER_PORT',
  'SERVER_NAME',
  'SCRIPT_NAME',
  'QUERY_STRING',
  'CONTENT_TYPE',
  'UWSGI_SCHEME',
  'CONTENT_LENGTH',
  'REQUEST_METHOD',
  'REQUEST_SCHEME',
  'SERVER_PROTOCOL',
  'HOST',
  'X_FORWARDED_PROTO',
] as const;
/**
 * Each name as little-endian u32 words at byte offsets 0, 4, 8... and a last one ending at the
 * name's end (overlapping the one before): a name is compared in 2-4 loads instead of a load
 * per byte (a JS loop over bytes cost ~30 instructions a byte, more than the string slice and
 * native comparison of `varsToRequest`). Flat: offset, word, offset, word...
 */
const CGI_WORDS: readonly Int32Array[] = CGI.map((name) => {
  const words: number[] = [];
  const word = (at: number): number =>
    name.charCodeAt(at) |
    (name.charCodeAt(at + 1) << 8) |
    (name.charCodeAt(at + 2) << 16) |
    (name.charCodeAt(at + 3) << 24) |
    0;
  for (let at = 0; at + 4 < name.length; at += 4) words.push(at, word(at));
  words.push(name.length - 4, word(name.length - 4));
  return Int32Array.from(words);
});

/**
 * A DataView of `bytes`' buffer, kept for the next call: a transport reads every request into
 * the same buffer, so this is nearly always a hit (a miss allocates one view).
 */
let lastBuffer: ArrayBufferLike | undefined;
let lastView: DataView | undefined;
function dataViewOf(bytes: Uint8Array): DataView {
  const buffer = bytes.buffer;
  if (buffer !== lastBuffer || lastView === undefined) {
    lastView = new DataView(buffer);
    lastBuffer = buffer;
  }
  return lastView;
}

const HTTPS = 1;
const PATH_INFO = 2;
const REQUEST_URI = 3;
const REMOTE_ADDR = 4;
const REMOTE_PORT = 5;
const SERVER_PORT = 6;
const SERVER_NAME = 7;
const SCRIPT_NAME = 8;
const QUERY_STRING = 9;
const CONTENT_TYPE = 10;
const UWSGI_SCHEME = 11;
const CONTENT_LENGTH = 12;
const REQUEST_METHOD = 13;
const REQUEST_SCHEME = 14;
const SERVER_PROTOCOL = 15;
/** After `HTTP_`: HOST and X_FORWARDED_PROTO. */
const HOST = 16;
const X_FORWARDED_PROTO = 17;

/** `id` when the bytes at `at` (absolute, in `dv`) are CGI name `id` (of the length given). */
function confirm(dv: DataView, at: number, id: number): number {
  const words = CGI_WORDS[id - 1]!;
  for (let i = 0; i < words.length; i += 2) {
    if (dv.getInt32(at + words[i]!, true) !== words[i + 1]) return 0;
  }
  return id;
}

/**
 * The id of the CGI name `bytes[k, k + n)`, or 0: one candidate by length and a char or two (as
 * varsToRequest dispatches), then one comparison.
 */
function cgiId(bytes: Uint8Array, dv: DataView, base: number, k: number, n: number): number {
  const at = base + k;
  switch (n) {
    case 5:
      return confirm(dv, at, HTTPS);
    case 9:
      return confirm(dv, at, PATH_INFO);
    case 11:
      switch ((bytes[k]! << 8) | bytes[k + 7]!) {
        case 0x525f:
          return confirm(dv, at, REQUEST_URI);
        case 0x5241:
          return confirm(dv, at, REMOTE_ADDR);
        case 0x5250:
          return confirm(dv, at, REMOTE_PORT);
        case 0x5350:
          return confirm(dv, at, SERVER_PORT);
        case 0x534e:
          return bytes[k + 1] === 0x45
            ? confirm(dv, at, SERVER_NAME)
            : confirm(dv, at, SCRIPT_NAME);
        default:
          return 0;
      }
    case 12:
      switch (bytes[k]) {
        case 0x51:
          return confirm(dv, at, QUERY_STRING);
        case 0x43:
          return confirm(dv, at, CONTENT_TYPE);
        case 0x55:
          return confirm(dv, at, UWSGI_SCHEME);
        default:
          return 0;
      }
    case 14:
      if (bytes[k] === 0x43) return confirm(dv, at, CONTENT_LENGTH);
      return bytes[k + 8] === 0x4d
        ? confirm(dv, at, REQUEST_METHOD)
        : confirm(dv, at, REQUEST_SCHEME);
    case 15:
      return confirm(dv, at, SERVER_PROTOCOL);
    default:
      return 0;
  }
}

/**
 * {@link varsToRequest} for the vars of a view, without decoding the rest: the same request,
 * rules and errors as `varsToRequest(view.toArray(), options)`. `options.encoding` defaults to
 * the view's.
 *
 * @throws {UwsgiError} as `varsToRequest`.
 */
export function viewToRequest(view: VarsView, options: VarsToRequestOptions = {}): UwsgiRequest {
  const utf8 = checkEncoding(options.encoding ?? view.encoding);
  if (view.size === 0) throw requestInvalid('the packet has no vars (datasize 0)');
  const strict = options.strictVars === true;
  const found = new FoundVars();
  const bytes = view.bytes;
  const dv = dataViewOf(bytes);
  const base = bytes.byteOffset;
  let p = view.byteOffset;
  const end = p + view.byteLength;
  while (p < end) {
    const k = p + 2;
    const keyLength = bytes[p]! | (bytes[p + 1]! << 8);
    const keyEnd = k + keyLength;
    const v = keyEnd + 2;
    const valueEnd = v + (bytes[keyEnd]! | (bytes[keyEnd + 1]! << 8));
    p = valueEnd;
    // 'HTTP_' = 48 54 54 50 5f
    if (
      keyLength > 5 &&
      bytes[k] === 0x48 &&
      bytes[k + 1] === 0x54 &&
      bytes[k + 2] === 0x54 &&
      bytes[k + 3] === 0x50 &&
      bytes[k + 4] === 0x5f
    ) {
      const value = view.string(v, valueEnd);
      if (keyLength === 9) {
        if (confirm(dv, base + k + 5, HOST) !== 0) found.setHost(value);
      } else if (keyLength === 22 && confirm(dv, base + k + 5, X_FORWARDED_PROTO) !== 0) {
        found.forwardedProto = value;
      }
      const name = headerNameOf(view.string(k, keyEnd));
      if (name !== null) found.addHeader(name, value);
      continue;
    }
    const id = cgiId(bytes, dv, base, k, keyLength);
    if (id === 0) continue;
    const value = view.string(v, valueEnd);
    switch (id) {
      case HTTPS:
        found.https = value;
        break;
      case PATH_INFO:
        found.pathInfo = value;
        break;
      case REQUEST_URI:
        found.requestUri = value;
        break;
      case REMOTE_ADDR:
        found.remoteAddr = value;
        break;
      case REMOTE_PORT:
        found.remotePort = value;
        break;
      case SERVER_PORT:
        found.serverPort = value;
        break;
      case SERVER_NAME:
        found.serverName = value;
        break;
      case SCRIPT_NAME:
        found.scriptName = value;
        break;
      case QUERY_STRING:
        found.queryString = value;
        break;
      case CONTENT_TYPE:
        found.contentType = value;
        break;
      case UWSGI_SCHEME:
        found.uwsgiScheme = value;
        break;
      case CONTENT_LENGTH:
        found.setContentLength(value);
        break;
      case REQUEST_METHOD:
        found.setMethod(value);
        break;
      case REQUEST_SCHEME:
        found.requestScheme = value;
        break;
      default:
        found.serverProtocol = value;
        break;
    }
  }
  return finishRequest(found, options, utf8, strict);
}
