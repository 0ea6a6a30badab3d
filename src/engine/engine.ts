import type { ReadRequest, RelationName, WriteRequest } from '../adapter.js';
import { stableParams } from '../hash.js';
import type { KeySpace } from '../keys.js';
import { type CacheStore, type CounterGuard, readCounter } from '../store.js';
import type { OperationKind, OperationScope, Telemetry } from '../telemetry.js';
import { DriftSampler, type DriftSettings } from './drift-sampler.js';
import { decodeEnvelope, envelopeGenerations, generationHeader } from './envelope.js';
import { Freshness, type ReadContext, type Strategy } from './freshness.js';
import type { BoundTable, ReadPlan, TableRegistry } from './registry.js';
import { RowFreshness } from './row-freshness.js';
import { type RawRow, RowCache, type RowReadRequest, type RowTable, type RowWriteRequest } from './rows.js';
import { SingleFlight } from './single-flight.js';
import { type StoreGuard, UNAVAILABLE } from './store-guard.js';
import { TransactionFrame } from './transaction.js';

/** Test-only interleaving points (used to force races deterministically). Not part of the stable API. */
export interface EngineHooks {
  /** Awaited after a miss has read the database and before the fill is sent. */
  beforeFill?: (key: string) => Promise<void>;
  /** Write-through: awaited after a writer announced its known rows, before its statement runs. */
  afterIntent?: (table: string, pks: readonly string[]) => Promise<void>;
  /** Awaited after a row-learning write committed, before its rows are published or evicted. */
  beforePublish?: (table: string, pks: readonly string[]) => Promise<void>;
}

/** Everything an engine needs; assembled by `createCache`. */
export interface EngineDeps {
  store: CacheStore;
  keys: KeySpace;
  registry: TableRegistry;
  telemetry: Telemetry;
  guard: StoreGuard;
  scope: (() => string | undefined) | undefined;
  hooks: EngineHooks | undefined;
  /** After the store comes back from failures, reads bypass it this long (ms). @default 2000 */
  recoveryQuarantineMs?: number;
  /** Cross-process fill lease in milliseconds; 0 disables it. */
  leaseMs?: number;
  /** The clock of the TTL strategies in milliseconds (injectable for tests). @default Date.now */
  now?: () => number;
  /** The random source of jitter, early refresh and sampling, in [0, 1). @default Math.random */
  random?: () => number;
  /** The in-app drift sampler; off when undefined. */
  verify?: DriftSettings | undefined;
}

const LEASE_VALUE = Buffer.from('1');
/** Undelivered invalidations are retried after 50 ms, doubling up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 500;
/** Longer than RETRY_MAX_MS plus a store timeout, so every instance has delivered by then. */
const DEFAULT_QUARANTINE_MS = 2000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What every read of one relations array shares (see `Engine.shapeOf`). */
interface ReadShape {
  readonly plan: ReadPlan;
  readonly kind: OperationKind;
  /** The namespace generation, then the query generation of every dependency. */
  readonly counterKeys: readonly string[];
  readonly strategy: Strategy;
  /** `KeySpace.queryEntryDeps` of the plan's dependencies. */
  readonly deps: string;
}

/** A flight's outcome: the leader's result and, when cacheable, its encoded entry for joiners. */
interface FlightResult {
  result: unknown;
  entry: Buffer | undefined;
}

/**
 * The pattern-independent read and write paths. Reads consult the entry and the generations of
 * every table it depends on in one round trip; writes bump generations after the database
 * committed. The adapter turns ORM calls into ReadRequest/WriteRequest and calls these.
 */
export class Engine {
  private readonly flights = new SingleFlight<FlightResult>();
  /** Read shapes by relations array (null: not cacheable); see `shapeOf`. */
  private readonly shapes = new WeakMap<readonly RelationName[], ReadShape | null>();
  /** Encoded entries of fills not yet acknowledged by the store, by entry key. */
  private readonly pendingFills = new Map<string, Buffer>();
  private readonly background = new Set<Promise<unknown>>();
  /** Invalidations that could not be delivered; reads of these tables bypass until they are. */
  private readonly undelivered = new Set<string>();
  private undeliveredEverything = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = RETRY_FIRST_MS;
  /** Until then, reads bypass the cache: the store just came back (see `recoveryQuarantineMs`). */
  private quarantineUntil = 0;
  private readonly rows: RowCache;
  /** TTL strategies (docs/freshness.md). */
  private readonly freshness: Freshness;
  private readonly sampler: DriftSampler | undefined;

