/**
 * Start-up shared by every real front end the e2e suites run (nginx.ts, fronts.ts): a generated
 * config in a mkdtemp prefix, the server in the foreground on a free 127.0.0.1 port, readiness
 * polled (bounded), stopped and awaited in `stop()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePort, waitForConnect } from './net.ts';
import { makeTmpDir, removeTmpDir } from './tmp.ts';

/** A running front end. */
export interface RunningFrontEnd<N extends string = string> {
  readonly name: N;
  readonly port: number;
  readonly pid: number;
  readonly dir: string;
  /** The generated config text (or the command line, for the uWSGI router). */
  readonly config: string;
  /** `http://127.0.0.1:<port><path>`. */
  url(path: string): string;
  /** The front end's stderr and error log so far, for assertion messages. */
  errorLog(): Promise<string>;
  /** SIGTERM, SIGKILL after 5 s; awaits exit; removes the prefix. Idempotent. */
  stop(): Promise<void>;
}

export interface FrontEndLaunch<N extends string> {
  readonly name: N;
  readonly bin: string;
  /** Writes the config for `port` into `dir`; returns its text and the argv. */
  render(dir: string, port: number): Promise<{ config: string; args: string[] }>;
  /** The front end's own log file in `dir`, if it writes one. */
  readonly logFile?: string;
  /** The child's environment (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  // A failed spawn (no pid) emits 'error' and never 'exit'.
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(kill);
}

/**
 * Starts a front end and resolves once it accepts connections. The port comes from
 * listen(0)+close, so another process may take it first: on "Address already in use" it retries
 * with a new one.
 */
export async function launchFrontEnd<N extends string>(
  spec: FrontEndLaunch<N>,
): Promise<RunningFrontEnd<N>> {
  const dir = await makeTmpDir(spec.name);
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const { config, args } = await spec.render(dir, port);
      const child = spawn(spec.bin, args, {
        stdio: ['ignore', 'ignore', 'pipe'],
        ...(spec.env === undefined ? {} : { env: spec.env }),
      });
      let stderr = '';
      let spawnError: Error | undefined;
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
      });
      child.on('error', (err) => {
        spawnError = err;
      });
      const errorLog = async () =>
        `${stderr}${spec.logFile ? await readFile(join(dir, spec.logFile), 'utf8').catch(() => '') : ''}`;
      try {
        await waitForConnect(
          { host: '127.0.0.1', port },
          {
            alive: () =>
              spawnError
                ? `${spec.bin} could not be started: ${spawnError.message}`
                : child.exitCode !== null || child.signalCode !== null
                  ? `${spec.name} exited (${child.exitCode ?? child.signalCode}): ${stderr}`
                  : undefined,
          },
        );
      } catch (err) {
        await stopProcess(child);
        const log = await errorLog();
        if (attempt < 5 && /Address already in use|EADDRINUSE/i.test(log)) continue;
        throw new Error(`${spec.name} did not start: ${(err as Error).message}\n${log}`);
      }
      let stopped: Promise<void> | undefined;
      return {
        name: spec.name,
        port,
        pid: child.pid!,
        dir,
        config,
        url: (path) => `http://127.0.0.1:${port}${path}`,
        errorLog,
        stop() {
          stopped ??= stopProcess(child).then(() => removeTmpDir(dir));
          return stopped;
        },
      };
    }
  } catch (err) {
    await removeTmpDir(dir);
    throw err;
  }
}
