// wrk as a child process with a machine-readable summary: a Lua `done()` prints one
// `WRKJSON {...}` line (requests, duration, error counts, latency percentiles and max in µs).
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { spawnTracked } from './proc.mjs';

const DONE_LUA = `
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"status":%d,"timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
`;

/** Writes `DIR/NAME` (a GET script with the summary `done()`); returns its path. */
export function writeWrkScript(dir, name = 'wrk-done.lua') {
  const file = path.join(dir, name);
  writeFileSync(file, DONE_LUA);
  return file;
}

/**
 * Runs `wrk -t<threads> -c<connections> -d<seconds>s` with `script` against `url`; resolves the
 * parsed summary plus `rps` and `errors` (socket errors: connect + read + write + timeout;
 * `status` is the count of non-2xx/3xx responses).
 */
export async function runWrk(url, script, { seconds, connections = 32, threads = 1 }) {
  const rec = spawnTracked(
    'wrk',
    [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, url],
    { name: 'wrk' },
  );
  await rec.exit;
  const line = rec.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk gave no summary for ${url}:\n${rec.stdout}${rec.stderr}`);
  const w = JSON.parse(line.slice(8));
  return {
    ...w,
    rps: w.requests / (w.duration_us / 1e6),
    errors: w.connect + w.read + w.write + w.timeout,
  };
}
