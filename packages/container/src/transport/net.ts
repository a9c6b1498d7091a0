/**
 * The `net` uwsgi transport: node:net servers and real `net.Socket`s, public API only. It is the
 * reference implementation of `Transport` and the fallback when `fast` is unavailable.
 */
import { createServer, type Socket } from 'node:net';
import { ContainerError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { listenServer } from './listen.ts';
import type { Connection, Listening, ListenOptions, ReadSink, Transport } from './types.ts';

class NetConnection implements Connection {
  readonly socket: Socket;
  /** `data` events hand out a fresh Buffer per read: chunks may be kept without copying. */
  readonly transientReads = false;
  #started = false;

  constructor(socket: Socket) {
    this.socket = socket;
  }

  start(sink: ReadSink): void {
    if (this.#started) {
      throw new ContainerError('UWSGI_ERR_TRANSPORT_MISUSE', 'Connection.start() called twice');
    }
    this.#started = true;
    const socket = this.socket;
    socket.on('data', (chunk: Buffer) => sink.onData(chunk));
    socket.on('end', () => sink.onEnd());
    socket.on('error', (err) => {
      sink.onError(err);
      socket.destroy();
    });
    // Registered before the bridge's listeners (assignSocket happens after the first read).
    socket.on('close', () => sink.onClose?.());
    // The server was created with pauseOnConnect: nothing was read before a sink existed.
    socket.resume();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (this.#started) this.socket.resume();
  }
}

/** Creates the `net` transport; accept errors (EMFILE...) are logged on `log` when given. */
export function createNetTransport(log?: Logger): Transport {
  return {
    name: 'net',
    async listen(
      options: ListenOptions,
      onConnection: (conn: Connection) => void,
    ): Promise<Listening> {
      const server = createServer({
        // A front end may half-close after sending a complete request; the response must still
        // go out (PROTOCOL.md section 8 "Still answer after the front end half-closes").
        allowHalfOpen: true,
        pauseOnConnect: true,
        noDelay: true,
      });
      server.on('connection', (socket: Socket) => onConnection(new NetConnection(socket)));
      // After bind, 'error' only reports accept failures (EMFILE, ENFILE...): net keeps accepting
      // (libuv's spare-fd trick sheds the connection), so log instead of crashing.
      server.on('error', (err: NodeJS.ErrnoException) => {
        if (server.listening) log?.warn({ err, code: err.code }, 'accept failed');
      });
      return listenServer(server, options);
    },
  };
}
