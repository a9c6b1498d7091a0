/**
 * `varsToRequest` read from a {@link VarsView}: the same rules through the same code (a
 * `FoundVars` filled var by var, then `finishRequest`, request-vars.ts), without the eager
 * decode's pair per var and the strings of vars a request does not read: a name is made into a
 * string only when its length is one a request reads (or it starts with `HTTP_`), a value only
 * when its name is one of them. Names are compared as strings, not bytes: a slice of the
 * block's text and a native comparison cost less than comparing bytes in JS.
 */
import {
  cgiIdOf,
  cgiLength,
  FoundVars,
  finishRequest,
  requestInvalid,
  type UwsgiRequest,
  type VarsToRequestOptions,
} from './request-vars.ts';
import { checkEncoding } from './vars.ts';
import type { VarsView } from './vars-view.ts';

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
