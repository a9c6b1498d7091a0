/**
 * The HTTP listener's request bodies, between the head checks (http.ts) and dispatch:
 *
 * - `maxBodySize`: 413 for a declared Content-Length over it (before the body is read), and for
 *   a chunked body once it grows past it: from then on the body is withheld from the app
 *   entirely (not even its end), so a truncated upload is never mistaken for a complete one.
 * - Body deadline (`bodyTimeoutMs`): a total deadline for the whole body, measured from when the
 *   head was parsed, as the uwsgi listener's (not a per-read idle timeout). Missed: 408 with
 *   `Connection: close` while no response head went out (otherwise the connection is
 *   destroyed), and the app's request is aborted. node:http's own `requestTimeout` (head + body
 *   from the request start) stays as a backstop for what this does not cover.
 * - Chunked framing: a chunked request is dispatched only once llhttp has parsed the bytes that
 *   came with its first body bytes (or its end), from the check phase after that read: a framing
 *   error in them (bad chunk size, over-long extension, bad CRLF) is answered by the listener's
 *   'clientError' (400 / 413) before the app is called. An error llhttp finds only in later
 *   reads reaches a dispatched request: the app's request is aborted and the client gets 400
 *   while no response head went out (packages/container/README.md, answers table). Requests
 *   without Transfer-Encoding are dispatched at once, as before: no cost for them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { abortedError } from '../bridge/incoming.ts';
import type { LimitsConfig } from '../config/types.ts';
import { respondOnBehalf } from '../dispatch/respond.ts';
import type { Dispatch, RequestOrigin } from '../dispatch/types.ts';
import { type DeadlineEntry, DeadlineQueue } from '../shared/deadlines.ts';
import type { Logger } from '../shared/log.ts';

export interface HttpBodyContext {
  readonly limits: Pick<LimitsConfig, 'maxBodySize' | 'bodyTimeoutMs'>;
  readonly log: Logger;
  readonly dispatch: Dispatch;
  /** Writes the access record of `res`, answered without dispatch, once it closed. */
  readonly logAnswer: (req: IncomingMessage, res: ServerResponse) => void;
}

/** `waiting`: a chunked request not dispatched yet; `refused`: answered here, never dispatched. */
type BodyState = 'waiting' | 'dispatched' | 'refused';

const WATCH = Symbol('uwsgi-ts.httpBody');

type WatchedResponse = ServerResponse & { [WATCH]?: BodyWatch };

/** One request with a body until its response closed: its deadline and its dispatch state. */
class BodyWatch implements DeadlineEntry {
  deadlineQueue: DeadlineQueue<DeadlineEntry> | null = null;
  deadlinePrev: DeadlineEntry | null = null;
  deadlineNext: DeadlineEntry | null = null;
  deadlineAt = 0;
  state: BodyState;
  /** The first body bytes (or the body's end) reached the request: dispatch is scheduled. */
  started = false;
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly origin: RequestOrigin;

  constructor(req: IncomingMessage, res: ServerResponse, origin: RequestOrigin, state: BodyState) {
    this.req = req;
    this.res = res;
    this.origin = origin;
    this.state = state;
  }
}

/** Body limit, body deadline and chunked-dispatch deferral of one HTTP listener. */
export class HttpBodies {
  readonly #ctx: HttpBodyContext;
  readonly #deadlines: DeadlineQueue<BodyWatch> | undefined;

