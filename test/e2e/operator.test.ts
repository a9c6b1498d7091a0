/**
 * Operator tools against real processes (issue 10): the stats server (uWSGI's raw protocol and
 * HTTP) validated against stats.schema.json with values checked against what the test did, the
 * Prometheus endpoint checked by `promtool check metrics` and scraped by a real Prometheus, and
 * `uwsgi-ts top` driven in a real terminal (tmux).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { CLI_BIN, REPO_ROOT } from '../utils/cli.ts';
import { vassalText, writeVassal } from '../utils/emperor.ts';
import { request } from '../utils/http-client.ts';
import { freePort } from '../utils/net.ts';
import {
  fanOut,
  httpBase,
  httpGet,
  supervisorSuite,
  uwsgiGet,
  writeSupervisorConfig,
} from '../utils/supervisor.ts';
import { fetchStats } from './operator-client.ts';

const schema = JSON.parse(
  readFileSync(join(REPO_ROOT, 'packages', 'container', 'stats.schema.json'), 'utf8'),
) as object;
const validate = new Ajv({ allErrors: true, strict: false }).compile(schema);

function expectValid(doc: unknown): void {
  const ok = validate(doc);
  expect(ok, JSON.stringify(validate.errors, null, 2)).toBe(true);
}

type Doc = Record<string, unknown>;
type Worker = Doc & { id: number; pid: number; requests: number; history: Doc[] };
const workersOf = (doc: Doc) => doc['workers'] as Worker[];

/** `name{labels} value` lines of a Prometheus text, as [name+labels, value]. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    out.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return out;
}

/** Polls `probe` until it returns a value (every 50 ms, at most `timeoutMs`). */
async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const until = performance.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (performance.now() > until) {
      throw new Error(`not within ${timeoutMs} ms${last === undefined ? '' : `: ${String(last)}`}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const HAS_PROMTOOL = existsSync('/usr/bin/promtool');
const HAS_PROMETHEUS = existsSync('/usr/bin/prometheus');
const HAS_TMUX = spawnSync('tmux', ['-V']).status === 0;

describe('stats server and metrics of a container', () => {
  const suite = supervisorSuite('e2e-ops');

  it('a 2-worker container under load: the document matches the schema and the load; a killed worker is counted with its reason', async () => {
    const dir = suite.dir();
    const config = await writeSupervisorConfig(dir, {
      workers: 2,
      mounts: [
        { path: '/api', app: 'supervisor.mjs' },
        { path: '/', app: 'supervisor.mjs' },
      ],
      extra: { stats: 'stats.sock', metrics: '127.0.0.1:0' },
    });
    const c = await suite.start(config);
    const statsSock = join(dir, 'stats.sock');
    expect(c.ready['stats']).toBe(`unix:${statsSock}`);
    const metricsUrl = `http://${String(c.ready['metrics'])}/metrics`;

    // The load: 120 GETs over uwsgi to /api, 60 over HTTP to /, 20 POSTs and 10 misses (404).
    const uwsgi = c.target('uwsgi');
    const base = httpBase(c);
    await fanOut(120, 8, () => uwsgiGet(uwsgi, '/api/pid'));
    await fanOut(60, 6, () => httpGet(`${base}/pid`));
    await fanOut(20, 4, () => request(`${base}/pid`, { method: 'POST', body: 'x' }));
    const statuses = await fanOut(10, 2, () => httpGet(`${base}/api/../nothing/../../x`));
    expect(statuses.every((s) => s.status === 200 || s.status === 404)).toBe(true);
    const total = 120 + 60 + 20 + 10;

    const doc = await fetchStats(statsSock);
    expectValid(doc);
    const workers = workersOf(doc);
    expect(workers.map((w) => w.id)).toEqual([1, 2]);
    expect(workers.reduce((n, w) => n + w.requests, 0)).toBe(total);
    expect(doc['requests']).toBe(total);
    const mounts = doc['mounts'] as Doc[];
    expect(mounts.map((m) => m['path'])).toEqual(['/api', '/']);
    expect(mounts[0]?.['requests']).toBe(120);
    expect((mounts[0]?.['statuses'] as Doc | undefined)?.['2xx']).toBe(120);
    // The worker's per-app counters add up to the mount's.
    expect(workers.reduce((n, w) => n + ((w['apps'] as Doc[])[0]?.['requests'] as number), 0)).toBe(
      120,
    );
    expect(doc['sockets']).toHaveLength(2);
    for (const w of workers) {
      expect(w['accepting']).toBe(1);
      expect(w['respawn_count']).toBe(0);
      expect(w['rss'] as number).toBeGreaterThan(10 * 1024 * 1024);
      expect(w.history.map((e) => e['event'])).toEqual(['spawned', 'ready']);
    }

    // The same document over metrics: exact counters.
    const before = samples(await (await fetch(metricsUrl)).text());
    expect(before.get('uwsgi_ts_requests_total{mount="/api",method="GET",status="2xx"}')).toBe(120);
    expect(before.get('uwsgi_ts_requests_total{mount="/",method="POST",status="2xx"}')).toBe(20);
    expect(before.get('uwsgi_ts_request_duration_seconds_count{mount="/api"}')).toBe(120);

    // SIGKILL worker 1: its slot is respawned and says why; no counter goes down.
    const victim = workers[0] as Worker;
    process.kill(victim.pid, 'SIGKILL');
    const after = await waitFor(async () => {
      const d = await fetchStats(statsSock);
      const w = workersOf(d).find((x) => x.id === 1);
      return w !== undefined && w.pid !== victim.pid && w['accepting'] === 1 ? d : undefined;
    }, 15_000);
    expectValid(after);
    const slot = workersOf(after).find((w) => w.id === 1) as Worker;
    expect(slot['respawn_count']).toBe(1);
    expect(slot['last_exit']).toMatchObject({ event: 'exited', pid: victim.pid });
    expect(String((slot['last_exit'] as Doc)['detail'])).toBe('crash (signal SIGKILL)');
    expect(slot.history.map((e) => e['event'])).toEqual([
      'spawned',
      'ready',
      'exited',
      'spawned',
      'ready',
    ]);
    expect(after['worker_exits']).toEqual({ crash: 1 });
    // Counted since the master started: the killed worker's requests stay counted.
    expect(after['requests']).toBe(total);
    const metrics = samples(await (await fetch(metricsUrl)).text());
    expect(metrics.get('uwsgi_ts_worker_restarts_total{reason="crash"}')).toBe(1);
    expect(metrics.get('uwsgi_ts_requests_total{mount="/api",method="GET",status="2xx"}')).toBe(
      120,
    );
    expect(metrics.get('uwsgi_ts_workers{state="ready"}')).toBe(2);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
    expect(existsSync(statsSock)).toBe(false);
  }, 60_000);

  it('listen_queue comes from the kernel: connections waiting on a blocked worker are counted, a full queue is an error', async () => {
    const dir = suite.dir();
    const config = await writeSupervisorConfig(dir, {
      workers: 1,
      listeners: [
        { protocol: 'uwsgi', address: 'app.sock', backlog: 4 },
        { protocol: 'http', address: '127.0.0.1:0' },
      ],
      extra: { stats: 'stats.sock' },
    });
    const c = await suite.start(config);
    const statsSock = join(dir, 'stats.sock');
    // The only worker blocks its event loop for 8 s: nothing is accepted meanwhile.
    const blocked = httpGet(`${httpBase(c)}/work?ms=8000`, 30_000);
    // Awaited at the end; if the test fails first, the container's end must not be unhandled.
    blocked.catch(() => undefined);
    await waitFor(async () => {
      const d = await fetchStats(statsSock);
      return workersOf(d)[0]?.['status'] === 'busy' ? d : undefined;
    }, 5000);
    const sockets: Socket[] = [];
    const open = () =>
      new Promise<void>((resolve) => {
        const s = connect({ path: join(dir, 'app.sock') });
        s.on('error', () => resolve());
        s.on('connect', () => resolve());
        sockets.push(s);
      });
    try {
      for (let i = 0; i < 3; i++) await open();
      // The queues are sampled once a second: the next sample sees the three.
      const three = await waitFor(async () => {
        const d = await fetchStats(statsSock);
        return d['listen_queue'] === 3 ? d : undefined;
      }, 6000);
      const uwsgiSocket = (three['sockets'] as Doc[]).find((x) => x['proto'] === 'uwsgi');
      expect(uwsgiSocket).toMatchObject({ queue: 3, max_queue: 4 });
      for (let i = 0; i < 4; i++) await open();
      const full = await waitFor(async () => {
        const d = await fetchStats(statsSock);
        return (d['listen_queue_errors'] as number) > 0 ? d : undefined;
      }, 6000);
      expect(full['listen_queue'] as number).toBeGreaterThanOrEqual(4);
      await c.waitForLog((r) => String(r.msg).startsWith('listen queue full'), 3000);
    } finally {
      for (const s of sockets) s.destroy();
    }
    expect((await blocked).status).toBe(200);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  }, 60_000);

  it('a raw stats client that never closes its end does not keep the master from stopping', async () => {
    const dir = suite.dir();
    const config = await writeSupervisorConfig(dir, { workers: 1, extra: { stats: 'stats.sock' } });
    const c = await suite.start(config);
    const lingering: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const socket = connect({ path: join(dir, 'stats.sock'), allowHalfOpen: true });
      socket.on('error', () => undefined);
      // Never reads, never ends its side.
      socket.pause();
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      lingering.push(socket);
    }
    const started = performance.now();
    expect(await c.stop('SIGTERM', 15_000)).toEqual({ code: 0, signal: null });
    expect(performance.now() - started).toBeLessThan(5000);
    for (const socket of lingering) socket.destroy();
  }, 30_000);

  it.skipIf(!HAS_PROMTOOL)(
    'promtool check metrics finds nothing to say',
    async () => {
      const dir = suite.dir();
      const config = await writeSupervisorConfig(dir, {
        workers: 2,
        extra: { metrics: 'http://127.0.0.1:0', stats: 'http://127.0.0.1:0' },
      });
      const c = await suite.start(config);
      await fanOut(30, 3, () => httpGet(`${httpBase(c)}/pid`));
      await fanOut(5, 1, () => httpGet(`${httpBase(c)}/missing/../x`));
      const text = await (await fetch(`http://${String(c.ready['metrics'])}/metrics`)).text();
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`).toBe('');
      expect(check.status).toBe(0);
      // The HTTP stats address answers GET with the document.
      const res = await fetch(`http://${String(c.ready['stats'])}/`);
      expect(res.headers.get('content-type')).toBe('application/json');
      expectValid(await res.json());
      expect((await fetch(`http://${String(c.ready['metrics'])}/`)).status).toBe(404);
      expect((await fetch(`http://${String(c.ready['stats'])}/`, { method: 'POST' })).status).toBe(
        405,
      );
    },
    60_000,
  );

  it.skipIf(!HAS_PROMETHEUS)(
    'a real Prometheus scrapes the container and its API returns the series',
    async () => {
      const dir = suite.dir();
      const metricsPort = await freePort();
      const config = await writeSupervisorConfig(dir, {
        workers: 2,
        extra: { metrics: `127.0.0.1:${metricsPort}` },
      });
      const c = await suite.start(config);
      await fanOut(25, 5, () => httpGet(`${httpBase(c)}/pid`));
      const promPort = await freePort();
      await writeFile(
        join(dir, 'prometheus.yml'),
        [
          'global:',
          '  scrape_interval: 1s',
          'scrape_configs:',
          '  - job_name: uwsgi-ts',
          '    static_configs:',
          `      - targets: ['127.0.0.1:${metricsPort}']`,
          '',
        ].join('\n'),
      );
      const prom = suite.spawn('/usr/bin/prometheus', [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${promPort}`,
      ]);
      const query = async (q: string) => {
        try {
          const res = await fetch(
            `http://127.0.0.1:${promPort}/api/v1/query?query=${encodeURIComponent(q)}`,
          );
          const body = (await res.json()) as {
            data?: { result?: { metric: Record<string, string>; value: [number, string] }[] };
          };
          return body.data?.result ?? [];
        } catch {
          return [];
        }
      };
      const series = await waitFor(async () => {
        const r = await query('uwsgi_ts_requests_total{job="uwsgi-ts"}');
        return r.length > 0 ? r : undefined;
      }, 30_000);
      expect(series[0]?.metric).toMatchObject({ mount: '/', method: 'GET', status: '2xx' });
      expect(Number(series[0]?.value[1])).toBe(25);
      const up = await query('up{job="uwsgi-ts"}');
      expect(up[0]?.value[1]).toBe('1');
      const rss = await query('uwsgi_ts_worker_rss_bytes');
      expect(rss.map((r) => r.metric['worker']).sort()).toEqual(['1', '2']);
      const buckets = await query('uwsgi_ts_request_duration_seconds_bucket{le="+Inf",mount="/"}');
      expect(Number(buckets[0]?.value[1])).toBe(25);
      prom.child.kill('SIGTERM');
      await prom.exited;
      expect(await c.stop()).toEqual({ code: 0, signal: null });
    },
    90_000,
  );

  it.skipIf(!HAS_TMUX)(
    'uwsgi-ts top in tmux shows each worker, updates, and q exits 0',
    async () => {
      const dir = suite.dir();
      const config = await writeSupervisorConfig(dir, {
        workers: 2,
        extra: { stats: 'stats.sock' },
      });
      const c = await suite.start(config);
      const session = `uwsgi-ts-top-${process.pid}`;
      const exitFile = join(dir, 'top.exit');
      const tmux = (...args: string[]) => execFileSync('tmux', args, { encoding: 'utf8' });
      tmux(
        'new-session',
        '-d',
        '-s',
        session,
        '-x',
        '160',
        '-y',
        '40',
        `${process.execPath} ${CLI_BIN} top ${join(dir, 'stats.sock')} --interval 300; echo $? > ${exitFile}; sleep 30`,
      );
      try {
        const screen = () => tmux('capture-pane', '-p', '-t', session);
        const first = await waitFor(
          async () => (/WID\s+PID\s+STATUS/.test(screen()) ? screen() : undefined),
          15_000,
        );
        const pids = workersOf(await fetchStats(join(dir, 'stats.sock'))).map((w) => w.pid);
        for (const pid of pids)
          expect(first).toMatch(new RegExp(`^\\d\\s+${pid}\\s+idle\\s+\\d+`, 'm'));
        // Requests served now show on the next refreshes.
        await fanOut(40, 4, () => httpGet(`${httpBase(c)}/pid`));
        const updated = await waitFor(
          async () => (/^requests 40\b/m.test(screen()) ? screen() : undefined),
          15_000,
        );
        expect(updated).toMatch(/^\/\s+40\s/m);
        expect(updated).toMatch(/q quits/);
        tmux('send-keys', '-t', session, 'q');
        const code = await waitFor(
          async () => (existsSync(exitFile) ? readFileSync(exitFile, 'utf8').trim() : undefined),
          10_000,
        );
        expect(code).toBe('0');
      } finally {
        spawnSync('tmux', ['kill-session', '-t', session]);
      }
      expect(await c.stop()).toEqual({ code: 0, signal: null });
    },
    60_000,
  );

  it('top without a terminal prints plain frames; --once on a dead address exits 1 and says why', async () => {
    const dir = suite.dir();
    const config = await writeSupervisorConfig(dir, {
      workers: 1,
      extra: { stats: '127.0.0.1:0' },
    });
    const c = await suite.start(config);
    const plain = spawnSync(
      process.execPath,
      [CLI_BIN, 'top', String(c.ready['stats']), '--count', '2', '--interval', '100'],
      { encoding: 'utf8' },
    );
    expect(plain.status).toBe(0);
    expect(plain.stdout.includes('\u001b')).toBe(false);
    expect(plain.stdout.match(/^uwsgi-ts \S+ container/gm)).toHaveLength(2);
    const dead = spawnSync(process.execPath, [CLI_BIN, 'top', join(dir, 'none.sock'), '--once'], {
      encoding: 'utf8',
    });
    expect(dead.status).toBe(1);
    expect(dead.stderr).toMatch(/cannot read stats from .*none\.sock: connect ENOENT/);
    expect(await c.stop()).toEqual({ code: 0, signal: null });
  }, 30_000);
});

