import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load.ts';
import { Backoff } from '../src/supervisor/backoff.ts';
import { listenerKey } from '../src/supervisor/sockets.ts';
import { resolveGroup, resolveUser } from '../src/supervisor/users.ts';
import { workerExecArgv } from '../src/supervisor/worker-process.ts';

describe('Backoff', () => {
  it('respawns a worker that was serving at once, however often', () => {
    const b = new Backoff();
    expect([1, 2, 3, 4, 5].map(() => b.next(3000, 2500))).toEqual([0, 0, 0, 0, 0]);
  });

  it('quick deaths (never ready, or ready under 1 s) wait 0.5 s doubling to 30 s', () => {
    const b = new Backoff();
    const delays = [1, 2, 3, 4, 5, 6, 7, 8].map((i) => b.next(400, i % 2 === 0 ? 200 : undefined));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
  });

  it('30 s of uptime resets the count', () => {
    const b = new Backoff();
    b.next(10, undefined);
    b.next(10, undefined);
    expect(b.next(10, undefined)).toBe(2000);
    expect(b.next(30_000, 500)).toBe(500);
    expect(b.next(10, undefined)).toBe(1000);
  });

  it('delays never shrink within a crash loop and never exceed the cap', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(29_999), { minLength: 1, maxLength: 40 }), (uptimes) => {
        const b = new Backoff();
        let previous = -1;
        for (const uptime of uptimes) {
          const delay = b.next(uptime, undefined);
          expect(delay).toBeGreaterThanOrEqual(previous);
          expect(delay).toBeLessThanOrEqual(30_000);
          previous = delay;
        }
      }),
    );
  });
});

describe('listenerKey', () => {
  it('names a listener by its resolved address, and each port-0 listener apart', () => {
    const config = parseConfig(
      `listeners:
  - { protocol: uwsgi, address: app.sock }
  - { protocol: uwsgi, address: "127.0.0.1:0" }
  - { protocol: http, address: "127.0.0.1:0" }
  - { protocol: http, address: "127.0.0.1:8080" }
mounts: [{ path: /, app: a.mjs }]
`,
      { cwd: '/srv', env: {} },
    );
    const keys = config.listeners.map((l) => listenerKey(l, config));
    expect(keys).toEqual([
      'unix:/srv/app.sock',
      '127.0.0.1:0#uwsgi0',
      '127.0.0.1:0#http0',
      '127.0.0.1:8080',
    ]);
  });
});

describe('users and groups', () => {
  it('takes numeric ids as they are and resolves names from /etc/passwd and /etc/group', () => {
    expect(resolveUser(1234, 'x')).toBe(1234);
    expect(resolveGroup('33', 'x')).toBe(33);
    expect(resolveUser('root', 'x')).toBe(0);
    expect(resolveGroup('root', 'x')).toBe(0);
  });

  it('an unknown name is a listen error naming the listener', () => {
    expect(() => resolveGroup('no-such-group-here', 'unix:/s.sock')).toThrow(
      expect.objectContaining({ code: 'UWSGI_ERR_LISTEN' }),
    );
  });
});

describe('workerExecArgv', () => {
  it('drops resolution conditions and keeps the other flags', () => {
    expect(
      workerExecArgv([
        '--max-old-space-size=512',
        '--conditions',
        'source',
        '-C=development',
        '--conditions=node',
        '--enable-source-maps',
      ]),
    ).toEqual(['--max-old-space-size=512', '--enable-source-maps']);
  });
});

describe('owner and group in the config', () => {
  it('apply to unix sockets only', () => {
    expect(() =>
      parseConfig(
        `listeners:
  - { protocol: uwsgi, address: "127.0.0.1:3031", group: www-data }
mounts: [{ path: /, app: a.mjs }]
`,
        { cwd: '/srv', env: {}, file: 'c.yaml' },
      ),
    ).toThrow(
      expect.objectContaining({
        code: 'UWSGI_ERR_CONFIG_INVALID',
        issues: [expect.objectContaining({ path: '/listeners/0/group' })],
      }),
    );
  });
});
