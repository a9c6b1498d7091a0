/**
 * `varsToRequest` read from a {@link VarsView}: the same rules through the same code (a
 * `FoundVars` filled var by var, then `finishRequest`, request-vars.ts), without the eager
 * decode's pair per var and the strings of vars a request does not read: a name is made into a
 * string only when its length is one a request reads (or it starts with `HTTP_`), a value only
 * when its name is one of them. Names are compared as strings, not bytes: a slice of the
 * block's text and a native comparison cost less than comparing bytes in JS.
 */
import {
  type FoundFields,
  finishRequest,
  headerNameOf,
  isFramingHeader,
  requestInvalid,
  type UwsgiRequest,
  type VarsToRequestOptions,
} from './request-vars.ts';
import { checkEncoding } from './vars.ts';
import type { VarsView } from './vars-view.ts';

/** The CGI vars a request is read from, by id (0: none of them). */
const Cgi = {
  None: 0,
  Https: 1,
  PathInfo: 2,
  RequestUri: 3,
  RemoteAddr: 4,
  RemotePort: 5,
  ServerPort: 6,
  ServerName: 7,
  ScriptName: 8,
  QueryString: 9,
  ContentType: 10,
  UwsgiScheme: 11,
  ContentLength: 12,
  RequestMethod: 13,
  RequestScheme: 14,
  ServerProtocol: 15,
} as const;

/**
 * The id of a CGI var name (not `HTTP_*`), 0 for a name a request does not read. Dispatches
 * on the length, then on a char or two, so that each name is compared once: a key is a fresh
 * string, and every `===` against a name of the same length compares contents. Internal:
 * shared by `varsToRequest` and `viewToRequest`.
 */
export function cgiIdOf(key: string): number {
  switch (key.length) {
    case 5:
      return key === 'HTTPS' ? Cgi.Https : Cgi.None;
    case 9:
      return key === 'PATH_INFO' ? Cgi.PathInfo : Cgi.None;
    case 11:
      // First char and the one after `_`: R_ REQUEST_URI, RA REMOTE_ADDR, RP REMOTE_PORT,
      // SP SERVER_PORT, SN SERVER_NAME / SCRIPT_NAME (second char E / C).
      switch ((key.charCodeAt(0) << 8) | key.charCodeAt(7)) {
        case 0x525f:
          return key === 'REQUEST_URI' ? Cgi.RequestUri : Cgi.None;
        case 0x5241:
          return key === 'REMOTE_ADDR' ? Cgi.RemoteAddr : Cgi.None;
        case 0x5250:
          return key === 'REMOTE_PORT' ? Cgi.RemotePort : Cgi.None;
        case 0x5350:
          return key === 'SERVER_PORT' ? Cgi.ServerPort : Cgi.None;
        case 0x534e:
          if (key.charCodeAt(1) === 0x45) return key === 'SERVER_NAME' ? Cgi.ServerName : Cgi.None;
          return key === 'SCRIPT_NAME' ? Cgi.ScriptName : Cgi.None;
        default:
          return Cgi.None;
      }
    case 12:
      switch (key.charCodeAt(0)) {
        case 0x51:
          return key === 'QUERY_STRING' ? Cgi.QueryString : Cgi.None;
        case 0x43:
          return key === 'CONTENT_TYPE' ? Cgi.ContentType : Cgi.None;
        case 0x55:
          return key === 'UWSGI_SCHEME' ? Cgi.UwsgiScheme : Cgi.None;
        default:
          return Cgi.None;
      }
    case 14:
      // REQUEST_METHOD / REQUEST_SCHEME (ninth char M / S), CONTENT_LENGTH.
      if (key.charCodeAt(0) === 0x43) {
        return key === 'CONTENT_LENGTH' ? Cgi.ContentLength : Cgi.None;
      }
      if (key.charCodeAt(8) === 0x4d) {
        return key === 'REQUEST_METHOD' ? Cgi.RequestMethod : Cgi.None;
      }
      return key === 'REQUEST_SCHEME' ? Cgi.RequestScheme : Cgi.None;
    case 15:
      return key === 'SERVER_PROTOCOL' ? Cgi.ServerProtocol : Cgi.None;
    default:
      return Cgi.None;
  }
}

/** Whether a CGI name of this length can be one `cgiIdOf` knows (no string needed to say no). */
export function cgiLength(n: number): boolean {
  return n === 5 || n === 9 || n === 11 || n === 12 || n === 14 || n === 15;
}

