/**
 * Config `health: /path`: uwsgi listeners answer GET/HEAD of exactly that path (query ignored, no
 * body) with `200 ok` themselves, before any http object, routing, app, access record or request
 * count (protocol/uwsgi.ts asks here first).
 *
 * Two ways to the same answer, held to each other by a property test (test/health.test.ts):
 * - `healthAnswerPacket` / `healthAnswerRaw`: when the connection's first read holds the whole
 *   packet (nearly always behind nginx), straight from its bytes with the codec's `scanVars`: no
 *   vars are decoded and no strings made;
 * - `healthAnswer`: on the decoded vars, for a packet that arrived in pieces (the decoder's path).
 */
import {
  HEADER_SIZE,
  MODIFIER1,
  readHeader,
  scanVars,
  type UwsgiVars,
  type VarsVisitor,
} from '@uwsgi-ts/codec';
import type { LimitsConfig } from '../config/types.ts';

/**
 * The health answer, written as is (HEAD: head only). `no-store`, so no cache between the checker
 * and the container answers for it.
 */
const HEALTH_HEAD =
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n' +
  'Cache-Control: no-store\r\nConnection: close\r\n\r\n';
const HEALTH_RESPONSE = Buffer.from(`${HEALTH_HEAD}ok\n`, 'latin1');
const HEALTH_HEAD_ONLY = Buffer.from(HEALTH_HEAD, 'latin1');

/**
 * The health answer when `vars` ask for `path` with GET or HEAD and no body (CONTENT_LENGTH empty
 * or 0), else undefined (the request goes the ordinary way, so a POST there reaches the app).
 * The path is REQUEST_URI without its query, or PATH_INFO when the front end sent no REQUEST_URI.
 * Used when the packet arrived in pieces; a whole first read goes through `healthAnswerRaw`.
 */
export function healthAnswer(vars: UwsgiVars, path: string): Buffer | undefined {
  let method: string | undefined;
  let uri: string | undefined;
  let pathInfo: string | undefined;
  for (const [name, value] of vars) {
    if (name === 'REQUEST_METHOD') method = value;
    else if (name === 'REQUEST_URI') uri = value;
    else if (name === 'PATH_INFO') pathInfo = value;
    else if (name === 'CONTENT_LENGTH' && value !== '' && value !== '0') return undefined;
  }
  if (method !== 'GET' && method !== 'HEAD') return undefined;
  let target = uri ?? pathInfo;
  if (target === undefined) return undefined;
  const q = target.indexOf('?');
  if (q !== -1) target = target.slice(0, q);
  if (target !== path) return undefined;
  return method === 'HEAD' ? HEALTH_HEAD_ONLY : HEALTH_RESPONSE;
}

/**
 * The health path as latin1 bytes, or null when no request can match it: a char above U+00FF
 * (vars are latin1) or a `?` (the target is cut at its first one; the config schema refuses
 * both anyway). Exported for tests.
 */
export function healthPathBytes(path: string): Uint8Array | null {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c > 0xff || c === 0x3f) return null;
  }
  return Buffer.from(path, 'latin1');
}

/**
 * The health answer for the packet at the start of `chunk` (a connection's first read), or
 * undefined when this is no health request or the bytes alone cannot tell: fewer than the whole
 * packet, a modifier1 other than 0 or 30, a datasize over `bufferSize`; the decoder then takes
 * the chunk as usual and reports what it finds.
 */
export function healthAnswerPacket(
  chunk: Uint8Array,
  path: Uint8Array | null,
  limits: Pick<LimitsConfig, 'bufferSize' | 'maxVars'>,
): Buffer | undefined {
  if (chunk.length < HEADER_SIZE) return undefined;
  const { modifier1, datasize } = readHeader(chunk);
  if (modifier1 !== MODIFIER1.WSGI && modifier1 !== MODIFIER1.MANAGE_PATH_INFO) return undefined;
  const end = HEADER_SIZE + datasize;
  if (datasize > limits.bufferSize || end > chunk.length) return undefined;
  return healthAnswerRaw(chunk, HEADER_SIZE, end, path, limits.maxVars);
}

