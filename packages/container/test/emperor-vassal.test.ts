/**
 * The emperor's per-vassal state machine (emperor/vassal.ts) with real child processes: a
 * stand-in vassal entry (fixtures/emperor/fake-vassal.mjs) that crashes, becomes ready or fails
 * a reload as its config says, so each interleaving is deterministic. The real vassal entry is
 * covered end to end in test/e2e/emperor.test.ts.
 */
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { sha256 } from '../src/emperor/scanner.ts';
import { Vassal, type VassalContext } from '../src/emperor/vassal.ts';
import { VassalProcess } from '../src/emperor/vassal-process.ts';
import { createLogger } from '../src/shared/log.ts';

const ENTRY = fileURLToPath(new URL('./fixtures/emperor/fake-vassal.mjs', import.meta.url));

type Mode = 'ok' | 'crash' | 'fail';

function text(mode: Mode, tag = ''): string {
  return `listeners:\n  - { protocol: uwsgi, address: /tmp/fake-${mode}.sock }\nmounts:\n  - { path: /, app: ./app.mjs }\nenv:\n  MODE: ${mode}\n  TAG: "${tag}"\n`;
}

let mtime = 1;
function found(mode: Mode, tag = '', touch = true) {
  if (touch) mtime++;
  const t = text(mode, tag);
  return { name: 'v.yaml', file: '/srv/vassals/v.yaml', text: t, hash: sha256(t), mtimeMs: mtime };
}

const live: Vassal[] = [];

function setup(): { vassal: Vassal; events: (event: string) => number } {
  const records: Record<string, unknown>[] = [];
  const stdout = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line));
      done();
    },
  });
  const ctx: VassalContext = {
    entry: ENTRY,
    env: process.env,
    stdout: undefined,
    log: createLogger({ access: false, format: 'json', level: 'info' }, { stdout }),
    mercyMs: 2000,
    readyTimeoutMs: 10_000,
    heartbeatTimeoutMs: 30_000,
    backoff: { firstMs: 100, maxMs: 5000 },
    takeSpare: () => undefined,
    onBootEnded: () => undefined,
    onGone: () => undefined,
    historySize: 10,
  };
  const vassal = new Vassal('v.yaml', '/srv/vassals/v.yaml', ctx);
  live.push(vassal);
  return { vassal, events: (event) => records.filter((r) => r['event'] === event).length };
}

async function until(what: string, done: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

afterEach(async () => {
  await Promise.all(live.splice(0).map((v) => v.stop(0)));
});

describe('vassal state machine', () => {
  it('a fixed file during backoff starts the fixed config at once, never the broken one again', async () => {
    const { vassal, events } = setup();
    vassal.update(found('crash'), undefined);
    await until('two throttles', () => events('throttled') >= 2);
    const crashes = events('crashed');
    const spawns = events('spawned');
    vassal.update(found('ok'), undefined);
    await until('serving', () => vassal.state === 'serving');
    expect(events('spawned')).toBe(spawns + 1);
    expect(events('crashed')).toBe(crashes);
  });

  it('touch retries a throttled vassal now; stop() ends the throttle and touch leaves it stopped', async () => {
    const { vassal, events } = setup();
    vassal.update(found('crash'), undefined);
    await until('a throttle', () => events('throttled') >= 1);
    const spawns = events('spawned');
    vassal.update(found('crash'), undefined); // same text, new mtime: touch
    expect(events('retry')).toBe(1);
    expect(events('spawned')).toBe(spawns + 1);
    await until('throttled again', () => vassal.state === 'backoff');
    await vassal.stop();
    expect(vassal.state).toBe('stopped');
    expect(vassal.status()['throttledUntil']).toBeUndefined();
    const stoppedSpawns = events('spawned');
    vassal.update(found('crash'), undefined); // touch
    expect(vassal.state).toBe('stopped');
    expect(events('spawned')).toBe(stoppedSpawns);
  });

  it('a text whose reload failed once is tried again when the file comes back to it', async () => {
    const { vassal, events } = setup();
    vassal.update(found('ok', 'a'), undefined);
    await until('serving', () => vassal.state === 'serving');
    vassal.update(found('fail', 'b'), undefined);
    await until('reload failed', () => events('reload-failed') === 1);
    vassal.update(found('ok', 'c'), undefined);
    await until('reloaded', () => events('reloaded') === 1);
    vassal.update(found('fail', 'b'), undefined);
    await until('reload failed again', () => events('reload-failed') === 2);
  });

  it('reload() during a running reload is answered by a reload of its own', async () => {
    const { vassal, events } = setup();
    vassal.update(found('ok', 'a'), undefined);
    await until('serving', () => vassal.state === 'serving');
    vassal.update(found('ok', 'b'), undefined); // a config-change reload is now in flight
    expect(vassal.state).toBe('reloading');
    const result = await vassal.reload('operator');
    expect(result).toEqual({ ok: true });
    expect(events('reloaded')).toBe(2);
  });
});

describe('vassal file over the size limit', () => {
  it('is one invalid record per content, and nothing starts', async () => {
    const { vassal, events } = setup();
    const big = {
      name: 'v.yaml',
      file: '/srv/vassals/v.yaml',
      text: '',
      hash: 'too-large:1',
      mtimeMs: 1,
      error: 'the file is larger than emperor.maxFileBytes (1024 bytes): not read',
    };
    vassal.update(big, undefined);
    vassal.update({ ...big, mtimeMs: 2 }, undefined);
    expect(events('invalid')).toBe(1);
    expect(events('spawned')).toBe(0);
    expect(vassal.state).toBe('invalid');
    expect(vassal.status()['lastError']).toMatch(/maxFileBytes/);
  });
});

describe('vassal process', () => {
  it('a fork that fails (here E2BIG: an environment string over 128 KiB) ends as an exit with the reason', async () => {
    const exits: unknown[] = [];
    const proc = new VassalProcess({
      entry: ENTRY,
      name: 'big.yaml',
      env: { ...process.env, BIG: 'x'.repeat(200_000) },
      onMessage: () => undefined,
      onExit: (exit) => exits.push(exit),
    });
    const exit = await proc.exited;
    expect(exit).toEqual({ code: null, signal: null, error: 'E2BIG' });
    expect(exits).toEqual([exit]);
    expect(proc.alive).toBe(false);
  });
});