  constructor(private readonly deps: EngineDeps) {
    const random = deps.random ?? Math.random;
    const clock = { now: deps.now ?? Date.now, random };
    this.freshness = new Freshness(
      deps,
      {
        track: (promise) => this.track(promise),
        fill: (table, key, value, ttlMs, guards) => this.fill(table, key, value, ttlMs, guards),
      },
      clock,
    );
    this.sampler =
      deps.verify && deps.verify.rate > 0
        ? new DriftSampler(
            deps,
            { track: (promise) => this.track(promise), invalidate: (tables) => this.invalidate(tables) },
            deps.verify,
            random,
          )
        : undefined;
    this.rows = new RowCache(
      deps,
      {
        track: (promise) => this.track(promise),
        isUndelivered: (tables) => this.isUndelivered(tables),
        markUndelivered: (tables) => this.markUndelivered(tables),
        invalidate: (tables) => this.invalidate(tables),
        bump: (whole, queryOnly) => this.bump(whole, queryOnly),
        fill: (table, key, value, ttlMs, guards) => this.fill(table, key, value, ttlMs, guards),
      },
      new RowFreshness(deps, clock),
    );
    deps.guard.onRecovery(() => {
      // Other instances may hold invalidations they could not deliver during the outage; they
      // retry at least every RETRY_MAX_MS, so reading from the database until then is safe.
      const quarantine = this.deps.recoveryQuarantineMs ?? DEFAULT_QUARANTINE_MS;
      if (quarantine > 0) this.quarantineUntil = performance.now() + quarantine;
      this.track(this.deliverUndelivered());
    });
    deps.store.onServerChange?.(() => this.restartNamespaceGeneration());
    for (const table of deps.registry.all()) {
      deps.keys.addTable(table.info);
      deps.telemetry.registerTable(table.info.id, table.policy.pattern);
    }
  }

  /** The tables this engine knows, with their policies. */
  get registry(): TableRegistry {
    return this.deps.registry;
  }

  /** Starts a transaction frame (nested in `parent` for savepoints). */
  beginTransaction(parent: TransactionFrame | undefined): TransactionFrame {
    return new TransactionFrame(parent);
  }

  /**
   * Publishes a committed frame: savepoints merge into their parent; the outermost evicts the
   * rows it wrote and invalidates its tables' query entries (and row entries where rows are unknown).
   */
  async commitTransaction(frame: TransactionFrame): Promise<void> {
    if (frame.parent) {
      frame.mergeIntoParent();
      return;
    }
    await this.rows.commit(frame);
  }

  /** The table `relation` names when its primary-key reads and writes use row entries. */
  rowTable(relation: RelationName): RowTable | undefined {
    return this.rows.table(relation);
  }

  /** Serves a primary-key read from row entries (see `RowReadRequest`). */
  readRows<T>(request: RowReadRequest<T>): Promise<T> {
    const sampler = this.sampler;
    if (!sampler) return this.rows.read(request);
    return this.readRowsSampled(request, sampler);
  }

  /** Runs a write whose rows the adapter learns, then evicts or publishes exactly those rows. */
  writeRows<T>(request: RowWriteRequest<T>): Promise<T> {
    return this.rows.write(request);
  }

  /**
   * Evicts one row entry (`values` in primary-key column order) and invalidates the table's query
   * entries; for a table without row entries, invalidates the whole table.
   */
  invalidateRow(table: string, values: readonly unknown[]): Promise<void> {
    return this.rows.invalidateRow(table, values);
  }

  /** Drops a rolled-back frame (a savepoint keeps only its evictions in the parent). */
  rollbackTransaction(frame: TransactionFrame): void {
    frame.discardIntoParent();
  }

  /** Serves a read from the cache when its policy allows, else from the database. */
  read<T>(request: ReadRequest<T>): Promise<T> {
    const shape = request.relations ? this.shapeOf(request.relations) : undefined;
    if (!shape) return request.execute();
    return this.deps.telemetry.run(shape.kind, (scope) => this.readCached(request, shape, scope));
  }

