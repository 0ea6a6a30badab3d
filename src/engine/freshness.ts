import type { ReadRequest, RelationName } from '../adapter.js';
import type { ResolvedTablePolicy } from '../policy/types.js';
import type { CounterGuard } from '../store.js';
import type { EngineDeps } from './engine.js';
import { decodeEnvelope, type EntryMeta, encodeEnvelope, envelopeHeader, withMeta } from './envelope.js';
import type { BoundTable, ReadPlan } from './registry.js';

/** The TTL strategy of one read: the combination of the policies of every relation it reads. */
export interface Strategy {
  /** The TTL (the shortest among the relations). */
  readonly ttlMs: number;
  /** Each fill's TTL is drawn uniformly from `ttlMs ± jitterMs`. */
  readonly jitterMs: number;
  /** How long past its TTL an entry may be served stale; 0 when off. */
  readonly graceMs: number;
  /** Whether a stale entry keeps being served after a refresh failed. */
  readonly serveStaleOnDbError: boolean;
  /** Sliding expiration's maximum age; undefined when off. */
  readonly slidingMaxAgeMs: number | undefined;
  /** Early refresh's beta; undefined when off. */
  readonly beta: number | undefined;
  /** Whether entries carry `EntryMeta` (every strategy but jitter needs the entry's age). */
  readonly meta: boolean;
}

/** Whether an entry found under the current generations is served as is, served stale, or a miss. */
export type EntryState = 'fresh' | 'stale' | 'expired';

/** A read whose entry was looked up: what a refresh, an extension or the drift sampler needs. */
export interface ReadContext {
  readonly request: ReadRequest<unknown>;
  readonly plan: ReadPlan;
  readonly strategy: Strategy;
  readonly entryKey: string;
  /** The generations read before the database is queried (the refresh's stale-set guard). */
  readonly header: string;
  readonly counterKeys: readonly string[];
  readonly generations: readonly number[];
}

/** What the freshness runtime needs from its engine. @internal */
export interface FreshnessHost {
  /** Keeps a background promise until `drain`. */
  track(promise: Promise<unknown>): void;
  /** Writes one entry guarded by counters, counting the fill. */
  fill(table: BoundTable, key: string, value: Buffer, ttlMs: number, guards: CounterGuard[]): Promise<void>;
}

/** An encoded entry and the TTL the store keeps it for (the logical TTL plus any grace). */
export interface BuiltEntry {
  readonly bytes: Buffer;
  readonly storeTtlMs: number;
}

/** The clock and the random source of the TTL strategies (injectable for tests). */
export interface FreshnessClock {
  now: () => number;
  random: () => number;
}

/** Remembered failed refreshes kept at most; beyond it the oldest are forgotten. */
const MAX_FAILURES = 1000;

/** Entries whose last refresh failed (entry key -> the failed entry's expiry), bounded. */
export class FailedRefreshes {
  private readonly failures = new Map<string, number>();

  /** Whether the refresh of the entry that expires at `expiresAt` failed. */
  failed(entryKey: string, expiresAt: number): boolean {
    return this.failures.get(entryKey) === expiresAt;
  }

  /** Records a failed refresh, forgetting the oldest beyond the bound. */
  remember(entryKey: string, expiresAt: number): void {
    if (this.failures.size >= MAX_FAILURES) {
      const oldest = this.failures.keys().next();
      if (!oldest.done) this.failures.delete(oldest.value);
    }
    this.failures.set(entryKey, expiresAt);
  }

  /** Forgets the entry's failure (its refresh succeeded). */
  forget(entryKey: string): void {
    this.failures.delete(entryKey);
  }
}
/** Strategy combinations memoized at most (one per distinct set of relations read). */
const MAX_STRATEGIES = 10_000;
/** A sliding extension rewrites the entry only when it moves the expiry by this share of the TTL. */
const SLIDING_STEP = 1 / 20;

/** A table's jitter in milliseconds for a TTL of `ttlMs`, below the TTL. */
export function jitterMsOf(policy: ResolvedTablePolicy, ttlMs: number): number {
  const jitter = policy.ttlJitter;
  if (!jitter) return 0;
  const ms = 'ms' in jitter ? jitter.ms : jitter.fraction * ttlMs;
  return Math.max(0, Math.min(ms, ttlMs - 1));
}

/** A TTL drawn uniformly from `ttlMs ± jitterMs`, at least 1 ms. */
export function jittered(ttlMs: number, jitterMs: number, random: () => number): number {
  if (jitterMs <= 0) return ttlMs;
  return Math.max(1, Math.round(ttlMs + (2 * random() - 1) * jitterMs));
}

/**
 * Combines the policies of the relations a read reads: the shortest TTL with its table's jitter,
 * the smallest grace (none if one relation has none), sliding only when every relation slides
 * (the smallest maximum age), early refresh when any relation asks for it (the largest beta).
 */
