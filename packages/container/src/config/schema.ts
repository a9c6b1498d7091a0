/**
 * JSON Schema (draft-07) of the YAML config file: the single source of defaults. `load.ts`
 * compiles it once with ajv `useDefaults`, so every `default` below is what a `ContainerConfig`
 * holds when the key is absent; the comments in `types.ts` repeat these values and a test keeps
 * them in step. `schema.json` at the package root is generated from this object
 * (`node scripts/write-schema.mjs` after `tsc -b`) for editors and `uwsgi-ts schema`.
 *
 * Every object is closed (`additionalProperties: false`): uWSGI silently turns unknown options
 * into placeholders (its ThingsToKnow page); here a typo is an error with a did-you-mean.
 */

/** Largest delay setTimeout() honours; larger values fire at once (Node clamps them to 1 ms). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * A user or group of a unix socket file: a name as /etc/passwd and /etc/group allow it (a
 * trailing `$` for machine accounts) or a numeric id (uid_t is 32 bits; -1 means "unchanged").
 */
const USER_OR_ID = [
  { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]*\\$?$' },
  { type: 'integer', minimum: 0, maximum: 4294967294 },
] as const;

export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'urn:uwsgi-ts:container-config',
  title: 'uwsgi-ts container config',
  description:
    'One container: the sockets it listens on and the Node.js apps it serves under URL prefixes. Keys are camelCase and map 1:1 onto ContainerConfig.',
  type: 'object',
  additionalProperties: false,
  required: ['listeners', 'mounts'],
  properties: {
    listeners: {
      title: 'Listeners',
      description:
        'Sockets to accept connections on; at least one. None is implied: listening on a non-loopback TCP address (0.0.0.0:3031, [::]:3031) happens only when written here.',
      type: 'array',
      minItems: 1,
      items: {
        title: 'Listener',
        type: 'object',
        additionalProperties: false,
        required: ['protocol', 'address'],
        properties: {
          protocol: {
            title: 'Protocol',
            description:
              'uwsgi for nginx uwsgi_pass, Apache mod_proxy_uwsgi, lighttpd and the uWSGI router; http for plain HTTP/1.1.',
            type: 'string',
            enum: ['uwsgi', 'http'],
          },
          address: {
            title: 'Address',
            description:
              'host:port for TCP (IPv6 as [::1]:port; port 0 picks a free port) or a unix socket path; a relative path resolves against the directory of the config file.',
            type: 'string',
            minLength: 1,
          },
          mode: {
            title: 'Socket file mode',
            description:
              'Permissions of a unix socket file as an octal string (quote it: unquoted 0660 is the YAML number 660). Unix sockets only.',
            type: 'string',
            pattern: '^0?[0-7]{3}$',
            default: '0660',
          },
          backlog: {
            title: 'Listen backlog',
            description:
              'listen(2) backlog (uWSGI listen); the kernel clamps it to net.core.somaxconn.',
            type: 'integer',
            minimum: 1,
            maximum: 65535,
            default: 1024,
          },
          owner: {
            title: 'Socket file owner',
            description:
              'User (name or numeric id) that owns a unix socket file (uWSGI chown-socket), set before any worker accepts. Changing the owner needs root. Unix sockets only.',
            oneOf: USER_OR_ID,
          },
          group: {
            title: 'Socket file group',
            description:
              'Group (name or numeric id) of a unix socket file, e.g. www-data so nginx workers can connect with mode 0660. Set before any worker accepts. Unix sockets only.',
            oneOf: USER_OR_ID,
          },
        },
      },
    },
    mounts: {
      title: 'Mounts',
      description:
        'Apps and the URL prefixes they serve; at least one. The longest prefix that ends on a path segment boundary wins; no match is 404 unless a / mount exists.',
      type: 'array',
      minItems: 1,
      items: {
        title: 'Mount',
        type: 'object',
        additionalProperties: false,
        required: ['path', 'app'],
        properties: {
          path: {
            title: 'URL prefix',
            description:
              'Starts with /; one trailing slash is ignored; / is the catch-all. Becomes the app request baseUrl (SCRIPT_NAME).',
            type: 'string',
            pattern: '^/',
          },
          app: {
            title: 'App module',
            description:
              'Path of the module exporting the app (.mjs, .cjs, .js); a relative path resolves against the directory of the config file.',
            type: 'string',
            minLength: 1,
          },
          export: {
            title: 'Export name',
            description:
              'Named export holding the handler; when absent the loader discovers it (default export, then well-known names).',
            type: 'string',
            minLength: 1,
          },
          kind: {
            title: 'Handler kind',
            description:
              'node: (req, res) handler or server; fetch: (Request) => Response; auto: decided from the module exports.',
            type: 'string',
            enum: ['auto', 'node', 'fetch'],
            default: 'auto',
          },
          fetchUrl: {
            title: 'Fetch request URL',
            description:
              'For fetch handlers: full gives request.url the external URL including the mount prefix; relative strips the prefix as req.url does for Node handlers.',
            type: 'string',
            enum: ['full', 'relative'],
            default: 'full',
          },
        },
      },
    },
    limits: {
      title: 'Limits',
      description: 'Per-request and per-container bounds, each checked before the bytes are read.',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        bufferSize: {
          title: 'Vars block size',
          description:
            'Largest uwsgi vars block accepted, in bytes (uWSGI buffer-size, whose 4096 default rejects real traffic with cookies). 65535 is the protocol maximum.',
          type: 'integer',
          minimum: 1,
          maximum: 65535,
          default: 65535,
        },
        maxVars: {
          title: 'Vars per packet',
          description: 'Largest number of vars in one uwsgi packet.',
          type: 'integer',
          minimum: 1,
          maximum: 65535,
          default: 1000,
        },
        maxBodySize: {
          title: 'Request body size',
          description:
            'Largest request body in bytes; a larger CONTENT_LENGTH gets 413 before any body byte is read.',
          type: 'integer',
          minimum: 0,
          maximum: Number.MAX_SAFE_INTEGER,
          default: 104857600,
        },
        headerTimeoutMs: {
          title: 'Head deadline (ms)',
          description:
            'Total time allowed to receive the request head (uwsgi header and vars, or the HTTP head).',
          type: 'integer',
          minimum: 1,
          maximum: MAX_TIMER_MS,
          default: 10000,
        },
        bodyTimeoutMs: {
          title: 'Body deadline (ms)',
          description: 'Total time allowed to receive the declared request body.',
          type: 'integer',
          minimum: 1,
          maximum: MAX_TIMER_MS,
          default: 60000,
        },
        requestTimeoutMs: {
          title: 'Request deadline (ms)',
          description:
            'Time for the app to send response headers: 504 when it has not, else the connection is closed. 0 turns it off.',
          type: 'integer',
          minimum: 0,
          maximum: MAX_TIMER_MS,
          default: 60000,
        },
        maxConnections: {
          title: 'Open connections',
          description:
            'Most open client connections across all listeners (less when the open-files limit leaves fewer, see reservedFds). At the limit, idle connections (waiting for a request head, idle keep-alive) are closed oldest first to make room; only when none is idle is a new connection closed at once.',
          type: 'integer',
          minimum: 1,
          maximum: 1048576,
          default: 10000,
        },
        reservedFds: {
          title: 'File descriptors kept free',
          description:
            'File descriptors kept free below the open-files limit (RLIMIT_NOFILE) for the app and the container (files, upstream connections, logs): connections are limited to what the limit leaves less these, so that accepting never runs into the limit.',
          type: 'integer',
          minimum: 0,
          maximum: 1048576,
          default: 64,
        },
        maxInFlight: {
          title: 'Requests in flight per worker',
          description:
            'Most requests one worker handles at once; further requests get 503 at once instead of queueing without bound. 0 turns it off.',
          type: 'integer',
          minimum: 0,
          maximum: 1048576,
          default: 0,
        },
        harakiriMs: {
          title: 'Harakiri (ms)',
          description:
            'A worker whose event loop is blocked this long (busy loop, sync call) is killed and replaced; the client of each in-flight request whose headers were not sent gets 504, and the log names the request and the blocked JavaScript stack. 0 turns it off (uWSGI harakiri).',
          type: 'integer',
          minimum: 0,
          maximum: MAX_TIMER_MS,
          default: 0,
        },
        maxRequests: {
          title: 'Requests per worker',
          description:
            'A worker that has served this many requests is replaced gracefully (new worker first). 0 turns it off (uWSGI max-requests).',
          type: 'integer',
          minimum: 0,
          maximum: Number.MAX_SAFE_INTEGER,
          default: 0,
        },
        maxRequestsJitter: {
          title: 'Requests per worker: jitter',
          description:
            'A random 0..N added to maxRequests for each worker, so workers do not recycle together (gunicorn max_requests_jitter).',
          type: 'integer',
          minimum: 0,
          maximum: Number.MAX_SAFE_INTEGER,
          default: 0,
        },
        maxLifetimeMs: {
          title: 'Worker lifetime (ms)',
          description:
            'A worker older than this is replaced gracefully. 0 turns it off (uWSGI max-worker-lifetime).',
          type: 'integer',
          minimum: 0,
          maximum: MAX_TIMER_MS,
          default: 0,
        },
        reloadOnRssMb: {
          title: 'RSS soft limit (MiB)',
          description:
            'A worker whose resident memory exceeds this is replaced gracefully (new worker first, then the old one drains). Sampled every 250 ms. 0 turns it off (uWSGI reload-on-rss).',
          type: 'integer',
          minimum: 0,
          maximum: 1048576,
          default: 0,
        },
        evilReloadOnRssMb: {
          title: 'RSS hard limit (MiB)',
          description:
            'A worker whose resident memory exceeds this is killed (SIGKILL) at once and replaced. Sampled every 250 ms. 0 turns it off (uWSGI evil-reload-on-rss).',
          type: 'integer',
          minimum: 0,
          maximum: 1048576,
          default: 0,
        },
      },
    },
    log: {
      title: 'Logging',
      description: 'pino logs on stdout.',
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        access: {
          title: 'Access log',
          description: 'One record per request (msg "request").',
          type: 'boolean',
          default: true,
        },
        format: {
          title: 'Log format',
          description:
            'json: JSON lines; pretty: human-readable; auto: pretty on a TTY, JSON otherwise.',
          type: 'string',
          enum: ['auto', 'json', 'pretty'],
          default: 'auto',
        },
        level: {
          title: 'Log level',
          description: 'Least severe pino level written.',
          type: 'string',
          enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
          default: 'info',
        },
        file: {
          title: 'Log file',
          description:
            'Write logs to this file (appended) instead of stdout; SIGUSR1 reopens it after logrotate moved it. A relative path resolves against the directory of the config file.',
          type: 'string',
          minLength: 1,
        },
      },
    },
    transport: {
      title: 'uwsgi transport',
      description:
        'Implementation of uwsgi listeners: fast (Node stream handles directly), net (node:net only), auto (fast when this Node supports it, else net).',
      type: 'string',
      enum: ['auto', 'fast', 'net'],
      default: 'auto',
    },
    health: {
      title: 'Health-check path',
      description:
        'uwsgi listeners answer GET/HEAD of exactly this path (query ignored, no body) with 200 "ok" themselves: no app, no access record, not counted as a request. Off when absent.',
      type: 'string',
      pattern: '^/[^?#\\s]*$',
    },
    strictVars: {
      title: 'Refuse requests missing vars',
      description:
        'uwsgi listeners answer 400 to a request without REQUEST_METHOD or without a path (REQUEST_URI, PATH_INFO). Off (default): such a request is served as GET and / as uWSGI does, with one warning per listener naming the missing vars; nginx sends them when a location sets its own uwsgi_param without include uwsgi_params.',
      type: 'boolean',
      default: false,
    },
    strictRequestLine: {
      title: 'Refuse a request line with doubled spaces',
      description:
        'HTTP listeners answer 400 to a request line with more than one space between its parts (GET  / HTTP/1.1), as the RFC 9112 grammar has it. false serves it as the same request with single spaces, as nginx does and RFC 9112 section 3 lets a recipient, and saves a copy of each read the check needs.',
      type: 'boolean',
      default: true,
    },
    shutdownTimeoutMs: {
      title: 'Shutdown grace (ms)',
      description:
        'On stop (SIGTERM, SIGINT), time allowed for in-flight requests to finish before their connections are closed (uWSGI reload-mercy).',
      type: 'integer',
      minimum: 0,
      maximum: MAX_TIMER_MS,
      default: 30000,
    },
    workers: {
      title: 'Worker processes',
      description:
        'Number of worker processes, each serving every mount on the shared sockets, or auto (the available parallelism). The master binds the sockets and supervises them.',
      oneOf: [
        { type: 'integer', minimum: 1, maximum: 1024 },
        { type: 'string', const: 'auto' },
      ],
      default: 1,
    },
    readyTimeoutMs: {
      title: 'Worker ready deadline (ms)',
      description:
        'Time a new worker has to load its apps and accept; at first start the run fails, on reload the old generation keeps serving.',
      type: 'integer',
      minimum: 1,
      maximum: MAX_TIMER_MS,
      default: 30000,
    },
    reloadMercyMs: {
      title: 'Reload grace (ms)',
      description:
        'On a graceful reload or recycle, time the old workers have to finish in-flight requests before they are killed (uWSGI reload-mercy).',
      type: 'integer',
      minimum: 0,
      maximum: MAX_TIMER_MS,
      default: 30000,
    },
    pidfile: {
      title: 'Pidfile',
      description:
        "File the master's PID is written to once it serves, removed at exit; uwsgi-ts reload --pidfile uses it. Relative to the config file.",
      type: 'string',
      minLength: 1,
    },
    control: {
      title: 'Control socket',
      description:
        'Unix socket (mode 0600) on which the master takes reload and stats commands (uwsgi-ts reload). Relative to the config file.',
      type: 'string',
      minLength: 1,
    },
    stats: {
      title: 'Stats server',
      description:
        "Address of the stats server: a socket path or host:port serves uWSGI's raw stats protocol (one JSON document per connection, then close: uwsgitop and uWSGI collectors read it unchanged); http://host:port serves the same document over HTTP (GET /). Unix paths are relative to the config file. Off when absent.",
      type: 'string',
      minLength: 1,
    },
    metrics: {
      title: 'Prometheus endpoint',
      description:
        'Address (host:port, http://host:port or a socket path) serving GET /metrics in the Prometheus text format, aggregated by the master across workers. Off when absent.',
      type: 'string',
      minLength: 1,
    },
    restartHistory: {
      title: 'Restart history',
      description:
        'Lifecycle events (spawned, ready, exited and why) kept per worker slot, shown by the stats server and uwsgi-ts top.',
      type: 'integer',
      minimum: 1,
      maximum: 1000,
      default: 10,
    },
    touchReload: {
      title: 'Touch-reload file',
      description:
        'A graceful reload happens when the modification time of this file changes (uWSGI touch-reload). Relative to the config file.',
      type: 'string',
      minLength: 1,
    },
    env: {
      title: 'Worker environment',
      description:
        'Variables set in the environment of the worker processes, over the inherited ones (e.g. NODE_ENV: production, which Express reads to cache views and hide stack traces).',
      type: 'object',
      additionalProperties: { type: 'string' },
      propertyNames: { pattern: '^[^=\\0]+$' },
      default: {},
    },
  },
} as const;

export type ConfigSchema = typeof configSchema;
