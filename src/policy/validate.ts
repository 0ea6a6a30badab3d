import { parseDuration } from '../duration.js';
import { PolicyError } from '../errors.js';
import { BACKPRESSURE_MODES, BUILTIN_DEFAULTS, LIMITS, PATTERNS, PRIORITIES } from './constants.js';
import { IssueCollector, type IssueSource, type PathSegment } from './issues.js';
import { didYouMean } from './suggest.js';
import type {
  BackpressureMode,
  Pattern,
  Policy,
  ResolvedFlushPolicy,
  ResolvedTablePolicy,
  ResolvedTtlJitter,
} from './types.js';
import { describe, isRecord, nameProblem, own, quote, truncate } from './values.js';

/** Where a policy came from, so errors can name files (and lines). */
export interface ValidateSource extends IssueSource {}

const TOP_KEYS = ['namespace', 'version', 'defaults', 'tables'];
/** TTL strategies (docs/freshness.md). */
const FRESHNESS_KEYS = ['ttlJitter', 'sliding', 'earlyRefresh', 'grace', 'serveStaleOnDbError'];
const TABLE_KEYS = ['pattern', 'ttl', 'maxValueBytes', 'reads', 'flush', ...FRESHNESS_KEYS];
const DEFAULT_KEYS = ['pattern', 'ttl', 'maxValueBytes', 'flush', ...FRESHNESS_KEYS];
const FLUSH_KEYS = ['every', 'batch', 'maxPending', 'onBackpressure', 'priority'];
const SLIDING_KEYS = ['maxAge'];
const EARLY_REFRESH_KEYS = ['beta'];
/** Largest XFetch beta accepted: beyond it nearly every hit would refresh. */
const MAX_BETA = 10;
/** Duration strings longer than this are certainly malformed; they are not parsed at all. */
const MAX_DURATION_TEXT = 32;

type FlushFields = { -readonly [K in keyof ResolvedFlushPolicy]?: ResolvedFlushPolicy[K] };

/** One entry (`defaults` or a table) as validated, before defaults are applied. */
interface Entry {
  pattern?: Pattern;
  ttlMs?: number;
  maxValueBytes?: number;
  reads?: readonly string[];
  flush?: FlushFields;
  // TTL strategies: `null` is an explicit "off" (`false`, `0`) that overrides `defaults`.
  ttlJitter?: ResolvedTtlJitter | null;
  sliding?: { maxAgeMs: number } | null;
  earlyRefresh?: { beta: number } | null;
  graceMs?: number | null;
  serveStaleOnDbError?: boolean;
}

/** Checks one entry's fields, reporting into `issues`; `table` is the policy key, if a table. */
class EntryReader {
  constructor(
    private readonly issues: IssueCollector,
    private readonly path: readonly PathSegment[],
    private readonly table: string | undefined,
  ) {}

  report(field: readonly PathSegment[], message: string): void {
    this.issues.add([...this.path, ...field], message, this.table);
  }

  /** Reports keys not in `known`, naming the closest known key. */
  unknownKeys(record: Record<string, unknown>, known: readonly string[], at: readonly PathSegment[] = []): void {
    for (const key of Object.keys(record)) {
      if (known.includes(key)) continue;
      const where = [...at, truncate(key)];
      if (key === 'reads' && at.length === 0 && this.path.length === 1 && this.path[0] === 'defaults') {
        this.report(where, '"reads" belongs in a view\'s own entry, not in defaults');
      } else {
        const hint = didYouMean(key, known);
        this.report(where, `unknown key ${quote(key)}${hint || `; known keys: ${known.join(', ')}`}`);
      }
    }
  }

  oneOf<T extends string>(
    record: Record<string, unknown>,
    at: readonly PathSegment[],
    choices: readonly T[],
  ): T | undefined {
    const key = String(at[at.length - 1]);
    const value = own(record, key);
    if (value === undefined) return undefined;
    if (typeof value === 'string' && (choices as readonly string[]).includes(value)) return value as T;
    const hint = typeof value === 'string' ? didYouMean(value, choices) : '';
    this.report(at, `${key} must be one of ${choices.map((c) => `"${c}"`).join(', ')}, got ${describe(value)}${hint}`);
    return undefined;
  }

