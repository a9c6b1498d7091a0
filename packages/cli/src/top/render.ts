/**
 * The screen of `uwsgi-ts top`: pure text from two stats documents (this one and the one a
 * refresh ago, for rates). A document with `vassals` is an emperor's, else a container's; both
 * are read by uWSGI's field names first, so `top` also shows a uWSGI stats server.
 */

type Doc = Record<string, unknown>;
interface Sample {
  readonly doc: Doc;
  /** When it was read (ms). */
  readonly at: number;
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);
/** Control characters (C0, DEL, C1): an app's text must not drive the terminal. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
/** Text from the document, with control characters (ESC, newlines) made visible, never run. */
const clean = (text: string): string =>
  text.replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
const str = (v: unknown): string =>
  clean(typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v));
const arr = (v: unknown): Doc[] =>
  Array.isArray(v) ? (v.filter((x) => typeof x === 'object' && x !== null) as Doc[]) : [];

export function renderScreen(current: Sample, previous: Sample | undefined, width = 120): string {
  const lines =
    'vassals' in current.doc ? emperorLines(current, previous) : containerLines(current, previous);
  return lines.map((line) => (line.length > width ? line.slice(0, width) : line)).join('\n');
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 19);
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function uptime(seconds: number): string {
  if (seconds <= 0) return '-';
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  if (d > 0) return `${d}d${String(h).padStart(2, '0')}h`;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  return `${m}m${String(s).padStart(2, '0')}s`;
}

/** Requests per second between two counts; '-' without a previous sample or after a reset. */
function rate(now: number, before: number | undefined, seconds: number): string {
  if (before === undefined || seconds <= 0 || now < before) return '-';
  return ((now - before) / seconds).toFixed(1);
}

