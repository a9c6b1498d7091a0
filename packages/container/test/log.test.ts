import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  type AccessRecord,
  accessLog,
  accessRecord,
  createLogger,
  flushLogger,
  formatMicros,
} from '../src/shared/log.ts';

function rec(url: string | null, extra: Partial<AccessRecord> = {}): AccessRecord {
  return {
    method: 'GET',
    url,
    status: 200,
    bytes: 120,
    durationUs: 250,
    mount: '/api',
    remoteAddress: '127.0.0.1',
    listener: 'unix:/tmp/x.sock',
    aborted: false,
    error: null,
    ...extra,
  };
}

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

/** A JSON logger (what `createLogger` batches access records for) writing to `out`. */
function jsonLogger(out: ReturnType<typeof capture>) {
  return createLogger({ access: true, format: 'json', level: 'info' }, { stdout: out.stdout });
}

describe('access log batching', () => {
  it('batches access records, keeps call order with other records, flushes on demand', () => {
    const out = capture();
    const log = jsonLogger(out);
    const access = accessLog(log);
    access.write(rec('/a'));
    access.write(rec('/b'));
    expect(out.writes).toEqual([]);
    log.warn('something');
    // The batch went out first, in one write, then the warning.
    expect(out.writes).toHaveLength(2);
    access.write(rec('/c'));
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
    const log = jsonLogger(out);
    accessLog(log).write(rec('/late'));
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
    accessLog(log).write(rec('/x'));
    expect(out.writes.join('')).toContain('/x');
  });

  it('formats the line pino would print for the same record, key for key', () => {
    const records = [
      rec('/a?q=1'),
      rec('/\u00e9\u0000"\\\n\u2028', { mount: null, remoteAddress: null, status: 0 }),
      rec('/gone', { aborted: true, method: 'POST', durationUs: 12500, bytes: 0 }),
      rec('/nomethod', { method: null }),
      rec(null, { method: null, status: 0, bytes: 0, mount: null, error: 'protocol' }),
      rec(null, {
        method: null,
        status: 0,
        bytes: 0,
        durationUs: 0,
        mount: null,
        remoteAddress: null,
        error: 'refused',
      }),
      rec('/big', { status: 413, mount: null }),
    ];
    const ours = capture();
    const fast = jsonLogger(ours);
    for (const r of records) accessLog(fast).write(r);
    flushLogger(fast);
    const theirs = capture();
    const plain = jsonLogger(theirs).child({ component: 'access' });
    for (const { aborted, durationUs, error, ...rest } of records) {
      const fields = { ...rest, durationMs: durationUs / 1000 };
      // Key order as pino would get it from dispatch's record.
      const ordered = {
        method: fields.method,
        url: fields.url,
        status: fields.status,
        bytes: fields.bytes,
        durationMs: fields.durationMs,
        mount: fields.mount,
        remoteAddress: fields.remoteAddress,
        listener: fields.listener,
      };
      plain.info(
        {
          ...ordered,
          ...(aborted ? { aborted } : {}),
          ...(error === null ? {} : { error }),
        },
        'request',
      );
    }
    const strip = (lines: Record<string, unknown>[]) =>
      lines.map(({ time, ...rest }) => {
        expect(typeof time).toBe('number');
        return JSON.stringify(rest);
      });
    expect(strip(ours.lines())).toEqual(strip(theirs.lines()));
    expect(ours.lines()).toHaveLength(7);
    // Every record has every field; the unknown ones are null, `aborted`/`error` only when set.
    expect(ours.lines()[5]).toMatchObject({
      method: null,
      url: null,
      status: 0,
      bytes: 0,
      durationMs: 0,
      mount: null,
      remoteAddress: null,
      listener: 'unix:/tmp/x.sock',
      error: 'refused',
    });
    expect(ours.lines()[5]).not.toHaveProperty('aborted');
    expect(ours.lines()[0]).not.toHaveProperty('error');
  });

  it('accessRecord lists the fields in the order they are logged', () => {
    const r = accessRecord(null, '/x', 400, 10, 5, null, null, 'l', false, null);
    expect(Object.keys(r)).toEqual([
      'method',
      'url',
      'status',
      'bytes',
      'durationUs',
      'mount',
      'remoteAddress',
      'listener',
      'aborted',
      'error',
    ]);
  });

  it('a pino child (pretty or injected logger) gets the same fields and honours the level', () => {
    const out = capture();
    const log = createLogger(
      { access: true, format: 'json', level: 'info' },
      { stdout: out.stdout },
    ).child({});
    const access = accessLog(log);
    access.write(rec(null, { method: null, status: 0, error: 'protocol' }));
    log.level = 'warn';
    access.write(rec('/quiet'));
    expect(out.lines()).toEqual([
      expect.objectContaining({
        component: 'access',
        msg: 'request',
        method: null,
        url: null,
        status: 0,
        error: 'protocol',
      }),
    ]);
  });

  it('formats durations as JSON numbers would', () => {
    for (let us = 0; us < 200000; us += 7) expect(formatMicros(us)).toBe(String(us / 1000));
    for (const us of [0, 1, 10, 100, 1000, 1010, 1100, 123456789, 2 ** 40 + 5]) {
      expect(formatMicros(us)).toBe(String(us / 1000));
    }
  });

  it('honours a level raised above info at run time', () => {
    const out = capture();
    const log = jsonLogger(out);
    const access = accessLog(log);
    log.level = 'warn';
    access.write(rec('/quiet'));
    log.level = 'info';
    access.write(rec('/loud'));
    flushLogger(log);
    expect(out.lines().map((r) => r['url'])).toEqual(['/loud']);
  });

  it('writes the bytes of JSON.stringify for every string, hostile ones included', () => {
    const hostile = [
      '/plain?a=1&b=2',
      '/q"uote\\back',
      '/ctl\u0000\u001f\u007f\n',
      '/caf\u00e9/\u4e2d',
      '/emoji\ud83d\ude00',
      '/lone\ud800x\udc00',
      '</script><!--',
    ];
    const records: AccessRecord[] = [];
    for (const [i, s] of hostile.entries()) {
      records.push(
        rec(s, { method: i % 2 === 0 ? 'GET' : s, mount: s, remoteAddress: s }),
        rec(s, { listener: s, aborted: i % 3 === 0, error: i % 2 === 0 ? 'shutdown' : null }),
        rec(null, { method: null, mount: null, remoteAddress: null, durationUs: 1010 * i }),
      );
    }
    // Every number form: whole, one to three decimals, 0.
    records.push(rec('/n', { status: 0, bytes: 0, durationUs: 0 }));
    records.push(rec('/n', { status: 599, bytes: 2 ** 40 + 3, durationUs: 123456789 }));
    const expected = (r: AccessRecord, time: number) =>
      `{"level":30,"time":${time},"pid":${process.pid},"component":"access"` +
      `,"method":${JSON.stringify(r.method)},"url":${JSON.stringify(r.url)}` +
      `,"status":${r.status},"bytes":${r.bytes},"durationMs":${r.durationUs / 1000}` +
      `,"mount":${JSON.stringify(r.mount)},"remoteAddress":${JSON.stringify(r.remoteAddress)}` +
      `,"listener":${JSON.stringify(r.listener)}${r.aborted ? ',"aborted":true' : ''}` +
      `${r.error === null ? '' : `,"error":${JSON.stringify(r.error)}`},"msg":"request"}`;
    for (const sharedOutput of [false, true]) {
      const chunks: Buffer[] = [];
      const stdout = new Writable({
        write(chunk: Buffer, _enc, cb) {
          chunks.push(Buffer.from(chunk));
          cb();
        },
      });
      const log = createLogger(
        { access: true, format: 'json', level: 'info' },
        { stdout, sharedOutput },
      );
      const access = accessLog(log);
      for (const r of records) access.write(r);
      flushLogger(log);
      const lines = Buffer.concat(chunks).toString('utf8').split('\n');
      expect(lines.pop()).toBe('');
      expect(lines).toHaveLength(records.length);
      for (const [i, line] of lines.entries()) {
        const time = Number(/^\{"level":30,"time":(\d+),/.exec(line)?.[1]);
        expect(line).toBe(expected(records[i] as AccessRecord, time));
      }
    }
  });

  it('a line larger than a batch is written at once, after the batch', () => {
    const out = capture();
    const log = jsonLogger(out);
    const access = accessLog(log);
    access.write(rec('/small'));
    access.write(rec(`/${'x'.repeat(70000)}`));
    expect(out.lines().map((r) => String(r['url']).length)).toEqual([6, 70001]);
  });
});
