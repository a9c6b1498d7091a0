/**
 * The 4-byte packet header (PROTOCOL.md section 1): `modifier1 u8 | datasize u16le | modifier2 u8`.
 * datasize is little-endian on every host and counts the vars block only, never the body.
 */
import { HEADER_SIZE, MAX_DATASIZE } from './constants.ts';
import { UwsgiError } from './errors.ts';

/** A decoded packet header. */
export interface PacketHeader {
  readonly modifier1: number;
  /** Size of the payload after the header (the vars block), 0..65535. */
  readonly datasize: number;
  readonly modifier2: number;
}

/**
 * Reads a header at `offset`.
 *
 * @throws {UwsgiError} `UWSGI_ERR_PACKET_TRUNCATED` when fewer than 4 bytes are available.
 */
export function readHeader(bytes: Uint8Array, offset = 0): PacketHeader {
  if (!Number.isInteger(offset) || offset < 0 || bytes.length - offset < HEADER_SIZE) {
    throw new UwsgiError(
      'UWSGI_ERR_PACKET_TRUNCATED',
      `a packet header needs ${HEADER_SIZE} bytes, ${Math.max(0, bytes.length - offset)} available`,
      { offset: bytes.length },
    );
  }
  return {
    modifier1: bytes[offset]!,
    datasize: bytes[offset + 1]! | (bytes[offset + 2]! << 8),
    modifier2: bytes[offset + 3]!,
  };
}

/** Throws unless `value` is an integer in [0, max]. */
export function checkUint(name: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new UwsgiError(
      'UWSGI_ERR_ARG_INVALID',
      `${name} must be an integer 0..${max}, got ${String(value)}`,
    );
  }
  return value;
}

/** Writes a validated header at `offset` of `target`. */
export function writeHeader(target: Uint8Array, offset: number, header: PacketHeader): void {
  const modifier1 = checkUint('modifier1', header.modifier1, 0xff);
  const datasize = checkUint('datasize', header.datasize, MAX_DATASIZE);
  const modifier2 = checkUint('modifier2', header.modifier2, 0xff);
  target[offset] = modifier1;
  target[offset + 1] = datasize & 0xff;
  target[offset + 2] = datasize >>> 8;
  target[offset + 3] = modifier2;
}

/**
 * Encodes a header alone, e.g. to frame a raw payload (echo, RPC replies) or a 255 reply.
 *
 * @throws {UwsgiError} `UWSGI_ERR_ARG_INVALID` when a modifier is not 0..255 or datasize not
 * 0..65535 (a larger size would wrap the u16: the CVE-2020-11984 class).
 */
export function encodeHeader(header: PacketHeader): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  writeHeader(out, 0, header);
  return out;
}
