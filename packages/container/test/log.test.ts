import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { accessLogger, createLogger, flushLogger } from '../src/log.ts';

function capture() {
  const writes: string[] = [];
  const stdout = new Writable({
    write(chunk: Buffer, _enc, cb) {
      writes.push(chunk.toString('utf8'));
      cb();
    },
  });
  const lines = () =>
    writes
      .join('')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { stdout, writes, lines };
}

describe('access log batching', () => {
  it('batches access records, keeps call order with other records, flushes on demand', () => {
    const out = capture();
    const log = createLogger(
      { access: true, format: 'json', level: 'info' },
      { stdout: out.stdout },
    );
    const access = accessLogger(log);
    access.info({ url: '/a' }, 'request');
    access.info({ url: '/b' }, 'request');
    expect(out.writes).toEqual([]);
    log.warn('something');
    // The batch went out first, in one write, then the warning.
    expect(out.writes).toHaveLength(2);
    access.info({ url: '/c' }, 'request');
    flushLogger(log);
    expect(out.lines().map((r) => r['url'] ?? r['msg'])).toEqual(['/a', '/b', 'something', '/c']);
    const first = out.lines()[0];
    expect(first).toMatchObject({
      level: 30,
      pid: process.pid,
      component: 'access',
      msg: 'request',
    });
  });

  it('writes a pending batch by itself after a short delay', async () => {
    const out = capture();
    const log = createLogger(
      { access: true, format: 'json', level: 'info' },
      { stdout: out.stdout },
    );
    accessLogger(log).info({ url: '/late' }, 'request');
    await new Promise<void>((resolve) => {
      const check = () => (out.writes.length > 0 ? resolve() : setTimeout(check, 10));
      check();
    });
    expect(out.lines()[0]).toMatchObject({ url: '/late', component: 'access' });
  });

  it('a logger it did not build gets a plain child (written at once)', () => {
    const out = capture();
    const log = createLogger(
      { access: true, format: 'pretty', level: 'info' },
      { stdout: out.stdout },
    );
    accessLogger(log).info({ url: '/x' }, 'request');
    expect(out.writes.join('')).toContain('/x');
  });
});
