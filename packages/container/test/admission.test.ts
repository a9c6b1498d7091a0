import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Admission, type TrackedConnection } from '../src/admission/admission.ts';
import { openFdCount, openFileLimit } from '../src/admission/fds.ts';
import { HttpConnection } from '../src/protocol/http.ts';
import { Stats } from '../src/shared/stats.ts';
import { memoryLogger } from './fixtures/apps/harness.ts';

/** A connection as the container tracks one; `destroy()` marks it (closing is the caller's). */
class Conn implements TrackedConnection {
  destroyed = false;
  readonly name: string;
  idle: boolean;
  constructor(name: string, idle: boolean) {
    this.name = name;
    this.idle = idle;
  }
  get busy(): boolean {
    return !this.idle;
  }
  destroy(): void {
    this.destroyed = true;
  }
}

function setup(options: {
  maxConnections: number;
  fdLimit?: number;
  fds?: (stats: Stats) => number;
}) {
  const stats = new Stats([]);
  const { log, records } = memoryLogger();
  const admission = new Admission({
    maxConnections: options.maxConnections,
    reservedFds: 10,
    stats,
    log,
    fdLimit: options.fdLimit ?? Number.POSITIVE_INFINITY,
    countFds: () => options.fds?.(stats) ?? 0,
  });
  /** Accepts one connection; undefined when refused. */
  const accept = (name: string, idle: boolean): Conn | undefined => {
    if (!admission.admit()) return undefined;
    const conn = new Conn(name, idle);
    admission.add(conn);
    return conn;
  };
  /** The connection's socket closed (what the container does on 'close'). */
  const closed = (conn: Conn): void => admission.remove(conn);
  const warnings = () => records.filter((r) => r.msg === 'connection limit reached');
  return { stats, admission, accept, closed, warnings };
}

