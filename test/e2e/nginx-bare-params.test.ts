/**
 * nginx configs whose `location` sets a `uwsgi_param` of its own and has no
 * `include uwsgi_params`: nginx then sends only that level's params (they replace the inherited
 * ones), so REQUEST_METHOD, REQUEST_URI, PATH_INFO and often CONTENT_LENGTH are absent. The
 * container serves them the way uWSGI does (GET, `/`; no CONTENT_LENGTH = no body) and warns
 * once per listener. The same situations as nginx-tests' uwsgi.t and uwsgi_body.t
 * (test/nginx-tests runs those files themselves where a checkout is at hand), against a real
 * nginx, in CI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, type RunningContainer, startContainer } from '../utils/cli.ts';
import { writeConfig } from '../utils/config.ts';
import { type Echo, rawHttpExchange, request } from '../utils/http-client.ts';
import { HAS_NGINX, type Nginx, startNginx } from '../utils/nginx.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import { parseHttpResponse } from '../utils/uwsgi-client.ts';

describe.skipIf(!HAS_NGINX)('nginx locations without include uwsgi_params', () => {
  let dir: string;
  let container: RunningContainer;
  let nginx: Nginx;

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-bare-params');
    const config = await writeConfig(dir, { mounts: [{ path: '/', app: 'plain.mjs' }] });
    container = await startContainer(config);
    const unix = container.address('uwsgi', 'unix');
    nginx = await startNginx({
      http: [`upstream u { server ${unix}; }`],
      server: ['set $cached_length $content_length'],
      locations: [
        {
          path: '/',
          upstream: unix,
          params: false,
          directives: [
            'uwsgi_param SERVER_PROTOCOL $server_protocol',
            'uwsgi_param HTTP_X_BLAH "blah"',
          ],
        },
        {
          path: '/var',
          upstream: '$arg_b',
          params: false,
          directives: ['uwsgi_param SERVER_PROTOCOL $server_protocol'],
        },
        {
          path: '/body',
          upstream: unix,
          params: false,
          directives: ['uwsgi_param CONTENT_LENGTH $content_length if_not_empty'],
        },
      ],
    });
  });

  afterAll(async () => {
    try {
      await nginx?.stop();
      if (container) expect(await container.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  /** `head` lines joined with CRLF, then the blank line and `body` as given. */
  const raw = async (head: readonly string[], body = '') => {
    const bytes = Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`);
    const response = parseHttpResponse(await rawHttpExchange(nginx.port, bytes));
    if (response === undefined) throw new Error(`no response to ${head[0]}`);
    return response;
  };

  it('GET and HEAD are served as GET / with the headers nginx passed', async () => {
    const res = await request(nginx.url('/some/where?x=1'));
    expect(res.status, res.body.toString()).toBe(200);
    const echo = res.json<Echo>();
    expect(echo).toMatchObject({ method: 'GET', url: '/' });
    expect(echo.headers['x-blah']).toBe('blah');
    const head = await request(nginx.url('/head'), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body.length).toBe(0);
  });

  it('repeated headers reach the app joined as Node joins them', async () => {
    const r = await raw([
      'GET / HTTP/1.0',
      'Host: localhost',
      'X-Forwarded-For: foo',
      'X-Forwarded-For: bar',
      'Cookie: a=1',
      'Cookie: b=2',
      'Foo: foo',
      'Foo: bar',
      ...Array.from({ length: 20 }, () => 'X-Ignored: x'),
    ]);
    expect(r.status).toBe(200);
    const echo = JSON.parse(r.body.toString()) as Echo;
    expect(echo.headers['x-forwarded-for']).toBe('foo, bar');
    expect(echo.headers.cookie).toBe('a=1; b=2');
    expect(echo.headers.foo).toBe('foo, bar');
  });

  it('uwsgi_pass with variables: an address and an upstream name', async () => {
    const tcp = container.address('uwsgi', 'tcp');
    for (const b of [tcp, 'u']) {
      const res = await request(nginx.url(`/var?b=${b}`));
      expect(res.status, `b=${b}: ${res.body.toString()}`).toBe(200);
      expect(res.json<Echo>()).toMatchObject({ method: 'GET', url: '/' });
    }
  });

  it('bodies framed only by CONTENT_LENGTH: none, some, empty, chunked, empty chunked', async () => {
    const send = (framing: string, body: string) =>
      raw(['GET /body HTTP/1.1', 'Host: localhost', 'Connection: close', framing], body);
    const cases: Array<[string, string, number]> = [
      ['X-None: 1', '', 0],
      ['Content-Length: 6', 'foobar', 6],
      ['Content-Length: 0', '', 0],
      ['Transfer-Encoding: chunked', '6\r\nfoobar\r\n0\r\n\r\n', 6],
      ['Transfer-Encoding: chunked', '0\r\n\r\n', 0],
    ];
    for (const [framing, body, length] of cases) {
      const r = await send(framing, body);
      expect(r.status, `${framing}: ${r.body.toString()}`).toBe(200);
      const echo = JSON.parse(r.body.toString()) as Echo;
      expect(echo.bodyLength, framing).toBe(length);
      expect(echo.method).toBe('GET');
    }
  });

  it('one warning per listener and missing part, naming the vars and the fix', async () => {
    const warning = await container.waitForLog((r) => /include uwsgi_params/.test(String(r.msg)));
    expect(warning.missing).toEqual(['REQUEST_METHOD', 'REQUEST_URI']);
    const warnings = container.logs.filter((r) => /include uwsgi_params/.test(String(r.msg)));
    // Two uwsgi listeners (unix, tcp), each warned once, however many requests came.
    expect(warnings.map((r) => r.listener).sort()).toEqual(
      [container.address('uwsgi', 'unix'), container.address('uwsgi', 'tcp')].sort(),
    );
  });
});