  integer(record: Record<string, unknown>, at: readonly PathSegment[], min: number, max: number): number | undefined {
    const key = String(at[at.length - 1]);
    const value = own(record, key);
    if (value === undefined) return undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) return value;
    this.report(at, `${key} must be a whole number from ${min} to ${max}, got ${describe(value)}`);
    return undefined;
  }

  duration(record: Record<string, unknown>, at: readonly PathSegment[]): number | undefined {
    const key = String(at[at.length - 1]);
    const value = own(record, key);
    if (value === undefined) return undefined;
    if (typeof value === 'string' && value.length > MAX_DURATION_TEXT) {
      this.report(at, `${key}: invalid duration ${describe(value)}: use seconds or a string like "30s", "5m", "1h"`);
      return undefined;
    }
    try {
      return parseDuration(value);
    } catch (err) {
      if (!(err instanceof PolicyError)) throw err;
      this.report(at, `${key}: ${err.message}`);
      return undefined;
    }
  }

  reads(record: Record<string, unknown>): readonly string[] | undefined {
    const value = own(record, 'reads');
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) {
      this.report(['reads'], `reads must be a list of table names, got ${describe(value)}`);
      return undefined;
    }
    if (value.length > LIMITS.reads) {
      this.report(['reads'], `reads must list at most ${LIMITS.reads} tables, got ${value.length}`);
      return undefined;
    }
    const names = new Set<string>();
    let ok = true;
    value.forEach((item: unknown, i) => {
      const problem =
        typeof item === 'string'
          ? nameProblem(item, LIMITS.tableNameLength)
          : `must be a table name, got ${describe(item)}`;
      if (problem === undefined) names.add(item as string);
      else {
        this.report(['reads', i], `reads[${i}] ${problem}`);
        ok = false;
      }
    });
    return ok ? Object.freeze([...names]) : undefined;
  }

  flush(record: Record<string, unknown>): FlushFields | undefined {
    const value = own(record, 'flush');
    if (value === undefined) return undefined;
    if (!isRecord(value)) {
      this.report(['flush'], `flush must be a mapping of ${FLUSH_KEYS.join(', ')}, got ${describe(value)}`);
      return undefined;
    }
    this.unknownKeys(value, FLUSH_KEYS, ['flush']);
    const out: FlushFields = {};
    const everyMs = this.duration(value, ['flush', 'every']);
    const batch = this.integer(value, ['flush', 'batch'], 1, LIMITS.batch);
    const maxPending = this.integer(value, ['flush', 'maxPending'], 1, LIMITS.maxPending);
    const onBackpressure = this.oneOf<BackpressureMode>(value, ['flush', 'onBackpressure'], BACKPRESSURE_MODES);
    const priority = this.oneOf(value, ['flush', 'priority'], PRIORITIES);
    if (everyMs !== undefined) out.everyMs = everyMs;
    if (batch !== undefined) out.batch = batch;
    if (maxPending !== undefined) out.maxPending = maxPending;
    if (onBackpressure !== undefined) out.onBackpressure = onBackpressure;
    if (priority !== undefined) out.priority = priority;
    return out;
  }

  ttlJitter(record: Record<string, unknown>): ResolvedTtlJitter | null | undefined {
    const value = own(record, 'ttlJitter');
    if (value === undefined) return undefined;
    if (value === false || value === 0) return null;
    if (typeof value === 'number' && Number.isFinite(value) && value > 0 && value < 1) return { fraction: value };
    if (typeof value === 'string') {
      const ms = this.duration(record, ['ttlJitter']);
      return ms === undefined ? undefined : { ms };
    }
    this.report(
      ['ttlJitter'],
      `ttlJitter must be a fraction of the TTL from 0 to below 1 (0.1 = ±10%), a duration string like "30s", or false, got ${describe(value)}`,
    );
    return undefined;
  }

  grace(record: Record<string, unknown>): number | null | undefined {
    const value = own(record, 'grace');
    if (value === false || value === 0) return null;
    return this.duration(record, ['grace']);
  }

  sliding(record: Record<string, unknown>): { maxAgeMs: number } | null | undefined {
    const value = own(record, 'sliding');
    if (value === undefined) return undefined;
    if (value === false) return null;
    if (!isRecord(value)) {
      this.report(['sliding'], `sliding must be a mapping of maxAge, or false, got ${describe(value)}`);
      return undefined;
    }
    this.unknownKeys(value, SLIDING_KEYS, ['sliding']);
    if (own(value, 'maxAge') === undefined) {
      this.report(['sliding', 'maxAge'], 'sliding.maxAge is required: the longest an entry lives after its fill');
      return undefined;
    }
    const maxAgeMs = this.duration(value, ['sliding', 'maxAge']);
    return maxAgeMs === undefined ? undefined : { maxAgeMs };
  }

  earlyRefresh(record: Record<string, unknown>): { beta: number } | null | undefined {
    const value = own(record, 'earlyRefresh');
    if (value === undefined) return undefined;
    if (value === false) return null;
    if (!isRecord(value)) {
      this.report(['earlyRefresh'], `earlyRefresh must be a mapping of beta, or false, got ${describe(value)}`);
      return undefined;
    }
    this.unknownKeys(value, EARLY_REFRESH_KEYS, ['earlyRefresh']);
    const beta = own(value, 'beta');
    if (beta === undefined) return { beta: 1 };
    if (typeof beta === 'number' && Number.isFinite(beta) && beta > 0 && beta <= MAX_BETA) return { beta };
    this.report(
      ['earlyRefresh', 'beta'],
      `beta must be a number above 0 and at most ${MAX_BETA} (1 is the usual choice), got ${describe(beta)}`,
    );
    return undefined;
  }

  boolean(record: Record<string, unknown>, key: string): boolean | undefined {
    const value = own(record, key);
    if (value === undefined || typeof value === 'boolean') return value;
    this.report([key], `${key} must be true or false, got ${describe(value)}`);
    return undefined;
  }

  /** Validates a whole entry; undefined when it is not even a mapping. */
  entry(raw: unknown): Entry | undefined {
    const isTable = this.table !== undefined;
    if (!isRecord(raw)) {
      const what = isTable ? `table ${quote(this.table ?? '')}` : 'defaults';
      this.report(
        [],
        `${what} must be a mapping of ${(isTable ? TABLE_KEYS : DEFAULT_KEYS).join(', ')}, got ${describe(raw)}`,
      );
      return undefined;
    }
    this.unknownKeys(raw, isTable ? TABLE_KEYS : DEFAULT_KEYS);
    const entry: Entry = {};
    const pattern = this.oneOf(raw, ['pattern'], PATTERNS);
    const ttlMs = this.duration(raw, ['ttl']);
    const maxValueBytes = this.integer(raw, ['maxValueBytes'], 1, LIMITS.maxValueBytes);
    const reads = isTable ? this.reads(raw) : undefined;
    const flush = this.flush(raw);
    const ttlJitter = this.ttlJitter(raw);
    const sliding = this.sliding(raw);
    const earlyRefresh = this.earlyRefresh(raw);
    const graceMs = this.grace(raw);
    const serveStaleOnDbError = this.boolean(raw, 'serveStaleOnDbError');
    if (ttlJitter !== undefined) entry.ttlJitter = ttlJitter;
    if (sliding !== undefined) entry.sliding = sliding;
    if (earlyRefresh !== undefined) entry.earlyRefresh = earlyRefresh;
    if (graceMs !== undefined) entry.graceMs = graceMs;
    if (serveStaleOnDbError !== undefined) entry.serveStaleOnDbError = serveStaleOnDbError;
    if (pattern !== undefined) entry.pattern = pattern;
    if (ttlMs !== undefined) entry.ttlMs = ttlMs;
    if (maxValueBytes !== undefined) entry.maxValueBytes = maxValueBytes;
    if (reads !== undefined) entry.reads = reads;
    if (flush !== undefined) entry.flush = flush;
    if (isTable && own(raw, 'pattern') === undefined) {
      this.report(['pattern'], `pattern is required: one of ${PATTERNS.map((p) => `"${p}"`).join(', ')}`);
    }
    if (isTable && pattern !== undefined && pattern !== 'write-back' && own(raw, 'flush') !== undefined) {
      this.report(['flush'], `flush is only allowed with pattern "write-back", but the pattern is "${pattern}"`);
    }
    if (isTable && (pattern === 'none' || pattern === 'write-back')) {
      for (const key of FRESHNESS_KEYS) {
        const value = own(raw, key);
        if (value === undefined || value === false || value === 0) continue;
        this.report(
          [key],
          `${key} only applies to patterns "cache-aside" and "write-through" (cached reads), but the pattern is "${pattern}"`,
        );
      }
    }
    return entry;
  }
}

