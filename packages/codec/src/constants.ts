/**
 * Sizes and registries of the uwsgi wire protocol (PROTOCOL.md sections 1 and 3).
 */

/** Bytes in a packet header: `modifier1 (u8) | datasize (u16 little-endian) | modifier2 (u8)`. */
export const HEADER_SIZE = 4;

/**
 * Largest vars block a header can announce. `datasize` is a u16, so 65535 is both the protocol
 * maximum and what nginx accepts (65536 fails with "uwsgi request is too big").
 */
export const MAX_DATASIZE = 0xffff;

/**
 * Default `maxVarsSize`: the protocol maximum. uWSGI's `buffer-size` default of 4096 rejects
 * ordinary nginx traffic with large cookies, its most reported limit; we accept anything a
 * front end can frame and leave lower limits to configuration.
 */
export const DEFAULT_MAX_VARS_SIZE = 0xffff;

/** Default `maxVars`: number of key/value pairs accepted in one vars block (gunicorn's figure). */
export const DEFAULT_MAX_VARS = 1000;

/** Default `maxHeadSize` of the response head parser, in bytes (status line to blank line). */
export const DEFAULT_MAX_HEAD_SIZE = 65536;

/** Default `maxHeaders` of the response head parser: header lines accepted in one head. */
export const DEFAULT_MAX_HEADERS = 1000;

/**
 * The modifier1 registry (uWSGI `Protocol.rst` and its plugin registrations). Front ends send
 * `WSGI` (0) unless configured otherwise; the other values are listed so that callers can name
 * what they refuse. 26/27 are omitted: the uWSGI docs and code disagree on their meaning.
 */
export const MODIFIER1 = {
  /** Request with vars and body: what nginx, Apache, lighttpd and uWSGI's router send. */
  WSGI: 0,
  PSGI: 5,
  LUA: 6,
  RACK: 7,
  JVM: 8,
  CGI: 9,
  /** Management flags. */
  MANAGEMENT: 10,
  PHP: 14,
  MONO: 15,
  SPOOLER: 17,
  SYMCALL: 18,
  EVAL: 22,
  /** Legacy: PATH_INFO should lose its SCRIPT_NAME prefix; otherwise a request like 0. */
  MANAGE_PATH_INFO: 30,
  /** An HTTP response (`HTTP` read as a header: 'H', then 'P' as modifier2). */
  HTTP_RESPONSE: 72,
  /** Ping: modifier2 0 asks, modifier2 1 answers. */
  PING: 100,
  /** Echo: the payload comes back raw. */
  ECHO: 101,
  LEGION: 109,
  /** uwsgi signal; modifier2 is the signal number. */
  SIGNAL: 110,
  /** Cache; modifier2 0 get, 1 set, 2 delete. */
  CACHE: 111,
  /** Emperor config push. */
  CONFIG_PUSH: 115,
  /** uWSGI router's raw-body marker. */
  RAW_BODY: 123,
  /** RPC; the payload is the array form (`u16le len | bytes` items). */
  RPC: 173,
  /** Close mark on persistent connections. */
  CLOSE: 200,
  /** Subscription server; modifier2 0 subscribe, 1 unsubscribe. */
  SUBSCRIBE: 224,
  /** Generic response. */
  RESPONSE: 255,
} as const;

/** A name of the `MODIFIER1` registry. */
export type Modifier1Name = keyof typeof MODIFIER1;
