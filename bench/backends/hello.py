# uWSGI benchmark app (C + Python WSGI): same answers as hello-app.mjs.
HELLO = b"Hello, world!"
BIG = b"x" * (1 << 20)


def application(environ, start_response):
    received = 0
    if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
        stream = environ["wsgi.input"]
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            received += len(chunk)
    body = BIG if "big" in environ.get("PATH_INFO", "") else HELLO
    headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
    if received:
        headers.append(("X-Received", str(received)))
    start_response("200 OK", headers)
    return [body]
