/**
 * tablecache: a per-table cache for ORM clients (cache-aside, write-through, write-back).
 * @module
 */
export type { ReadRequest, RelationName, WriteRequest } from './adapter.js';
export { type CacheOptions, createCache, type RowKey, type TableCache, type VerifyOptions } from './cache.js';
export type { Catalog, ColumnInfo, TableInfo } from './catalog.js';
export type { Duration } from './duration.js';
export type { Engine } from './engine/engine.js';
export type { TransactionFrame } from './engine/transaction.js';
export {
  CacheClosedError,
  CacheError,
  type CacheErrorOptions,
  errors,
  PolicyError,
  type PolicyLocation,
  StoreError,
  UncacheableValueError,
  WriteBackError,
} from './errors.js';
export { type BoundPolicy, bindPolicy, definePolicy, loadPolicy, validatePolicy } from './policy/index.js';
export type {
  BackpressureMode,
  EarlyRefreshPolicy,
  FlushPolicy,
  Pattern,
  Policy,
  PolicyInput,
  ResolvedTablePolicy,
  SlidingPolicy,
  TableDefaults,
  TableNames,
  TablePolicy,
  TtlJitter,
} from './policy/types.js';
export type { CacheStore, CounterGuard, CounterWrite, IncrOptions, StoreEntry } from './store.js';
export { readCounter } from './store.js';
export type { CacheStats, OperationResult, TableStats, TelemetryOptions, WriteBackStats } from './telemetry.js';
export { journalOf, type WriteBackCapable, type WriteBackJournal } from './write-back/journal.js';
export type { WriteBackOptions } from './write-back/runtime.js';
