// The container's benchmark app: a plain `(req, res)` handler. 13-byte hello; `/big` in the URL
// answers 1 MiB; a request body (POST) is read to the end before answering.
const HELLO = Buffer.from('Hello, world!');
const BIG = Buffer.alloc(1 << 20, 0x78);

export default function hello(req, res) {
  const body = req.url.includes('big') ? BIG : HELLO;
  const send = () => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': body.length });
    res.end(body);
  };
  if (req.method === 'GET' || req.method === 'HEAD') {
    send();
    return;
  }
  let received = 0;
  req.on('data', (chunk) => {
    received += chunk.length;
  });
  req.on('end', () => {
    res.setHeader('X-Received', String(received));
    send();
  });
}
