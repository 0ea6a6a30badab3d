import type { CounterGuard } from '../store.js';
import type { EngineDeps } from './engine.js';
import { type EntryMeta, withMeta } from './envelope.js';
import {
  combineStrategy,
  entryState,
  FailedRefreshes,
  type FreshnessClock,
  jittered,
  refreshEarly,
  type Strategy,
  slidingExpiry,
} from './freshness.js';
import type { BoundTable } from './registry.js';

/** How a row entry found under the current generations is served (see `RowFreshness.judge`). */
export type RowVerdict = 'fresh' | 'extend' | 'refresh' | 'stale' | 'expired';

/** The metadata and store TTL of a row entry about to be written. */
export interface RowEntryTiming {
  /** Undefined when the table's strategy needs no metadata (fixed TTL, jitter only). */
  readonly meta: EntryMeta | undefined;
  /** How long the store keeps the entry: the (jittered) TTL plus any grace. */
  readonly storeTtlMs: number;
}

/** One row entry a background refresh or extension rewrites, with what guards it. */
export interface RowTarget {
  /** The key values in primary-key column order (what `fetch` takes). */
  readonly values: readonly unknown[];
  /** The encoded primary key. */
  readonly pk: string;
  readonly entryKey: string;
  /** Guards of the write: global and row generations and the row's counter, as read with the entry. */
  readonly guards: readonly CounterGuard[];
}

/** What a row refresh needs from the row cache. @internal */
export interface RowRefreshHost {
  /** Keeps a background promise until `drain`. */
  track(promise: Promise<unknown>): void;
  /** Re-reads rows from the database and fills their entries guarded by `targets`' guards. */
  refill(table: BoundTable, targets: readonly RowTarget[], computeStarted: number): Promise<void>;
}

/**
 * The TTL strategies of row entries (docs/freshness.md), per table: jitter, sliding expiration,
 * early refresh and grace. Judges each row entry a read finds and runs the background refreshes
 * (one per row in flight in this process) and extensions that follow. Generations and row
 * counters are checked before this is asked: a written or invalidated row is never served here.
 */
export class RowFreshness {
  private readonly strategies = new Map<string, Strategy>();
  private readonly refreshing = new Set<string>();
  private readonly extending = new Set<string>();
  private readonly failures = new FailedRefreshes();

  constructor(
    private readonly deps: EngineDeps,
    private readonly clock: FreshnessClock,
  ) {}

  /** The current time of the cache's clock. */
  now(): number {
    return this.clock.now();
  }

  /** The strategy of `table`'s row entries. */
  strategy(table: BoundTable): Strategy {
    let found = this.strategies.get(table.info.id);
    if (!found) {
      found = combineStrategy([table], table.policy.ttlMs);
      this.strategies.set(table.info.id, found);
    }
    return found;
  }

  /** The timing of an entry written now for `table`, its value computed in `computeMs`. */
  timing(table: BoundTable, computeMs: number): RowEntryTiming {
    const strategy = this.strategy(table);
    const ttlMs = jittered(strategy.ttlMs, strategy.jitterMs, this.clock.random);
    if (!strategy.meta) return { meta: undefined, storeTtlMs: ttlMs };
    const now = this.clock.now();
    const meta = { filledAt: now, expiresAt: now + ttlMs, computeMs: Math.max(1, Math.ceil(computeMs)) };
    return { meta, storeTtlMs: ttlMs + strategy.graceMs };
  }

  /**
   * How to serve a row entry: `fresh` as is; `extend` (sliding) or `refresh` (early refresh)
   * served while that runs in the background; `stale` within grace while a refresh runs; `expired`
   * is a miss, and so is a stale entry whose last refresh failed unless the table serves stale on
   * database errors.
   */
  judge(table: BoundTable, entryKey: string, meta: EntryMeta | undefined, now: number): RowVerdict {
    const strategy = this.strategy(table);
    if (!meta) return 'fresh';
    const state = entryState(meta, now, strategy);
    if (state === 'expired') return 'expired';
    if (state === 'stale') {
      const failedBefore = this.failures.failed(entryKey, meta.expiresAt);
      return failedBefore && !strategy.serveStaleOnDbError ? 'expired' : 'stale';
    }
    if (strategy.beta !== undefined && refreshEarly(meta, now, strategy.beta, this.clock.random)) return 'refresh';
    return slidingExpiry(meta, now, strategy) === undefined ? 'fresh' : 'extend';
  }

  /**
   * Refreshes `targets` in the background, one refresh per row in this process. `refill` is
   * called before this returns, so its query is sent before the caller's next statement.
   */
  refresh(table: BoundTable, targets: readonly RowTarget[], expiries: readonly number[], host: RowRefreshHost): void {
    const fresh: RowTarget[] = [];
    const failed = new Map<string, number>();
    for (const [i, target] of targets.entries()) {
      if (this.refreshing.has(target.entryKey)) continue;
      this.refreshing.add(target.entryKey);
      fresh.push(target);
      failed.set(target.entryKey, expiries[i] as number);
    }
    if (fresh.length === 0) return;
    const attributes = { 'db.collection.name': table.info.id, 'tablecache.operation': 'refresh' };
    const work = this.deps.telemetry.background('tablecache.refresh', attributes, async () => {
      try {
        await host.refill(table, fresh, performance.now());
      } catch (error) {
        for (const [entryKey, expiresAt] of failed) this.failures.remember(entryKey, expiresAt);
        throw error;
      }
      for (const entryKey of failed.keys()) this.failures.forget(entryKey);
    });
    host.track(
      work.finally(() => {
        for (const target of fresh) this.refreshing.delete(target.entryKey);
      }),
    );
  }

  /**
   * Sliding expiration of one row entry: rewrites it with a later expiry, same value, guarded
   * like a fill (a write or invalidation since the read makes it a no-op). Not awaited by the hit.
   */
  extend(
    table: BoundTable,
    target: RowTarget,
    entry: Uint8Array,
    header: string,
    meta: EntryMeta,
    now: number,
    track: (p: Promise<unknown>) => void,
  ): void {
    const strategy = this.strategy(table);
    const expiresAt = slidingExpiry(meta, now, strategy);
    const { entryKey } = target;
    if (expiresAt === undefined || this.extending.has(entryKey) || this.refreshing.has(entryKey)) return;
    this.extending.add(entryKey);
    const value = withMeta(entry, header, { ...meta, expiresAt });
    const ttlMs = Math.max(1, expiresAt - now + strategy.graceMs);
    const { guard, store } = this.deps;
    const work = guard.run('extend', () => store.setIfCounters({ key: entryKey, value, ttlMs }, [...target.guards]));
    track(work.finally(() => this.extending.delete(entryKey)));
  }
}
