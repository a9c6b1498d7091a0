// Reading `node --cpu-prof` profiles in a benchmark: the profile files of one process, and the
// self time per function and per area (where the code lives) of the samples inside a measured
// window (supervisor-bench.mjs and operator-bench.mjs).
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile files of `pid` in `dir`; thread 0 is main. */
export function profilesOf(dir, pid) {
  return readdirSync(dir)
    .map((f) => ({ f, m: /^CPU\.\d+\.\d+\.(\d+)\.(\d+)\.\d+\.cpuprofile$/.exec(f) }))
    .filter(({ m }) => m !== null && Number(m[1]) === pid)
    .map(({ f, m }) => ({ file: path.join(dir, f), thread: Number(m[2]) }));
}

/** Where a profile frame's code lives, for the per-area summary. */
export function areaOf(functionName, url) {
  if (url === '') {
    if (functionName === '(garbage collector)') return 'garbage collector';
    if (functionName === '(program)') return '(program): V8/native, no JS frame';
    return 'native functions (syscalls, spawn, ...)';
  }
  if (url.startsWith('node:')) return 'Node internals (node:*)';
  const m = /\/(?:packages\/([^/]+)|node_modules\/(?:\.pnpm\/)?([^/@][^/]*|@[^/]+\/[^/]+))\//.exec(
    url,
  );
  if (m?.[1]) return `@uwsgi-ts/${m[1]}`;
  if (m?.[2]) return m[2].replace(/@\d.*$/, '');
  return path.basename(url);
}

/**
 * Self time per function (µs, keyed `function file`) and per area of the samples taken within
 * [fromUs, toUs] (the monotonic clock of `process.hrtime`, which V8's profile timestamps share,
 * in every process of the machine), `(idle)` left out. A sample owns the time since the one
 * before it, as bench/tools/cpuprofile-top.mjs counts.
 */
export function profileSelfTime(file, fromUs, toUs) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const byFn = new Map();
  const byArea = new Map();
  let at = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (at < fromUs || at > toUs) continue;
    const { functionName, url } = byId.get(profile.samples[i]).callFrame;
    if (functionName === '(idle)') continue;
    const key = `${functionName || '(anonymous)'}${url ? ` ${path.basename(url)}` : ''}`;
    byFn.set(key, (byFn.get(key) ?? 0) + us);
    const area = areaOf(functionName, url);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
    total += us;
  }
  return { byFn, byArea, total };
}

/** Adds `b`'s values into `a` (Maps of numbers); returns `a`. */
export function addInto(a, b) {
  for (const [k, v] of b) a.set(k, (a.get(k) ?? 0) + v);
  return a;
}
