/**
 * `@uwsgi-ts/codec`: the uwsgi wire protocol without I/O or Node dependencies.
 *
 * Strings are latin1 byte-exact by default (one char per byte); `encoding: 'utf8'` is opt-in.
 * Every error is a `UwsgiError` with a stable `code` (see docs/errors.md).
 *
 * @packageDocumentation
 */
export {
  DEFAULT_MAX_HEAD_SIZE,
  DEFAULT_MAX_HEADERS,
  DEFAULT_MAX_VARS,
  DEFAULT_MAX_VARS_SIZE,
  HEADER_SIZE,
  MAX_DATASIZE,
  MODIFIER1,
  type Modifier1Name,
} from './constants.ts';
export {
  type DecoderHandler,
  type DecoderHandlerBase,
  type DecoderOptions,
  type DecoderState,
  type DecoderViewHandler,
  PacketDecoder,
} from './decoder.ts';
export {
  UWSGI_ERROR_CODES,
  UwsgiError,
  type UwsgiErrorCode,
  type UwsgiErrorOptions,
} from './errors.ts';
export { encodeHeader, type PacketHeader, readHeader } from './header.ts';
export {
  type DecodedPacket,
  type DecodedPacketView,
  decodePacket,
  decodePacketView,
  type EncodePacketOptions,
  encodePacket,
  encodePing,
  encodePong,
  isPing,
  isPong,
} from './packet.ts';
export {
  type DefaultedPart,
  type HeadersInput,
  type HttpRequestDescription,
  type HttpScheme,
  type RequestToVarsOptions,
  requestToVars,
  type UwsgiRequest,
  type VarsToRequestOptions,
  varsToRequest,
} from './request-vars.ts';
export { viewToRequest } from './request-view.ts';
export {
  parseResponseHead,
  type ResponseHead,
  type ResponseHeadOptions,
  ResponseHeadParser,
  type ResponseHeadState,
} from './response-head.ts';
export {
  type DecodeVarsOptions,
  decodeArray,
  decodeVars,
  type EncodeVarsOptions,
  encodeArray,
  encodeVars,
  scanVars,
  type UwsgiVars,
  type VarsEncoding,
  type VarsInput,
  type VarsVisitor,
} from './vars.ts';
export { decodeVarsView, VarsView } from './vars-view.ts';