function table(rows: string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/** The newest event of a history, as `HH:MM:SS what why`. */
function lastEvent(history: Doc[], only?: (e: Doc) => boolean): string {
  const events = only === undefined ? history : history.filter(only);
  const last = events[events.length - 1];
  if (last === undefined) return '-';
  const at = Date.parse(str(last['at']));
  const detail = str(last['detail']);
  return `${Number.isNaN(at) ? '' : `${clock(at)} `}${str(last['event'])}${detail === '' ? '' : ` ${detail}`}`;
}

/** Every history's events in one timeline, newest last, at most `count`. */
function timeline(owners: { name: string; history: Doc[] }[], count: number): string[] {
  return owners
    .flatMap((o) => o.history.map((e): Doc & { owner: string } => ({ ...e, owner: o.name })))
    .sort((a, b) => (str(a['at']) < str(b['at']) ? -1 : str(a['at']) > str(b['at']) ? 1 : 0))
    .slice(-count)
    .map((e) => {
      const at = Date.parse(str(e['at']));
      const detail = str(e['detail']);
      return `  ${Number.isNaN(at) ? '--:--:--' : clock(at)}  ${e.owner}  ${str(e['event'])}${detail === '' ? '' : `  ${detail}`}`;
    });
}

function containerLines(current: Sample, previous: Sample | undefined): string[] {
  const doc = current.doc;
  const seconds = previous === undefined ? 0 : (current.at - previous.at) / 1000;
  const workers = arr(doc['workers']);
  const before = new Map(
    arr(previous?.doc['workers']).map((w) => [`${num(w['id'])}:${num(w['pid'])}`, w]),
  );
  // Ours counts since the master started (exited workers included); uWSGI's only has workers.
  const totalOf = (d: Doc) =>
    typeof d['requests'] === 'number'
      ? d['requests']
      : arr(d['workers']).reduce((n, w) => n + num(w['requests']), 0);
  const total = totalOf(doc);
  const totalBefore = previous === undefined ? undefined : totalOf(previous.doc);
  previous === undefined
    ? undefined
    : arr(previous.doc['workers']).reduce((n, w) => n + num(w['requests']), 0);
  const sockets = arr(doc['sockets']);
  const queue = sockets.reduce((n, s) => n + num(s['queue']), 0);
  const maxQueue = sockets.reduce((n, s) => n + num(s['max_queue']), 0);
  const started = num(doc['started_at']);
  const lines = [
    `uwsgi-ts ${str(doc['version'])} container  pid ${num(doc['pid'])}  generation ${num(doc['generation'])}  up ${uptime(started > 0 ? current.at / 1000 - started : 0)}  ${clock(current.at)}`,
    `requests ${total}  req/s ${rate(total, totalBefore, seconds)}  in flight ${num(doc['load'])}  listen queue ${queue}/${maxQueue} (full ${num(doc['listen_queue_errors'])}x)  tx ${bytes(typeof doc['tx'] === 'number' ? doc['tx'] : workers.reduce((n, w) => n + num(w['tx']), 0))}  exceptions ${typeof doc['exceptions'] === 'number' ? doc['exceptions'] : workers.reduce((n, w) => n + num(w['exceptions']), 0)}`,
    '',
  ];
  const rows = [
    [
      'WID',
      'PID',
      'STATUS',
      'REQ',
      'REQ/S',
      'EXC',
      'AVG ms',
      'RSS',
      'RESPAWNS',
      'HARAKIRI',
      'LAST RESTART',
    ],
  ];
  for (const w of workers) {
    const old = before.get(`${num(w['id'])}:${num(w['pid'])}`);
    const history = arr(w['history']);
    rows.push([
      String(num(w['id'])),
      String(num(w['pid'])),
      str(w['status']),
      String(num(w['requests'])),
      rate(num(w['requests']), old === undefined ? undefined : num(old['requests']), seconds),
      String(num(w['exceptions'])),
      (num(w['avg_rt']) / 1000).toFixed(1),
      bytes(num(w['rss'])),
      String(num(w['respawn_count'])),
      String(num(w['harakiri_count'])),
      lastEvent(history, (e) => e['event'] === 'exited' || e['event'] === 'harakiri'),
    ]);
  }
  lines.push(...table(rows));
  const mounts = arr(doc['mounts']);
  if (mounts.length > 0) {
    const mountsBefore = new Map(arr(previous?.doc['mounts']).map((m) => [str(m['path']), m]));
    const mrows = [
      ['MOUNT', 'REQ', 'REQ/S', '2XX', '3XX', '4XX', '5XX', 'EXC', 'AVG ms', 'P50 ms', 'P99 ms'],
    ];
    for (const m of mounts) {
      const statuses = (m['statuses'] ?? {}) as Doc;
      const old = mountsBefore.get(str(m['path']));
      const q = (v: unknown) => (typeof v === 'number' ? String(v) : '-');
      mrows.push([
        str(m['path']),
        String(num(m['requests'])),
        rate(num(m['requests']), old === undefined ? undefined : num(old['requests']), seconds),
        String(num(statuses['2xx'])),
        String(num(statuses['3xx'])),
        String(num(statuses['4xx'])),
        String(num(statuses['5xx'])),
        String(num(m['exceptions'])),
        (num(m['avg_rt']) / 1000).toFixed(1),
        q(m['p50_ms']),
        q(m['p99_ms']),
      ]);
    }
    lines.push('', ...table(mrows));
  }
  const events = timeline(
    workers.map((w) => ({ name: `worker ${num(w['id'])}`, history: arr(w['history']) })),
    6,
  );
  if (events.length > 0) lines.push('', 'RECENT EVENTS', ...events);
  return lines;
}

function emperorLines(current: Sample, previous: Sample | undefined): string[] {
  const doc = current.doc;
  const seconds = previous === undefined ? 0 : (current.at - previous.at) / 1000;
  const vassals = arr(doc['vassals']);
  const before = new Map(
    arr(previous?.doc['vassals']).map((v) => [`${str(v['id'])}:${num(v['pid'])}`, v]),
  );
  const watch = Array.isArray(doc['emperor'])
    ? (doc['emperor'] as unknown[]).map(str).join(' ')
    : str(doc['emperor']);
  const states = new Map<string, number>();
  for (const v of vassals)
    states.set(str(v['state']) || 'running', (states.get(str(v['state']) || 'running') ?? 0) + 1);
  const lines = [
    `uwsgi-ts ${str(doc['version'])} emperor  pid ${num(doc['pid'])}  watching ${watch}  ${clock(current.at)}`,
    `vassals ${vassals.length} (${[...states].map(([s, n]) => `${s} ${n}`).join(', ') || 'none'})  throttled ${arr(doc['blacklist']).length}  spares ${num(doc['spares'])}`,
    '',
  ];
  const rows = [
    ['VASSAL', 'STATE', 'PID', 'GEN', 'WORKERS', 'REQ', 'REQ/S', 'RESPAWNS', 'LAST RESTART'],
  ];
  for (const v of vassals) {
    const old = before.get(`${str(v['id'])}:${num(v['pid'])}`);
    const workers = v['workers'];
    rows.push([
      str(v['id']),
      str(v['state']) || (num(v['accepting']) ? 'accepting' : '-'),
      num(v['pid']) === 0 ? '-' : String(num(v['pid'])),
      String(num(v['generation'])),
      Array.isArray(workers) ? String(workers.length) : '-',
      String(num(v['requests'])),
      rate(num(v['requests']), old === undefined ? undefined : num(old['requests']), seconds),
      String(num(v['respawns'])),
      lastEvent(arr(v['history']), (e) =>
        ['crashed', 'stopped', 'reloaded', 'reload-failed', 'invalid'].includes(str(e['event'])),
      ),
    ]);
  }
  lines.push(...table(rows));
  const events = timeline(
    vassals.map((v) => ({ name: str(v['id']), history: arr(v['history']) })),
    8,
  );
  if (events.length > 0) lines.push('', 'RECENT EVENTS', ...events);
  return lines;
}
