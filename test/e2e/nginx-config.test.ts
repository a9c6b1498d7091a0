/**
 * `uwsgi-ts nginx CONFIG` fed to a real nginx: `nginx -t` accepts it, and requests through the
 * server block it wrote reach the right mount with the router's split (or nginx's own 404 and
 * 413 where the container would answer them).
 */
import { spawnSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assertBuilt, type RunningContainer, runCli, startContainer } from '../utils/cli.ts';
import { writeConfig } from '../utils/config.ts';
import { request } from '../utils/http-client.ts';
import { freePort, waitForConnect } from '../utils/net.ts';
import { HAS_NGINX, NGINX_BIN, type Nginx, startNginx, UWSGI_PARAMS } from '../utils/nginx.ts';
import { makeTmpDir, removeTmpDir } from '../utils/tmp.ts';

describe.skipIf(!HAS_NGINX)('uwsgi-ts nginx, through a real nginx', () => {
  let dir: string | undefined;
  let container: RunningContainer | undefined;
  let nginx: Nginx | undefined;

  beforeAll(() => {
    assertBuilt();
  });

  afterEach(async () => {
    await nginx?.stop();
    await container?.kill();
    if (dir !== undefined) await removeTmpDir(dir);
    [nginx, container, dir] = [undefined, undefined, undefined];
  });

  /** Generates the block for `mounts`, checks it with `nginx -t`, serves it; its base URL. */
  async function serve(mounts: { path: string; app: string }[]): Promise<string> {
    dir = await makeTmpDir('e2e-nginx-gen');
    const config = await writeConfig(dir, {
      listeners: [{ protocol: 'uwsgi', address: 'app.sock' }],
      mounts,
      limits: { maxBodySize: 1000 },
      accessLog: false,
    });
    container = await startContainer(config);
    const port = await freePort();
    const generated = await runCli([
      'nginx',
      config,
      '--listen',
      `127.0.0.1:${port}`,
      '--uwsgi-params',
      UWSGI_PARAMS,
    ]);
    expect(generated.code).toBe(0);
    const block = join(dir, 'generated.conf');
    await writeFile(block, generated.stdout);
    // nginx -t on a minimal main config that includes the block as it stands.
    const main = join(dir, 'check.conf');
    await writeFile(
      main,
      `pid ${dir}/check.pid;\nerror_log ${dir}/check.log;\nevents {}\nhttp {\n  include ${block};\n}\n`,
    );
    const test = spawnSync(NGINX_BIN, ['-t', '-p', dir, '-c', main], { encoding: 'utf8' });
    expect(test.stderr).toContain('syntax is ok');
    expect(test.status).toBe(0);
    nginx = await startNginx({ locations: [], http: [`include ${block}`] });
    await waitForConnect({ host: '127.0.0.1', port });
    return `http://127.0.0.1:${port}`;
  }

  it('locations per mount on segment boundaries, a / catch-all, 413 from client_max_body_size', async () => {
    const base = await serve([
      { path: '/api', app: 'plain.mjs' },
      { path: '/', app: 'plain.mjs' },
    ]);
    const seen = async (path: string) => {
      const res = await request(`${base}${path}`);
      expect(res.status).toBe(200);
      const echo = res.json<{ baseUrl: string; url: string }>();
      return [echo.baseUrl, echo.url];
    };
    expect(await seen('/api/users/42?x=1')).toEqual(['/api', '/users/42?x=1']);
    expect(await seen('/api')).toEqual(['/api', '/']);
    expect(await seen('/apix')).toEqual(['', '/apix']);
    expect(await seen('/other/y')).toEqual(['', '/other/y']);
    const big = await request(`${base}/api/upload`, { method: 'POST', body: 'x'.repeat(2000) });
    expect(big.status).toBe(413);
  });

  it('without a / mount, nginx answers 404 where the container would', async () => {
    const base = await serve([{ path: '/api', app: 'plain.mjs' }]);
    expect((await request(`${base}/api/x`)).status).toBe(200);
    expect((await request(`${base}/other`)).status).toBe(404);
    expect((await request(`${base}/apix`)).status).toBe(404);
  });
});
