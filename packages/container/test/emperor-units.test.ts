// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these tests are about ${VASSAL} in config text.
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatIssue, parseConfig } from '../src/config/index.ts';
import { loadEmperorConfig } from '../src/emperor/config.ts';
import {
  isVassalName,
  parseTarget,
  readBounded,
  Scanner,
  type ScanResult,
} from '../src/emperor/scanner.ts';
import type { ContainerError } from '../src/shared/errors.ts';
import { createLogger } from '../src/shared/log.ts';

function errorOf(fn: () => unknown): ContainerError {
  try {
    fn();
  } catch (err) {
    return err as ContainerError;
  }
  throw new Error('expected a throw');
}

describe('vassal names', () => {
  it('takes *.yaml and *.yml, not hidden files, editor temp files or other endings', () => {
    const names = [
      'app.yaml',
      'app.yml',
      'a.b.yaml',
      '.app.yaml',
      '.app.yaml.swp',
      'app.yaml~',
      'app.yaml.tmp',
      '#app.yaml#',
      '.#app.yaml',
      '4913',
      'app.json',
      'app.YAML',
    ];
    expect(names.filter(isVassalName)).toEqual(['app.yaml', 'app.yml', 'a.b.yaml']);
  });

  it('a glob filters the last segment; wildcards in a directory are refused', () => {
    const t = parseTarget('/srv/vassals/api-*.yaml');
    expect(t.dir).toBe('/srv/vassals');
    expect(t.match?.('api-1.yaml')).toBe(true);
    expect(t.match?.('web.yaml')).toBe(false);
    expect(t.match?.('.api-1.yaml')).toBe(false);
    expect(parseTarget('/srv/vassals').match).toBeUndefined();
    expect(errorOf(() => parseTarget('/srv/*/app.yaml'))).toMatchObject({
      code: 'UWSGI_ERR_EMPEROR_WATCH',
    });
  });
});

describe('vassal defaults merged under the file', () => {
  const defaults = {
    file: '/etc/uwsgi-ts/defaults.yaml',
    text: `listeners:
  - protocol: uwsgi
    address: /run/\${VASSAL}.sock
mounts: []
limits:
  maxBodySize: 1024
  maxVars: 50
log:
  level: warn
`,
  };

  it('maps merge key by key, the file wins, ${VASSAL} is per vassal', () => {
    const config = parseConfig(
      'mounts:\n  - { path: /, app: ./app.mjs }\nlimits:\n  maxVars: 70\n',
      { file: 'shop.yaml', cwd: '/srv/vassals', env: { VASSAL: 'shop' }, defaults },
    );
    expect(config.listeners[0]?.address).toBe('/run/shop.sock');
    expect(config.mounts).toHaveLength(1);
    expect(config.mounts[0]?.app).toBe('/srv/vassals/app.mjs');
    expect(config.limits.maxBodySize).toBe(1024);
    expect(config.limits.maxVars).toBe(70);
    expect(config.log.level).toBe('warn');
  });

  it("the defaults' own mistakes are reported against the defaults file", () => {
    const err = errorOf(() =>
      parseConfig('mounts:\n  - { path: /, app: ./app.mjs }\n', {
        file: 'shop.yaml',
        cwd: '/srv/vassals',
        env: {},
        defaults: { file: 'defaults.yaml', text: 'listeners: [\n' },
      }),
    );
    expect(err.code).toBe('UWSGI_ERR_CONFIG_INVALID');
    expect(err.issues?.map(formatIssue).join('\n')).toMatch(/^defaults\.yaml:\d+:\d+/);
    const notMap = errorOf(() =>
      parseConfig('mounts:\n  - { path: /, app: ./app.mjs }\n', {
        file: 'shop.yaml',
        env: {},
        defaults: { file: 'defaults.yaml', text: '- a\n- b\n' },
      }),
    );
    expect(notMap.issues?.[0]?.message).toMatch(/must be a map/);
  });
});

describe('emperor config', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uwsgi-ts-emperor-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('fills defaults; its paths resolve against its file, arguments against the cwd', async () => {
    await writeFile(
      join(dir, 'emperor.yaml'),
      'emperor:\n  watch: [vassals/]\n  vassalDefaults: defaults.yaml\n  control: e.sock\n',
    );
    const config = await loadEmperorConfig('emperor.yaml', { watch: ['more'] }, dir);
    expect(config).toMatchObject({
      watch: [join(dir, 'vassals'), join(dir, 'more')],
      vassalDefaults: join(dir, 'defaults.yaml'),
      control: join(dir, 'e.sock'),
      rescanMs: 2000,
      debounceMs: 50,
      mercyMs: 30000,
      backoff: { firstMs: 500, maxMs: 30000 },
      spareVassals: 1,
      maxFileBytes: 1_048_576,
    });
    const args = await loadEmperorConfig(undefined, { watch: ['v'], control: 'c.sock' }, '/x');
    expect(args).toMatchObject({ watch: ['/x/v'], control: '/x/c.sock' });
  });

  it('refuses unknown keys, wrong types, a file without emperor:, and nothing to watch', async () => {
    const cases: [string, RegExp][] = [
      [
        'emperor:\n  watch: [v]\n  rescanMS: 5\n',
        /:3:3 \/emperor\/rescanMS unknown key "rescanMS"; did you mean "rescanMs"/,
      ],
      ['emperor:\n  watch: [v]\n  mercyMs: soon\n', /:3:12 \/emperor\/mercyMs must be integer/],
      [
        'emperor:\n  watch: [v]\n  control: ${CTL:-/run/e.sock}\n  pidfile: ${NOPE}\n',
        /:4:12 .*NOPE is not set/,
      ],
      ['watch: [v]\n', /unknown key "watch"/],
      ['', /the file is empty/],
      ['emperor:\n  watch: []\n', /nothing to watch/],
      ['emperor:\n  watch: [v\n', /emperor\.yaml:\d+:\d+/],
    ];
    for (const [text, expected] of cases) {
      await writeFile(join(dir, 'emperor.yaml'), text);
      const err = await loadEmperorConfig('emperor.yaml', {}, dir).then(
        () => undefined,
        (e: ContainerError) => e,
      );
      expect(err?.code, text).toBe('UWSGI_ERR_CONFIG_INVALID');
      expect(err?.issues?.map(formatIssue).join('\n'), text).toMatch(expected);
    }
  });
});