describe('admission', () => {
  it('sheds the oldest idle connections first, never a busy one', () => {
    const { stats, accept, warnings } = setup({ maxConnections: 3 });
    const busy = accept('busy', false) as Conn;
    const old = accept('old', true) as Conn;
    const young = accept('young', true) as Conn;
    const fourth = accept('fourth', false);
    expect(fourth).toBeDefined();
    expect([busy.destroyed, old.destroyed, young.destroyed]).toEqual([false, true, false]);
    expect(stats.connectionsShed).toBe(1);
    // The shed one is closing: it no longer counts against the limit, nor is it shed twice.
    expect(stats.connections).toBe(4);
    expect(warnings()).toHaveLength(1);
    expect(warnings()[0]).toMatchObject({ shed: 1, refused: 0, limit: 3, connections: 3 });
  });

  it('refuses (and counts) a new connection when none is idle', () => {
    const { stats, accept, closed } = setup({ maxConnections: 2 });
    const a = accept('a', false) as Conn;
    accept('b', false);
    expect(accept('c', true)).toBeUndefined();
    expect(stats.connectionsRejected).toBe(1);
    expect(stats.connections).toBe(2);
    closed(a);
    expect(accept('d', true)).toBeDefined();
  });

  it('sheds a batch of 1/32 of the limit (at most 32) so the next accepts find room', () => {
    const { stats, accept } = setup({ maxConnections: 100 });
    const conns = Array.from({ length: 100 }, (_, i) => accept(`c${i}`, true) as Conn);
    expect(accept('new', true)).toBeDefined();
    // 1 needed + 3 (100 / 32) for the next ones.
    expect(conns.filter((c) => c.destroyed).map((c) => c.name)).toEqual(['c0', 'c1', 'c2']);
    expect(stats.connectionsShed).toBe(3);
    expect(accept('next', true)).toBeDefined();
    expect(accept('next2', true)).toBeDefined();
    expect(stats.connectionsShed).toBe(3);
  });

  it('limits connections to what the fd limit leaves: limit - other fds - reservedFds', () => {
    // 200 open files, 40 held besides connections, 10 reserved: 150 connections.
    let accepting = 0;
    const { admission, accept, stats } = setup({
      maxConnections: 10_000,
      fdLimit: 200,
      // While admitting, the new connection's fd is open too.
      fds: (stats) => 40 + stats.connections + accepting,
    });
    admission.measure();
    accepting = 1;
    expect(admission.limit()).toEqual({ limit: 150, by: 'openFiles' });
    for (let i = 0; i < 150; i++) accept(`c${i}`, true);
    expect(stats.connectionsShed).toBe(0);
    accept('over', true);
    expect(stats.connectionsShed).toBeGreaterThan(0);
  });

  it('recounts the fds near an fd-bound limit: fds the app opened since shrink the room', () => {
    let appFds = 0;
    const stats = new Stats([]);
    const { log, records } = memoryLogger();
    const admission = new Admission({
      maxConnections: 10_000,
      reservedFds: 10,
      stats,
      log,
      fdLimit: 200,
      // While admitting, the new connection's fd is open too.
      countFds: () => 40 + appFds + stats.connections + accepting,
    });
    let accepting = 0;
    admission.measure();
    accepting = 1;
    expect(admission.limit()).toEqual({ limit: 150, by: 'openFiles' });
    appFds = 20;
    let admitted = 0;
    // The oldest is idle: shed, but one idle connection is not room enough for 11 too many.
    while (admission.admit()) {
      admission.add(new Conn(`c${admitted}`, admitted === 0));
      admitted++;
    }
    // Recounted once within the reserve (at 140 open): 40 + 20 others.
    expect(admitted).toBe(140);
    expect(admission.limit()).toEqual({ limit: 130, by: 'openFiles' });
    expect(stats.connectionsRejected).toBe(1);
    expect(stats.connectionsShed).toBe(1);
    // The warning counts the shed one too.
    expect(records.find((r) => r.msg === 'connection limit reached')).toMatchObject({
      limitBy: 'openFiles',
      openFilesLimit: 200,
      shed: 1,
      refused: 1,
    });
  });

  it('recounts the fds near the fd limit while maxConnections sets the limit', () => {
    let appFds = 0;
    const stats = new Stats([]);
    const { log } = memoryLogger();
    let accepting = 0;
    const admission = new Admission({
      maxConnections: 150,
      reservedFds: 10,
      stats,
      log,
      fdLimit: 200,
      countFds: () => 40 + appFds + stats.connections + accepting,
    });
    admission.measure();
    accepting = 1;
    expect(admission.limit()).toEqual({ limit: 150, by: 'maxConnections' });
    // The app opens 30 files: the fd limit now leaves 120, below maxConnections.
    appFds = 30;
    let admitted = 0;
    while (admission.admit()) {
      admission.add(new Conn(`c${admitted}`, false));
      admitted++;
    }
    // Recounted once within twice the reserve of the fd limit (at 140 open).
    expect(admitted).toBe(140);
    expect(admission.limit()).toEqual({ limit: 120, by: 'openFiles' });
  });

  it('warns once per interval; close() logs the counts since the last warning', () => {
    const { admission, accept, warnings } = setup({ maxConnections: 1 });
    accept('a', true);
    accept('b', true);
    accept('c', true);
    accept('d', false);
    expect(accept('e', true)).toBeUndefined();
    expect(warnings()).toHaveLength(1);
    admission.close();
    expect(warnings()).toHaveLength(2);
    expect(warnings()[1]).toMatchObject({ shed: 2, refused: 1, shedTotal: 3, refusedTotal: 1 });
  });
});

describe('HttpConnection.idle', () => {
  it('is idle between requests, busy with a response, and never once destroyed or upgraded', () => {
    const socket = { destroyed: false, parser: {}, _httpMessage: null as unknown };
    const conn = new HttpConnection(socket as unknown as Socket);
    expect(conn.idle).toBe(true);
    socket._httpMessage = {};
    expect(conn.idle).toBe(false);
    socket._httpMessage = null;
    socket.destroyed = true;
    expect(conn.idle).toBe(false);
    socket.destroyed = false;
    (socket as { parser: unknown }).parser = null;
    expect(conn.idle).toBe(false);
  });
});

describe('fd budget from procfs', () => {
  it('reads the soft open-files limit and counts open fds', () => {
    const limit = openFileLimit();
    const count = openFdCount();
    if (process.platform !== 'linux') return;
    expect(Number.isSafeInteger(limit)).toBe(true);
    expect(count).toBeGreaterThan(2);
    expect(count).toBeLessThan(limit);
  });
});
