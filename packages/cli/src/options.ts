/**
 * The one table of commands and options. `parseCommandLine` builds node:util parseArgs options
 * from it and usage.ts renders --help from it, so the two cannot drift apart.
 */
import { parseArgs } from 'node:util';
import { usageError } from './errors.ts';

export interface OptionSpec {
  /** Long name, used as `--name` and as the key in parsed values. */
  readonly name: string;
  readonly short?: string;
  readonly type: 'string' | 'boolean';
  /** Repeatable (`-H a -H b`). */
  readonly multiple?: boolean;
  /** Placeholder shown in usage for string options. */
  readonly value?: string;
  readonly description: string;
}

export type CommandName =
  | 'run'
  | 'emperor'
  | 'reload'
  | 'check'
  | 'route'
  | 'top'
  | 'nginx'
  | 'request'
  | 'schema'
  | 'help';

export interface CommandSpec {
  readonly name: CommandName;
  readonly aliases: readonly string[];
  /** Positional synopsis, e.g. `CONFIG...`. */
  readonly synopsis: string;
  readonly minArgs: number;
  readonly maxArgs: number;
  readonly summary: string;
  /** Paragraphs shown by `uwsgi-ts CMD --help` after the synopsis. */
  readonly details: readonly string[];
  readonly options: readonly OptionSpec[];
}

/** Accepted by every command. */
export const COMMON_OPTIONS: readonly OptionSpec[] = [
  { name: 'help', short: 'h', type: 'boolean', description: 'Show help and exit.' },
  { name: 'version', short: 'v', type: 'boolean', description: 'Print the version and exit.' },
];

