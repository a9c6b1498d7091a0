/**
 * Picks the uwsgi transport for `config.transport` (TransportKind):
 * - `net`: node:net, public API only;
 * - `fast`: the stream-handle transport; refused with `UWSGI_ERR_TRANSPORT_UNAVAILABLE` when its
 *   start-up probe fails on this Node build;
 * - `auto`: `fast` when its probe passes, else `net` (the reason is logged once).
 */
import type { TransportKind } from '../config/types.ts';
import { ContainerError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { createFastTransport } from './fast/listen.ts';
import { createNetTransport } from './net.ts';
import type { Transport } from './types.ts';

export { formatListenTarget, parseListenAddress } from './address.ts';
export { listenServer } from './listen.ts';
export type {
  Connection,
  Listening,
  ListenOptions,
  ListenTarget,
  ReadSink,
  Transport,
} from './types.ts';

/**
 * @throws ContainerError `UWSGI_ERR_TRANSPORT_UNAVAILABLE` when `fast` is asked for explicitly
 *   and cannot run here.
 */
export function selectTransport(kind: TransportKind, log?: Logger): Transport {
  if (kind === 'net') return createNetTransport(log);
  const fast = createFastTransport(log);
  if (!('unavailable' in fast)) return fast;
  if (kind === 'fast') {
    throw new ContainerError(
      'UWSGI_ERR_TRANSPORT_UNAVAILABLE',
      `transport "fast" cannot run on Node ${process.version}: ${fast.unavailable}`,
    );
  }
  log?.info({ reason: fast.unavailable }, 'fast transport unavailable, using net');
  return createNetTransport(log);
}
