/**
 * The policy advisor: proposes a caching pattern per table from the workload PostgreSQL recorded.
 * ORM- and driver-agnostic; the CLI (`tablecache advise`) supplies the database connection.
 * @module
 */
export {
  type QueryFn,
  readSnapshot,
  readStatements,
  type StatementsReading,
  type TableCounters,
  type WorkloadSnapshot,
} from './collect.js';
export { formatBytes, formatNumber, formatRatio, formatSeconds } from './format.js';
export { countKeyedWrites, type KeyedTable, type KeyedWriteCount, type RecordedStatement } from './keyed-writes.js';
export { eventLikeName, nameWords, sensitiveData } from './names.js';
export { type AdvisedPolicy, advisedPolicy, type RenderOptions, renderTypeScript, renderYaml } from './render.js';
export { adviseTable, adviseTables, DEFAULT_ADVISE_OPTIONS, policyKey } from './rules.js';
export { cumulativeWindow, sampledWindow, type WorkloadWindow } from './sample.js';
export { classifyWrite, type WriteStatement, writesByKey } from './statements.js';
export type { Advice, AdviceRule, AdviseOptions, TableWorkload, WritesByKey } from './types.js';