export const COMMANDS: readonly CommandSpec[] = [
  {
    name: 'run',
    aliases: ['serve'],
    synopsis: 'CONFIG',
    minArgs: 1,
    maxArgs: 1,
    summary: 'Serve a config: a master and its worker processes.',
    details: [
      'Loads and validates CONFIG; the master binds every listener once and starts `workers` worker processes, each loading every app and accepting on the shared sockets; once all are ready it logs one "ready" record on stdout. Crashed workers are respawned (with backoff when they crash in a loop).',
      'Signals to the master: SIGTERM or SIGINT stop gracefully (workers stop accepting, in-flight requests get up to shutdownTimeoutMs, exit code 0; a second signal closes every connection at once). SIGHUP reloads gracefully and transactionally: a new generation starts from the re-read config and replaces the old one only once ready; if it fails the old one keeps serving. SIGQUIT stops at once. SIGUSR1 reopens log.file.',
      'Exit codes: 0 after a signal-initiated stop, 1 when the config is invalid or the first workers fail to start, 2 for usage errors.',
    ],
    options: [
      {
        name: 'log-format',
        type: 'string',
        value: 'json|pretty|auto',
        description: 'Override log.format from the config.',
      },
    ],
  },
  {
    name: 'emperor',
    aliases: [],
    synopsis: 'DIR|GLOB... | status | reload [NAME] | stop NAME | start NAME',
    minArgs: 0,
    maxArgs: Number.POSITIVE_INFINITY,
    summary: 'Run one supervised container (a vassal) per config file in watched directories.',
    details: [
      'Every *.yaml / *.yml file directly in a watched DIR (or matching GLOB, wildcards in the file name only) is a vassal named after the file: a master with its workers, as `run` would start it. New files are validated and started, changed files reloaded gracefully and transactionally (an invalid edit or a generation that never becomes ready leaves the running vassal serving), deleted files stopped. Crashed vassals are respawned, with per-vassal backoff unless they served and stayed up; a changed (fixed) or touched file of a throttled vassal is retried at once. Inside a vassal file $\u007bVASSAL} is its name without extension.',
      'Signals to the emperor: SIGTERM or SIGINT stop every vassal gracefully and exit 0 (a second signal: no grace), SIGHUP reloads every vassal one after another, SIGUSR1 reopens log files. If the emperor dies, even by SIGKILL, its vassals and their workers exit within about a second.',
      'status, reload [NAME], stop NAME and start NAME talk to a running emperor through its control socket (--control, or emperor.control of --config). A stopped vassal stays down until start NAME or a new text of its file.',
      'Exit codes: 0 after a signal-initiated stop or a successful control command, 1 when the emperor config is invalid, a directory cannot be watched or a control command failed, 2 for usage errors.',
    ],
    options: [
      {
        name: 'config',
        short: 'c',
        type: 'string',
        value: 'FILE',
        description: 'Emperor config: a YAML file with one "emperor:" map (docs/emperor.md).',
      },
      {
        name: 'vassal-defaults',
        type: 'string',
        value: 'FILE',
        description: 'A partial container config merged under every vassal file.',
      },
      {
        name: 'control',
        type: 'string',
        value: 'PATH',
        description:
          'Control socket: listened on by the emperor, used by status/reload/stop/start.',
      },
      {
        name: 'json',
        type: 'boolean',
        description: 'status: print the JSON document instead of the table.',
      },
      {
        name: 'timeout',
        type: 'string',
        value: 'MS',
        description: 'Control commands: longest wait for the answer (default 120000).',
      },
    ],
  },
  {
    name: 'reload',
    aliases: [],
    synopsis: 'CONFIG|SOCKET',
    minArgs: 0,
    maxArgs: 1,
    summary: 'Gracefully reload a running master and report whether it worked.',
    details: [
      'Asks the master for a graceful, transactional reload through its control socket: SOCKET, or the `control` path of CONFIG (a .yaml/.yml file). Waits until the new generation serves and exits 0, or prints why the reload failed (the old generation keeps serving) and exits 1.',
      "With --pidfile PATH (or a CONFIG that has a pidfile but no control socket) it sends SIGHUP to that PID instead; the outcome is then only in the master's log.",
      'Exit codes: 0 reloaded (or SIGHUP sent), 1 the reload failed or no master answered, 2 for usage errors.',
    ],
    options: [
      {
        name: 'pidfile',
        type: 'string',
        value: 'PATH',
        description: 'Send SIGHUP to the PID in this file instead of using a control socket.',
      },
      {
        name: 'timeout',
        type: 'string',
        value: 'MS',
        description: 'Longest wait for the outcome (default 120000).',
      },
    ],
  },
  {
    name: 'check',
    aliases: [],
    synopsis: 'CONFIG...',
    minArgs: 1,
    maxArgs: Number.POSITIVE_INFINITY,
    summary: 'Validate config files; print every issue as file:line:col path message.',
    details: [
      'Each CONFIG is parsed, interpolated with the environment, validated and checked like `run` would (every app file must exist), without listening or loading apps. Issues go to stderr, one per line; "FILE: ok" lines (or, with --print, the effective configs) go to stdout.',
      'With --load, each config\'s apps are also imported in a child process, as a worker would (the config\'s env: applied, readyTimeoutMs as the limit), and each mount is reported with the shape found ("  /api: ./apps/api.mjs: default export (Express app)") or its error (syntax errors with file:line:col).',
      'Exit codes: 0 when every file is valid, 1 when any is not, 2 for usage errors.',
    ],
    options: [
      {
        name: 'print',
        short: 'p',
        type: 'boolean',
        description: 'Print each effective config (defaults filled in, paths absolute) as YAML.',
      },
      {
        name: 'load',
        type: 'boolean',
        description: 'Also import every app in a child process and report its shape or its error.',
      },
      {
        name: 'vassal-defaults',
        type: 'string',
        value: 'FILE',
        description:
          'Check each CONFIG as the emperor reads a vassal file: FILE merged under it, $\u007bVASSAL} and $\u007bVASSAL_FILE} from its name.',
      },
    ],
  },
  {
    name: 'request',
    aliases: [],
    synopsis: 'ADDRESS [METHOD] PATH',
    minArgs: 2,
    maxArgs: 3,
    summary: 'Send one HTTP request over the uwsgi protocol, as nginx would.',
    details: [
      'ADDRESS is host:port, [v6]:port, or a unix socket path (anything with a "/", or unix:PATH). PATH is the request target with its query string, e.g. /api/items?x=1. METHOD defaults to GET, or POST when a body is given.',
      "The packet carries the vars that nginx's stock uwsgi_params sends, in the same order, then one HTTP_* var per header, then the body. The response body is written to stdout as it arrives; with -i the status line and headers go to stderr first.",
      'Exit codes: 0 for a 2xx or 3xx status, 1 for any other status, a connection error, a malformed response or a timeout, 2 for usage errors.',
    ],
    options: [
      {
        name: 'header',
        short: 'H',
        type: 'string',
        multiple: true,
        value: "'Name: value'",
        description: 'Add a request header (repeatable).',
      },
      {
        name: 'data',
        short: 'd',
        type: 'string',
        value: 'DATA',
        description: 'Request body (UTF-8 text).',
      },
      {
        name: 'data-file',
        type: 'string',
        value: 'FILE',
        description: 'Request body read from FILE.',
      },
      {
        name: 'host',
        type: 'string',
        value: 'HOST',
        description: 'Host header and SERVER_NAME (default: localhost).',
      },
      {
        name: 'include',
        short: 'i',
        type: 'boolean',
        description: 'Write the response status line and headers to stderr.',
      },
      {
        name: 'raw',
        type: 'boolean',
        description: 'Write the whole response, head included, to stdout unparsed.',
      },
      {
        name: 'timeout',
        type: 'string',
        value: 'MS',
        description: 'Give up after MS milliseconds in total (default 30000; 0 = never).',
      },
    ],
  },
  {
    name: 'route',
    aliases: [],
    synopsis: 'CONFIG [METHOD] URL',
    minArgs: 2,
    maxArgs: 3,
    summary: 'Explain which mount answers a URL, and what its app sees, without starting anything.',
    details: [
      'URL is a request target as nginx sends it in REQUEST_URI (/api/users/42?x=1), or an absolute URL (its path is routed). Prints the mount that answers, SCRIPT_NAME and PATH_INFO, the req.url / req.baseUrl / req.originalUrl a (req, res) app sees and the URL a fetch app gets, every mount and how it relates to the path, and why: the longest prefix on a segment boundary, dot segments resolved, or why nothing matched. The config health path (GET/HEAD) is reported as answered by the container itself.',
      'Exit codes: 0 when a mount (or the health check) answers, 1 when nothing does (the container answers 404) or the config is invalid, 2 for usage errors.',
    ],
    options: [
      {
        name: 'json',
        type: 'boolean',
        description: 'Print the explanation as one JSON document.',
      },
    ],
  },
  {
    name: 'nginx',
    aliases: [],
    synopsis: 'CONFIG',
    minArgs: 1,
    maxArgs: 1,
    summary: 'Print an nginx upstream and server block for a config.',
    details: [
      "One location per mount (= /api and /api/, the router's segment-boundary rule; a \"/\" mount is location /, and without one nginx answers 404 as the container would), each with include uwsgi_params and uwsgi_pass to the config's first uwsgi listener. client_max_body_size is limits.maxBodySize; client_header_timeout and client_body_timeout are limits.headerTimeoutMs and bodyTimeoutMs; uwsgi_read_timeout is limits.requestTimeoutMs + 5 s, so the container's own 504 reaches the client (it is also the longest pause between two reads of a response: raise it for slow streams). The health path gets an exact location.",
      'Exit codes: 0 printed, 1 when the config is invalid or has no uwsgi listener nginx can reach (an inherited fd, port 0), 2 for usage errors.',
    ],
    options: [
      {
        name: 'listen',
        type: 'string',
        value: 'ADDR',
        description: 'nginx listen argument (default 80).',
      },
      {
        name: 'server-name',
        type: 'string',
        value: 'NAME',
        description: 'nginx server_name (default _).',
      },
      {
        name: 'uwsgi-params',
        type: 'string',
        value: 'PATH',
        description:
          'Path of the uwsgi_params file to include (default uwsgi_params, beside nginx.conf).',
      },
    ],
  },
  {
    name: 'top',
    aliases: [],
    synopsis: 'ADDRESS',
    minArgs: 1,
    maxArgs: 1,
    summary: "A live view of a container's or an emperor's stats server.",
    details: [
      'ADDRESS is the stats: address of the config (a socket path, host:port, or http://host:port); uWSGI stats servers work too. Shows each worker (or vassal) with its status, requests, req/s, exceptions, mean latency, RSS, respawns, harakiri count and last restart with its reason; each mount with req/s, status classes and latency; and the newest lifecycle events. Refreshes every --interval; q or Ctrl-C quits.',
      'When stdout is not a terminal, prints plain frames (one per refresh; --count N stops after N, exit 1 if the last one failed).',
    ],
    options: [
      {
        name: 'interval',
        type: 'string',
        value: 'MS',
        description: 'Refresh period in milliseconds (default 1000).',
      },
      {
        name: 'count',
        type: 'string',
        value: 'N',
        description: 'Frames to show before exiting (default: until q).',
      },
      {
        name: 'once',
        type: 'boolean',
        description: 'Same as --count 1.',
      },
    ],
  },
  {
    name: 'schema',
    aliases: [],
    synopsis: '',
    minArgs: 0,
    maxArgs: 0,
    summary: 'Print the JSON Schema of the config file.',
    details: [
      'Point an editor at it for completion and validation, e.g. with a first line "# yaml-language-server: $schema=/path/to/schema.json".',
    ],
    options: [],
  },
  {
    name: 'help',
    aliases: [],
    synopsis: '[COMMAND]',
    minArgs: 0,
    maxArgs: 1,
    summary: 'Show help for uwsgi-ts or for one command.',
    details: [],
    options: [],
  },
];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases.includes(name));
}