  /**
   * The per-plan part of a cacheable read, built once per relations array (the adapter memoizes
   * those by SQL text): the plan, span kind, generation keys, TTL strategy and key prefix.
   */
  private shapeOf(relations: readonly RelationName[]): ReadShape | undefined {
    const known = this.shapes.get(relations);
    if (known !== undefined) return known ?? undefined;
    const plan = this.deps.registry.planRead(relations);
    let shape: ReadShape | null = null;
    if (plan?.cacheable) {
      const { keys, telemetry } = this.deps;
      const { primary } = plan;
      shape = {
        plan,
        kind: telemetry.kind('get', primary.info.id, primary.policy.pattern),
        counterKeys: [keys.globalGeneration(), ...plan.dependencies.map((id) => keys.queryGeneration(id))],
        strategy: this.freshness.strategy(relations, plan),
        deps: keys.queryEntryDeps(plan.dependencies),
      };
    }
    this.shapes.set(relations, shape);
    return shape ?? undefined;
  }

  /**
   * The cached read: one MGET of the entry and its generations, then a hit, or a miss that runs
   * the query (single-flight) and fills in the background. Written without async frames: a hit
   * resolves in the MGET's callback.
   */
  private readCached<T>(request: ReadRequest<T>, shape: ReadShape, scope: OperationScope): Promise<T> {
    const { plan, counterKeys } = shape;
    if (request.transaction || request.locking || this.isUndelivered(plan.dependencies)) {
      scope.result('bypass');
      return request.execute();
    }
    const { keys, store, guard } = this.deps;
    const material = `${this.deps.scope?.() ?? ''}\u0001${request.identity}\u0001${stableParams(request.params)}`;
    const entryKey = keys.queryEntryOf(shape.deps, material);
    scope.key(entryKey);
    const lookup = [entryKey, ...counterKeys];
    return guard
      .run('get', () => store.getMany(lookup))
      .then((got) => {
        // This very call may have ended an outage (and started the recovery quarantine).
        if (got === UNAVAILABLE || this.isUndelivered(plan.dependencies)) {
          scope.result('bypass');
          return request.execute();
        }
        const generations: number[] = new Array(counterKeys.length);
        for (let i = 0; i < generations.length; i++) generations[i] = readCounter(got[i + 1]);
        const header = generationHeader(generations);
        const context: ReadContext = {
          request: request as ReadRequest<unknown>,
          plan,
          strategy: shape.strategy,
          entryKey,
          header,
          counterKeys,
          generations,
        };
        // Generations first: an invalidated entry is a miss whatever its age (docs/freshness.md).
        // A fill of this process still on its way to the store counts as the entry it will be.
        let entry: Uint8Array | null | undefined = got[0];
        let served = entry ? this.freshness.serve(context, entry) : undefined;
        if (!served) {
          entry = this.pendingFills.get(entryKey);
          if (entry) served = this.freshness.serve(context, entry);
        }
        if (entry && served) {
          scope.result(served.state === 'stale' ? 'stale' : 'hit');
          if (served.state === 'fresh') this.sampler?.queryHit(context, entry);
          return served.value as T;
        }
        scope.result('miss');
        const flight = this.flights.run(`${entryKey}|${header}`, () => this.missAndFill(context));
        if (!flight.joined) return flight.promise.then(({ result }) => result as T);
        return flight.promise.then(
          ({ result, entry: encoded }) => (encoded ? decodeEnvelope(encoded) : structuredClone(result)) as T,
        );
      });
  }

  /** Runs a write, then invalidates what it changed (at the outermost commit inside a transaction). */
  async write<T>(request: WriteRequest<T>): Promise<T> {
    const tables = request.relations ? this.deps.registry.planWrite(request.relations) : undefined;
    if (tables && tables.length === 0) return request.execute();
    let result: T;
    try {
      result = await request.execute();
    } catch (error) {
      // The outcome of a failed statement can be unknown (a timeout after the server committed):
      // invalidating is always safe.
      await this.recordWrite(request.transaction, tables);
      throw error;
    }
    await this.recordWrite(request.transaction, tables);
    return result;
  }

  /**
   * Bumps the generations of `tables` (query and row entries), or the namespace-wide one when
   * `tables` is undefined. Undeliverable invalidations are retried, and until then reads of
   * those tables bypass the cache in this process.
   */
  async invalidate(tables: readonly string[] | undefined): Promise<void> {
    if (tables && tables.length === 0) return;
    const first = tables ? this.deps.registry.get(tables[0] as string) : undefined;
    const label = first?.info.id ?? '*';
    const pattern = first?.policy.pattern ?? 'cache-aside';
    await this.deps.telemetry.operation('invalidate', label, pattern, async (scope) => {
      const delivered = await this.bump(tables);
      scope.result(delivered ? 'ok' : 'bypass');
      if (!delivered) {
        if (tables) this.markUndelivered(tables);
        else {
          this.undeliveredEverything = true;
          this.scheduleRetry();
        }
      }
    });
  }