/**
 * Validates an untrusted policy (from code, JSON or YAML) and applies defaults. Collects every
 * problem and throws one PolicyError listing them, each with its file, table and field.
 */
export function validatePolicy(input: unknown, source: ValidateSource = {}): Policy {
  const issues = new IssueCollector();
  if (!isRecord(input)) {
    issues.add([], `a policy must be a mapping of ${TOP_KEYS.join(', ')}, got ${describe(input)}`);
    return issues.fail(source);
  }
  const top = new EntryReader(issues, [], undefined);
  top.unknownKeys(input, TOP_KEYS);
  const namespace = readNamespace(input, issues);
  const version = readVersion(input, issues);

  const rawDefaults = own(input, 'defaults');
  const defaultsEntry =
    rawDefaults === undefined ? {} : new EntryReader(issues, ['defaults'], undefined).entry(rawDefaults);
  const defaults = resolve(defaultsEntry ?? {}, undefined);
  checkBatch(defaults.flush, defaultsEntry?.flush, ['defaults'], undefined, issues);
  checkFreshness(defaults, defaultsEntry ?? {}, ['defaults'], undefined, issues);

  const tables = new Map<string, ResolvedTablePolicy>();
  const rawTables = own(input, 'tables');
  if (rawTables !== undefined && !isRecord(rawTables)) {
    issues.add(['tables'], `tables must be a mapping from table name to table policy, got ${describe(rawTables)}`);
  } else if (rawTables !== undefined) {
    for (const name of Object.keys(rawTables)) {
      const problem = nameProblem(name, LIMITS.tableNameLength);
      if (problem !== undefined) {
        issues.add(['tables', truncate(name)], `table name ${quote(name)} ${problem}`);
        continue;
      }
      const entry = new EntryReader(issues, ['tables', name], name).entry(rawTables[name]);
      if (entry === undefined || entry.pattern === undefined) continue;
      const resolved = resolve(entry, defaults);
      if (resolved.pattern === 'write-back') checkBatch(resolved.flush, entry.flush, ['tables', name], name, issues);
      if (resolved.pattern === 'cache-aside' || resolved.pattern === 'write-through') {
        checkFreshness(resolved, entry, ['tables', name], name, issues);
      }
      tables.set(name, resolved);
    }
  }

  issues.throwIfAny(source);
  const tableSources = new Map<string, string>();
  for (const name of tables.keys()) {
    const file = source.tableFiles?.get(name) ?? source.file;
    if (file !== undefined) tableSources.set(name, file);
  }
  return {
    namespace,
    version,
    defaults,
    tables,
    source: source.file,
    tableSources,
  };
}

