/**
 * A raw uwsgi backend that records: every accepted connection's bytes until the packet
 * (header + vars + CONTENT_LENGTH body) is complete or the peer closes, then answers a fixed
 * `200 ok` and closes. Used to capture what a real front end sends (capture.test.ts), with its
 * own minimal parser so the codec is checked against an independent reading.
 */
import * as net from 'node:net';

export const RECORDER_RESPONSE = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok';

export interface RawPacket {
  readonly modifier1: number;
  readonly datasize: number;
  readonly modifier2: number;
  readonly vars: ReadonlyArray<readonly [string, string]>;
  readonly body: Buffer;
}

/** Parses one packet (latin1 strings); undefined while incomplete. Throws on an overrun. */
export function parseRawPacket(buf: Buffer): RawPacket | undefined {
  if (buf.length < 4) return undefined;
  const datasize = buf.readUInt16LE(1);
  const end = 4 + datasize;
  if (buf.length < end) return undefined;
  const vars: Array<readonly [string, string]> = [];
  let off = 4;
  while (off < end) {
    const kl = buf.readUInt16LE(off);
    const key = buf.toString('latin1', off + 2, off + 2 + kl);
    off += 2 + kl;
    const vl = buf.readUInt16LE(off);
    vars.push([key, buf.toString('latin1', off + 2, off + 2 + vl)]);
    off += 2 + vl;
  }
  if (off !== end) throw new Error(`vars overrun the block (${off} > ${end})`);
  const cl = vars.find(([k, v]) => k === 'CONTENT_LENGTH' && v !== '');
  const want = cl ? Number(cl[1]) : 0;
  if (buf.length - end < want) return undefined;
  return { modifier1: buf[0]!, datasize, modifier2: buf[3]!, vars, body: buf.subarray(end) };
}

export interface Recorder {
  readonly port: number;
  /** The next recorded connection's bytes, in accept order. */
  next(timeoutMs?: number): Promise<Buffer>;
  close(): Promise<void>;
}

export async function startRecorder(): Promise<Recorder> {
  const ready: Buffer[] = [];
  const waiting: Array<(b: Buffer) => void> = [];
  const sockets = new Set<net.Socket>();
  const deliver = (b: Buffer) => {
    const w = waiting.shift();
    if (w) w(b);
    else ready.push(b);
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const chunks: Buffer[] = [];
    let recorded = false;
    const record = () => {
      if (recorded) return;
      recorded = true;
      deliver(Buffer.concat(chunks));
    };
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (recorded) return;
      if (parseRawPacket(Buffer.concat(chunks))) {
        record();
        socket.end(RECORDER_RESPONSE);
      }
    });
    socket.on('end', record);
    socket.on('error', record);
    socket.on('close', () => {
      record();
      sockets.delete(socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    next(timeoutMs = 10_000) {
      const b = ready.shift();
      if (b) return Promise.resolve(b);
      return new Promise((resolve, reject) => {
        const fire = (x: Buffer) => {
          clearTimeout(timer);
          resolve(x);
        };
        const timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(fire), 1);
          reject(new Error('no backend connection recorded'));
        }, timeoutMs);
        waiting.push(fire);
      });
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