  /** Waits for background work (fills, retries) to settle. */
  async drain(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
    if (this.undelivered.size > 0 || this.undeliveredEverything) await this.deliverUndelivered();
  }

  /** Stops timers; call after drain. */
  stop(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private missAndFill(context: ReadContext): Promise<FlightResult> {
    if ((this.deps.leaseMs ?? 0) <= 0) return this.queryAndFill(context);
    const { entryKey, counterKeys, header } = context;
    return this.waitForLeaseHolder(entryKey, counterKeys, header).then((filledElsewhere) =>
      filledElsewhere
        ? { result: decodeEnvelope(filledElsewhere), entry: filledElsewhere }
        : this.queryAndFill(context),
    );
  }

  private async queryAndFill(context: ReadContext): Promise<FlightResult> {
    const { request, plan, entryKey, counterKeys, generations } = context;
    const started = performance.now();
    const result = await request.execute();
    // The entry carries the strategy's metadata (fill time, expiry, compute time) and jittered TTL.
    // Encoded now, before the caller can touch the result.
    const built = this.freshness.build(context, result, performance.now() - started);
    if (!built) return { result, entry: undefined };
    const guards = counterKeys.map((key, i) => ({ key, expected: generations[i] as number }));
    const bytes = built.bytes;
    // Sent after the caller got its result (a socket write costs as much as a hit here), and
    // served to this process's reads until it lands (see readCached). Tracked: `flush` waits.
    this.pendingFills.set(entryKey, bytes);
    this.track(
      new Promise<void>((resolve) => process.nextTick(resolve))
        .then(() => this.fill(plan.primary, entryKey, bytes, built.storeTtlMs, guards))
        .finally(() => {
          if (this.pendingFills.get(entryKey) === bytes) this.pendingFills.delete(entryKey);
        }),
    );
    return { result, entry: bytes };
  }

  /**
   * `readRows` with the drift sampler: a read served entirely from row entries (neither
   * fetched nor bypassed) is offered to the sampler with the rows it served.
   */
  private async readRowsSampled<T>(request: RowReadRequest<T>, sampler: DriftSampler): Promise<T> {
    let fromCache = true;
    let served: readonly RawRow[] | undefined;
    const result = await this.rows.read<T>({
      table: request.table,
      keys: request.keys,
      transaction: request.transaction,
      fetch: (keys) => {
        fromCache = false;
        return request.fetch(keys);
      },
      assemble: (rows) => {
        served = rows;
        return request.assemble(rows);
      },
      execute: () => {
        fromCache = false;
        return request.execute();
      },
    });
    const table = this.deps.registry.get(request.table.id);
    if (fromCache && served && table) sampler.rowHit(table, served, (keys) => request.fetch(keys));
    return result;
  }

  /**
   * With a lease configured, only one process at a time runs a missing query: the others poll for
   * the entry it fills (valid for the same generations) until the lease runs out, then query
   * themselves. Returns the entry filled by the lease holder, or undefined to run the query here.
   */
  private async waitForLeaseHolder(
    entryKey: string,
    counterKeys: readonly string[],
    header: string,
  ): Promise<Buffer | undefined> {
    const leaseMs = this.deps.leaseMs ?? 0;
    if (leaseMs <= 0) return undefined;
    const { guard, store, keys } = this.deps;
    const lease = { key: keys.lease(entryKey), value: LEASE_VALUE, ttlMs: leaseMs };
    const acquired = await guard.run('lease', () => store.setIfAbsent(lease));
    if (acquired === UNAVAILABLE || acquired) return undefined;
    const deadline = performance.now() + leaseMs;
    const pollMs = Math.max(5, Math.min(50, Math.floor(leaseMs / 20)));
    while (performance.now() < deadline) {
      await sleep(pollMs);
      const got = await guard.run('get', () => store.getMany([entryKey, ...counterKeys]));
      if (got === UNAVAILABLE) return undefined;
      // A write moved the generations: the holder's result is already outdated, query here.
      if (generationHeader(got.slice(1).map(readCounter)) !== header) return undefined;
      const entry = got[0];
      if (entry && envelopeGenerations(entry) === header) return Buffer.from(entry);
    }
    return undefined;
  }

  private async fill(
    table: BoundTable,
    key: string,
    value: Buffer,
    ttlMs: number,
    guards: CounterGuard[],
  ): Promise<void> {
    const hook = this.deps.hooks?.beforeFill;
    if (hook) await hook(key);
    const { guard, store, telemetry } = this.deps;
    const written = await guard.run('fill', () => store.setIfCounters({ key, value, ttlMs }, guards));
    if (written === UNAVAILABLE) return;
    if (written) telemetry.filled(table.info.id, table.policy.pattern);
    else telemetry.fillRejected(table.info.id, table.policy.pattern);
  }

  private async recordWrite(frame: TransactionFrame | undefined, tables: readonly string[] | undefined): Promise<void> {
    if (!frame) {
      await this.invalidate(tables);
      return;
    }
    if (tables) {
      for (const t of tables) {
        frame.tables.add(t);
        frame.wholeTables.add(t);
      }
    } else frame.everything = true;
  }

  /**
   * Bumps the query and row generations of `whole` tables and the query generation of `queryOnly`
   * ones, or the namespace-wide generation when `whole` is undefined. False when undeliverable.
   */
  private async bump(whole: readonly string[] | undefined, queryOnly: readonly string[] = []): Promise<boolean> {
    const { keys, store, guard, telemetry, registry } = this.deps;
    const counters = whole
      ? [
          ...whole.flatMap((id) => [keys.queryGeneration(id), keys.rowGeneration(id)]),
          ...queryOnly.map((id) => keys.queryGeneration(id)),
        ]
      : [keys.globalGeneration()];
    if (counters.length === 0) return true;
    // A counter that was lost restarts above any value it could have had (see docs/keys.md).
    const init = Date.now() * 1000;
    const done = await guard.run('invalidate', () => store.incr(counters, { init }), { force: true });
    if (done === UNAVAILABLE) return false;
    for (const id of whole ? [...whole, ...queryOnly] : []) {
      const table = registry.get(id);
      if (table) telemetry.invalidated(id, table.policy.pattern);
    }
    if (!whole) telemetry.invalidated('*', 'cache-aside');
    return true;
  }

  /**
   * After the store's server changed (a restart, a failover, a restore), its counters may be older
   * than values this process saw, and an entry invalidated since could match them again. The
   * namespace generation jumps above any value it could have had, so every older entry is dead.
   * Throws when the store cannot be reached: the store holds reads and tries again.
   */
  private async restartNamespaceGeneration(): Promise<void> {
    const { keys, store, guard, telemetry } = this.deps;
    const init = Date.now() * 1000;
    const done = await guard.run('invalidate', () => store.incr([keys.globalGeneration()], { init, floor: true }), {
      force: true,
    });
    if (done === UNAVAILABLE) throw new Error('the store did not answer the namespace generation restart');
    telemetry.invalidated('*', 'cache-aside');
  }

  /** Records undeliverable whole-table invalidations; reads of them bypass until retried. */
  private markUndelivered(tables: readonly string[]): void {
    for (const t of tables) this.undelivered.add(t);
    this.scheduleRetry();
  }

  /** Whether an invalidation of one of these tables is waiting to be delivered (reads bypass). */
  isUndelivered(tables: readonly string[]): boolean {
    if (this.quarantineUntil > 0) {
      if (performance.now() < this.quarantineUntil) return true;
      this.quarantineUntil = 0;
    }
    if (this.undeliveredEverything) return true;
    if (this.undelivered.size === 0) return false;
    return tables.some((t) => this.undelivered.has(t));
  }

  private async deliverUndelivered(): Promise<void> {
    if (this.undeliveredEverything) {
      if (!(await this.bump(undefined))) return this.scheduleRetry();
      this.undeliveredEverything = false;
    }
    if (this.undelivered.size > 0) {
      const tables = [...this.undelivered];
      if (!(await this.bump(tables))) return this.scheduleRetry();
      for (const t of tables) this.undelivered.delete(t);
    }
    this.retryDelayMs = RETRY_FIRST_MS;
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, RETRY_MAX_MS);
      this.track(this.deliverUndelivered());
    }, this.retryDelayMs);
    this.retryTimer.unref();
  }

  private track(promise: Promise<unknown>): void {
    const p = promise.catch(() => undefined);
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
  }
}
