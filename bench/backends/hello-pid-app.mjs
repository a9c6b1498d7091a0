// hello-app.mjs's 13-byte hello, plus the answering process's pid in `X-Worker-Pid`: the reload
// part of supervisor-bench.mjs tells from the responses when a new generation of workers serves.
const HELLO = Buffer.from('Hello, world!');
const PID = String(process.pid);

export default function helloPid(_req, res) {
  res.writeHead(200, {
    'Content-Type': 'text/plain',
    'Content-Length': HELLO.length,
    'X-Worker-Pid': PID,
  });
  res.end(HELLO);
}
