/**
 * Past one host (examples/scale-out/): three containers behind one nginx upstream, run from the
 * shipped configs (a.yaml, b.yaml, c.yaml) and the shipped nginx.conf with only the ports
 * changed. Under keep-alive GET load through nginx, container "a" is SIGKILLed, master and
 * workers at once (a host or a cgroup gone), and "b" is reloaded (SIGHUP): every GET is
 * answered 200, because nginx passes what the dead container refused to the next one
 * (`uwsgi_next_upstream error ...`). Then "a" is started again on the same port, as systemd's
 * `Restart=` would do in production (a SIGKILLed master does not come back by itself), and nginx
 * sends it requests again once its `fail_timeout` has passed.
 */
import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import * as http from 'node:http';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../utils/cli.ts';
import { launchFrontEnd, type RunningFrontEnd } from '../utils/front-end.ts';
import { canConnect, parseTarget } from '../utils/net.ts';
import { HAS_NGINX, NGINX_BIN, UWSGI_PARAMS } from '../utils/nginx.ts';
import { liveChildren, waitUntilDead } from '../utils/procs.ts';
import { type Supervised, supervisorSuite } from '../utils/supervisor.ts';

const EXAMPLE = join(REPO_ROOT, 'examples', 'scale-out');
const NAMES = ['a', 'b', 'c'] as const;
type Name = (typeof NAMES)[number];
/** The ports the shipped files use, replaced by the ones the test's containers got. */
const EXAMPLE_PORTS: Readonly<Record<Name, number>> = { a: 3031, b: 3032, c: 3033 };
/** Concurrent keep-alive clients of the load. */
const CLIENTS = 4;
/** Answers the load collects in each phase (before the kill, after it, after the reload). */
const PER_PHASE = 600;
/** nginx.conf's fail_timeout is 5 s: "a" must be back well within this after its restart. */
const BACK_IN_ROTATION_MS = 15_000;

/** One GET of the load as the client saw it. */
interface Answer {
  readonly t0: number;
  readonly t1: number;
  readonly status?: number;
  readonly instance?: string;
  readonly pid?: number;
  readonly error?: string;
}

/**
 * `CLIENTS` loops of GETs over keep-alive connections until `stop()`, or by themselves after
 * `maxMs` (the load is bounded even if the test fails before stopping it).
 */
function startLoad(origin: string, maxMs = 60_000) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
  const answers: Answer[] = [];
  const started = performance.now();
  let stopping = false;
  const one = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      let done = false;
      const finish = (a: Omit<Answer, 't0' | 't1'>) => {
        if (done) return;
        done = true;
        answers.push({ t0, t1: performance.now(), ...a });
        resolve();
      };
      // ?ms=2: each request stays in flight in its container for 2 ms, so the SIGKILL finds
      // some requests under way, not only idle workers.
      const req = http.get(`${origin}/?ms=2`, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
        res.on('end', () => {
          let body: { instance?: string; pid?: number } = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
          } catch {
            // Not the app's answer: the status says what it was.
          }
          finish({
            status: res.statusCode ?? 0,
            ...(body.instance === undefined ? {} : { instance: body.instance }),
            ...(body.pid === undefined ? {} : { pid: body.pid }),
          });
        });
      });
      req.setTimeout(10_000, () => req.destroy(new Error('client timeout')));
      req.on('error', (err: NodeJS.ErrnoException) => finish({ error: err.code ?? err.message }));
    });
  const loops = Array.from({ length: CLIENTS }, async () => {
    while (!stopping && performance.now() - started < maxMs) await one();
  });
  return {
    answers,
    async stop(): Promise<Answer[]> {
      stopping = true;
      await Promise.all(loops);
      agent.destroy();
      return answers;
    },
  };
}

/** `text` with the one match of `pattern` replaced; throws unless there is exactly one. */
function replaceOnce(text: string, pattern: RegExp, by: string): string {
  const count = text.match(new RegExp(pattern.source, `${pattern.flags.replace('g', '')}g`));
  if (count?.length !== 1) {
    throw new Error(
      `examples/scale-out/nginx.conf: expected one ${pattern}, found ${count?.length ?? 0}`,
    );
  }
  return text.replace(pattern, by);
}

