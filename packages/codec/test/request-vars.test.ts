/** varsToRequest / requestToVars: PROTOCOL.md sections 2, 4, 5, 8 ("Request semantics"). */
import { describe, expect, it } from 'vitest';
import { MODIFIER1, requestToVars, varsToRequest } from '../src/index.ts';

type Vars = Array<[string, string]>;
const base: Vars = [
  ['REQUEST_METHOD', 'GET'],
  ['REQUEST_URI', '/p?q=1'],
];
const invalid = expect.objectContaining({ code: 'UWSGI_ERR_REQUEST_INVALID' });

describe('varsToRequest', () => {
  it('body length = CONTENT_LENGTH when present and non-empty', () => {
    expect(varsToRequest([...base, ['CONTENT_LENGTH', '12']]).contentLength).toBe(12);
    expect(varsToRequest([...base, ['CONTENT_LENGTH', '00005']]).contentLength).toBe(5);
    expect(varsToRequest([...base, ['CONTENT_LENGTH', '9007199254740991']]).contentLength).toBe(
      Number.MAX_SAFE_INTEGER,
    );
  });

  it.each([
    'abc',
    '-1',
    '+5',
    ' 5',
    '5 ',
    '0x10',
    '1e3',
    '5,5',
    '5x',
    '1'.repeat(25),
    '9007199254740992',
  ])('CONTENT_LENGTH %j is refused (digits only, bounded)', (cl) => {
    expect(() => varsToRequest([...base, ['CONTENT_LENGTH', cl]])).toThrow(invalid);
  });

  it('CL missing (Apache, router), empty (nginx) or "0" (lighttpd): no body', () => {
    expect(varsToRequest(base).contentLength).toBe(0);
    expect(varsToRequest([...base, ['CONTENT_LENGTH', '']]).contentLength).toBe(0);
    expect(varsToRequest([['CONTENT_LENGTH', '0'], ...base]).contentLength).toBe(0);
    expect(varsToRequest([...base, ['CONTENT_LENGTH', '']]).headers).toEqual([]);
  });

  it('HTTP_TRANSFER_ENCODING never overrides CONTENT_LENGTH; only CONTENT_LENGTH frames', () => {
    const r = varsToRequest([
      ...base,
      ['CONTENT_LENGTH', '5'],
      ['HTTP_TRANSFER_ENCODING', 'chunked'],
      ['HTTP_CONTENT_LENGTH', '999'],
    ]);
    expect(r.contentLength).toBe(5);
    expect(r.headers).toEqual([['content-length', '5']]);
    // No CL: the TE header stays visible (uWSGI router: raw chunks or 411) and there is no body.
    const te = varsToRequest([
      ...base,
      ['HTTP_TRANSFER_ENCODING', 'chunked'],
      ['HTTP_CONTENT_LENGTH', '7'],
    ]);
    expect(te.contentLength).toBe(0);
    expect(te.headers).toEqual([['transfer-encoding', 'chunked']]);
  });

  it('a content-length header never disagrees with CONTENT_LENGTH, whatever var spelled it', () => {
    const r = varsToRequest([
      ...base,
      ['HTTP_CONTENT-LENGTH', '100'],
      ['HTTP_CONTENT_LENGTH', '5'],
      ['CONTENT_LENGTH', '5'],
      ['HTTP_CONTENT_TYPE', 'a/b'],
      ['HTTP_CONTENT_TYPE', 'c/d'],
      ['CONTENT_TYPE', 'a/b'],
    ]);
    expect(r.headers).toEqual([
      ['content-length', '5'],
      ['content-type', 'a/b'],
    ]);
  });

  it('prefers CONTENT_TYPE/CONTENT_LENGTH over HTTP_CONTENT_*, at the header position', () => {
    const r = varsToRequest([
      ['HTTP_ACCEPT', '*/*'],
      ['HTTP_CONTENT_TYPE', 'text/plain'],
      ['HTTP_CONTENT_LENGTH', '3'],
      ['HTTP_X_A', '1'],
      ...base,
      ['CONTENT_TYPE', 'application/json'],
      ['CONTENT_LENGTH', '3'],
    ]);
    expect(r.headers).toEqual([
      ['accept', '*/*'],
      ['content-type', 'application/json'],
      ['content-length', '3'],
      ['x-a', '1'],
    ]);
    // Empty CONTENT_TYPE (nginx, no body) lets a client header through; none when both absent.
    expect(
      varsToRequest([...base, ['CONTENT_TYPE', ''], ['HTTP_CONTENT_TYPE', 'a/b']]).headers,
    ).toEqual([['content-type', 'a/b']]);
    expect(varsToRequest([...base, ['CONTENT_TYPE', 'x/y']]).headers).toEqual([
      ['content-type', 'x/y'],
    ]);
  });

  it('refuses conflicting duplicate framing/routing vars; identical duplicates pass', () => {
    expect(() =>
      varsToRequest([...base, ['CONTENT_LENGTH', '1'], ['CONTENT_LENGTH', '2']]),
    ).toThrow(invalid);
    expect(() => varsToRequest([...base, ['REQUEST_METHOD', 'POST']])).toThrow(invalid);
    expect(() => varsToRequest([...base, ['HTTP_HOST', 'a'], ['HTTP_HOST', 'b']])).toThrow(invalid);
    expect(
      varsToRequest([...base, ['CONTENT_LENGTH', '1'], ['CONTENT_LENGTH', '1']]).contentLength,
    ).toBe(1);
    // Other duplicates: last wins.
    expect(
      varsToRequest([...base, ['REMOTE_ADDR', '1.1.1.1'], ['REMOTE_ADDR', '2.2.2.2']])
        .remoteAddress,
    ).toBe('2.2.2.2');
  });

  it('UWSGI_* magic vars and HTTP_PROXY mean nothing', () => {
    const r = varsToRequest([
      ...base,
      ['UWSGI_FILE', 'exec://rm -rf /'],
      ['UWSGI_SCRIPT', 'x'],
      ['UWSGI_CHDIR', '/'],
      ['HTTP_PROXY', 'http://evil'],
    ]);
    expect(r.headers).toEqual([['proxy', 'http://evil']]);
    expect(r).toMatchObject({
      method: 'GET',
      url: '/p?q=1',
      scheme: 'http',
      scriptName: '',
      pathInfo: '',
    });
  });

  it('hop-by-hop vars are only headers', () => {
    const r = varsToRequest([
      ...base,
      ['HTTP_CONNECTION', 'upgrade'],
      ['HTTP_UPGRADE', 'websocket'],
      ['HTTP_EXPECT', '100-continue'],
      ['HTTP_TE', 'trailers'],
    ]);
    expect(r.headers.map(([n]) => n)).toEqual(['connection', 'upgrade', 'expect', 'te']);
    expect(r.contentLength).toBe(0);
  });

  it('absent vars take defaults: SCRIPT_NAME "", protocol HTTP/1.0', () => {
    const r = varsToRequest(base);
    expect(r).toMatchObject({
      scriptName: '',
      pathInfo: '',
      serverProtocol: 'HTTP/1.0',
      httpVersion: '1.0',
      httpVersionMajor: 1,
      httpVersionMinor: 0,
      host: '',
      remoteAddress: '',
      remotePort: undefined,
      serverPort: undefined,
      serverName: '',
    });
  });

  it('missing method or path: GET and / as uWSGI serves them, named in `defaulted`', () => {
    // nginx-tests uwsgi.t: a location with its own uwsgi_param and no include uwsgi_params.
    const bare = varsToRequest([
      ['SERVER_PROTOCOL', 'HTTP/1.0'],
      ['HTTP_X_BLAH', 'blah'],
      ['HTTP_HOST', 'localhost'],
    ]);
    expect(bare).toMatchObject({
      method: 'GET',
      url: '/',
      path: '/',
      query: '',
      host: 'localhost',
    });
    expect(bare.defaulted).toEqual(['method', 'path']);
    expect(varsToRequest([['REQUEST_URI', '/x']])).toMatchObject({
      method: 'GET',
      url: '/x',
      defaulted: ['method'],
    });
    expect(varsToRequest([['REQUEST_METHOD', 'POST']])).toMatchObject({
      method: 'POST',
      url: '/',
      defaulted: ['path'],
    });
    // An empty path var is no path; an empty method is a broken one (RELIABILITY U23).
    expect(
      varsToRequest([
        ['REQUEST_URI', ''],
        ['PATH_INFO', ''],
        ['QUERY_STRING', 'a=1'],
      ]),
    ).toMatchObject({ method: 'GET', url: '/?a=1', path: '/', query: 'a=1' });
    expect(() =>
      varsToRequest([
        ['REQUEST_METHOD', ''],
        ['REQUEST_URI', '/'],
      ]),
    ).toThrow(invalid);
    expect(varsToRequest(base).defaulted).toEqual([]);
    // The query still may not hold what a request-target cannot.
    expect(() => varsToRequest([['QUERY_STRING', 'a b']])).toThrow(invalid);
    // No vars at all (datasize 0) is no request from any front end.
    expect(() => varsToRequest([])).toThrow(invalid);
  });

  it('strictVars: missing method or path is invalid', () => {
    const strict = { strictVars: true };
    expect(() => varsToRequest([], strict)).toThrow(invalid);
    expect(() => varsToRequest([['REQUEST_URI', '/']], strict)).toThrow(invalid);
    expect(() => varsToRequest([['REQUEST_METHOD', 'GET']], strict)).toThrow(invalid);
    expect(() =>
      varsToRequest(
        [
          ['REQUEST_METHOD', ''],
          ['REQUEST_URI', '/'],
        ],
        strict,
      ),
    ).toThrow(invalid);
    expect(() =>
      varsToRequest(
        [
          ['REQUEST_METHOD', 'GET'],
          ['PATH_INFO', ''],
        ],
        strict,
      ),
    ).toThrow(invalid);
    expect(varsToRequest(base, strict).url).toBe('/p?q=1');
  });

  it('a method that is not a token, a bad target or protocol is invalid', () => {
    expect(() =>
      varsToRequest([
        ['REQUEST_METHOD', 'G T'],
        ['REQUEST_URI', '/'],
      ]),
    ).toThrow(invalid);
    expect(() =>
      varsToRequest([
        ['REQUEST_METHOD', 'GET\r\n'],
        ['REQUEST_URI', '/'],
      ]),
    ).toThrow(invalid);
    expect(() =>
      varsToRequest([
        ['REQUEST_METHOD', 'GET'],
        ['REQUEST_URI', '/a b'],
      ]),
    ).toThrow(invalid);
    expect(() => varsToRequest([...base, ['SERVER_PROTOCOL', 'HTTP/2']])).toThrow(invalid);
    // A lower-case method is a token: passed as is.
    expect(
      varsToRequest([
        ['REQUEST_METHOD', 'get'],
        ['REQUEST_URI', '/'],
      ]).method,
    ).toBe('get');
  });

  it('url: raw REQUEST_URI; else PATH_INFO (re-escaped) + ? + QUERY_STRING', () => {
    const raw = varsToRequest([...base, ['PATH_INFO', '/p'], ['QUERY_STRING', 'q=1']]);
    expect(raw).toMatchObject({ url: '/p?q=1', path: '/p', query: 'q=1', pathInfo: '/p' });
    const router = varsToRequest([
      ['REQUEST_METHOD', 'GET'],
      ['PATH_INFO', '/a b/%/?/\u00ff'],
      ['QUERY_STRING', 'x=1'],
    ]);
    expect(router).toMatchObject({
      url: '/a%20b/%25/%3F/%FF?x=1',
      path: '/a%20b/%25/%3F/%FF',
      query: 'x=1',
    });
    const noQuery = varsToRequest([
      ['REQUEST_METHOD', 'GET'],
      ['PATH_INFO', '/x'],
      ['QUERY_STRING', ''],
    ]);
    expect(noQuery).toMatchObject({ url: '/x', query: '' });
    const utf8 = varsToRequest(
      [
        ['REQUEST_METHOD', 'GET'],
        ['PATH_INFO', '/é'],
      ],
      { encoding: 'utf8' },
    );
    expect(utf8.url).toBe('/%C3%A9');
  });

  it('PATH_INFO is decoded and may hold / from %2F; the raw path comes from REQUEST_URI', () => {
    const r = varsToRequest([
      ['REQUEST_METHOD', 'GET'],
      ['REQUEST_URI', '/a%2Fb//c'],
      ['PATH_INFO', '/a/b/c'],
    ]);
    expect(r).toMatchObject({ path: '/a%2Fb//c', pathInfo: '/a/b/c' });
  });

  it('modifier1 30 strips SCRIPT_NAME from PATH_INFO only on a segment boundary', () => {
    const v = (script: string, info: string): Vars => [
      ...base,
      ['SCRIPT_NAME', script],
      ['PATH_INFO', info],
    ];
    const m30 = { modifier1: MODIFIER1.MANAGE_PATH_INFO };
    expect(varsToRequest(v('/app', '/app/x'), m30)).toMatchObject({
      scriptName: '/app',
      pathInfo: '/x',
    });
    expect(varsToRequest(v('/app', '/app'), m30)).toMatchObject({
      scriptName: '/app',
      pathInfo: '',
    });
    expect(varsToRequest(v('/app', '/application'), m30)).toMatchObject({
      pathInfo: '/application',
    });
    expect(varsToRequest(v('/p/', '/p/x'), m30)).toMatchObject({
      scriptName: '/p',
      pathInfo: '/x',
    });
    // modifier1 0: nginx's `uwsgi_param SCRIPT_NAME` keeps the prefix in PATH_INFO, untouched.
    expect(varsToRequest(v('/app', '/app/x'))).toMatchObject({
      scriptName: '/app',
      pathInfo: '/app/x',
    });
  });

  it('scheme: UWSGI_SCHEME, X-Forwarded-Proto (trusted only), HTTPS on/1, REQUEST_SCHEME, http', () => {
    const s = (vars: Vars, trust = false) =>
      varsToRequest([...base, ...vars], { trustForwardedProto: trust }).scheme;
    expect(s([])).toBe('http');
    expect(s([['REQUEST_SCHEME', 'https']])).toBe('https');
    expect(
      s([
        ['HTTPS', 'on'],
        ['REQUEST_SCHEME', 'http'],
      ]),
    ).toBe('https');
    expect(s([['HTTPS', '1']])).toBe('https');
    expect(
      s([
        ['HTTPS', 'off'],
        ['REQUEST_SCHEME', 'http'],
      ]),
    ).toBe('http');
    expect(s([['HTTP_X_FORWARDED_PROTO', 'https']])).toBe('http');
    expect(s([['HTTP_X_FORWARDED_PROTO', 'https']], true)).toBe('https');
    expect(
      s(
        [
          ['HTTP_X_FORWARDED_PROTO', 'https, http'],
          ['HTTPS', 'off'],
        ],
        true,
      ),
    ).toBe('https');
    expect(
      s(
        [
          ['HTTP_X_FORWARDED_PROTO', 'http'],
          ['HTTPS', 'on'],
        ],
        true,
      ),
    ).toBe('http');
    expect(
      s(
        [
          ['UWSGI_SCHEME', 'https'],
          ['HTTP_X_FORWARDED_PROTO', 'http'],
        ],
        true,
      ),
    ).toBe('https');
    expect(
      s([
        ['UWSGI_SCHEME', 'gopher'],
        ['HTTPS', 'on'],
      ]),
    ).toBe('https');
  });

  it('host: HTTP_HOST (port may be stripped), then SERVER_NAME', () => {
    expect(varsToRequest([...base, ['SERVER_NAME', 'srv'], ['HTTP_HOST', 'h:8080']]).host).toBe(
      'h:8080',
    );
    expect(varsToRequest([...base, ['SERVER_NAME', 'srv'], ['HTTP_HOST', '']]).host).toBe('srv');
    expect(varsToRequest([...base, ['SERVER_NAME', 'srv']]).host).toBe('srv');
  });

  it('headers: HTTP_X_FOO -> x-foo, order and duplicates kept, non-token names skipped', () => {
    const r = varsToRequest([
      ['HTTP_X_FOO', 'a'],
      ...base,
      ['HTTP_X_UNDER', '1'],
      ['HTTP_X.DOT', 'router'],
      ['HTTP_X_UNDER', '2'],
      ['HTTP_X FOO', 'space'],
      ['HTTP_', 'empty'],
      ['HTTP_X_CRLF', 'a\r\nb'],
    ]);
    expect(r.headers).toEqual([
      ['x-foo', 'a'],
      ['x-under', '1'],
      ['x.dot', 'router'],
      ['x-under', '2'],
      ['x-crlf', 'a\r\nb'],
    ]);
  });

  it('ports are numbers when decimal 0..65535, else undefined (no crash on garbage)', () => {
    const r = (p: string) => varsToRequest([...base, ['REMOTE_PORT', p], ['SERVER_PORT', p]]);
    expect(r('8080')).toMatchObject({ remotePort: 8080, serverPort: 8080 });
    expect(r('65536')).toMatchObject({ remotePort: undefined });
    expect(r('8o')).toMatchObject({ remotePort: undefined });
    expect(r('')).toMatchObject({ remotePort: undefined });
  });
});

