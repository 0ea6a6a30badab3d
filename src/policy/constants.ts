import type { BackpressureMode, Pattern } from './types.js';

/** Every caching pattern, in documentation order. */
export const PATTERNS: readonly Pattern[] = ['cache-aside', 'write-through', 'write-back', 'none'];
/** Every back-pressure mode of write-back. */
export const BACKPRESSURE_MODES: readonly BackpressureMode[] = ['wait', 'fail', 'sync'];
/** Every flush priority. */
export const PRIORITIES: readonly ('high' | 'normal' | 'low')[] = ['high', 'normal', 'low'];

/** The settings a table gets when neither its entry nor `defaults` say otherwise. */
export const BUILTIN_DEFAULTS = {
  pattern: 'none',
  ttlMs: 3_600_000,
  maxValueBytes: 1_048_576,
  flush: { everyMs: 1000, batch: 500, maxPending: 100_000, onBackpressure: 'wait', priority: 'normal' },
} as const;

/** Bounds enforced by validation. */
export const LIMITS = {
  namespaceLength: 64,
  tableNameLength: 256,
  maxValueBytes: 512 * 1024 * 1024,
  batch: 10_000,
  maxPending: 10_000_000,
  reads: 1000,
  /** Issues kept in one PolicyError; the rest are counted. */
  issues: 100,
  /** Policy files larger than this are rejected unread. */
  fileBytes: 1024 * 1024,
  /** YAML aliases expanded per file: stops "billion laughs" alias bombs. */
  yamlAliases: 100,
} as const;
