/**
 * RELIABILITY.md R9, harakiri vs the request timeout (docs/supervisor.md "Harakiri"): a request
 * that blocks its worker's event loop gets a 504 within harakiriMs + 1.5 s, through nginx and on
 * the HTTP listener; the log names the request and the spinning function; the worker is replaced
 * while the other one answers. A request that awaits forever (loop alive) gets the
 * requestTimeoutMs 504 instead, and its worker stays.
 */
import { existsSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TRANSPORT } from '../utils/config.ts';
import { HAS_NGINX } from '../utils/nginx.ts';
import { childrenOf, liveChildren, waitUntilGone } from '../utils/procs.ts';
import {
  httpBase,
  httpGet,
  isExit,
  type PidAnswer,
  SUPERVISOR_APP,
  type Supervised,
  supervisorSuite,
  writeSupervisorConfig,
} from '../utils/supervisor.ts';

const HARAKIRI_MS = 1000;
const REQUEST_TIMEOUT_MS = 5000;

async function startBusy(
  suite: ReturnType<typeof supervisorSuite>,
  name: string,
): Promise<Supervised> {
  const dir = suite.dir();
  const config = await writeSupervisorConfig(
    dir,
    {
      workers: 2,
      listeners: [
        { protocol: 'uwsgi', address: `${name}.sock` },
        { protocol: 'http', address: '127.0.0.1:0' },
      ],
      limits: { harakiriMs: HARAKIRI_MS, requestTimeoutMs: REQUEST_TIMEOUT_MS },
      env: { SPIN_MARKER: join(dir, `${name}.spinning`) },
      mounts: [
        { path: '/', app: SUPERVISOR_APP },
        { path: '/busy', app: SUPERVISOR_APP },
      ],
    },
    `${name}.yaml`,
  );
  return suite.start(config);
}

/**
 * Sends `/busy/spin` with `get`, and while that worker spins, five `/pid` requests that the other
 * one must answer; then checks the 504, the harakiri record, the SIGKILL and the replacement.
 */
async function harakiriOnce(
  c: Supervised,
  marker: string,
  get: (path: string) => Promise<PidAnswer>,
  label: string,
): Promise<void> {
  await rm(marker, { force: true });
  const before = liveChildren(c.pid);
  const from = c.logs.length;
  const t0 = performance.now();
  const spin = get('/busy/spin').then((a) => ({ ...a, ms: performance.now() - t0 }));
  await expect.poll(() => existsSync(marker), { timeout: 10_000, interval: 10 }).toBe(true);
  await expect
    .poll(() => readFileSync(marker, 'utf8'), { timeout: 1000, interval: 10 })
    .not.toBe('');
  const spinning = Number(readFileSync(marker, 'utf8'));
  expect(before).toContain(spinning);

  // The other worker is not affected: it answers at once while this one spins.
  const others: number[] = [];
  for (let i = 0; i < 5; i++) {
    const s = performance.now();
    const a = await get('/pid');
    others.push(performance.now() - s);
    expect(a.status).toBe(200);
    expect(a.pid).not.toBe(spinning);
  }

  const answer = await spin;
  expect(answer.status).toBe(504);
  expect(answer.ms).toBeLessThan(HARAKIRI_MS + 1500);

  const record = await c.logAfter(
    from,
    (r) => r.msg === 'harakiri: event loop blocked, worker killed' && r['workerPid'] === spinning,
  );
  expect(record['level']).toBe(50);
  expect(record['harakiriMs']).toBe(HARAKIRI_MS);
  expect(record['requests']).toEqual([
    expect.objectContaining({ method: 'GET', url: '/busy/spin', mount: '/busy', answered: '504' }),
  ]);
  const stack = record['stack'] as string[];
  expect(stack[0]).toMatch(/^spinTheLoop \(file:\/\/.*supervisor\.mjs:\d+:\d+\)$/);

  const exit = await c.logAfter(from, (r) => isExit(r) && r['workerPid'] === spinning);
  expect(exit).toMatchObject({ signal: 'SIGKILL', reason: 'harakiri' });
  const slot = exit['worker'] as number;
  const replaced = await c.logAfter(
    from,
    (r) => r.msg === 'worker ready' && r['worker'] === slot && r['workerPid'] !== spinning,
  );
  await waitUntilGone([spinning], 2000);
  const now = [...before.filter((p) => p !== spinning), replaced['workerPid'] as number];
  expect(liveChildren(c.pid)).toEqual(now.sort((a, b) => a - b));
  expect(childrenOf(c.pid).filter((p) => p.state === 'Z')).toEqual([]);
  console.log(
    `supervisor R9 harakiri (${label}): 504 after ${Math.round(answer.ms)} ms, other worker answered in ${others.map((m) => Math.round(m)).join('/')} ms, replacement ready ${(replaced['time'] as number) - (exit['time'] as number)} ms after the kill`,
  );
}

describe(`supervisor: harakiri and request timeout (transport ${TRANSPORT ?? 'default'})`, () => {
  const suite = supervisorSuite('e2e-suph');

  it('R9: a busy loop gets the harakiri 504 (nginx, HTTP listener), its worker replaced; an awaited-forever one the requestTimeoutMs 504, its worker kept', async () => {
    // Two masters: one for the busy loops, one for the request that awaits forever (its 5 s
    // run meanwhile; on one master a spin could land on the waiting worker and kill it).
    const [busy, waiting] = await Promise.all([
      startBusy(suite, 'busy'),
      startBusy(suite, 'waiting'),
    ]);
    const waitingBefore = liveChildren(waiting.pid);
    const waitingFrom = waiting.logs.length;
    const t0 = performance.now();
    const hang = httpGet(`${httpBase(waiting)}/busy/hang`).then((a) => ({
      ...a,
      ms: performance.now() - t0,
    }));

    const marker = join(suite.dir(), 'busy.spinning');
    if (HAS_NGINX) {
      const nginx = await suite.nginx(busy.address('uwsgi', 'unix'));
      await harakiriOnce(busy, marker, (path) => httpGet(nginx.url(path)), 'nginx');
    }
    const base = httpBase(busy);
    await harakiriOnce(busy, marker, (path) => httpGet(`${base}${path}`), 'http listener');
    expect(await busy.stop()).toEqual({ code: 0, signal: null });

    const answer = await hang;
    console.log(`supervisor R9 request timeout: 504 after ${Math.round(answer.ms)} ms`);
    expect(answer.status).toBe(504);
    expect(answer.ms).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 50);
    expect(answer.ms).toBeLessThan(REQUEST_TIMEOUT_MS + 2000);
    const access = await waiting.logAfter(
      waitingFrom,
      (r) => r.msg === 'request' && r['url'] === '/busy/hang',
    );
    expect(access).toMatchObject({ status: 504, mount: '/busy' });
    expect(waitingBefore).toContain(access['pid']);
    // Same workers, none killed, no harakiri.
    expect(liveChildren(waiting.pid)).toEqual(waitingBefore);
    expect(waiting.records((r) => isExit(r) || r.msg?.startsWith('harakiri') === true)).toEqual([]);
    expect((await httpGet(`${httpBase(waiting)}/pid`)).status).toBe(200);
    expect(await waiting.stop()).toEqual({ code: 0, signal: null });
  });
});
