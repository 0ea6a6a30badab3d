import type { Duration } from '../duration.js';

/** How a table is cached. */
export type Pattern = 'cache-aside' | 'write-through' | 'write-back' | 'none';

/** What write-back does when a table's pending writes reach `maxPending`. */
export type BackpressureMode = 'wait' | 'fail' | 'sync';

/** Write-back flusher settings of one table. */
export interface FlushPolicy {
  /** Flush at least this often. @default '1s' */
  every?: Duration;
  /** Flush when this many writes are pending, and apply at most this many per batch. @default 500 */
  batch?: number;
  /** Bound on pending writes per table before back-pressure applies. @default 100000 */
  maxPending?: number;
  /** What a write does past `maxPending`. @default 'wait' */
  onBackpressure?: BackpressureMode;
  /** Under backlog, higher priority tables drain first. @default 'normal' */
  priority?: 'high' | 'normal' | 'low';
}

/**
 * Spread of entry lifetimes: a number below 1 is a fraction of the TTL (`0.1` = ±10%), a string is
 * a duration (`'30s'` = ±30 s). `0` or `false` turns it off. See docs/freshness.md.
 */
export type TtlJitter = number | Exclude<Duration, number> | false;

/** Sliding expiration: every hit extends the entry to `ttl` from now, up to `maxAge` after its fill. */
export interface SlidingPolicy {
  /** The longest an entry lives after it was filled, however often it is read. At least `ttl`. */
  maxAge: Duration;
}

/** Early refresh (XFetch): hits near expiry refresh the entry in the background. */
export interface EarlyRefreshPolicy {
  /** Above 1 refreshes earlier, below 1 later; from 0 (exclusive) to 10. @default 1 */
  beta?: number;
}

/**
 * The policy of one table (or view). Every field but `pattern` may come from `defaults`.
 * `TName` narrows `reads` to the schema's table names when the policy is typed by a schema.
 */
export interface TablePolicy<TName extends string = string> {
  /** The caching pattern. */
  pattern: Pattern;
  /** How long entries live. @default '1h' */
  ttl?: Duration;
  /** Results larger than this many bytes are served uncached (and counted). @default 1048576 */
  maxValueBytes?: number;
  /** For a view: the tables it reads, so its results can be cached and invalidated. */
  reads?: readonly TName[];
  /** Write-back flusher settings (only for `pattern: 'write-back'`). */
  flush?: FlushPolicy;
  /** Randomizes each entry's TTL so entries filled together do not expire together. @default false */
  ttlJitter?: TtlJitter;
  /** Hits extend an entry's life up to a maximum age. @default false */
  sliding?: SlidingPolicy | false;
  /** Refreshes hot entries in the background shortly before they expire (XFetch). @default false */
  earlyRefresh?: EarlyRefreshPolicy | false;
  /** How long after its TTL an entry may still be served while one caller refreshes it. @default false */
  grace?: Duration | false;
  /** With `grace`: keep serving the expired entry (up to `grace`) while the database fails. @default false */
  serveStaleOnDbError?: boolean;
}

/** Table-independent settings every table inherits unless it overrides them (`reads` is per view). */
export type TableDefaults = Partial<Omit<TablePolicy, 'reads'>>;

/**
 * Table names of a Drizzle-like schema module: the keys whose values are tables or views.
 * Structural, so the core needs no ORM import. Without a schema type, any string.
 */
export type TableNames<TSchema> = [TSchema] extends [never]
  ? string
  : {
      [K in keyof TSchema]: TSchema[K] extends { _: { name: string } } ? K : never;
    }[keyof TSchema] &
      string;

/** A policy as written by the user, typed by the schema when one is given. */
export interface PolicyInput<TSchema = never> {
  /** Key segment that separates applications sharing one Redis. */
  namespace: string;
  /** Bump to abandon every entry written under an older version. */
  version: number;
  /** Settings every table inherits. @default { pattern: 'none' } */
  defaults?: TableDefaults;
  /** Per-table settings, keyed by the schema's export name or the table's database name. */
  tables?: { [K in TableNames<TSchema>]?: TablePolicy<TableNames<TSchema>> };
}

/** A validated policy with every default applied; produced by `definePolicy` and `loadPolicy`. */
export interface Policy {
  /** Key segment that separates applications sharing one Redis. */
  readonly namespace: string;
  /** Policy version, part of every key. */
  readonly version: number;
  /** Defaults for tables the policy does not name. */
  readonly defaults: ResolvedTablePolicy;
  /** Per-table settings as written (names not yet resolved against a schema). */
  readonly tables: ReadonlyMap<string, ResolvedTablePolicy>;
  /** The file the policy was read from (for a directory, its `_policy` file), for error messages. */
  readonly source?: string | undefined;
  /** The file each table's entry was read from, when the policy came from files. */
  readonly tableSources?: ReadonlyMap<string, string>;
}

/** One table's settings with defaults applied and durations in milliseconds. */
export interface ResolvedTablePolicy {
  /** The caching pattern. */
  readonly pattern: Pattern;
  /** Entry lifetime in milliseconds. */
  readonly ttlMs: number;
  /** Results larger than this are served uncached. */
  readonly maxValueBytes: number;
  /** For a view: the tables it reads (as written in a `Policy`; catalog ids after `bindPolicy`). */
  readonly reads?: readonly string[] | undefined;
  /** Write-back flusher settings, always complete (unused unless the pattern is write-back). */
  readonly flush: ResolvedFlushPolicy;
  /** TTL jitter as a fraction of the TTL or in milliseconds; undefined when off. */
  readonly ttlJitter?: ResolvedTtlJitter | undefined;
  /** Sliding expiration; undefined when off. */
  readonly sliding?: { readonly maxAgeMs: number } | undefined;
  /** Early refresh (XFetch); undefined when off. */
  readonly earlyRefresh?: { readonly beta: number } | undefined;
  /** Grace period after the TTL in milliseconds; undefined when off. */
  readonly graceMs?: number | undefined;
  /** Whether an expired entry keeps being served within `grace` while the database fails. */
  readonly serveStaleOnDbError?: boolean | undefined;
}

/** TTL jitter with its unit: a fraction of the TTL, or milliseconds. */
export type ResolvedTtlJitter = { readonly fraction: number } | { readonly ms: number };

/** Write-back flusher settings with defaults applied and `every` in milliseconds. */
export type ResolvedFlushPolicy = Readonly<Required<Omit<FlushPolicy, 'every'>> & { everyMs: number }>;
