// The backend app of nginx-tests' uwsgi.t and uwsgi_body.t, in Node (their Python apps cannot run
// in the container): one app answering what each of them answers. uwsgi.t reads the request
// headers back (X-Forwarded-For, Cookie and an unknown header, repeated: Node joins them as a
// WSGI server does); uwsgi_body.t echoes the body and its CONTENT_LENGTH, or "SEE-THIS" when the
// front end sent no CONTENT_LENGTH.
export default function nginxTestsApp(req, res) {
  const headers = {
    'Content-Type': 'text/plain',
    'X-Forwarded-For': req.headers['x-forwarded-for'] ?? '',
    'X-Cookie': req.headers.cookie ?? '',
    'X-Foo': req.headers.foo ?? '',
  };
  const declared = req.headers['content-length'];
  if (declared === undefined) {
    req.resume();
    res.writeHead(200, headers).end('SEE-THIS');
    return;
  }
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('latin1');
    res.writeHead(200, headers).end(`cl=${Number(declared)} '${body}'`);
  });
}
