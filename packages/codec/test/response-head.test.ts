/** ResponseHeadParser / parseResponseHead (PROTOCOL.md sections 4, 8 "Response"). */
import { describe, expect, it } from 'vitest';
import { parseResponseHead, ResponseHeadParser } from '../src/index.ts';
import { ascii, concat } from './helpers.ts';

const malformed = expect.objectContaining({ code: 'UWSGI_ERR_RESPONSE_MALFORMED' });
const tooLarge = expect.objectContaining({ code: 'UWSGI_ERR_RESPONSE_TOO_LARGE' });
const parse = (text: string) => parseResponseHead(ascii(text));

describe('response head', () => {
  it('parses a status line, headers and the body offset', () => {
    const bytes = ascii(
      'HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nX-A:  v  \r\n\r\nbody',
    );
    expect(parseResponseHead(bytes)).toEqual({
      statusCode: 404,
      statusMessage: 'Not Found',
      httpVersion: '1.1',
      headers: [
        ['Content-Type', 'text/plain'],
        ['X-A', 'v'],
      ],
      bodyOffset: bytes.length - 4,
    });
  });

  it('reason phrase is optional; bare LF line ends are accepted', () => {
    expect(parse('HTTP/1.0 204\r\n\r\n')).toMatchObject({
      statusCode: 204,
      statusMessage: '',
      httpVersion: '1.0',
    });
    expect(parse('HTTP/1.1 200 \n\n')).toMatchObject({ statusCode: 200, statusMessage: '' });
    expect(parse('HTTP/1.1 200 OK\nA: b\n\n')).toMatchObject({
      headers: [['A', 'b']],
      bodyOffset: 22,
    });
  });

  it('CGI form: Status header gives the status and is removed', () => {
    expect(parse('Status: 418 I am a teapot\r\nX: y\r\n\r\n')).toEqual({
      statusCode: 418,
      statusMessage: 'I am a teapot',
      httpVersion: '',
      headers: [['X', 'y']],
      bodyOffset: 35,
    });
    expect(parse('status: 500\r\n\r\n')).toMatchObject({ statusCode: 500, statusMessage: '' });
  });

  it('CGI form without Status: Location -> 302 (as nginx), else 200', () => {
    expect(parse('Location: /next\r\n\r\n')).toMatchObject({
      statusCode: 302,
      headers: [['Location', '/next']],
    });
    expect(parse('Content-Type: text/html\r\n\r\n')).toMatchObject({ statusCode: 200 });
    expect(parse('\r\n')).toMatchObject({ statusCode: 200, headers: [], bodyOffset: 2 });
  });

  it('a Status header after a real status line is an ordinary header (nginx leaks it)', () => {
    expect(parse('HTTP/1.1 200 OK\r\nStatus: 500\r\n\r\n')).toMatchObject({
      statusCode: 200,
      headers: [['Status', '500']],
    });
  });

  it.each([
    ['HTTP/2 status line', 'HTTP/2 200 OK\r\n\r\n'],
    ['HTTP/1.1 with a 2-digit status', 'HTTP/1.1 20 OK\r\n\r\n'],
    ['status below 100', 'HTTP/1.1 099 x\r\n\r\n'],
    ['no space after the version', 'HTTP/1.1200 OK\r\n\r\n'],
    ['a control char in the reason', 'HTTP/1.1 200 O\u0001K\r\n\r\n'],
    ['a non-token header name', 'HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n'],
    ['space before the colon', 'HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n'],
    ['an empty header name', 'HTTP/1.1 200 OK\r\n: x\r\n\r\n'],
    ['a line without colon', 'HTTP/1.1 200 OK\r\nnocolon\r\n\r\n'],
    ['obs-fold', 'HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n'],
    ['NUL in a value', 'HTTP/1.1 200 OK\r\nA: b\u0000c\r\n\r\n'],
    ['a bare CR in a value', 'HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n'],
    ['a bad CGI Status', 'Status: abc\r\n\r\n'],
  ])('refuses %s', (_name, text) => {
    expect(() => parse(text)).toThrow(malformed);
  });

  it('an incomplete head is malformed for the one-shot parser', () => {
    expect(() => parse('HTTP/1.1 200 OK\r\nA: b\r\n')).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_RESPONSE_MALFORMED', offset: 23 }),
    );
  });

  it('limits: maxHeadSize while bytes arrive, maxHeaders', () => {
    const p = new ResponseHeadParser({ maxHeadSize: 64 });
    expect(p.push(ascii('HTTP/1.1 200 OK\r\n'))).toBeUndefined();
    expect(() => p.push(ascii(`X: ${'a'.repeat(60)}`))).toThrow(tooLarge);
    expect(p.state).toBe('failed');
    expect(() => p.push(ascii('\r\n\r\n'))).toThrow(tooLarge);
    const lines = Array.from({ length: 11 }, (_, i) => `H${i}: v\r\n`).join('');
    expect(() => parse(`HTTP/1.1 200 OK\r\n${lines}\r\n`)).not.toThrow();
    expect(() =>
      parseResponseHead(ascii(`HTTP/1.1 200 OK\r\n${lines}\r\n`), { maxHeaders: 10 }),
    ).toThrow(tooLarge);
    expect(() =>
      parseResponseHead(ascii(`HTTP/1.1 200 OK\r\nA: ${'x'.repeat(100)}\r\n\r\n`), {
        maxHeadSize: 50,
      }),
    ).toThrow(tooLarge);
    expect(
      parseResponseHead(ascii('HTTP/1.1 200 OK\r\n\r\n'), { maxHeadSize: 19 }).statusCode,
    ).toBe(200);
  });

  it('incremental: head split anywhere, bodyOffset within the completing chunk; done ignores input', () => {
    const bytes = ascii('HTTP/1.1 200 OK\r\nA: b\r\n\r\nBODY');
    const p = new ResponseHeadParser();
    expect(p.push(bytes.subarray(0, 24))).toBeUndefined();
    const head = p.push(bytes.subarray(24));
    expect(head).toMatchObject({ statusCode: 200, headers: [['A', 'b']], bodyOffset: 1 });
    expect(p.state).toBe('done');
    expect(p.bytesConsumed).toBe(25);
    expect(p.push(ascii('more'))).toBeUndefined();
    p.reset();
    expect(p.push(concat(ascii('HTTP/1.1 100 Continue\r\n\r\n')))).toMatchObject({
      statusCode: 100,
    });
  });

  it('header values are latin1 byte-exact', () => {
    const head = parseResponseHead(
      concat(ascii('HTTP/1.1 200 OK\r\nX: '), Uint8Array.of(0xe9, 0xff), ascii('\r\n\r\n')),
    );
    expect(head.headers).toEqual([['X', '\u00e9\u00ff']]);
  });
});