describe('scanner', () => {
  let dir: string;
  let scanner: Scanner | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'uwsgi-ts-scan-'));
  });
  afterEach(async () => {
    await scanner?.close();
    scanner = undefined;
    await rm(dir, { recursive: true, force: true });
  });

  function start(watch: string[]): { scans: ScanResult[]; ready: Promise<void> } {
    const scans: ScanResult[] = [];
    scanner = new Scanner({
      watch,
      debounceMs: 10,
      rescanMs: 60_000,
      maxFileBytes: 1024,
      log: createLogger({ access: false, format: 'json', level: 'silent' }),
      onScan: (r) => scans.push(r),
    });
    return { scans, ready: scanner.start() };
  }

  it('hashes content: a touch is the same hash, an edit in the same second is not', async () => {
    await writeFile(join(dir, 'a.yaml'), 'one: 1\n');
    const { scans, ready } = start([dir]);
    await ready;
    const first = scans.at(-1)?.files.get('a.yaml');
    await writeFile(join(dir, 'a.yaml'), 'one: 1\n');
    await scanner?.scan();
    expect(scans.at(-1)?.files.get('a.yaml')?.hash).toBe(first?.hash);
    await writeFile(join(dir, 'a.yaml'), 'one: 2\n');
    await scanner?.scan();
    expect(scans.at(-1)?.files.get('a.yaml')?.hash).not.toBe(first?.hash);
  });

  it('follows symlinks, skips directories and dangling links, keeps the last text while a file is empty', async () => {
    await mkdir(join(dir, 'sub.yaml'));
    await writeFile(join(dir, 'target.txt'), 'x: 1\n');
    await symlink(join(dir, 'target.txt'), join(dir, 'link.yaml'));
    await symlink(join(dir, 'missing.txt'), join(dir, 'dangling.yaml'));
    await writeFile(join(dir, 'b.yaml'), 'b: 1\n');
    await writeFile(join(dir, 'new.yaml'), '');
    const { scans, ready } = start([dir]);
    await ready;
    expect([...(scans.at(-1)?.files.keys() ?? [])]).toEqual(['b.yaml', 'link.yaml']);
    await writeFile(join(dir, 'b.yaml'), '');
    await scanner?.scan();
    expect(scans.at(-1)?.files.get('b.yaml')?.text).toBe('b: 1\n');
    await writeFile(join(dir, 'b.yaml'), 'b: 2\n');
    await scanner?.scan();
    expect(scans.at(-1)?.files.get('b.yaml')?.text).toBe('b: 2\n');
  });

  it('a file over maxFileBytes is reported as such, never read whole; readBounded is exact at the limit', async () => {
    await writeFile(join(dir, 'big.yaml'), `# ${'x'.repeat(2000)}\n`);
    await writeFile(join(dir, 'edge.yaml'), 'x'.repeat(1024));
    const { scans, ready } = start([dir]);
    await ready;
    const big = scans.at(-1)?.files.get('big.yaml');
    expect(big?.text).toBe('');
    expect(big?.error).toMatch(/larger than emperor\.maxFileBytes \(1024 bytes\)/);
    expect(scans.at(-1)?.files.get('edge.yaml')?.error).toBeUndefined();
    expect(await readBounded(join(dir, 'edge.yaml'), 1024)).toEqual({ text: 'x'.repeat(1024) });
    expect(await readBounded(join(dir, 'edge.yaml'), 1023)).toEqual({ text: undefined });
    expect(await readBounded(join(dir, 'edge.yaml'), 10)).toEqual({ text: undefined });
    await writeFile(join(dir, 'empty.yaml'), '');
    expect(await readBounded(join(dir, 'empty.yaml'), 10)).toEqual({ text: '' });
    // A FIFO is refused, not opened (open would wait for a writer forever).
    execFileSync('mkfifo', [join(dir, 'fifo.yaml')]);
    await expect(readBounded(join(dir, 'fifo.yaml'), 10)).rejects.toMatchObject({
      code: 'ENOTREG',
    });
  });

  it('the first watched directory wins a duplicate name; an unreadable directory refuses to start', async () => {
    await mkdir(join(dir, 'one'));
    await mkdir(join(dir, 'two'));
    await writeFile(join(dir, 'one', 'a.yaml'), 'from: one\n');
    await writeFile(join(dir, 'two', 'a.yaml'), 'from: two\n');
    const { scans, ready } = start([join(dir, 'one'), join(dir, 'two')]);
    await ready;
    expect(scans.at(-1)?.files.get('a.yaml')?.text).toBe('from: one\n');
    await scanner?.close();
    const missing = start([join(dir, 'nope')]);
    await expect(missing.ready).rejects.toMatchObject({ code: 'UWSGI_ERR_EMPEROR_WATCH' });
  });
});
