import type { Catalog } from './catalog.js';
import { type Duration, parseDuration } from './duration.js';
import type { DriftSettings } from './engine/drift-sampler.js';
import { Engine, type EngineHooks } from './engine/engine.js';
import { TableRegistry } from './engine/registry.js';
import { StoreGuard } from './engine/store-guard.js';
import { CacheClosedError, type CacheError, CacheError as CacheErrorClass, PolicyError } from './errors.js';
import { KeySpace } from './keys.js';
import { bindPolicy } from './policy/bind.js';
import type { Policy } from './policy/types.js';
import type { CacheStore } from './store.js';
import { type CacheStats, Telemetry, type TelemetryOptions } from './telemetry.js';
// Write-back (issue 4).
import { createWriteBack } from './write-back/attach.js';
import type { WriteBackOptions, WriteBackRuntime } from './write-back/runtime.js';

/** Options of `createCache`. */
export interface CacheOptions extends TelemetryOptions {
  /** Where entries live: `redisStore(...)` or `memoryStore(...)`. */
  store: CacheStore;
  /** The per-table policy (`definePolicy` or `loadPolicy`). */
  policy: Policy;
  /** First segment of every key. @default 'tc' */
  prefix?: string;
  /**
   * Partitions entries by request context (for example the tenant id from AsyncLocalStorage).
   * Required when the database answers differently per user or tenant (row-level security).
   */
  scope?: () => string | undefined;
  /** A store call slower than this is abandoned; the query is served by the database. @default '150ms' */
  storeTimeout?: Duration;
  /** Circuit breaker: consecutive store failures that open it, and how long it stays open. */
  breaker?: { failures?: number; cooldown?: Duration };
  /**
   * Cross-process stampede protection: on a miss, one process takes a lease for this long and runs
   * the query; others wait for its fill instead of querying too. Off by default. @default false
   */
  lease?: Duration | false;
  /**
   * After the store comes back from an outage, reads bypass it this long while every instance
   * delivers the invalidations it could not deliver during the outage. @default '2s'
   */
  recoveryQuarantine?: Duration | false;
  /** Receives store failures and other handled problems. @default a rate-limited console.warn */
  onError?: (error: CacheError) => void;
  /** Test-only interleaving hooks. @internal */
  hooks?: EngineHooks;
  /**
   * In-app drift sampler: re-checks this share of cache hits against the database in the
   * background, counts mismatches (`tablecache.drift`) and invalidates the tables involved.
   * See docs/freshness.md. Off by default.
   */
  verify?: VerifyOptions;
  /** The clock of the TTL strategies, in milliseconds; for tests. @internal */
  now?: () => number;
  /** The random source of jitter, early refresh and sampling, in [0, 1); for tests. @internal */
  random?: () => number;
  /** Write-back settings: the in-app flusher (`worker: false` leaves flushing to `tablecache worker`), timeouts. */
  writeBack?: WriteBackOptions;
}

/** Settings of the in-app drift sampler (`createCache({ verify })`). */
export interface VerifyOptions {
  /** Share of hits re-checked, from 0 to 1: `1 / 10_000` checks one hit in ten thousand. */
  rate: number;
  /**
   * How long a mismatch must persist (the cache still serving the same value under the same
   * generations) before it counts as drift; covers a write through tablecache that is between
   * its commit and its invalidation. @default '1s'
   */
  confirmAfter?: Duration;
}

/** A primary key for `invalidateRow`: one value, values in key column order, or values by column name. */
export type RowKey = string | number | bigint | readonly unknown[] | Readonly<Record<string, unknown>>;

/** The cache: holds the store, the policy and the telemetry; adapters attach ORM clients to it. */
export interface TableCache {
  /** The policy this cache applies. */
  readonly policy: Policy;
  /** Invalidates every entry of one table or several (by id, database name or export name). */
  invalidate(tables: string | readonly string[]): Promise<void>;
  /**
   * Evicts one row entry and invalidates the table's query entries: the remedy for one row
   * changed behind tablecache's back. `pk` is the key value, the values in primary-key column
   * order for a composite key, or an object by column name. Tables without row entries are
   * invalidated whole.
   */
  invalidateRow(table: string, pk: RowKey): Promise<void>;
  /** Invalidates every entry of the namespace. */
  invalidateAll(): Promise<void>;
  /**
   * Write-back tables: adds to numeric columns of one row (`{ views: 1 }`, database column names),
   * journaled like any write; increments of a row before a flush become one UPDATE. Resolves to
   * whether the row exists. `pk` as in `invalidateRow`.
   */
  increment(table: string, pk: RowKey, deltas: Readonly<Record<string, number | bigint | string>>): Promise<boolean>;
  /** In-process figures: hits, misses, invalidations and more per table. */
  stats(): CacheStats;
  /** Completes pending background work (cache fills, undelivered invalidations) and applies pending write-back writes. */
  flush(): Promise<void>;
  /** Drains pending work and releases what the cache opened (not the store's client if passed in). */
  close(): Promise<void>;
  /** Binds the cache to an ORM's schema and returns the engine adapters call. @internal */
  attach(catalog: Catalog): Engine;
}

