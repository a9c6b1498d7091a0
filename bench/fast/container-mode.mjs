// The container modes shared by bench.mjs and instructions.mjs: `container` (transport fast,
// access log on), `-nolog`, `-net`, `-tcp`, `-health`, `-w2` (2 workers), and `base-...` (another
// build's CLI).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { OWN_CLI, resolveCli } from '../lib/run.mjs';

export { resolveCli };

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** This checkout's CLI. */
export const CLI = OWN_CLI;
const HELLO_APP = path.join(HERE, '../backends/hello-app.mjs');

/**
 * Writes `DIR/MODE.yaml`: one uwsgi listener on `address`, the hello app of
 * `bench/backends/hello-app.mjs` at `/`, JSON logs, the mode's access log, transport and
 * `health:` path (`healthPath`, for `-health` modes). Returns the file's path.
 */
export function writeContainerConfig(dir, mode, { address, healthPath }) {
  const config = path.join(dir, `${mode}.yaml`);
  writeFileSync(
    config,
    [
      'listeners:',
      '  - protocol: uwsgi',
      `    address: ${address}`,
      'mounts:',
      '  - path: /',
      `    app: ${HELLO_APP}`,
      `log: { access: ${!mode.includes('-nolog')}, format: json, level: info }`,
      `transport: ${mode.includes('-net') ? 'net' : 'fast'}`,
      // Under valgrind on a loaded 2-core machine a worker's boot can pass the 30 s default.
      'readyTimeoutMs: 300000',
      ...(mode.includes('-health') ? [`health: ${healthPath}`] : []),
      ...(mode.includes('-w2') ? ['workers: 2'] : []),
      '',
    ].join('\n'),
  );
  return config;
}

/** The CLI a mode runs: `cli` (default this checkout's), or `baseCli` for `base-...` modes. */
export function containerCli(mode, baseCli, cli = CLI) {
  if (!mode.startsWith('base-')) return cli;
  if (baseCli === undefined) throw new Error(`${mode} needs --base-cli`);
  return baseCli;
}