export function combineStrategy(tables: readonly BoundTable[], ttlMs: number): Strategy {
  const shortest = tables.find((t) => t.policy.ttlMs === ttlMs) ?? tables[0];
  const jitterMs = shortest ? jitterMsOf(shortest.policy, ttlMs) : 0;
  let graceMs = Number.POSITIVE_INFINITY;
  let serveStaleOnDbError = true;
  let slidingMaxAgeMs: number | undefined = Number.POSITIVE_INFINITY;
  let beta: number | undefined;
  for (const { policy } of tables) {
    graceMs = Math.min(graceMs, policy.graceMs ?? 0);
    serveStaleOnDbError &&= policy.serveStaleOnDbError === true;
    slidingMaxAgeMs =
      policy.sliding && slidingMaxAgeMs !== undefined ? Math.min(slidingMaxAgeMs, policy.sliding.maxAgeMs) : undefined;
    if (policy.earlyRefresh) beta = Math.max(beta ?? 0, policy.earlyRefresh.beta);
  }
  if (tables.length === 0 || !Number.isFinite(graceMs)) graceMs = 0;
  if (tables.length === 0 || slidingMaxAgeMs === Number.POSITIVE_INFINITY) slidingMaxAgeMs = undefined;
  return {
    ttlMs,
    jitterMs,
    graceMs,
    serveStaleOnDbError: graceMs > 0 && serveStaleOnDbError,
    slidingMaxAgeMs,
    beta,
    meta: graceMs > 0 || slidingMaxAgeMs !== undefined || beta !== undefined,
  };
}

/** Where an entry stands at `now`: fresh before its expiry, stale within grace after it, else expired. */
export function entryState(meta: EntryMeta | undefined, now: number, strategy: Strategy): EntryState {
  // Entries without metadata (fixed TTL, or written before it existed) live exactly as long as the store keeps them.
  if (!meta || now < meta.expiresAt) return 'fresh';
  return strategy.graceMs > 0 && now < meta.expiresAt + strategy.graceMs ? 'stale' : 'expired';
}

/**
 * The XFetch rule (Vattani et al., "Optimal probabilistic cache stampede prevention"): refresh
 * when `now - computeMs * beta * ln(random) >= expiresAt`. The probability grows as expiry nears,
 * and sooner for results that take long to compute.
 */
export function refreshEarly(meta: EntryMeta, now: number, beta: number, random: () => number): boolean {
  return now - meta.computeMs * beta * Math.log(random()) >= meta.expiresAt;
}

/** The expiry a hit at `now` slides an entry to, or undefined when it would not move it enough. */
export function slidingExpiry(meta: EntryMeta, now: number, strategy: Strategy): number | undefined {
  if (strategy.slidingMaxAgeMs === undefined) return undefined;
  const target = Math.min(now + strategy.ttlMs, meta.filledAt + strategy.slidingMaxAgeMs);
  return target - meta.expiresAt >= Math.max(1, strategy.ttlMs * SLIDING_STEP) ? target : undefined;
}

/**
 * The TTL strategies of query entries (docs/freshness.md): jitter, sliding expiration, early
 * refresh (XFetch) and grace (stale-while-revalidate). Decides how an entry found under the
 * current generations is served and runs the background refreshes and extensions that follow.
 * Generations are checked first, always: an invalidated entry is never served, stale or not.
 */
export class Freshness {
  private readonly strategies = new Map<string, Strategy>();
  /** Refreshes in flight, by entry key and generations: one per entry in this process. */
  private readonly refreshing = new Set<string>();
  private readonly extending = new Set<string>();
  private readonly failures = new FailedRefreshes();

  constructor(
    private readonly deps: EngineDeps,
    private readonly host: FreshnessHost,
    private readonly clock: FreshnessClock,
  ) {}

  /** The current time of the cache's clock. */
  now(): number {
    return this.clock.now();
  }

  /** The strategy of a read of `relations` planned as `plan`. */
  strategy(relations: readonly RelationName[], plan: ReadPlan): Strategy {
    let id = '';
    for (const r of relations) id += `${r.schema ?? ''}\u0000${r.name}\u0001`;
    let found = this.strategies.get(id);
    if (!found) {
      const tables: BoundTable[] = [];
      for (const r of relations) {
        const t = this.deps.registry.resolve(r);
        if (t) tables.push(t);
      }
      found = combineStrategy(tables, plan.ttlMs);
      if (this.strategies.size >= MAX_STRATEGIES) this.strategies.clear();
      this.strategies.set(id, found);
    }
    return found;
  }