/** Creates a cache. Attach it to an ORM client with an adapter, e.g. `withCache(db, cache)`. */
export function createCache(options: CacheOptions): TableCache {
  const prefix = options.prefix ?? 'tc';
  const keys = new KeySpace(prefix, options.policy.namespace, options.policy.version);
  const telemetry = new Telemetry(options);
  const onError = options.onError ?? defaultOnError();
  const guard = new StoreGuard(
    {
      timeoutMs: parseDuration(options.storeTimeout ?? '150ms', { field: 'storeTimeout' }),
      failureThreshold: options.breaker?.failures ?? 5,
      cooldownMs: parseDuration(options.breaker?.cooldown ?? '1s', { field: 'breaker.cooldown' }),
      onError,
    },
    telemetry,
  );
  const verify = verifySettings(options.verify);
  let engine: Engine | undefined;
  let writeBack: WriteBackRuntime | undefined;
  let closed = false;

  const requireEngine = (): Engine => {
    if (closed) throw new CacheClosedError();
    if (!engine)
      throw new CacheErrorClass('E_NOT_ATTACHED', 'attach the cache to a client first (withCache(db, cache))');
    return engine;
  };

  return {
    policy: options.policy,
    attach(catalog) {
      if (closed) throw new CacheClosedError();
      if (engine) return engine;
      const bound = bindPolicy(options.policy, catalog);
      const registry = new TableRegistry(catalog, (info) => bound.policyOf(info.id));
      engine = new Engine({
        store: options.store,
        keys,
        registry,
        telemetry,
        guard,
        scope: options.scope,
        hooks: options.hooks,
        leaseMs: options.lease ? parseDuration(options.lease, { field: 'lease' }) : 0,
        recoveryQuarantineMs:
          options.recoveryQuarantine === false
            ? 0
            : parseDuration(options.recoveryQuarantine ?? '2s', { field: 'recoveryQuarantine' }),
        now: options.now,
        random: options.random,
        verify,
      });
      // Write-back (issue 4): the runtime of write-back tables; the adapter attaches its database side.
      try {
        writeBack = createWriteBack({
          engine,
          store: options.store,
          keys,
          telemetry,
          onError,
          policy: options.policy,
          options: options.writeBack,
        });
      } catch (error) {
        engine = undefined;
        throw error;
      }
      return engine;
    },
    async invalidate(tables) {
      const e = requireEngine();
      const ids: string[] = [];
      for (const name of typeof tables === 'string' ? [tables] : tables) {
        const table = e.registry.lookup(name);
        if (!table) throw new CacheErrorClass('E_UNKNOWN_TABLE', `unknown table "${name}"`);
        ids.push(table.info.id);
      }
      await e.invalidate(ids);
    },
    async invalidateRow(name, pk) {
      const e = requireEngine();
      const table = e.registry.lookup(name);
      if (!table) throw new CacheErrorClass('E_UNKNOWN_TABLE', `unknown table "${name}"`);
      const columns = table.info.primaryKey;
      let values: readonly unknown[];
      if (Array.isArray(pk)) values = pk;
      else if (typeof pk === 'object' && pk !== null) {
        const byColumn = pk as Readonly<Record<string, unknown>>;
        const missing = columns.filter((c) => !Object.hasOwn(byColumn, c));
        if (missing.length > 0) {
          throw new CacheErrorClass('E_ROW_KEY', `row key of "${table.info.id}" lacks column(s) ${missing.join(', ')}`);
        }
        values = columns.map((c) => byColumn[c]);
      } else values = [pk];
      await e.invalidateRow(table.info.id, values);
    },
    async invalidateAll() {
      await requireEngine().invalidate(undefined);
    },
    async increment(table, pk, deltas) {
      requireEngine();
      if (!writeBack) {
        throw new CacheErrorClass('E_WRITE_BACK_TABLE', 'no table of this cache uses pattern "write-back"');
      }
      return writeBack.increment(table, pk, deltas);
    },
    stats() {
      return telemetry.stats();
    },
    async flush() {
      await writeBack?.drainAll();
      await engine?.drain();
    },
    async close() {
      if (closed) return;
      closed = true;
      await writeBack?.close();
      if (engine) {
        await engine.drain();
        engine.stop();
      }
      await options.store.close();
    },
  };
}

/** Checks `verify` when the cache is created, so a bad rate fails at startup. */
function verifySettings(verify: VerifyOptions | undefined): DriftSettings | undefined {
  if (verify === undefined) return undefined;
  const { rate } = verify;
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0 || rate > 1) {
    throw new PolicyError(
      `verify.rate must be a number from 0 to 1 (1 / 10000 is one hit in ten thousand), got ${String(rate)}`,
      {
        field: 'verify.rate',
      },
    );
  }
  const confirmMs = parseDuration(verify.confirmAfter ?? '1s', { field: 'verify.confirmAfter' });
  return { rate, confirmMs };
}

function defaultOnError(): (error: CacheError) => void {
  let last = 0;
  let suppressed = 0;
  return (error) => {
    const now = Date.now();
    if (now - last < 10_000) {
      suppressed++;
      return;
    }
    last = now;
    const more = suppressed > 0 ? ` (${suppressed} similar suppressed)` : '';
    suppressed = 0;
    console.warn(`[tablecache] ${error.code}: ${error.message}${more}`);
  };
}
