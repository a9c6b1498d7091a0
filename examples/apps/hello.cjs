'use strict';
// A bare node:http request listener in CommonJS: module.exports is the default export.

module.exports = function hello(req, res) {
  const body = `hello from uwsgi-ts: ${req.method} ${req.url}\n`;
  res.writeHead(200, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
};
