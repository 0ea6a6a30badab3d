export type { BoundPolicy } from './bind.js';
export { bindPolicy } from './bind.js';
export { definePolicy } from './define.js';
export type { IssueSource, PathSegment } from './issues.js';
export { DIRECTORY_POLICY_FILE, loadPolicy } from './load.js';
export type {
  BackpressureMode,
  EarlyRefreshPolicy,
  FlushPolicy,
  Pattern,
  Policy,
  PolicyInput,
  ResolvedFlushPolicy,
  ResolvedTablePolicy,
  ResolvedTtlJitter,
  SlidingPolicy,
  TableDefaults,
  TableNames,
  TablePolicy,
  TtlJitter,
} from './types.js';
export type { ValidateSource } from './validate.js';
export { validatePolicy } from './validate.js';
