/**
 * The master's control socket (`control: PATH`): one JSON line in, one JSON line out, per
 * connection. Commands: `reload` (answers when the new generation serves or the reload failed)
 * and `stats`. Also the client side used by `uwsgi-ts reload`.
 */
import { chmodSync, readFileSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { ContainerError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { clearStaleSocket } from '../transport/listen.ts';

/**
 * Command name -> handler, called with the command's `name` argument (the emperor's
 * `reload NAME`). A handler's object result is spread into the `{ ok: true }` answer; any
 * other result is its `result`.
 */
export type ControlHandlers = Readonly<Record<string, (name?: string) => Promise<unknown>>>;

/** Largest command line accepted (bytes). */
const MAX_COMMAND_BYTES = 4096;

export interface ControlServer {
  close(): void;
}

/** Listens on `path` (mode 0600: only the master's user may reload it). */
export async function listenControl(
  path: string,
  handlers: ControlHandlers,
  log: Logger,
): Promise<ControlServer> {
  await clearStaleSocket(path);
  const server: Server = createServer((socket) => {
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const newline = buffered.indexOf('\n');
      if (newline < 0) {
        if (buffered.length > MAX_COMMAND_BYTES)
          socket.end('{"ok":false,"error":"command too long"}\n');
        return;
      }
      socket.removeAllListeners('data');
      void answer(buffered.slice(0, newline), handlers).then((reply) => {
        if (!socket.destroyed) socket.end(`${JSON.stringify(reply)}\n`);
      });
    });
  });
  server.on('error', (err) => log.warn({ err }, 'control socket error'));
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw new ContainerError('UWSGI_ERR_LISTEN', `cannot listen on control socket ${path}`, {
      cause: err,
    });
  } finally {
    process.umask(previous);
  }
  chmodSync(path, 0o600);
  return {
    close() {
      server.close();
      try {
        unlinkSync(path);
      } catch {
        // Gone already (libuv removes a closed pipe server's path).
      }
    },
  };
}

async function answer(line: string, handlers: ControlHandlers): Promise<unknown> {
  let cmd: unknown;
  let name: unknown;
  try {
    ({ cmd, name } = JSON.parse(line) as { cmd?: unknown; name?: unknown });
  } catch {
    return { ok: false, error: 'not JSON' };
  }
  const handler =
    typeof cmd === 'string' && Object.hasOwn(handlers, cmd) ? handlers[cmd] : undefined;
  if (handler === undefined) return { ok: false, error: `unknown command ${JSON.stringify(cmd)}` };
  if (name !== undefined && typeof name !== 'string')
    return { ok: false, error: 'name must be a string' };
  try {
    const result = await handler(name);
    return typeof result === 'object' && result !== null && !Array.isArray(result)
      ? { ok: true, ...result }
      : { ok: true, result };
  } catch (err) {
    return {
      ok: false,
      error: err instanceof Error ? err.message : String(err),
      ...(err instanceof ContainerError ? { code: err.code } : {}),
    };
  }
}

/**
 * Sends one command to a master's control socket and returns its answer.
 * @throws ContainerError `UWSGI_ERR_CONTROL` when nothing answers or the answer is not JSON.
 */
export function sendControl(
  path: string,
  cmd: string,
  timeoutMs: number,
  name?: string,
): Promise<{ ok: boolean; error?: string; [key: string]: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ContainerError('UWSGI_ERR_CONTROL', `no answer from ${path} within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () =>
      socket.write(`${JSON.stringify(name === undefined ? { cmd } : { cmd, name })}\n`),
    );
    socket.on('data', (chunk: string) => {
      text += chunk;
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(
        new ContainerError('UWSGI_ERR_CONTROL', `cannot reach ${path}: ${err.message}`, {
          cause: err,
        }),
      );
    });
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(text) as { ok: boolean; error?: string });
      } catch {
        reject(
          new ContainerError(
            'UWSGI_ERR_CONTROL',
            `unexpected answer from ${path}: ${text.slice(0, 200)}`,
          ),
        );
      }
    });
  });
}

/** Removes the pidfile if it still names this process (a successor's is left alone). */
export function removePidfile(pidfile: string | undefined): void {
  if (pidfile === undefined) return;
  try {
    if (readFileSync(pidfile, 'utf8').trim() === String(process.pid)) unlinkSync(pidfile);
  } catch {
    // Already gone.
  }
}

/**
 * The PID in `pidfile`, if that process is alive.
 * @throws ContainerError `UWSGI_ERR_CONTROL` otherwise.
 */
export function readPidfile(pidfile: string): number {
  let text: string;
  try {
    text = readFileSync(pidfile, 'utf8').trim();
  } catch (err) {
    throw new ContainerError('UWSGI_ERR_CONTROL', `cannot read pidfile ${pidfile}`, { cause: err });
  }
  if (!/^\d+$/.test(text)) {
    throw new ContainerError('UWSGI_ERR_CONTROL', `pidfile ${pidfile} holds no PID`);
  }
  const pid = Number(text);
  try {
    process.kill(pid, 0);
  } catch (err) {
    throw new ContainerError('UWSGI_ERR_CONTROL', `no process ${pid} (from ${pidfile})`, {
      cause: err,
    });
  }
  return pid;
}
