/**
 * The one dispatcher both listeners feed (STYLE.md section 6): mount routing, the app call,
 * answers on the app's behalf (404 / 500 / 504), the access log and request counters.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { NodeHandler } from '../app/types.ts';
import type { LimitsConfig } from '../config/types.ts';
import { mountRelativeUrl, type RouteMatch, type Router } from '../router/mounts.ts';
import { type DeadlineEntry, DeadlineQueue } from '../shared/deadlines.ts';
import {
  type AccessLog,
  accessLog,
  accessRecord,
  type Logger,
  microsSince,
  type ShutdownState,
} from '../shared/log.ts';
import { rawHeaderCount } from '../shared/raw-headers.ts';
import type { Stats } from '../shared/stats.ts';
import { respondOnBehalf } from './respond.ts';
import type { ContainerRequest, Dispatch, RequestOrigin } from './types.ts';

export interface DispatchOptions {
  readonly router: Router;
  /** Handler per mount, indexed like `router.mounts` (`RouteMatch.index`). */
  readonly handlers: readonly NodeHandler[];
  readonly limits: Pick<LimitsConfig, 'requestTimeoutMs' | 'maxInFlight'>;
  readonly log: Logger;
  /** One `"msg":"request"` record per request (`log.access`). */
  readonly accessLog: boolean;
  readonly stats: Stats;
  /** Called once per request after it settled (response finished or connection closed). */
  readonly onDone?: (() => void) | undefined;
  /** When given, every in-flight request is in this set until it settles (harakiri). */
  readonly registry?: Set<InFlightView> | undefined;
  /** Set by the container when it cuts off what is left at the end of its stop. */
  readonly shutdown?: ShutdownState | undefined;
}

/** One in-flight request as the harakiri watchdog reads it (see `describeInFlight`). */
export interface InFlightRequest {
  readonly method: string;
  readonly url: string;
  readonly mount: string | null;
  readonly ageMs: number;
  readonly headersSent: boolean;
  /** The connection's file descriptor, -1 when unknown. */
  readonly fd: number;
}

/** Opaque entry of a dispatch registry. */
export interface InFlightView {
  describe(now: number): InFlightRequest;
}

/** The registry's requests, for a watchdog. */
export function describeInFlight(registry: ReadonlySet<InFlightView>): InFlightRequest[] {
  const now = performance.now();
  return [...registry].map((entry) => entry.describe(now));
}

/**
 * Builds the dispatcher.
 *
 * Per request: `req.url` becomes relative to the mount (`''` -> `/`, query kept),
 * `req.originalUrl` keeps the full target and `req.baseUrl` the mount prefix (Express honours
 * both when it is the mounted app); `req.uwsgi` carries the vars and the SCRIPT_NAME/PATH_INFO
 * split. No mount: 404. A handler that throws or rejects: 500 before headers, destroy after.
 * `requestTimeoutMs`: 504 if no headers went out by then, else destroy.
 *
 * Per-request cost matters here (every request of every listener passes through): the state
 * lives in one `InFlight` object, the response listeners are shared functions that find it
 * through the response, and the request deadline is an entry in one `DeadlineQueue` instead of
 * a `Timeout` per request.
 */
