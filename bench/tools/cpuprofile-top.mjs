#!/usr/bin/env node
// Summarises a V8 .cpuprofile (from `node --cpu-prof`): self time per function, top N.
//   node bench/tools/cpuprofile-top.mjs FILE_OR_DIR [N]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const [target, topArg = '25'] = process.argv.slice(2);
if (!target) {
  console.error('usage: cpuprofile-top.mjs FILE_OR_DIR [N]');
  process.exit(2);
}
let file = target;
if (statSync(target).isDirectory()) {
  // The newest profile in the directory.
  file = readdirSync(target)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => path.join(target, f))
    .sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs)
    .at(-1);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map();
for (let i = 0; i < profile.samples.length; i++) {
  const id = profile.samples[i];
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const byFn = new Map();
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id).callFrame;
  const key = `${functionName || '(anonymous)'} ${url ? `${path.basename(url)}:${lineNumber + 1}` : ''}`;
  byFn.set(key, (byFn.get(key) ?? 0) + us);
}
const total = [...byFn.values()].reduce((a, b) => a + b, 0);
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`);
for (const [key, us] of [...byFn].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) {
  console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${key}`);
}
