#!/usr/bin/env node
// The minimal Node uwsgi responder (baseline for the container): node:net, the codec's
// PacketDecoder, one precomputed response, end(). Listens on a unix socket and on 127.0.0.1:0 and
// prints {"ready":true,"port":N} when both are bound.
//   node bench/backends/net-responder.mjs UNIX_PATH
import net from 'node:net';
import { PacketDecoder } from '@uwsgi-ts/codec';

const RESPONSE = Buffer.from(
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!',
);

/** Strict digits only (PROTOCOL.md section 8); nginx sends "" for no body. */
function bodyLength(vars) {
  let n = 0;
  for (const [k, v] of vars) if (k === 'CONTENT_LENGTH' && /^[0-9]+$/.test(v)) n = Number(v);
  return n;
}

function onConnection(socket) {
  let answered = false;
  const decoder = new PacketDecoder({
    onVars: bodyLength,
    onEnd() {
      // Answer once the whole request (vars and declared body) is read: closing with unread
      // input would send RST and could discard the response (BRIDGE.md, last paragraph).
      answered = true;
      socket.end(RESPONSE);
    },
  });
  socket.on('data', (chunk) => {
    if (answered) return;
    try {
      decoder.push(chunk);
    } catch {
      socket.destroy();
    }
  });
  socket.on('error', () => {});
}

const unix = net.createServer(onConnection);
const tcp = net.createServer(onConnection);
unix.listen(process.argv[2], () => {
  tcp.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ ready: true, port: tcp.address().port })}\n`);
  });
});
process.on('SIGTERM', () => process.exit(0));