export function createDispatch(options: DispatchOptions): Dispatch {
  const { router, handlers, stats } = options;
  const timeoutMs = options.limits.requestTimeoutMs;
  const log = options.log;
  const maxInFlight = options.limits.maxInFlight;
  const shared: Shared = {
    stats,
    log,
    onDone: options.onDone,
    registry: options.registry,
    shutdown: options.shutdown,
    accessLog: options.accessLog ? accessLog(log) : undefined,
    deadlines:
      timeoutMs > 0
        ? new DeadlineQueue<InFlight>(timeoutMs, (entry) => entry.onTimeout())
        : undefined,
  };

  return function dispatch(req: IncomingMessage, res: ServerResponse, origin: RequestOrigin) {
    const originalUrl = req.url ?? '/';
    // Over the in-flight budget: 503 at once, before routing (RELIABILITY.md R11).
    const overloaded = maxInFlight > 0 && stats.inFlight >= maxInFlight;
    const match = overloaded ? undefined : router.match(originalUrl);
    const state = new InFlight(shared, req, res, origin, originalUrl, match);
    (res as StatefulResponse)[IN_FLIGHT] = state;
    stats.requestStarted(state.mountIndex);
    shared.registry?.add(state);
    // 'close' alone: it always follows 'finish' (on the next tick) and also comes when the
    // connection is lost first; one listener fewer per request.
    res.on('close', settleListener);
    // An unhandled 'error' on the response (write after end, a bad header in an async path of
    // the app) must not reach the process: log it and drop the connection (RELIABILITY.md A08).
    res.on('error', errorListener);

    if (match === undefined) {
      respondOnBehalf(res, overloaded ? 503 : 404);
      return;
    }
    const handler = handlers[match.index];
    if (handler === undefined) {
      respondOnBehalf(res, 404);
      return;
    }

    if (isWebSocketHandshake(req)) {
      refuseUpgrade(log, origin, originalUrl);
      respondOnBehalf(res, 400);
      return;
    }

    const request = req as ContainerRequest;
    request.originalUrl = originalUrl;
    request.baseUrl = match.scriptName;
    request.url = mountRelativeUrl(match);
    // Literal shapes rather than conditional spreads: a spread builds the object key by key
    // (it was 6% of a request's CPU); absent facts stay absent, not `undefined`.
    const { scriptName, pathInfo } = match;
    const { vars, scheme } = origin;
    request.uwsgi =
      vars === undefined
        ? scheme === undefined
          ? { scriptName, pathInfo }
          : { scheme, scriptName, pathInfo }
        : scheme === undefined
          ? { vars, scriptName, pathInfo }
          : { vars, scheme, scriptName, pathInfo };

    if (origin.expectContinue === true) res.writeContinue();
    shared.deadlines?.add(state, state.started);
    let result: unknown;
    try {
      result = handler(req, res);
    } catch (err) {
      state.onAppError(err);
      return;
    }
    if (isPromiseLike(result)) result.then(undefined, (err: unknown) => state.onAppError(err));
  };
}

/** What every request of one dispatcher shares. */
interface Shared {
  readonly stats: Stats;
  readonly log: Logger;
  readonly accessLog: AccessLog | undefined;
  readonly deadlines: DeadlineQueue<InFlight> | undefined;
  readonly onDone: (() => void) | undefined;
  readonly registry: Set<InFlightView> | undefined;
  readonly shutdown: ShutdownState | undefined;
}

const IN_FLIGHT = Symbol('uwsgi-ts.inFlight');

type StatefulResponse = ServerResponse & { [IN_FLIGHT]?: InFlight };

/** 'close' of a dispatched response (`this` is the response). */
function settleListener(this: StatefulResponse): void {
  this[IN_FLIGHT]?.settle();
}

function errorListener(this: StatefulResponse, err: Error): void {
  const state = this[IN_FLIGHT];
  state?.shared.log.warn(
    { err, url: state.originalUrl, mount: state.mountPath ?? null },
    'response error',
  );
  this.destroy();
}

/** One dispatched request until its response finished or closed. */
class InFlight implements DeadlineEntry, InFlightView {
  deadlineQueue: DeadlineQueue<DeadlineEntry> | null = null;
  deadlinePrev: DeadlineEntry | null = null;
  deadlineNext: DeadlineEntry | null = null;
  deadlineAt = 0;
  readonly shared: Shared;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly origin: RequestOrigin;
  readonly originalUrl: string;
  readonly mountPath: string | undefined;
  /** Position of the mount in the config, -1 without a match (Stats counters). */
  readonly mountIndex: number;
  readonly started: number;
  /** Captured now: node:http detaches the socket from the response before 'finish' listeners. */
  readonly socket: ServerResponse['socket'];
  readonly bytesBefore: number;
  settled = false;

  constructor(
    shared: Shared,
    req: IncomingMessage,
    res: ServerResponse,
    origin: RequestOrigin,
    originalUrl: string,
    match: RouteMatch | undefined,
  ) {
    this.shared = shared;
    this.req = req;
    this.res = res;
    this.origin = origin;
    this.originalUrl = originalUrl;
    if (match === undefined) {
      this.mountPath = undefined;
      this.mountIndex = -1;
    } else {
      this.mountPath = match.mount.path;
      this.mountIndex = match.index;
    }
    this.started = performance.now();
    this.socket = res.socket;
    this.bytesBefore = this.socket?.bytesWritten ?? 0;
  }