/** `bytes[at, at + name.length)` equals the ASCII `name`. */
function bytesAre(bytes: Uint8Array, at: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    if (bytes[at + i] !== name.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * What a scan of a vars block found: where the last REQUEST_METHOD, REQUEST_URI and PATH_INFO
 * values are (-1: absent), and whether a CONTENT_LENGTH announced a body (the scan stops there).
 */
class HealthVars implements VarsVisitor {
  method = -1;
  methodEnd = -1;
  uri = -1;
  uriEnd = -1;
  pathInfo = -1;
  pathInfoEnd = -1;
  body = false;

  reset(): void {
    this.method = -1;
    this.methodEnd = -1;
    this.uri = -1;
    this.uriEnd = -1;
    this.pathInfo = -1;
    this.pathInfoEnd = -1;
    this.body = false;
  }

  onVar(
    bytes: Uint8Array,
    keyStart: number,
    keyEnd: number,
    valueStart: number,
    valueEnd: number,
  ): boolean {
    // A byte or two tells the candidates apart before the whole name is compared.
    switch (keyEnd - keyStart) {
      case 9:
        if (bytes[keyStart] === 0x50 && bytesAre(bytes, keyStart, 'PATH_INFO')) {
          this.pathInfo = valueStart;
          this.pathInfoEnd = valueEnd;
        }
        break;
      case 11:
        if (bytes[keyStart + 2] === 0x51 && bytesAre(bytes, keyStart, 'REQUEST_URI')) {
          this.uri = valueStart;
          this.uriEnd = valueEnd;
        }
        break;
      case 14:
        if (bytes[keyStart + 8] === 0x4d && bytesAre(bytes, keyStart, 'REQUEST_METHOD')) {
          this.method = valueStart;
          this.methodEnd = valueEnd;
        } else if (
          bytes[keyStart] === 0x43 &&
          bytesAre(bytes, keyStart, 'CONTENT_LENGTH') &&
          valueEnd !== valueStart &&
          !(valueEnd - valueStart === 1 && bytes[valueStart] === 0x30)
        ) {
          this.body = true;
          return false;
        }
        break;
      default:
        break;
    }
    return true;
  }
}

/** One for the process: a scan runs synchronously to its end and calls nothing else. */
const found = new HealthVars();

/**
 * {@link healthAnswer} read straight from a vars block `bytes[start, end)`, with the same rules
 * (last REQUEST_METHOD / REQUEST_URI / PATH_INFO win; any CONTENT_LENGTH other than empty or `0`
 * means no), byte for byte: the vars are latin1, so a var equals the path exactly when its bytes
 * equal the path's latin1 bytes. Undefined when the block is not well formed or holds more than
 * `maxVars` vars, so that the decoder reports those as it would for any request. Exported for
 * tests (a property test holds it to `healthAnswer`).
 */
export function healthAnswerRaw(
  bytes: Uint8Array,
  start: number,
  end: number,
  path: Uint8Array | null,
  maxVars: number,
): Buffer | undefined {
  if (path === null) return undefined;
  found.reset();
  const count = scanVars(bytes, start, end, found);
  if (count < 0 || count > maxVars || found.body) return undefined;
  const method = found.method;
  const methodLength = found.methodEnd - method;
  let head: boolean;
  if (methodLength === 3 && bytesAre(bytes, method, 'GET')) head = false;
  else if (methodLength === 4 && bytesAre(bytes, method, 'HEAD')) head = true;
  else return undefined;
  let target = found.uri;
  let targetEnd = found.uriEnd;
  if (target === -1) {
    if (found.pathInfo === -1) return undefined;
    target = found.pathInfo;
    targetEnd = found.pathInfoEnd;
  }
  // The path is the target up to its first `?`; `path` holds none (healthPathBytes).
  const n = path.length;
  const targetLength = targetEnd - target;
  if (targetLength < n || (targetLength > n && bytes[target + n] !== 0x3f)) return undefined;
  for (let i = 0; i < n; i++) {
    if (bytes[target + i] !== path[i]) return undefined;
  }
  return head ? HEALTH_HEAD_ONLY : HEALTH_RESPONSE;
}
