#!/usr/bin/env node
// Writes packages/container/schema.json from src/config/schema.ts, the single source of the
// config schema and its defaults. schema.ts imports nothing, so it is transpiled in memory
// (TypeScript is a dev dependency of the workspace) and no build is needed first.
// `--check` exits 1 instead of writing when the file is out of date (CI; test/config-schema.test.ts
// makes the same comparison).
import { readFile, writeFile } from 'node:fs/promises';
import ts from 'typescript';

const source = new URL('../src/config/schema.ts', import.meta.url);
const target = new URL('../schema.json', import.meta.url);

const { outputText } = ts.transpileModule(await readFile(source, 'utf8'), {
  compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
});
const { configSchema } = await import(
  `data:text/javascript;base64,${Buffer.from(outputText).toString('base64')}`
);
const text = `${JSON.stringify(configSchema, null, 2)}\n`;

if (process.argv.includes('--check')) {
  const current = await readFile(target, 'utf8').catch(() => '');
  if (current !== text) {
    process.stderr.write(
      'schema.json is out of date: run node packages/container/scripts/write-schema.mjs\n',
    );
    process.exitCode = 1;
  }
} else {
  await writeFile(target, text);
}
