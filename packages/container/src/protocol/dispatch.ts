/**
 * The one dispatcher both listeners feed (STYLE.md section 6): mount routing, the app call,
 * answers on the app's behalf (404 / 500 / 504), the access log and request counters.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { NodeHandler } from '../app/types.ts';
import type { LimitsConfig } from '../config/types.ts';
import type { Logger } from '../log.ts';
import type { Router } from '../router/mounts.ts';
import type { Stats } from '../stats.ts';
import { respondOnBehalf } from './respond.ts';
import type { ContainerRequest, Dispatch, RequestOrigin } from './types.ts';

export interface DispatchOptions {
  readonly router: Router;
  /** Handler per mount, indexed like `router.mounts` (`RouteMatch.index`). */
  readonly handlers: readonly NodeHandler[];
  readonly limits: Pick<LimitsConfig, 'requestTimeoutMs'>;
  readonly log: Logger;
  /** One `"msg":"request"` record per request (`log.access`). */
  readonly accessLog: boolean;
  readonly stats: Stats;
}

/**
 * Builds the dispatcher.
 *
 * Per request: `req.url` becomes relative to the mount (`''` -> `/`, query kept),
 * `req.originalUrl` keeps the full target and `req.baseUrl` the mount prefix (Express honours
 * both when it is the mounted app); `req.uwsgi` carries the vars and the SCRIPT_NAME/PATH_INFO
 * split. No mount: 404. A handler that throws or rejects: 500 before headers, destroy after.
 * `requestTimeoutMs`: 504 if no headers went out by then, else destroy.
 */
export function createDispatch(options: DispatchOptions): Dispatch {
  const { router, handlers, stats } = options;
  const timeoutMs = options.limits.requestTimeoutMs;
  const log = options.log;
  const accessLog = options.accessLog ? log.child({ component: 'access' }) : undefined;

  return function dispatch(req: IncomingMessage, res: ServerResponse, origin: RequestOrigin) {
    const started = performance.now();
    const originalUrl = req.url ?? '/';
    const match = router.match(originalUrl);
    const mountPath = match?.mount.path;
    const socket = res.socket;
    const bytesBefore = socket?.bytesWritten ?? 0;
    stats.requestStarted(mountPath);

    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      if (timer !== undefined) clearTimeout(timer);
      const status = res.headersSent ? res.statusCode : 0;
      stats.requestFinished(mountPath, status);
      if (accessLog === undefined) return;
      const bytes = Math.max(0, (socket?.bytesWritten ?? 0) - bytesBefore);
      accessLog.info(
        {
          method: req.method,
          url: originalUrl,
          status,
          bytes,
          durationMs: Math.round((performance.now() - started) * 1000) / 1000,
          mount: mountPath ?? null,
          remoteAddress: origin.remoteAddress ?? null,
          listener: origin.listener,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    };
    res.once('finish', settle);
    res.once('close', settle);
    // An unhandled 'error' on the response (write after end, a bad header in an async path of
    // the app) must not reach the process: log it and drop the connection (RELIABILITY.md A08).
    res.on('error', (err: Error) => {
      log.warn({ err, url: originalUrl, mount: mountPath ?? null }, 'response error');
      res.destroy();
    });

    if (match === undefined) {
      respondOnBehalf(res, 404);
      return;
    }
    const handler = handlers[match.index];
    if (handler === undefined) {
      respondOnBehalf(res, 404);
      return;
    }

    const request = req as ContainerRequest;
    request.originalUrl = originalUrl;
    request.baseUrl = match.scriptName;
    request.url = (match.pathInfo === '' ? '/' : match.pathInfo) + match.search;
    request.uwsgi = {
      ...(origin.vars === undefined ? {} : { vars: origin.vars }),
      ...(origin.scheme === undefined ? {} : { scheme: origin.scheme }),
      scriptName: match.scriptName,
      pathInfo: match.pathInfo,
    };

    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        if (settled) return;
        log.warn(
          { url: originalUrl, mount: mountPath, timeoutMs, headersSent: res.headersSent },
          'request timeout',
        );
        respondOnBehalf(res, 504);
      }, timeoutMs);
    }

    const onAppError = (err: unknown) => {
      log.error(
        { err, url: originalUrl, mount: mountPath, headersSent: res.headersSent },
        'app error',
      );
      respondOnBehalf(res, 500);
    };
    let result: unknown;
    try {
      result = handler(req, res);
    } catch (err) {
      onAppError(err);
      return;
    }
    if (isPromiseLike(result)) result.then(undefined, onAppError);
  };
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}