describe('requestToVars', () => {
  it('emits nginx stock uwsgi_params order, then headers (nginx 1.22 bodiless GET)', () => {
    const vars = requestToVars({
      method: 'GET',
      url: '/a/./b/../c//d?x=1&y',
      headers: [
        ['Host', 'example.com'],
        ['User-Agent', 'curl/8.0'],
        ['Accept', '*/*'],
        ['Accept', 'text/html'],
        ['X_Under', 'dropped'],
      ],
      remoteAddress: '127.0.0.1',
      remotePort: 40000,
      serverName: 'localhost',
      serverPort: 8080,
      documentRoot: '/usr/share/nginx/html',
    });
    expect(vars).toEqual([
      ['QUERY_STRING', 'x=1&y'],
      ['REQUEST_METHOD', 'GET'],
      ['CONTENT_TYPE', ''],
      ['CONTENT_LENGTH', ''],
      ['REQUEST_URI', '/a/./b/../c//d?x=1&y'],
      ['PATH_INFO', '/a/c/d'],
      ['DOCUMENT_ROOT', '/usr/share/nginx/html'],
      ['SERVER_PROTOCOL', 'HTTP/1.1'],
      ['REQUEST_SCHEME', 'http'],
      ['REMOTE_ADDR', '127.0.0.1'],
      ['REMOTE_PORT', '40000'],
      ['SERVER_PORT', '8080'],
      ['SERVER_NAME', 'localhost'],
      ['HTTP_HOST', 'example.com'],
      ['HTTP_USER_AGENT', 'curl/8.0'],
      ['HTTP_ACCEPT', '*/*'],
      ['HTTP_ACCEPT', 'text/html'],
    ]);
  });

  it('POST: CONTENT_* set, HTTP_CONTENT_* also sent; https adds HTTPS=on and port 443', () => {
    const vars = requestToVars({
      method: 'POST',
      url: '/submit',
      headers: { 'content-type': 'text/plain', 'content-length': '5', 'x-multi': ['a', 'b'] },
      scheme: 'https',
    });
    const map = new Map(vars);
    expect(map.get('CONTENT_TYPE')).toBe('text/plain');
    expect(map.get('CONTENT_LENGTH')).toBe('5');
    expect(map.get('HTTPS')).toBe('on');
    expect(map.get('SERVER_PORT')).toBe('443');
    expect(vars.slice(-4)).toEqual([
      ['HTTP_CONTENT_TYPE', 'text/plain'],
      ['HTTP_CONTENT_LENGTH', '5'],
      ['HTTP_X_MULTI', 'a'],
      ['HTTP_X_MULTI', 'b'],
    ]);
    expect(vars.findIndex(([k]) => k === 'HTTPS')).toBe(9);
  });

  it('chunked request: contentLength is the de-chunked size and TE is still forwarded', () => {
    const vars = requestToVars({
      method: 'POST',
      url: '/',
      headers: [['Transfer-Encoding', 'chunked']],
      contentLength: 11,
    });
    const r = varsToRequest(vars);
    expect(r.contentLength).toBe(11);
    expect(r.headers).toEqual([['content-length', '11']]);
    expect(new Map(vars).get('HTTP_TRANSFER_ENCODING')).toBe('chunked');
  });

  it('PATH_INFO is nginx $document_uri: decoded, merged, dot segments resolved; %FF -> byte 0xFF', () => {
    const path = (url: string, encoding?: 'utf8') =>
      new Map(requestToVars({ method: 'GET', url, headers: [] }, encoding ? { encoding } : {})).get(
        'PATH_INFO',
      );
    expect(path('/a%2Fb')).toBe('/a/b');
    expect(path('/a%2F%2E%2E/b')).toBe('/b');
    expect(path('//x///y/')).toBe('/x/y/');
    expect(path('/a/b/..')).toBe('/a/');
    expect(path('/a/.')).toBe('/a/');
    expect(path('/a%FFb')).toBe('/a\u00ffb');
    expect(path('/%C3%A9', 'utf8')).toBe('/é');
    expect(path('/%25')).toBe('/%');
  });

  it.each([
    ['a %00 escape', '/a%00'],
    ['a bad escape', '/a%zz'],
    ['.. above the root', '/../etc'],
    ['a space', '/a b'],
    ['a non origin-form target', 'http://x/'],
  ])('refuses %s like nginx (400)', (_name, url) => {
    expect(() => requestToVars({ method: 'GET', url, headers: [] })).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' }),
    );
  });

  it('refuses what nginx would answer 400 to in headers, and trims OWS', () => {
    const req = (headers: Array<[string, string]>) =>
      requestToVars({ method: 'GET', url: '/', headers });
    const arg = expect.objectContaining({ code: 'UWSGI_ERR_ARG_INVALID' });
    expect(() => req([['X-A', 'a\r\nb']])).toThrow(arg);
    expect(() => req([['X-A', 'a\u0000']])).toThrow(arg);
    expect(() =>
      req([
        ['Content-Length', '1'],
        ['Content-Length', '1'],
      ]),
    ).toThrow(arg);
    expect(() => req([['Content-Length', 'x']])).toThrow(arg);
    expect(() => requestToVars({ method: 'G T', url: '/', headers: [] })).toThrow(arg);
    expect(new Map(req([['X-A', ' \tv v\t ']])).get('HTTP_X_A')).toBe('v v');
  });
});
