/**
 * The config half of the container's public surface; `../index.ts` re-exports these names.
 */
import { stringify } from 'yaml';
import type { ContainerConfig } from './types.ts';

export { type ConfigIssue, formatIssue } from './issues.ts';
export {
  type ParseConfigOptions,
  parseConfig,
  type ReadConfigOptions,
  readConfig,
} from './load.ts';
export { type ConfigSchema, configSchema } from './schema.ts';
export type {
  AppKind,
  ContainerConfig,
  LimitsConfig,
  ListenerConfig,
  ListenerProtocol,
  LogConfig,
  MountConfig,
  TransportKind,
} from './types.ts';

/**
 * The effective config as YAML (every default filled in, paths absolute): what `uwsgi-ts check
 * --print` shows, and itself a valid config file. `file` is not a config key; it becomes a
 * leading comment.
 */
export function stringifyConfig(config: ContainerConfig): string {
  const { file, ...keys } = config;
  const body = stringify(keys, { lineWidth: 0 });
  return file === undefined ? body : `# ${file}\n${body}`;
}