  settle(): void {
    if (this.settled) return;
    this.settled = true;
    const { shared, res } = this;
    shared.deadlines?.remove(this);
    shared.registry?.delete(this);
    const socket = this.socket;
    const bytes = Math.max(0, (socket?.bytesWritten ?? 0) - this.bytesBefore);
    // What reached the connection: a head generated by writeHead() but never written (the client
    // left first) is no status. A response 'finish'es once the socket took its last write, even
    // when that write then failed (EPIPE: the front end was gone), so an errored socket means
    // it did not get through.
    const status = bytes > 0 && res.headersSent ? res.statusCode : 0;
    const aborted = !res.writableFinished || (socket?.errored ?? null) !== null;
    const durationUs = microsSince(this.started);
    shared.stats.requestFinished(this.mountIndex, status, this.req.method, durationUs, bytes);
    shared.onDone?.();
    const accessLog = shared.accessLog;
    if (accessLog === undefined) return;
    accessLog.write(
      accessRecord(
        this.req.method ?? null,
        this.originalUrl,
        status,
        bytes,
        durationUs,
        this.mountPath ?? null,
        this.origin.remoteAddress ?? null,
        this.origin.listener,
        aborted,
        aborted && shared.shutdown?.forced === true ? 'shutdown' : null,
      ),
    );
  }

  describe(now: number): InFlightRequest {
    const socket = this.socket as unknown as { _handle?: { fd?: unknown } | null; fd?: unknown };
    const fd = socket?._handle?.fd ?? socket?.fd;
    return {
      method: this.req.method ?? '',
      url: this.originalUrl,
      mount: this.mountPath ?? null,
      ageMs: Math.round(now - this.started),
      headersSent: this.res.headersSent,
      fd: typeof fd === 'number' ? fd : -1,
    };
  }

  onTimeout(): void {
    if (this.settled) return;
    const res = this.res;
    this.shared.log.warn(
      {
        url: this.originalUrl,
        mount: this.mountPath,
        timeoutMs: this.shared.deadlines?.ms,
        headersSent: res.headersSent,
      },
      'request timeout',
    );
    respondOnBehalf(res, 504);
  }

  onAppError(err: unknown): void {
    const res = this.res;
    this.shared.stats.exception(this.mountIndex);
    this.shared.log.error(
      { err, url: this.originalUrl, mount: this.mountPath, headersSent: res.headersSent },
      'app error',
    );
    respondOnBehalf(res, 500);
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/**
 * A WebSocket handshake (RFC 6455 section 4.1: `Upgrade: websocket` with `Connection: Upgrade`).
 * No front end relays an upgrade over uwsgi (nginx's `uwsgi_pass` has no upgrade support): a
 * handshake that reaches dispatch is answered by the container with 400 and
 * `Connection: close` instead of reaching an app that would answer it as a plain request and
 * leave the client waiting for a 101. On the HTTP listener handshakes never get here: they are
 * routed to the app's own server as `'upgrade'` (upgrade.ts). Other upgrades (`h2c`) are
 * ignored, as RFC 9110 allows: the request is served over HTTP/1.1.
 */
export function isWebSocketHandshake(req: IncomingMessage): boolean {
  // Most requests carry no Upgrade: answered without building Node's lazy `req.headers`.
  if (rawHeaderCount(req.rawHeaders, 'upgrade') === 0) return false;
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || !/websocket/i.test(upgrade)) return false;
  const connection = req.headers.connection;
  return connection !== undefined && /(^|[\s,])upgrade($|[\s,])/i.test(connection);
}

let upgradeWarned = false;

/** One warning per process naming the fix; every refusal is in the access log (status 400). */
function refuseUpgrade(log: Logger, origin: RequestOrigin, url: string): void {
  if (upgradeWarned) return;
  upgradeWarned = true;
  log.warn(
    { protocol: origin.protocol, listener: origin.listener, url },
    'websocket upgrade refused (400): uwsgi cannot carry an upgrade; send the WebSocket ' +
      'location to an http listener with nginx proxy_pass (docs/deploy.md)',
  );
}
