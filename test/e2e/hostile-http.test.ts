/**
 * RELIABILITY.md section 1.2 (H01-H15, as far as raw bytes express them) and the issue-12 rows
 * against the built container's HTTP listener over raw TCP on loopback: each hostile input ends
 * in its documented status (with `Connection: close` when the answer closes) or a close without
 * an answer, the app is called exactly as often as the case allows, the process stays up, a
 * canary request succeeds afterwards and the container's open fds return to their baseline.
 */
import type { Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, fdsBackTo, type RunningContainer, startContainer } from '../utils/cli.ts';
import { writeConfig } from '../utils/config.ts';
import { connect, pollUntil, type Target } from '../utils/net.ts';
import { openFds } from '../utils/procs.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';
import { type ExchangeResult, parseHttpResponse, uwsgiExchange } from '../utils/uwsgi-client.ts';

import { CLOSE, cases, H, type HttpCase, LIMITS, PROMPT_MS } from './hostile-http-cases.ts';

function describeResult(r: ExchangeResult): string {
  return `${r.outcome}${r.error ? ` ${r.error}` : ''} after ${Math.round(r.ms)} ms, ${r.data.length} bytes: ${JSON.stringify(r.data.subarray(0, 160).toString('latin1'))}`;
}

/** Asserts the outcome of `c`; returns the status (undefined when closed without an answer). */
function checkOutcome(c: HttpCase, r: ExchangeResult): number | undefined {
  const info = `${c.id} ${c.name}: ${describeResult(r)}`;
  expect(r.outcome, info).not.toBe('timeout');
  if (c.minMs !== undefined) expect(r.ms, info).toBeGreaterThanOrEqual(c.minMs);
  expect(r.ms, info).toBeLessThanOrEqual(c.maxMs ?? PROMPT_MS);
  if (c.expect === 'closed') {
    expect(r.data.length, info).toBe(0);
    return undefined;
  }
  if (c.noContinue === true) expect(r.data.toString('latin1'), info).not.toContain('100 Continue');
  const res = parseHttpResponse(r.data);
  expect(res, info).toBeDefined();
  expect(c.expect, info).toContain(res!.status);
  // The server closed after this answer: it says so (RFC 9112 section 9.6).
  expect(res!.header('connection'), info).toBe('close');
  const cl = res!.header('content-length');
  if (cl !== undefined) expect(res!.body.length, info).toBe(Number(cl));
  c.check?.(res!.body);
  return res!.status;
}

const request = (path: string) => `GET ${path} HTTP/1.1\r\n${H}${CLOSE}\r\n`;

describe('hostile HTTP input (RELIABILITY.md 1.2, issue 12)', () => {
  let dir: string;
  let container: RunningContainer;
  let http: Target;
  let baselineFds: number;
  /** Calls this suite made itself (stats, canary, waiting, release): left out of the counts. */
  let ownCalls = 0;

  const get = async (path: string) => {
    ownCalls++;
    const r = await uwsgiExchange(http, Buffer.from(request(path)), { timeoutMs: 5000 });
    const res = parseHttpResponse(r.data);
    if (res === undefined) throw new Error(`no answer to ${path}: ${describeResult(r)}`);
    return res;
  };
  /** App calls so far, not counting the /stats calls themselves. */
  const appCalls = async (): Promise<number> => {
    const res = await get('/app/stats');
    expect(res.status).toBe(200);
    return (JSON.parse(res.body.toString()) as { calls: number }).calls - ownCalls;
  };
  const canary = async () => {
    const res = await get('/app/canary?ok=1');
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body.toString())).toMatchObject({ url: '/canary?ok=1' });
  };

  beforeAll(async () => {
    assertBuilt();
    dir = await makeTmpDir('e2e-hostile-http');
    const config = await writeConfig(dir, {
      listeners: [{ protocol: 'http', address: '127.0.0.1:0' }],
      mounts: [{ path: '/app', app: 'plain.mjs' }],
      limits: LIMITS,
      accessLog: true,
    });
    container = await startContainer(config);
    http = container.target('http', 'tcp');
    await canary();
    baselineFds = openFds(container.pid);
  });

  afterEach(async () => {
    if (!container) return;
    expect(container.child.exitCode).toBeNull();
    await fdsBackTo(container.pid, baselineFds);
  });

  afterAll(async () => {
    try {
      if (container) {
        expect(container.child.exitCode).toBeNull();
        const exit = await container.stop();
        expect(exit).toEqual({ code: 0, signal: null });
        const text = container.stdoutText() + container.stderrText();
        expect(text).not.toMatch(/uncaught|unhandled|FATAL/i);
      }
    } finally {
      await container?.kill();
      if (dir) await removeTmpDir(dir);
    }
  });

  it.each(cases.map((c) => [`${c.id} ${c.name}`, c] as const))('%s', async (_name, c) => {
    const before = await appCalls();
    const payload = typeof c.payload === 'string' ? [c.payload] : c.payload;
    const r = await uwsgiExchange(
      http,
      payload.map((p) => Buffer.from(p, 'latin1')),
      { timeoutMs: 8000 },
    );
    const status = checkOutcome(c, r);
    const want = c.appCalls ?? (status !== undefined && status < 300 ? 1 : 0);
    expect((await appCalls()) - before, `${c.id} app calls`).toBe(want);
    expect(container.child.exitCode).toBeNull();
    await canary();
  });

  it('H13 + I12: 10,000 pipelined requests never read, then the client leaves: reading paused, every dispatched one aborted at once', async () => {
    const before = await appCalls();
    const id = 'pipelined';
    const socket: Socket = connect(http);
    socket.on('error', () => undefined);
    let text = `GET /app/head-held?id=${id} HTTP/1.1\r\n${H}\r\n`;
    for (let i = 0; i < 10_000; i++) text += `GET /app/status/204?pipe=${i} HTTP/1.1\r\n${H}\r\n`;
    socket.write(text);
    // The first one holds its response: every later response is queued behind it.
    await pollUntil(
      async () => JSON.parse((await get(`/app/waiting?id=${id}`)).body.toString()).waiting === true,
      {
        what: 'the first pipelined request held by the app',
      },
    );
    await pollUntil(async () => (await appCalls()) - before >= 50, {
      what: '50 pipelined requests dispatched',
    });
    socket.destroy();
    await new Promise((resolve) => socket.once('close', resolve));
    // No more dispatch once the socket closed: the count is final.
    const dispatched = (await appCalls()) - before - 1;
    const aborted = () =>
      container.logs.filter(
        (r) =>
          r.msg === 'request' &&
          String(r.url).startsWith('/app/status/204?pipe=') &&
          r.aborted === true,
      ).length;
    // Settled at the close, far inside requestTimeoutMs (10 s).
    await pollUntil(() => aborted() >= dispatched, {
      attempts: 60,
      what: 'aborted access records',
    });
    expect(aborted()).toBe(dispatched);
    // node:http stopped parsing when the queued responses passed its high-water mark.
    expect(dispatched).toBeLessThan(10_000);
    expect(container.logs.some((r) => r.msg === 'request timeout')).toBe(false);
    expect((await get(`/app/release?id=${id}`)).status).toBe(200);
    await canary();
  });
});