describe.skipIf(!HAS_NGINX)(
  `scale-out: three containers behind one nginx upstream${HAS_NGINX ? '' : ` (skipped: no nginx at ${NGINX_BIN})`}`,
  () => {
    const suite = supervisorSuite('e2e-scale');
    let nginx: RunningFrontEnd<'nginx'> | undefined;

    // Registered after the suite's own afterEach, so it runs before it (vitest runs after-hooks
    // in reverse): nginx and its workers are gone before the suite sweeps what is left.
    afterEach(async () => {
      if (nginx === undefined) return;
      for (const pid of liveChildren(nginx.pid)) suite.procs.record(pid);
      await nginx.stop();
      nginx = undefined;
    });

    /** Starts the shipped `<name>.yaml` (one worker, to spare the 2-core machine) on `port`. */
    async function startNamed(name: Name, port: number): Promise<Supervised> {
      const config = join(EXAMPLE, `${name}.yaml`);
      // A port just freed can be taken by a moment's outgoing connection: retry a bounded
      // number of times, as systemd's Restart= would (each try is a whole node start-up).
      for (let attempt = 1; ; attempt++) {
        try {
          return await suite.start(config, { env: { PORT: String(port), WORKERS: '1' } });
        } catch (err) {
          if (attempt >= 5 || !/UWSGI_ERR_LISTEN|EADDRINUSE/.test(String(err))) throw err;
        }
      }
    }

    const portOf = (c: Supervised): number => {
      const t = parseTarget(c.address('uwsgi', 'tcp'));
      if (!('port' in t)) throw new Error('not a TCP listener');
      return t.port;
    };

    it('SIGKILL of one container and SIGHUP of another under GET load: every GET 200; the killed one back in rotation after its restart', async () => {
      // Port 0: the kernel picks; the restart reuses the port "a" got.
      const started = await Promise.all(NAMES.map((n) => startNamed(n, 0)));
      const containers: Record<Name, Supervised> = {
        a: started[0]!,
        b: started[1]!,
        c: started[2]!,
      };
      const ports = { a: portOf(containers.a), b: portOf(containers.b), c: portOf(containers.c) };

      // The shipped nginx.conf, with the test's ports and Debian's uwsgi_params path.
      let conf = await readFile(join(EXAMPLE, 'nginx.conf'), 'utf8');
      for (const n of NAMES) {
        conf = replaceOnce(
          conf,
          new RegExp(`^(\\s*server 127\\.0\\.0\\.1:)${EXAMPLE_PORTS[n]}\\b`, 'm'),
          `$1${ports[n]}`,
        );
      }
      conf = replaceOnce(conf, /include \/etc\/nginx\/uwsgi_params;/, `include ${UWSGI_PARAMS};`);
      nginx = await launchFrontEnd({
        name: 'nginx',
        bin: NGINX_BIN,
        async render(dir, port) {
          const config = replaceOnce(
            conf,
            /listen 127\.0\.0\.1:8000;/,
            `listen 127.0.0.1:${port};`,
          );
          const path = join(dir, 'nginx.conf');
          await writeFile(path, config);
          return { config, args: ['-p', dir, '-e', 'stderr', '-g', 'daemon off;', '-c', path] };
        },
      });
      const front = nginx;
      suite.procs.record(front.pid);
      for (const pid of liveChildren(front.pid)) suite.procs.record(pid);
      const origin = `http://127.0.0.1:${front.port}`;

      const load = startLoad(origin);
      const { answers } = load;
      let stopped = false;
      try {
        const countAtLeast = (n: number) =>
          expect
            .poll(() => answers.length, { timeout: 30_000, interval: 10 })
            .toBeGreaterThanOrEqual(n);

        // Phase 1: the three in rotation.
        await countAtLeast(PER_PHASE);

        // SIGKILL "a": its master and its worker in the same instant. Nothing is left to close
        // its listening socket gracefully: connections in flight are reset, new ones refused.
        const a = containers.a;
        const victims = [a.pid, ...liveChildren(a.pid)];
        expect(victims.length).toBe(2);
        for (const pid of victims) process.kill(pid, 'SIGKILL');
        expect(await a.exited).toEqual({ code: null, signal: 'SIGKILL' });
        await waitUntilDead(victims, 2000);
        const killedAt = performance.now();
        // The kernel drops the listening socket as the last holder exits; on a loaded machine
        // that can trail the exit status by a moment.
        await expect
          .poll(() => canConnect({ host: '127.0.0.1', port: ports.a }), { timeout: 3000 })
          .toBe(false);

        // Phase 2: two left.
        const afterKill = answers.length;
        await countAtLeast(afterKill + PER_PHASE);

        // SIGHUP "b": a graceful reload (new generation first, then the old one drains).
        const b = containers.b;
        const bFirst = b.firstWorkers;
        const from = b.logs.length;
        process.kill(b.pid, 'SIGHUP');
        const reloaded = await b.logAfter(from, (r) => r.msg === 'reloaded', 20_000);
        expect(reloaded).toMatchObject({ generation: 2, workers: 1 });
        const bSecond = b.generationPids(2);
        expect(bSecond).toHaveLength(1);
        const afterReload = answers.length;
        await countAtLeast(afterReload + PER_PHASE);

        // "a" again, on its port: what systemd's Restart=on-failure does after a SIGKILL.
        const a2 = await startNamed('a', ports.a);
        const restartedAt = performance.now();
        const aNewPid = a2.firstWorkers[0];
        await expect
          .poll(() => answers.some((x) => x.instance === 'a' && x.pid === aNewPid), {
            timeout: BACK_IN_ROTATION_MS,
            interval: 20,
          })
          .toBe(true);
        const backAfterMs =
          (answers.find((x) => x.instance === 'a' && x.pid === aNewPid)?.t1 ?? 0) - restartedAt;

        await load.stop();
        stopped = true;

        // Not one failed GET, across the kill, the reload and the restart.
        const failed = answers.filter((x) => x.status !== 200 || x.instance === undefined);
        expect(failed.slice(0, 5), `${failed.length} of ${answers.length} GETs failed`).toEqual([]);

        // Who answered when: "a" before its kill and after its restart only (an answer from
        // "a" that started after the kill would be impossible); "b" on both sides of its
        // reload; "c" throughout.
        const byPhase = (lo: number, hi: number) => {
          const counts: Record<string, number> = {};
          for (const x of answers.slice(lo, hi)) {
            counts[x.instance ?? '?'] = (counts[x.instance ?? '?'] ?? 0) + 1;
          }
          return counts;
        };
        expect(Object.keys(byPhase(0, afterKill)).sort()).toEqual(['a', 'b', 'c']);
        const deadWindow = answers.filter(
          (x) => x.instance === 'a' && x.t0 > killedAt && x.t1 < restartedAt,
        );
        expect(deadWindow).toEqual([]);
        expect(answers.some((x) => x.instance === 'b' && bFirst.includes(x.pid ?? 0))).toBe(true);
        expect(answers.some((x) => x.instance === 'b' && bSecond.includes(x.pid ?? 0))).toBe(true);
        expect(byPhase(afterReload, answers.length)['c'] ?? 0).toBeGreaterThan(0);

        // nginx did pass requests on: at least one first went to the dead "a" and was then
        // answered by another container (the access log's $upstream_addr lists both).
        const access = readFileSync(join(front.dir, 'access.log'), 'utf8').split('\n');
        const passedOn = access.filter((l) =>
          new RegExp(`upstream=127\\.0\\.0\\.1:${ports.a}, `).test(l),
        );
        expect(passedOn.length).toBeGreaterThan(0);
        expect(passedOn.every((l) => /" 200 /.test(l))).toBe(true);
        const disabled = ((await front.errorLog()).match(/temporarily disabled/g) ?? []).length;

        console.log(
          `scale-out: ${answers.length} GETs, 0 failed (${JSON.stringify(byPhase(0, answers.length))}); ` +
            `${passedOn.length} passed on from the killed container, "disabled" ${disabled}x; ` +
            `back in rotation ${Math.round(backAfterMs)} ms after its restart`,
        );

        // Graceful stops, then nothing left: every port closed, nginx's prefix removed (the
        // suite's afterEach then checks every recorded process is gone and removes its dir).
        for (const c of [a2, b, containers.c]) {
          expect(await c.stop()).toEqual({ code: 0, signal: null });
        }
        await front.stop();
        nginx = undefined;
        for (const port of [ports.a, ports.b, ports.c, front.port]) {
          expect(await canConnect({ host: '127.0.0.1', port })).toBe(false);
        }
        expect(existsSync(front.dir)).toBe(false);
      } finally {
        if (!stopped) await load.stop();
      }
    }, 90_000);
  },
);