function readNamespace(input: Record<string, unknown>, issues: IssueCollector): string {
  const value = own(input, 'namespace');
  if (value === undefined) {
    issues.add(['namespace'], 'namespace is required: a non-empty string');
    return '';
  }
  if (typeof value !== 'string') {
    issues.add(['namespace'], `namespace must be a non-empty string, got ${describe(value)}`);
    return '';
  }
  const problem = nameProblem(value, LIMITS.namespaceLength);
  if (problem !== undefined) issues.add(['namespace'], `namespace ${problem}`);
  return value;
}

function readVersion(input: Record<string, unknown>, issues: IssueCollector): number {
  const value = own(input, 'version');
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return value === 0 ? 0 : value;
  const rule = `a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`;
  issues.add(
    ['version'],
    value === undefined ? `version is required: ${rule}` : `version must be ${rule}, got ${describe(value)}`,
  );
  return 0;
}

/** Applies `base` (or the built-in defaults when resolving `defaults` itself) under `entry`. */
function resolve(entry: Entry, base: ResolvedTablePolicy | undefined): ResolvedTablePolicy {
  const fallback = base ?? BUILTIN_DEFAULTS;
  const flush: ResolvedFlushPolicy = Object.freeze({ ...fallback.flush, ...entry.flush });
  const resolved: ResolvedTablePolicy = {
    pattern: entry.pattern ?? fallback.pattern,
    ttlMs: entry.ttlMs ?? fallback.ttlMs,
    maxValueBytes: entry.maxValueBytes ?? fallback.maxValueBytes,
    reads: entry.reads,
    flush,
  };
  // Strategies that are off stay absent, so a resolved policy without them looks as it always did.
  const ttlJitter = pick(entry.ttlJitter, base?.ttlJitter);
  const sliding = pick(entry.sliding, base?.sliding);
  const earlyRefresh = pick(entry.earlyRefresh, base?.earlyRefresh);
  const graceMs = pick(entry.graceMs, base?.graceMs);
  const serveStaleOnDbError = entry.serveStaleOnDbError ?? base?.serveStaleOnDbError;
  return Object.freeze({
    ...resolved,
    ...(ttlJitter && { ttlJitter: Object.freeze({ ...ttlJitter }) }),
    ...(sliding && { sliding: Object.freeze({ ...sliding }) }),
    ...(earlyRefresh && { earlyRefresh: Object.freeze({ ...earlyRefresh }) }),
    ...(graceMs && { graceMs }),
    ...(serveStaleOnDbError && { serveStaleOnDbError }),
  });
}

