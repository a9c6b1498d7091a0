#!/usr/bin/env node
// node:http hello for the proxy_pass baselines: listens on a unix socket and on 127.0.0.1:0,
// prints one JSON line {"ready":true,"port":N} when both are bound.
//   node bench/backends/http-hello.mjs UNIX_PATH
import http from 'node:http';

const HELLO = Buffer.from('Hello, world!');
const server = http.createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length });
  res.end(HELLO);
});
// One server object per listener: a Server listens on one address.
const tcp = http.createServer(server.listeners('request')[0]);
server.keepAliveTimeout = tcp.keepAliveTimeout = 60_000;
server.listen(process.argv[2], () => {
  tcp.listen(0, '127.0.0.1', () => {
    process.stdout.write(`${JSON.stringify({ ready: true, port: tcp.address().port })}\n`);
  });
});
process.on('SIGTERM', () => process.exit(0));
