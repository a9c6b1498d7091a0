import { describe, expect, it } from 'vitest';
import { type DeadlineEntry, DeadlineQueue } from '../src/shared/deadlines.ts';

class Entry implements DeadlineEntry {
  deadlineQueue: DeadlineQueue<DeadlineEntry> | null = null;
  deadlinePrev: DeadlineEntry | null = null;
  deadlineNext: DeadlineEntry | null = null;
  deadlineAt = 0;
  readonly name: string;
  constructor(name: string) {
    this.name = name;
  }
}

function collector(ms: number) {
  const expired: Array<{ name: string; late: number }> = [];
  let wake: () => void = () => undefined;
  const queue = new DeadlineQueue<Entry>(ms, (e) => {
    expired.push({ name: e.name, late: performance.now() - e.deadlineAt });
    wake();
  });
  const until = (n: number) =>
    new Promise<void>((resolve) => {
      wake = () => {
        if (expired.length >= n) resolve();
      };
      wake();
    });
  return { queue, expired, until };
}

describe('DeadlineQueue', () => {
  it('expires entries in order, each at its own deadline, never early', async () => {
    const { queue, expired, until } = collector(30);
    const a = new Entry('a');
    const b = new Entry('b');
    queue.add(a);
    await new Promise((r) => setTimeout(r, 10));
    queue.add(b);
    await until(2);
    expect(expired.map((e) => e.name)).toEqual(['a', 'b']);
    for (const e of expired) expect(e.late).toBeGreaterThanOrEqual(0);
    expect(a.deadlineQueue).toBeNull();
    expect(b.deadlineQueue).toBeNull();
  });

  it('a removed entry never expires, including the head the timer was armed for', async () => {
    const { queue, expired, until } = collector(20);
    const a = new Entry('a');
    const b = new Entry('b');
    const c = new Entry('c');
    queue.add(a);
    queue.add(b);
    queue.add(c);
    queue.remove(a);
    queue.remove(c);
    queue.remove(c); // twice: no-op
    await until(1);
    await new Promise((r) => setTimeout(r, 40));
    expect(expired.map((e) => e.name)).toEqual(['b']);
  });

  it('re-adding moves an entry to the tail with a fresh deadline; moving between queues', async () => {
    const first = collector(20);
    const second = collector(60);
    const a = new Entry('a');
    const b = new Entry('b');
    first.queue.add(a);
    first.queue.add(b);
    first.queue.add(a);
    second.queue.add(b);
    expect(b.deadlineQueue).toBe(second.queue);
    await first.until(1);
    expect(first.expired.map((e) => e.name)).toEqual(['a']);
    await second.until(1);
    expect(second.expired.map((e) => e.name)).toEqual(['b']);
  });

  it('an expiry handler may add entries; clear() forgets everything', async () => {
    const expired: string[] = [];
    const again = new Entry('again');
    const queue: DeadlineQueue<Entry> = new DeadlineQueue<Entry>(15, (e) => {
      expired.push(e.name);
      if (e.name === 'a') queue.add(again);
    });
    queue.add(new Entry('a'));
    await new Promise((r) => setTimeout(r, 60));
    expect(expired).toEqual(['a', 'again']);
    const late = new Entry('late');
    queue.add(late);
    queue.clear();
    expect(late.deadlineQueue).toBeNull();
    await new Promise((r) => setTimeout(r, 40));
    expect(expired).toEqual(['a', 'again']);
  });
});