  /**
   * Encodes a query's result as an entry: the metadata the strategy needs and a jittered TTL
   * (plus grace in the store). Undefined when the result is too large or not encodable (counted).
   */
  build(context: ReadContext, result: unknown, computeMs: number): BuiltEntry | undefined {
    const { request, plan, strategy, header } = context;
    const { primary } = plan;
    const now = this.clock.now();
    const ttlMs = jittered(strategy.ttlMs, strategy.jitterMs, this.clock.random);
    const meta = strategy.meta
      ? { filledAt: now, expiresAt: now + ttlMs, computeMs: Math.max(1, Math.ceil(computeMs)) }
      : undefined;
    let bytes: Buffer;
    try {
      bytes = encodeEnvelope(header, request.toCacheable ? request.toCacheable(result) : result, meta);
    } catch {
      this.deps.telemetry.oversized(primary.info.id, primary.policy.pattern);
      return undefined;
    }
    if (bytes.length > plan.maxValueBytes) {
      this.deps.telemetry.oversized(primary.info.id, primary.policy.pattern);
      return undefined;
    }
    return { bytes, storeTtlMs: ttlMs + strategy.graceMs };
  }

  /**
   * Serves an entry found for `context`, or undefined for a miss. A fresh entry is a hit (a
   * sliding extension or an early refresh may start in the background); an entry within grace
   * is served stale while one refresh runs, unless its last refresh failed and the table does
   * not serve stale on database errors. Entries whose generations differ are always misses.
   */
  serve(context: ReadContext, entry: Uint8Array): { value: unknown; state: 'fresh' | 'stale' } | undefined {
    const head = envelopeHeader(entry);
    if (!head || head.generations !== context.header) return undefined;
    let value: unknown;
    try {
      value = decodeEnvelope(entry);
    } catch {
      // A corrupt or foreign entry is a miss; the fill overwrites it.
      return undefined;
    }
    const { strategy } = context;
    const now = this.clock.now();
    const state = entryState(head.meta, now, strategy);
    if (state === 'expired') return undefined;
    const meta = head.meta;
    if (state === 'stale' && meta) {
      const failedBefore = this.failures.failed(context.entryKey, meta.expiresAt);
      if (failedBefore && !strategy.serveStaleOnDbError) return undefined;
      this.refresh(context, meta);
      return { value, state: 'stale' };
    }
    if (meta) {
      if (strategy.beta !== undefined && refreshEarly(meta, now, strategy.beta, this.clock.random)) {
        this.refresh(context, meta);
      } else this.extend(context, entry, meta, now);
    }
    return { value, state: 'fresh' };
  }

  /**
   * Starts one background refresh of the entry (per entry and generations in this process). The
   * query is sent before this returns, so on a single-connection client it runs before anything
   * the caller does next (never inside a transaction the caller opens afterwards). The fill is
   * guarded by the generations read before the query, like any miss's fill.
   */
  private refresh(context: ReadContext, served: EntryMeta): void {
    const flight = `${context.entryKey}|${context.header}`;
    if (this.refreshing.has(flight)) return;
    this.refreshing.add(flight);
    const { primary } = context.plan;
    const attributes = { 'db.collection.name': primary.info.id, 'tablecache.operation': 'refresh' };
    const work = this.deps.telemetry.background('tablecache.refresh', attributes, async () => {
      const started = performance.now();
      let result: unknown;
      try {
        result = await context.request.execute();
      } catch (error) {
        this.failures.remember(context.entryKey, served.expiresAt);
        throw error;
      }
      this.failures.forget(context.entryKey);
      const built = this.build(context, result, performance.now() - started);
      if (!built) return;
      const guards = context.counterKeys.map((key, i) => ({ key, expected: context.generations[i] as number }));
      await this.host.fill(primary, context.entryKey, built.bytes, built.storeTtlMs, guards);
    });
    this.host.track(work.finally(() => this.refreshing.delete(flight)));
  }

  /**
   * Sliding expiration: rewrites the entry with a later expiry (same value, guarded by the same
   * generations, so an invalidated entry is never revived). Not awaited by the hit.
   */
  private extend(context: ReadContext, entry: Uint8Array, meta: EntryMeta, now: number): void {
    const expiresAt = slidingExpiry(meta, now, context.strategy);
    if (expiresAt === undefined) return;
    const { entryKey, header, counterKeys, generations } = context;
    // A refresh in flight writes a newer value; extending the old one could overwrite it.
    if (this.extending.has(entryKey) || this.refreshing.has(`${entryKey}|${header}`)) return;
    this.extending.add(entryKey);
    const value = withMeta(entry, header, { ...meta, expiresAt });
    const ttlMs = Math.max(1, expiresAt - now + context.strategy.graceMs);
    const guards = counterKeys.map((key, i) => ({ key, expected: generations[i] as number }));
    const { guard, store } = this.deps;
    const work = guard.run('extend', () => store.setIfCounters({ key: entryKey, value, ttlMs }, guards));
    this.host.track(work.finally(() => this.extending.delete(entryKey)));
  }
}
