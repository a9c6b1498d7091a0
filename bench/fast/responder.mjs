#!/usr/bin/env node
// Minimal uwsgi responders for the per-connection cost comparison (issue 4, docs/fast-transport.md).
// Every mode answers the same 13-byte hello once the whole uwsgi packet (4-byte header + vars) is
// in; the benchmark sends GETs only (CONTENT_LENGTH empty), so there is no body to read first.
//
//   node bench/fast/responder.mjs MODE UNIX_PATH      (run `npx tsc -b` first: imports dist/)
//
// MODE:
//   net-raw        node:net createServer, 'data' events, socket.end(buf): the BRIDGE.md baseline
//   net            the container's net transport (createNetTransport) + the same sink
//   fast           the container's fast transport (createFastTransport) + the same sink
//   fast-http      fast transport + genuine http.IncomingMessage/ServerResponse on conn.socket
//   net-http       net transport + genuine http.IncomingMessage/ServerResponse on conn.socket
//
// Prints {"ready":true,"mode":...} once listening.
import { IncomingMessage, ServerResponse } from 'node:http';
import net from 'node:net';
import { decodePacket } from '@uwsgi-ts/codec';
import { createFastTransport } from '../../packages/container/dist/transport/fast/listen.js';
import { createNetTransport } from '../../packages/container/dist/transport/net.js';

const [mode, unixPath] = process.argv.slice(2);
const HELLO = 'Hello, world!';
const RESPONSE = Buffer.from(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\n${HELLO}`,
);

/**
 * Collects one uwsgi packet (header + vars) and calls `onPacket(bytes)` once. Copies only when a
 * packet spans reads (reads may be transient views on the fast transport).
 */
function packetReader(onPacket) {
  let pending = null;
  let done = false;
  return (chunk) => {
    if (done) return;
    let bytes = chunk;
    if (pending !== null) bytes = Buffer.concat([pending, chunk]);
    if (bytes.length >= 4 && bytes.length >= 4 + (bytes[1] | (bytes[2] << 8))) {
      done = true;
      pending = null;
      onPacket(bytes);
    } else {
      pending = Buffer.from(bytes);
    }
  };
}

function minimalSink(conn) {
  return {
    onData: packetReader(() => conn.socket.end(RESPONSE)),
    onEnd() {},
    onError() {},
  };
}

function httpSink(conn) {
  const socket = conn.socket;
  return {
    onData: packetReader((bytes) => {
      const { vars } = decodePacket(bytes);
      const req = new IncomingMessage(socket);
      const headers = {};
      for (const [name, value] of vars) {
        if (name === 'REQUEST_METHOD') req.method = value;
        else if (name === 'REQUEST_URI') req.url = value;
        else if (name.startsWith('HTTP_'))
          headers[name.slice(5).toLowerCase().replaceAll('_', '-')] = value;
      }
      req.headers = headers;
      req.httpVersion = '1.1';
      req.httpVersionMajor = 1;
      req.httpVersionMinor = 1;
      req.complete = true;
      req.push(null);
      const res = new ServerResponse(req);
      res.useChunkedEncodingByDefault = false;
      res.shouldKeepAlive = false;
      res.assignSocket(socket);
      res.on('finish', () => socket.end());
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end(HELLO);
    }),
    onEnd() {},
    onError() {},
  };
}

async function main() {
  if (mode === 'net-raw') {
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.on(
        'data',
        packetReader(() => socket.end(RESPONSE)),
      );
    });
    await new Promise((resolve) => server.listen(unixPath, resolve));
  } else {
    const transport = mode.startsWith('fast') ? createFastTransport() : createNetTransport();
    if ('unavailable' in transport)
      throw new Error(`fast transport unavailable: ${transport.unavailable}`);
    const makeSink = mode.endsWith('-http') ? httpSink : minimalSink;
    await transport.listen(
      { target: { kind: 'unix', path: unixPath, mode: 0o600 }, backlog: 1024 },
      (conn) => {
        conn.socket.on('error', () => {});
        conn.start(makeSink(conn));
      },
    );
  }
  process.stdout.write(`${JSON.stringify({ ready: true, mode })}\n`);
}

process.on('SIGTERM', () => process.exit(0));
await main();