describe('stats server of an emperor', () => {
  const suite = supervisorSuite('e2e-ops-emp');

  it('3 vassals: the document matches the schema; a killed vassal shows its respawn and reason', async () => {
    const dir = suite.dir();
    const vassals = join(dir, 'vassals');
    execFileSync('mkdir', ['-p', vassals]);
    for (const name of ['a', 'b', 'c']) {
      await writeVassal(vassals, `${name}.yaml`, vassalText(join(dir, `${name}.sock`), name));
    }
    const config = join(dir, 'emperor.yaml');
    await writeFile(
      config,
      JSON.stringify({
        emperor: {
          watch: [vassals],
          stats: 'http://127.0.0.1:0',
          metrics: '127.0.0.1:0',
          spareVassals: 0,
          backoff: { firstMs: 100 },
        },
      }),
    );
    const emperor = suite.spawn(process.execPath, [CLI_BIN, 'emperor', '--config', config]);
    const watching = await emperor.waitForLog((r) => r['event'] === 'started', 20_000);
    const statsUrl = `http://${String(watching['stats'])}/`;
    const read = async () => (await (await fetch(statsUrl)).json()) as Doc;
    const all = await waitFor(async () => {
      const d = await read();
      const vs = d['vassals'] as Doc[];
      return vs.length === 3 && vs.every((v) => v['accepting'] === 1) ? d : undefined;
    }, 30_000);
    expectValid(all);
    const vs = all['vassals'] as Doc[];
    expect(vs.map((v) => v['id']).sort()).toEqual(['a.yaml', 'b.yaml', 'c.yaml']);
    expect(all['blacklist']).toEqual([]);
    const victim = vs.find((v) => v['id'] === 'b.yaml') as Doc;
    process.kill(victim['pid'] as number, 'SIGKILL');
    const after = await waitFor(async () => {
      const d = await read();
      const b = (d['vassals'] as Doc[]).find((v) => v['id'] === 'b.yaml');
      return b !== undefined && b['pid'] !== victim['pid'] && b['accepting'] === 1 ? d : undefined;
    }, 30_000);
    expectValid(after);
    const b = (after['vassals'] as Doc[]).find((v) => v['id'] === 'b.yaml') as Doc;
    expect(b['respawns']).toBe(1);
    expect(b['exits']).toEqual({ crash: 1 });
    expect(
      (b['history'] as Doc[]).some(
        (e) => e['event'] === 'crashed' && e['detail'] === 'signal SIGKILL',
      ),
    ).toBe(true);
    const metrics = samples(
      await (await fetch(`http://${String(watching['metrics'])}/metrics`)).text(),
    );
    expect(metrics.get('uwsgi_ts_emperor_vassal_exits_total{vassal="b.yaml",reason="crash"}')).toBe(
      1,
    );
    expect(metrics.get('uwsgi_ts_emperor_vassals{state="serving"}')).toBe(3);
    // top reads the emperor too.
    const top = spawnSync(process.execPath, [CLI_BIN, 'top', statsUrl, '--once'], {
      encoding: 'utf8',
    });
    expect(top.status).toBe(0);
    expect(top.stdout).toMatch(
      /^b\.yaml\s+serving\s+\d+\s+1\s+1\s+\d+\s+-\s+1\s+\S+ crashed signal SIGKILL/m,
    );
    emperor.child.kill('SIGTERM');
    expect((await emperor.exited).code).toBe(0);
  }, 90_000);
});
