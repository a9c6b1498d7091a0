/**
 * Public entry of `@uwsgi-ts/container`. Named exports only; anything not listed here is
 * private (STYLE.md section 3).
 */

export { type ProbeResult, probeApps } from './app/probe.ts';
export {
  type AppKind,
  type ConfigIssue,
  type ConfigSchema,
  type ContainerConfig,
  configSchema,
  formatIssue,
  type LimitsConfig,
  type ListenerConfig,
  type ListenerProtocol,
  type LogConfig,
  type MountConfig,
  type ParseConfigOptions,
  parseConfig,
  type ReadConfigOptions,
  readConfig,
  stringifyConfig,
  type TransportKind,
} from './config/index.ts';
export {
  type CloseOptions,
  type Container,
  type ContainerOptions,
  createContainer,
  type ListenerInfo,
  type MountInfo,
} from './container.ts';
export type { ContainerRequest } from './dispatch/types.ts';
export {
  type Emperor,
  type EmperorArgs,
  type EmperorConfig,
  type EmperorOptions,
  emperorSchema,
  loadEmperorConfig,
  startEmperor,
  vassalVars,
} from './emperor/index.ts';
export {
  type CandidateRelation,
  explainRoute,
  type RouteExplanation,
} from './router/explain.ts';
export {
  CONTAINER_ERROR_CODES,
  ContainerError,
  type ContainerErrorCode,
  isContainerError,
} from './shared/errors.ts';
export { type CreateLoggerOptions, createLogger, type Logger } from './shared/log.ts';
export type { MountStatsSnapshot, StatsSnapshot, StatusClass } from './shared/stats.ts';
export {
  type MasterStats,
  type ReloadResult,
  readPidfile,
  type Supervisor,
  type SupervisorStatus,
  sendControl,
  startSupervisor,
} from './supervisor/index.ts';
export type { MasterOptions } from './supervisor/master.ts';
export { formatListenTarget, parseListenAddress } from './transport/address.ts';
export type { ListenTarget } from './transport/types.ts';