/** The entry's own setting (`null`: explicitly off), else the inherited one. */
function pick<T>(own: T | null | undefined, inherited: T | undefined): T | undefined {
  if (own === null) return undefined;
  return own ?? inherited;
}

/**
 * Cross-field rules of the TTL strategies, checked on the resolved entry: jitter shorter than the
 * TTL, `sliding.maxAge` at least the TTL, `serveStaleOnDbError` only with `grace`.
 */
function checkFreshness(
  resolved: ResolvedTablePolicy,
  given: Entry,
  path: readonly PathSegment[],
  table: string | undefined,
  issues: IssueCollector,
): void {
  const ttl = resolved.ttlMs;
  const jitter = resolved.ttlJitter;
  if (jitter && 'ms' in jitter && jitter.ms >= ttl) {
    const field = given.ttlJitter !== undefined || given.ttlMs === undefined ? ['ttlJitter'] : ['ttl'];
    issues.add(
      [...path, ...field],
      `ttlJitter (±${shownMs(jitter.ms)}) must be shorter than ttl (${shownMs(ttl)})`,
      table,
    );
  }
  const sliding = resolved.sliding;
  if (sliding && sliding.maxAgeMs < ttl) {
    const field = given.sliding !== undefined || given.ttlMs === undefined ? ['sliding', 'maxAge'] : ['ttl'];
    issues.add(
      [...path, ...field],
      `sliding.maxAge (${shownMs(sliding.maxAgeMs)}) must be at least ttl (${shownMs(ttl)})`,
      table,
    );
  }
  if (resolved.serveStaleOnDbError && !resolved.graceMs) {
    const field = given.serveStaleOnDbError !== undefined ? 'serveStaleOnDbError' : 'grace';
    issues.add(
      [...path, field],
      'serveStaleOnDbError needs grace: an expired entry is only kept (and served) for grace after its TTL',
      table,
    );
  }
}

/** Milliseconds as the shortest exact duration: `1h`, `5m`, `30s`, `250ms`. */
function shownMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** A batch larger than `maxPending` could never fill: back-pressure would start first. */
function checkBatch(
  flush: ResolvedFlushPolicy,
  given: FlushFields | undefined,
  path: readonly PathSegment[],
  table: string | undefined,
  issues: IssueCollector,
): void {
  if (given === undefined || flush.batch <= flush.maxPending) return;
  const field = given.batch !== undefined ? 'batch' : 'maxPending';
  issues.add(
    [...path, 'flush', field],
    `flush.batch (${flush.batch}) must not exceed flush.maxPending (${flush.maxPending})`,
    table,
  );
}