/**
 * What a pass over the vars found, for {@link finishRequest}. Internal: filled by
 * `varsToRequest` from decoded pairs and by `viewToRequest` (request-view.ts) from a vars view,
 * so that both apply one set of rules.
 */
export class FoundVars implements FoundFields {
  method: string | undefined = undefined;
  contentLengthVar: string | undefined = undefined;
  contentType: string | undefined = undefined;
  requestUri: string | undefined = undefined;
  pathInfo: string | undefined = undefined;
  queryString: string | undefined = undefined;
  scriptName: string | undefined = undefined;
  serverProtocol: string | undefined = undefined;
  uwsgiScheme: string | undefined = undefined;
  https: string | undefined = undefined;
  requestScheme: string | undefined = undefined;
  serverName: string | undefined = undefined;
  serverPort: string | undefined = undefined;
  remoteAddr: string | undefined = undefined;
  remotePort: string | undefined = undefined;
  httpHost: string | undefined = undefined;
  forwardedProto: string | undefined = undefined;
  /** `HTTP_*` vars as headers, in var order (names that are no token left out). */
  readonly headers: Array<[string, string]> = [];
  /** One of the headers is content-type, content-length or transfer-encoding. */
  framingHeader = false;

  // Framing and routing must not depend on which copy a layer reads (RELIABILITY.md U11).
  setMethod(value: string): void {
    this.method = agreed('REQUEST_METHOD', this.method, value);
  }

  setContentLength(value: string): void {
    this.contentLengthVar = agreed('CONTENT_LENGTH', this.contentLengthVar, value);
  }

  setHost(value: string): void {
    this.httpHost = agreed('HTTP_HOST', this.httpHost, value);
  }

  addHeader(name: string, value: string): void {
    this.headers.push([name, value]);
    this.framingHeader ||= isFramingHeader(name);
  }

  /** An `HTTP_*` var (`isHttpVar`): a header, and the host or forwarded scheme. */
  addHttpVar(key: string, value: string): void {
    const n = key.length;
    if (n === 9 && key === 'HTTP_HOST') this.setHost(value);
    else if (n === 22 && key === 'HTTP_X_FORWARDED_PROTO') this.forwardedProto = value;
    const name = headerNameOf(key);
    if (name !== null) this.addHeader(name, value);
  }

  /** The value of CGI var `id` (`cgiIdOf`, not 0); duplicates read last-wins but for framing. */
  set(id: number, value: string): void {
    switch (id) {
      case Cgi.Https:
        this.https = value;
        break;
      case Cgi.PathInfo:
        this.pathInfo = value;
        break;
      case Cgi.RequestUri:
        this.requestUri = value;
        break;
      case Cgi.RemoteAddr:
        this.remoteAddr = value;
        break;
      case Cgi.RemotePort:
        this.remotePort = value;
        break;
      case Cgi.ServerPort:
        this.serverPort = value;
        break;
      case Cgi.ServerName:
        this.serverName = value;
        break;
      case Cgi.ScriptName:
        this.scriptName = value;
        break;
      case Cgi.QueryString:
        this.queryString = value;
        break;
      case Cgi.ContentType:
        this.contentType = value;
        break;
      case Cgi.UwsgiScheme:
        this.uwsgiScheme = value;
        break;
      case Cgi.ContentLength:
        this.setContentLength(value);
        break;
      case Cgi.RequestMethod:
        this.setMethod(value);
        break;
      case Cgi.RequestScheme:
        this.requestScheme = value;
        break;
      default:
        this.serverProtocol = value;
        break;
    }
  }
}

/** `value`, unless an earlier copy of the var (`seen`) differs: then a conflict. */
function agreed(name: string, seen: string | undefined, value: string): string {
  if (seen !== undefined && seen !== value) {
    throw requestInvalid(
      `conflicting ${name} values ${JSON.stringify(seen)} and ${JSON.stringify(value)}`,
    );
  }
  return value;
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
      found.addHttpVar(view.string(k, keyEnd), view.string(v, valueEnd));
    } else if (cgiLength(keyLength)) {
      // In utf8 mode a name's chars can be fewer than its bytes, but never for these ASCII names.
      const id = cgiIdOf(view.string(k, keyEnd));
      if (id !== 0) found.set(id, view.string(v, valueEnd));
    }
  }
  return finishRequest(found, options, utf8, strict);
}