export type OptionValues = Readonly<
  Record<string, string | boolean | readonly string[] | undefined>
>;

export interface ParsedCommandLine {
  readonly values: OptionValues;
  readonly positionals: readonly string[];
}

/**
 * Parses the arguments after the command name. Unknown options, missing values and wrong
 * argument counts are usage errors; `--` ends options. Argument counts are not checked when
 * --help or --version is present, so `uwsgi-ts run --help` works without a CONFIG.
 */
export function parseCommandLine(command: CommandSpec, args: readonly string[]): ParsedCommandLine {
  const options: Record<
    string,
    { type: 'string' | 'boolean'; short?: string; multiple?: boolean }
  > = {};
  for (const spec of [...command.options, ...COMMON_OPTIONS]) {
    options[spec.name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.multiple === true ? { multiple: true } : {}),
    };
  }
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (err) {
    // parseArgs messages are precise ("Unknown option '--foo'") but mention its own internals
    // for some cases; keep the first sentence.
    const message = (err as Error).message.split('. ')[0] ?? 'invalid arguments';
    throw usageError(message.replace(/\.$/, ''), command.name);
  }
  const values = parsed.values as OptionValues;
  if (values['help'] !== true && values['version'] !== true) {
    const count = parsed.positionals.length;
    if (count < command.minArgs) {
      throw usageError(`missing argument: ${command.name} ${command.synopsis}`, command.name);
    }
    if (count > command.maxArgs) {
      const extra = parsed.positionals.slice(command.maxArgs).join(' ');
      throw usageError(`unexpected argument: ${extra}`, command.name);
    }
  }
  return { values, positionals: parsed.positionals };
}

/** Value of a string option, or undefined. */
export function stringOption(values: OptionValues, name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/** Values of a repeatable string option. */
export function stringsOption(values: OptionValues, name: string): readonly string[] {
  const value = values[name];
  return Array.isArray(value) ? value : typeof value === 'string' ? [value] : [];
}
