import type { ReadRequest, WriteRequest } from '../adapter.js';
import { stableParams } from '../hash.js';
import type { KeySpace } from '../keys.js';
import { type CacheStore, readCounter } from '../store.js';
import type { Telemetry } from '../telemetry.js';
import { decodeEnvelope, encodeEnvelope, envelopeGenerations, generationHeader } from './envelope.js';
import type { BoundTable, ReadPlan, TableRegistry } from './registry.js';
import { SingleFlight } from './single-flight.js';
import { type StoreGuard, UNAVAILABLE } from './store-guard.js';
import { TransactionFrame } from './transaction.js';

/** Test-only interleaving points (used to force races deterministically). @internal */
export interface EngineHooks {
  /** Awaited after a miss has read the database and before the fill is sent. */
  beforeFill?: (key: string) => Promise<void>;
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
  private readonly background = new Set<Promise<unknown>>();
  /** Invalidations that could not be delivered; reads of these tables bypass until they are. */
  private readonly undelivered = new Set<string>();
  private undeliveredEverything = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelayMs = 100;

  constructor(private readonly deps: EngineDeps) {
    deps.guard.onRecovery(() => {
      this.track(this.deliverUndelivered());
    });
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

  /** Publishes a committed frame: savepoints merge into their parent, the outermost invalidates. */
  async commitTransaction(frame: TransactionFrame): Promise<void> {
    if (frame.parent) {
      frame.mergeIntoParent();
      return;
    }
    await this.invalidate(frame.everything ? undefined : [...frame.tables]);
  }

  /** Drops a rolled-back frame (a savepoint keeps only its evictions in the parent). */
  rollbackTransaction(frame: TransactionFrame): void {
    frame.discardIntoParent();
  }

  /** Serves a read from the cache when its policy allows, else from the database. */
  async read<T>(request: ReadRequest<T>): Promise<T> {
    const plan = request.relations ? this.deps.registry.planRead(request.relations) : undefined;
    if (!plan?.cacheable) return request.execute();
    const { primary } = plan;
    return this.deps.telemetry.operation('get', primary.info.id, primary.policy.pattern, async (scope) => {
      if (request.transaction || request.locking || this.isUndelivered(plan.dependencies)) {
        scope.result('bypass');
        return request.execute();
      }
      const { keys, store, guard } = this.deps;
      const material = `${this.deps.scope?.() ?? ''}\u0001${request.identity}\u0001${stableParams(request.params)}`;
      const entryKey = keys.queryEntry(plan.dependencies, material);
      scope.key(entryKey);
      const counterKeys = [keys.globalGeneration(), ...plan.dependencies.map((id) => keys.queryGeneration(id))];
      const got = await guard.run('get', () => store.getMany([entryKey, ...counterKeys]));
      if (got === UNAVAILABLE) {
        scope.result('bypass');
        return request.execute();
      }
      const generations = got.slice(1).map(readCounter);
      const header = generationHeader(generations);
      const entry = got[0];
      if (entry && envelopeGenerations(entry) === header) {
        try {
          const value = decodeEnvelope(entry) as T;
          scope.result('hit');
          return value;
        } catch {
          // A corrupt or foreign entry is a miss; the fill below overwrites it.
        }
      }
      scope.result('miss');
      const flight = this.flights.run(`${entryKey}|${header}`, () =>
        this.missAndFill(request, plan, entryKey, header, counterKeys, generations),
      );
      const { result, entry: encoded } = await flight.promise;
      if (!flight.joined) return result as T;
      return (encoded ? decodeEnvelope(encoded) : structuredClone(result)) as T;
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
        if (tables) for (const t of tables) this.undelivered.add(t);
        else this.undeliveredEverything = true;
        this.scheduleRetry();
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

  private async missAndFill(
    request: ReadRequest<unknown>,
    plan: ReadPlan,
    entryKey: string,
    header: string,
    counterKeys: readonly string[],
    generations: readonly number[],
  ): Promise<FlightResult> {
    const result = await request.execute();
    const { telemetry } = this.deps;
    const { primary } = plan;
    let entry: Buffer;
    try {
      entry = encodeEnvelope(header, request.toCacheable ? request.toCacheable(result) : result);
    } catch {
      telemetry.oversized(primary.info.id, primary.policy.pattern);
      return { result, entry: undefined };
    }
    if (entry.length > plan.maxValueBytes) {
      telemetry.oversized(primary.info.id, primary.policy.pattern);
      return { result, entry: undefined };
    }
    const guards = counterKeys.map((key, i) => ({ key, expected: generations[i] as number }));
    this.track(this.fill(primary, entryKey, entry, plan.ttlMs, guards));
    return { result, entry };
  }

  private async fill(
    table: BoundTable,
    key: string,
    value: Buffer,
    ttlMs: number,
    guards: { key: string; expected: number }[],
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
    if (tables) for (const t of tables) frame.tables.add(t);
    else frame.everything = true;
  }

  private async bump(tables: readonly string[] | undefined): Promise<boolean> {
    const { keys, store, guard, telemetry, registry } = this.deps;
    const counters = tables
      ? tables.flatMap((id) => [keys.queryGeneration(id), keys.rowGeneration(id)])
      : [keys.globalGeneration()];
    // A counter that was lost restarts above any value it could have had (see docs/keys.md).
    const init = Date.now() * 1000;
    const done = await guard.run('invalidate', () => store.incr(counters, { init }));
    if (done === UNAVAILABLE) return false;
    for (const id of tables ?? []) {
      const table = registry.get(id);
      if (table) telemetry.invalidated(id, table.policy.pattern);
    }
    if (!tables) telemetry.invalidated('*', 'cache-aside');
    return true;
  }

  private isUndelivered(tables: readonly string[]): boolean {
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
    this.retryDelayMs = 100;
  }

  private scheduleRetry(): void {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, 5000);
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
