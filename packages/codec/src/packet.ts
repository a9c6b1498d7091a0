/**
 * One-shot packet encode/decode, and the ping helpers (PROTOCOL.md sections 1, 6).
 */

import { writeLatin1 } from './bytes.ts';
import { DEFAULT_MAX_VARS, DEFAULT_MAX_VARS_SIZE, HEADER_SIZE, MODIFIER1 } from './constants.ts';
import { type DecoderOptions, NO_OPTIONS, truncated, varsTooLarge } from './decoder.ts';
import { UwsgiError } from './errors.ts';
import { checkUint, type PacketHeader, writeHeader } from './header.ts';
import {
  checkEncoding,
  checkLimit,
  decodeVarsRange,
  encodeVarsWithRoom,
  type VarsEncoding,
  type VarsInput,
} from './vars.ts';
import { type VarsView, viewOfRange } from './vars-view.ts';

/** Options of `encodePacket`. */
export interface EncodePacketOptions {
  /** Default 0 (`MODIFIER1.WSGI`, what front ends send). */
  readonly modifier1?: number;
  /** Default 0. */
  readonly modifier2?: number;
  /** Default `'latin1'`. */
  readonly encoding?: VarsEncoding;
}

/** Result of `decodePacket`. */
export interface DecodedPacket {
  readonly modifier1: number;
  readonly modifier2: number;
  /** Ordered pairs, duplicates kept. */
  readonly vars: Array<[string, string]>;
  /** Bytes of the packet: header + datasize. Anything after it in the input is not part of it. */
  readonly byteLength: number;
}

/**
 * Encodes a request packet: header + vars block. The body, if any, is not included: send
 * exactly `CONTENT_LENGTH` bytes right after it.
 *
 * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID`: the block would exceed 65535 bytes (never
 * wrapped, unlike CVE-2020-11984), a field over 65535, empty name, a char above U+00FF in latin1
 * mode, a modifier outside 0..255.
 */
export function encodePacket(vars: VarsInput, options: EncodePacketOptions = {}): Uint8Array {
  const modifier1 = checkUint('modifier1', options.modifier1 ?? 0, 0xff);
  const modifier2 = checkUint('modifier2', options.modifier2 ?? 0, 0xff);
  const out = encodeVarsWithRoom(vars, options, HEADER_SIZE);
  writeHeader(out, 0, { modifier1, datasize: out.length - HEADER_SIZE, modifier2 });
  return out;
}

/**
 * Decodes one packet (header + vars) from the start of `bytes`. Bytes after `byteLength` (a
 * body, a second packet) are ignored. Same checks, errors and offsets as feeding `bytes` to a
 * `PacketDecoder` and calling `end()`, without building one: a one-shot decode has no stream
 * state to keep.
 *
 * @throws {UwsgiError} `UWSGI_ERR_PACKET_TRUNCATED` (fewer bytes than header + datasize),
 * `UWSGI_ERR_VARS_TOO_LARGE`, `UWSGI_ERR_VARS_TOO_MANY`, `UWSGI_ERR_VARS_MALFORMED`,
 * `UWSGI_ERR_VARS_ENCODING`, `UWSGI_ERR_ARG_INVALID` (options).
 */
export function decodePacket(
  bytes: Uint8Array,
  options: DecoderOptions = NO_OPTIONS,
): DecodedPacket {
  // Options are checked in the decoder's order, so that the first bad one is reported the same.
  const maxVarsSize = checkLimit('maxVarsSize', options.maxVarsSize, DEFAULT_MAX_VARS_SIZE);
  const maxVars = checkLimit('maxVars', options.maxVars, DEFAULT_MAX_VARS);
  const utf8 = checkEncoding(options.encoding);
  const n = bytes.length;
  if (n < HEADER_SIZE) throw truncated(`${HEADER_SIZE - n} header bytes missing`, n);
  const datasize = bytes[1]! | (bytes[2]! << 8);
  if (datasize > maxVarsSize) throw varsTooLarge(datasize, maxVarsSize);
  const end = HEADER_SIZE + datasize;
  if (n < end) throw truncated(`${end - n} vars bytes missing`, n);
  return {
    modifier1: bytes[0]!,
    modifier2: bytes[3]!,
    vars: decodeVarsRange(bytes, HEADER_SIZE, end, maxVars, utf8, HEADER_SIZE),
    byteLength: end,
  };
}

/** A ping request: `64 00 00 00` (modifier1 100, modifier2 0, no payload). */
export function encodePing(): Uint8Array {
  return Uint8Array.of(MODIFIER1.PING, 0, 0, 0);
}

/**
 * A ping reply: `64 00 00 01`, or with a latin1 `warning` as payload (uWSGI puts a warning text
 * there when the instance is unhealthy).
 *
 * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID` when `warning` is over 65535 chars or not latin1.
 */
export function encodePong(warning = ''): Uint8Array {
  checkUint('warning length', warning.length, 0xffff);
  const out = new Uint8Array(HEADER_SIZE + warning.length);
  writeHeader(out, 0, { modifier1: MODIFIER1.PING, datasize: warning.length, modifier2: 1 });
  if (writeLatin1(warning, out, HEADER_SIZE) !== -1) {
    throw new UwsgiError('UWSGI_ERR_ARG_INVALID', 'the pong warning must be latin1');
  }
  return out;
}

/** True for a ping request header (modifier1 100, modifier2 0). */
export function isPing(header: PacketHeader): boolean {
  return header.modifier1 === MODIFIER1.PING && header.modifier2 === 0;
}

/** True for a ping reply header (modifier1 100, modifier2 1); `datasize` > 0 = warning text. */
export function isPong(header: PacketHeader): boolean {
  return header.modifier1 === MODIFIER1.PING && header.modifier2 === 1;
}

/** Result of `decodePacketView`. */
export interface DecodedPacketView {
  readonly modifier1: number;
  readonly modifier2: number;
  readonly vars: VarsView;
  /** Bytes of the packet: header + datasize. */
  readonly byteLength: number;
}

/**
 * `decodePacket` with a {@link VarsView} for the vars: same checks, errors and offsets, no
 * strings made. The view reads `bytes` in place.
 *
 * @throws {UwsgiError} as `decodePacket`.
 */
export function decodePacketView(
  bytes: Uint8Array,
  options: DecoderOptions = NO_OPTIONS,
): DecodedPacketView {
  const maxVarsSize = checkLimit('maxVarsSize', options.maxVarsSize, DEFAULT_MAX_VARS_SIZE);
  const maxVars = checkLimit('maxVars', options.maxVars, DEFAULT_MAX_VARS);
  const utf8 = checkEncoding(options.encoding);
  const n = bytes.length;
  if (n < HEADER_SIZE) throw truncated(`${HEADER_SIZE - n} header bytes missing`, n);
  const datasize = bytes[1]! | (bytes[2]! << 8);
  if (datasize > maxVarsSize) throw varsTooLarge(datasize, maxVarsSize);
  const end = HEADER_SIZE + datasize;
  if (n < end) throw truncated(`${end - n} vars bytes missing`, n);
  return {
    modifier1: bytes[0]!,
    modifier2: bytes[3]!,
    vars: viewOfRange(bytes, HEADER_SIZE, end, maxVars, utf8, HEADER_SIZE, false),
    byteLength: end,
  };
}