  constructor(ctx: HttpBodyContext) {
    this.#ctx = ctx;
    const ms = ctx.limits.bodyTimeoutMs;
    this.#deadlines =
      ms > 0 ? new DeadlineQueue<BodyWatch>(ms, (watch) => this.#onDeadline(watch)) : undefined;
  }

  /** Takes a request whose head passed the checks: 413, dispatch now, or dispatch deferred. */
  take(req: IncomingMessage, res: ServerResponse, origin: RequestOrigin): void {
    const { limits, log } = this.#ctx;
    if (declaredOverLimit(req, limits.maxBodySize)) {
      const declared = req.headers['content-length'];
      log.info(
        { status: 413, url: req.url, contentLength: Number(declared) },
        'http request refused',
      );
      // Never dispatched: logged here. (A chunked body over the limit, below, is answered while
      // dispatched, and dispatch logs it.)
      this.#ctx.logAnswer(req, res);
      respondOnBehalf(res, 413);
      return;
    }
    if (req.headers['transfer-encoding'] === undefined) {
      // No body, or one framed by Content-Length: dispatched at once (the common case costs a
      // header lookup). A declared body gets its deadline.
      const declared = req.headers['content-length'];
      if (declared !== undefined && declared !== '0' && this.#deadlines !== undefined) {
        this.#watch(new BodyWatch(req, res, origin, 'dispatched'));
      }
      this.#ctx.dispatch(req, res, origin);
      return;
    }
    // `Expect: 100-continue`: the client sends no body byte before the 100, which dispatch
    // writes: dispatched at once, and a framing error reaches the dispatched request.
    const watch = new BodyWatch(req, res, origin, origin.expectContinue ? 'dispatched' : 'waiting');
    this.#watch(watch);
    this.#gateChunked(watch);
    if (watch.state === 'dispatched') this.#ctx.dispatch(req, res, origin);
  }

  /**
   * True while `socket`'s bound response belongs to a chunked request not dispatched yet: the
   * listener's 'clientError' answers it and must log it (dispatch never will).
   */
  waitingOn(socket: Socket): boolean {
    const res = (socket as Socket & { _httpMessage?: WatchedResponse | null })._httpMessage;
    const watch = res?.[WATCH];
    if (watch === undefined || watch.state !== 'waiting') return false;
    watch.state = 'refused';
    return true;
  }

  #watch(watch: BodyWatch): void {
    (watch.res as WatchedResponse)[WATCH] = watch;
    const deadlines = this.#deadlines;
    if (deadlines === undefined) return;
    deadlines.add(watch);
    watch.res.once('close', () => deadlines.remove(watch));
  }

  /**
   * llhttp's body callback (_http_common.js parserOnBody) calls `stream.push(chunk)` on the
   * request instance, and parserOnMessageComplete `stream.push(null)`: an own `push` sees every
   * body byte, and the body's end, before the app does.
   */
  #gateChunked(watch: BodyWatch): void {
    const { req, res } = watch;
    const { maxBodySize } = this.#ctx.limits;
    const push = req.push;
    let seen = 0;
    let over = false;
    req.push = (chunk: unknown, encoding?: BufferEncoding): boolean => {
      if (over) return true;
      if (chunk !== null && chunk !== undefined) {
        seen += (chunk as Uint8Array | string).length;
        if (seen > maxBodySize) {
          over = true;
          this.#ctx.log.info({ status: 413, url: req.url, bytes: seen }, 'http request refused');
          if (watch.state === 'waiting') {
            watch.state = 'refused';
            this.#ctx.logAnswer(req, res);
          }
          respondOnBehalf(res, 413);
          return true;
        }
      }
      if (!watch.started && watch.state === 'waiting') {
        watch.started = true;
        // After the read that produced these bytes was parsed to its end: an error in it has
        // been answered ('clientError', socket destroyed) by then. Not a microtask: node:http
        // calls each parser callback through MakeCallback, which drains microtasks (and
        // nextTicks) before the parse of the same read goes on.
        setImmediate(() => this.#release(watch));
      }
      return push.call(req, chunk, encoding);
    };
  }

  #release(watch: BodyWatch): void {
    if (watch.state !== 'waiting') return;
    const { req, res } = watch;
    if (res.destroyed || req.destroyed || req.socket.destroyed) {
      watch.state = 'refused';
      return;
    }
    watch.state = 'dispatched';
    this.#ctx.dispatch(req, res, watch.origin);
  }

  #onDeadline(watch: BodyWatch): void {
    const { req, res } = watch;
    if (req.complete || watch.state === 'refused' || res.destroyed) return;
    this.#ctx.log.warn(
      {
        url: req.url,
        listener: watch.origin.listener,
        remoteAddress: watch.origin.remoteAddress ?? null,
        timeoutMs: this.#ctx.limits.bodyTimeoutMs,
        dispatched: watch.state === 'dispatched',
      },
      'http request body deadline exceeded',
    );
    if (watch.state === 'waiting') {
      // Never dispatched: the app does not know the request, the record is written here.
      watch.state = 'refused';
      this.#ctx.logAnswer(req, res);
    }
    // 408 with `Connection: close` while no head went out, else the connection is destroyed
    // (and node:http aborts the request). The app's request is aborted once the 408 is
    // flushed: destroying it first would destroy the socket under the answer.
    respondOnBehalf(res, 408);
    if (res.destroyed) return;
    if (res.writableFinished) abortRequest(req);
    else res.once('finish', () => abortRequest(req));
  }
}

function abortRequest(req: IncomingMessage): void {
  if (!req.destroyed && !req.complete) req.destroy(abortedError());
}

/** A declared Content-Length over `maxBodySize` (413 before the body is read). */
export function declaredOverLimit(req: IncomingMessage, maxBodySize: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > maxBodySize;
}
