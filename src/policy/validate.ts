import { parseDuration } from '../duration.js';
import { PolicyError } from '../errors.js';
import { BACKPRESSURE_MODES, BUILTIN_DEFAULTS, LIMITS, PATTERNS, PRIORITIES } from './constants.js';
import { IssueCollector, type IssueSource, type PathSegment } from './issues.js';
import { didYouMean } from './suggest.js';
import type { BackpressureMode, Pattern, Policy, ResolvedFlushPolicy, ResolvedTablePolicy } from './types.js';
import { describe, isRecord, nameProblem, own, quote, truncate } from './values.js';

/** Where a policy came from, so errors can name files (and lines). */
export interface ValidateSource extends IssueSource {}

const TOP_KEYS = ['namespace', 'version', 'defaults', 'tables'];
const TABLE_KEYS = ['pattern', 'ttl', 'maxValueBytes', 'reads', 'flush'];
const DEFAULT_KEYS = ['pattern', 'ttl', 'maxValueBytes', 'flush'];
const FLUSH_KEYS = ['every', 'batch', 'maxPending', 'onBackpressure', 'priority'];
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
  return Object.freeze({
    pattern: entry.pattern ?? fallback.pattern,
    ttlMs: entry.ttlMs ?? fallback.ttlMs,
    maxValueBytes: entry.maxValueBytes ?? fallback.maxValueBytes,
    reads: entry.reads,
    flush,
  });
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
