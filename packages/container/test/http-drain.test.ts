/**
 * The HTTP listener's graceful drain (a worker of an old generation, RELIABILITY.md R6b): a
 * keep-alive client whose next request is on its way when the container starts closing gets
 * an answer, not a reset; sockets left idle are closed once the drain grace is over.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type Served, serve } from './fixtures/apps/harness.ts';

let served: Served | undefined;
afterEach(async () => {
  await served?.close();
  served = undefined;
});

const REQUEST = 'GET / HTTP/1.1\r\nHost: a\r\n\r\n';

/** A raw keep-alive client: the bytes received so far, and how the connection ended. */
function client(port: number) {
  const socket: Socket = connect(port, '127.0.0.1');
  let text = '';
  let ended: string | undefined;
  socket.setEncoding('latin1');
  socket.on('data', (d: string) => {
    text += d;
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    ended ??= err.code ?? err.message;
  });
  socket.on('close', () => {
    ended ??= 'close';
  });
  const until = async (pred: () => boolean, what: string) => {
    for (let i = 0; i < 300 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
    if (!pred()) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(text)}`);
  };
  return {
    socket,
    responses: () => text.match(/HTTP\/1\.1 200 OK/g)?.length ?? 0,
    text: () => text,
    ended: () => ended,
    until,
  };
}

describe('http listener drain', () => {
  it('a request arriving on an idle keep-alive socket as close() starts is answered', async () => {
    served = await serve(
      (_req, res) => {
        res.setHeader('content-length', '2');
        res.end('ok');
      },
      { protocol: 'http' },
    );
    const c = client(served.port);
    c.socket.write(REQUEST);
    await c.until(() => c.responses() === 1, 'the first response');
    // The socket is idle; the client sends its next request as the container starts to close
    // (the old generation of a reload). It used to be destroyed unread: ECONNRESET.
    const closing = served.container.close({ timeoutMs: 5000 });
    c.socket.write(REQUEST);
    await c.until(() => c.ended() !== undefined, 'the end of the connection');
    await closing;
    expect(c.responses()).toBe(2);
    expect(c.ended()).toBe('close');
  });

  it('closes a keep-alive socket left idle once the drain grace is over', async () => {
    served = await serve(
      (_req, res) => {
        res.end('ok');
      },
      { protocol: 'http' },
    );
    const c = client(served.port);
    c.socket.write(REQUEST);
    await c.until(() => c.responses() === 1, 'the first response');
    const started = Date.now();
    await served.container.close({ timeoutMs: 10_000 });
    await c.until(() => c.ended() !== undefined, 'the end of the connection');
    // DRAIN_IDLE_MS (1 s) plus scheduling, far from the 10 s grace.
    expect(Date.now() - started).toBeLessThan(3000);
    expect(c.ended()).toBe('close');
  });

  it('answers requests with Connection: close once draining', async () => {
    let release: (() => void) | undefined;
    served = await serve(
      (req, res) => {
        if (req.url === '/slow') {
          release = () => res.end('slow');
          return;
        }
        res.end('ok');
      },
      { protocol: 'http' },
    );
    const c = client(served.port);
    c.socket.write('GET /slow HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.until(() => release !== undefined, 'the slow request');
    const closing = served.container.close({ timeoutMs: 5000 });
    await new Promise((r) => setTimeout(r, 50));
    release?.();
    await c.until(() => c.responses() === 1, 'the slow response');
    c.socket.write(REQUEST);
    await c.until(() => c.ended() !== undefined, 'the end of the connection');
    await closing;
    expect(c.responses()).toBe(2);
    expect(c.text()).toMatch(/\r\nConnection: close\r\n[\s\S]*ok$/i);
  });
});
