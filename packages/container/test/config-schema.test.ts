import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../src/config/schema.ts';

interface SchemaNode {
  type?: string;
  title?: string;
  description?: string;
  default?: unknown;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
  additionalProperties?: boolean | object;
}

/** Every property schema in the tree with its dotted path. */
function walk(node: SchemaNode, path: string, out: Array<[string, SchemaNode]> = []) {
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    out.push([path === '' ? key : `${path}.${key}`, child]);
    walk(child, path === '' ? key : `${path}.${key}`, out);
  }
  if (node.items !== undefined) walk(node.items, `${path}[]`, out);
  return out;
}

const schema = configSchema as unknown as SchemaNode;

describe('config schema', () => {
  it('schema.json is generated from schema.ts (run node packages/container/scripts/write-schema.mjs)', () => {
    const file = readFileSync(new URL('../schema.json', import.meta.url), 'utf8');
    expect(file).toBe(`${JSON.stringify(configSchema, null, 2)}\n`);
  });

  it('documents every key and closes every object', () => {
    const objects = [schema, ...walk(schema, '').map(([, node]) => node)].flatMap((node) =>
      node.type === 'object' ? [node] : node.items?.type === 'object' ? [node.items] : [],
    );
    expect(objects.length).toBeGreaterThan(4);
    for (const node of objects) {
      // Maps (env) constrain their names and values instead of listing keys.
      if (typeof node.additionalProperties === 'object') {
        expect((node as { propertyNames?: unknown }).propertyNames).toBeDefined();
      } else expect(node.additionalProperties).toBe(false);
    }
    for (const [path, node] of walk(schema, '')) {
      expect(node.title, path).toEqual(expect.any(String));
      expect(node.description, path).toEqual(expect.any(String));
    }
  });

  it('types.ts states the same default as the schema for every key that has one', () => {
    // `LogConfig` is declared in shared/log.ts (shared/ imports nothing above it) and
    // re-exported by config/types.ts, so its TSDoc is read from there.
    const types = ['../src/config/types.ts', '../src/shared/log.ts']
      .map((file) => readFileSync(new URL(file, import.meta.url), 'utf8'))
      .join('\n');
    const withDefaults = walk(schema, '').filter(
      ([, node]) => node.default !== undefined && node.type !== 'object',
    );
    expect(withDefaults.length).toBe(30);
    for (const [path, node] of withDefaults) {
      const key = path.slice(path.lastIndexOf('.') + 1);
      // The TSDoc block right before `readonly key`.
      const match = new RegExp(`/\\*\\*((?:(?!\\*/)[\\s\\S])*)\\*/\\s*readonly ${key}\\??:`).exec(
        types,
      );
      expect(match, `${path}: no TSDoc in types.ts or shared/log.ts`).not.toBeNull();
      const doc = (match?.[1] ?? '').replace(/\s*\n\s*\*\s*/g, ' ');
      expect(doc, path).toMatch(/default/i);
      const value =
        typeof node.default === 'string' && key === 'mode'
          ? `"${node.default}"`
          : String(node.default);
      expect(doc, `${path}: types.ts should mention the default ${value}`).toMatch(
        new RegExp(`(^|[^\\w"])${value.replace(/[.*+?^${}()|[\]\\"]/g, '\\$&')}($|[^\\w"])`),
      );
    }
  });

  it('the README key table lists every key with its schema default', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    for (const [path, node] of walk(schema, '')) {
      if (node.type === 'object') continue;
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${path}\` |`));
      expect(row, `README.md has no row for ${path}`).toBeDefined();
      if (node.default !== undefined) {
        const shown = path.endsWith('mode') ? JSON.stringify(node.default) : String(node.default);
        expect(row?.split(' | ')[2], path).toBe(`\`${shown}\``);
      }
    }
  });
});
