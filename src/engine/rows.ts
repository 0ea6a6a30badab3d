import type { RelationName } from '../adapter.js';
import type { TableInfo } from '../catalog.js';
import { CacheError } from '../errors.js';
import { type CounterGuard, type CounterWrite, readCounter } from '../store.js';
import type { EngineDeps } from './engine.js';
import { decodeEnvelope, type EntryMeta, encodeEnvelope, envelopeHeader, generationHeader } from './envelope.js';
import type { BoundTable } from './registry.js';
import type { RowFreshness, RowTarget } from './row-freshness.js';
import { RowKeyCodec } from './row-key.js';
import { UNAVAILABLE } from './store-guard.js';
import type { TransactionFrame } from './transaction.js';

/** A row as the driver returned it: column name -> raw driver value. */
export type RawRow = Record<string, unknown>;

/** A table whose primary-key reads and writes use row entries. */
export interface RowTable {
  /** The table id. */
  readonly id: string;
  /** The table as the adapter described it. */
  readonly info: TableInfo;
  /** Its pattern: cache-aside evicts written rows, write-through publishes them. */
  readonly pattern: 'cache-aside' | 'write-through';
}

/** A primary-key read an adapter recognised (`where pk = $1`, `pk in (...)`, composite keys). */
export interface RowReadRequest<T> {
  /** The table read, from `Engine.rowTable`. */
  readonly table: RowTable;
  /** The keys asked for, each as values in primary-key column order, in the order the query lists them. */
  readonly keys: readonly (readonly unknown[])[];
  /** The transaction the read runs in, if any: such reads never touch the shared cache. */
  readonly transaction: TransactionFrame | undefined;
  /** Reads the full rows of these keys from the database (rows that do not exist are absent). */
  fetch(keys: readonly (readonly unknown[])[]): Promise<RawRow[]>;
  /** Builds the query's result, as the driver would have returned it, from the rows found in key order. */
  assemble(rows: readonly RawRow[]): T;
  /** Runs the original query (bypass). */
  execute(): Promise<T>;
}

/** What a row-learning write returns: the caller's result and every row it wrote, in full. */
export interface WrittenRows<T> {
  /** The result the caller gets (extra RETURNING columns already removed). */
  result: T;
  /** The written rows (RETURNING of every column); undefined when they could not be read. */
  rows: readonly RawRow[] | undefined;
}

/** An INSERT, UPDATE or DELETE of one table whose written rows the adapter can learn. */
export interface RowWriteRequest<T> {
  /** The table written, from `Engine.rowTable`. */
  readonly table: RowTable;
  /** The relations the statement writes, for foreign-key cascades (as in `WriteRequest`). */
  readonly relations: readonly RelationName[];
  /** The transaction the write runs in: row entries are then only evicted, at the outermost commit. */
  readonly transaction: TransactionFrame | undefined;
  /** A delete evicts; inserts and updates publish (write-through) or evict (cache-aside). */
  readonly kind: 'insert' | 'update' | 'delete';
  /** Keys known before the statement runs (primary-key column order), when the SQL names them. */
  readonly knownKeys: readonly (readonly unknown[])[] | undefined;
  /** Runs the statement. */
  execute(): Promise<WrittenRows<T>>;
}

/** What the row cache needs from its engine. @internal */
export interface RowHost {
  /** Keeps a background promise until `drain`. */
  track(promise: Promise<unknown>): void;
  /** Whether reads of these tables must bypass (an invalidation is undelivered). */
  isUndelivered(tables: readonly string[]): boolean;
  /** Records undeliverable invalidations of whole tables, retried in the background. */
  markUndelivered(tables: readonly string[]): void;
  /** Invalidates whole tables (query and row entries), or everything. */
  invalidate(tables: readonly string[] | undefined): Promise<void>;
  /** Bumps query and row generations of `whole` tables and query generations of `queryOnly` ones. */
  bump(whole: readonly string[], queryOnly: readonly string[]): Promise<boolean>;
  /** Writes one entry guarded by counters (the reader's fill). */
  fill(table: BoundTable, key: string, value: Buffer, ttlMs: number, guards: CounterGuard[]): Promise<void>;
}

/** What a write-through writer read and announced before its statement. */
interface Prepared {
  /** Generations header the published rows carry, read before the statement. */
  header: string;
  /** Row counter values after this writer's intent increments, by encoded key. */
  intents: Map<string, number>;
}

/** Row counters live well past any fill that could still be in flight. */
const MIN_COUNTER_TTL_MS = 10 * 60_000;

/**
 * Row entries: one entry per primary key holding the full raw row, in an envelope whose header is
 * `<global generation>,<row generation of the table>`. A per-row counter orders writers and
 * readers' fills: every write increments it, and a fill or publication only lands when the
 * counter still holds the value its author saw (see docs/patterns.md).
 */
export class RowCache {
  private readonly codecs = new Map<string, RowKeyCodec>();

  constructor(
    private readonly deps: EngineDeps,
    private readonly host: RowHost,
    private readonly freshness: RowFreshness,
  ) {
    // A scope partitions query entries by tenant; row entries are shared, so they are off then.
    if (deps.scope) return;
    for (const table of deps.registry.all()) {
      const { pattern } = table.policy;
      if (pattern !== 'cache-aside' && pattern !== 'write-through') continue;
      const codec = RowKeyCodec.of(table.info);
      if (codec) this.codecs.set(table.info.id, codec);
    }
  }

  /** The row table `relation` names, when its point reads and writes can use row entries. */
  table(relation: RelationName): RowTable | undefined {
    const bound = this.deps.registry.resolve(relation);
    if (!bound || !this.codecs.has(bound.info.id)) return undefined;
    return { id: bound.info.id, info: bound.info, pattern: bound.policy.pattern as RowTable['pattern'] };
  }

  /** Serves a primary-key read from row entries, fetching only the missing rows. */
  async read<T>(request: RowReadRequest<T>): Promise<T> {
    const { registry, telemetry } = this.deps;
    const bound = registry.get(request.table.id) as BoundTable;
    const codec = this.codecs.get(bound.info.id) as RowKeyCodec;
    return telemetry.operation('get', bound.info.id, bound.policy.pattern, async (scope) => {
      const wanted = request.transaction ? undefined : uniqueKeys(codec, request.keys);
      if (!wanted || this.host.isUndelivered([bound.info.id])) {
        scope.result('bypass');
        return request.execute();
      }
      const { keys, store, guard } = this.deps;
      const id = bound.info.id;
      const entryKeys = wanted.map((k) => keys.rowEntry(id, k.pk));
      const counterKeys = wanted.map((k) => keys.rowCounter(id, k.pk));
      const got = await guard.run('get', () =>
        store.getMany([keys.globalGeneration(), keys.rowGeneration(id), ...entryKeys, ...counterKeys]),
      );
      // This very call may have ended an outage (and started the recovery quarantine).
      if (got === UNAVAILABLE || this.host.isUndelivered([id])) {
        scope.result('bypass');
        return request.execute();
      }
      const generations = [readCounter(got[0]), readCounter(got[1])];
      const header = generationHeader(generations);
      const guardsOf = (i: number): CounterGuard[] => [
        { key: keys.globalGeneration(), expected: generations[0] as number },
        { key: keys.rowGeneration(id), expected: generations[1] as number },
        { key: counterKeys[i] as string, expected: readCounter(got[2 + wanted.length + i]) },
      ];
      const targetOf = (i: number): RowTarget => {
        const k = wanted[i] as WantedKey;
        return { values: k.values, pk: k.pk, entryKey: entryKeys[i] as string, guards: guardsOf(i) };
      };
      const now = this.freshness.now();
      const rows: (RawRow | undefined)[] = [];
      const missing: number[] = [];
      const refresh: number[] = [];
      const expiries: number[] = [];
      let stale = false;
      for (let i = 0; i < wanted.length; i++) {
        const entry = got[2 + i];
        const found = entry ? decodeRow(entry, header) : undefined;
        const verdict = found ? this.freshness.judge(bound, entryKeys[i] as string, found.meta, now) : 'expired';
        if (!found || verdict === 'expired') {
          rows.push(undefined);
          missing.push(i);
          continue;
        }
        rows.push(found.row);
        if (verdict === 'stale' || verdict === 'refresh') {
          stale ||= verdict === 'stale';
          refresh.push(i);
          expiries.push(found.meta?.expiresAt ?? 0);
        } else if (verdict === 'extend' && found.meta) {
          const track = (p: Promise<unknown>) => this.host.track(p);
          this.freshness.extend(bound, targetOf(i), entry as Uint8Array, header, found.meta, now, track);
        }
      }
      if (missing.length === 0) {
        scope.result(stale ? 'stale' : 'hit');
        if (refresh.length > 0) {
          this.freshness.refresh(bound, refresh.map(targetOf), expiries, {
            track: (p) => this.host.track(p),
            refill: (table, targets, started) => this.refill(table, codec, request, header, targets, started),
          });
        }
        return request.assemble(rows as RawRow[]);
      }
      scope.result('miss');
      // The database is read anyway: rows due for a refresh are read again with the missing ones.
      for (const i of refresh) {
        rows[i] = undefined;
        missing.push(i);
      }
      const started = performance.now();
      const fetched = await request.fetch(missing.map((i) => (wanted[i] as WantedKey).values));
      const computeMs = performance.now() - started;
      const asked = new Set(missing.map((i) => (wanted[i] as WantedKey).pk));
      const byPk = new Map<string, RawRow>();
      for (const row of fetched) {
        const pk = codec.encodeRow(row);
        // A row the keys do not name (a collation that equates different spellings): the
        // database knows better; serve its answer and cache nothing.
        if (pk === undefined || byPk.has(pk) || !asked.has(pk)) return request.execute();
        byPk.set(pk, row);
      }
      for (const i of missing) {
        const row = byPk.get((wanted[i] as WantedKey).pk);
        rows[i] = row;
        if (!row) continue;
        const timing = this.freshness.timing(bound, computeMs);
        const value = this.encode(bound, header, row, timing.meta);
        if (!value) continue;
        this.host.track(this.host.fill(bound, entryKeys[i] as string, value, timing.storeTtlMs, guardsOf(i)));
      }
      return request.assemble(rows.filter((r): r is RawRow => r !== undefined));
    });
  }

  /**
   * A background refresh of row entries: reads the rows again and fills their entries, each
   * guarded by the generations and row counter read with the entry it replaces. A row gone from
   * the database (deleted behind tablecache's back) keeps its entry until its grace ends.
   */
  private async refill<T>(
    bound: BoundTable,
    codec: RowKeyCodec,
    request: RowReadRequest<T>,
    header: string,
    targets: readonly RowTarget[],
    started: number,
  ): Promise<void> {
    const fetched = await request.fetch(targets.map((t) => t.values));
    const computeMs = performance.now() - started;
    const byPk = new Map<string, RawRow>();
    for (const row of fetched) {
      const pk = codec.encodeRow(row);
      if (pk !== undefined) byPk.set(pk, row);
    }
    const fills: Promise<void>[] = [];
    for (const target of targets) {
      const row = byPk.get(target.pk);
      const timing = this.freshness.timing(bound, computeMs);
      const value = row ? this.encode(bound, header, row, timing.meta) : undefined;
      if (value) fills.push(this.host.fill(bound, target.entryKey, value, timing.storeTtlMs, [...target.guards]));
    }
    await Promise.all(fills);
  }

  /**
   * Runs a write that reports the rows it wrote, then evicts them (cache-aside, deletes,
   * transactions) or publishes them (write-through) and invalidates the table's query entries.
   */
  async write<T>(request: RowWriteRequest<T>): Promise<T> {
    const { registry } = this.deps;
    const id = request.table.id;
    const bound = registry.get(id) as BoundTable;
    const codec = this.codecs.get(id) as RowKeyCodec;
    const frame = request.transaction;
    const tables = registry.planWrite(request.relations);
    if (!tables) {
      // A written relation is unknown: everything is invalidated, as for any such write.
      try {
        return (await request.execute()).result;
      } finally {
        if (frame) frame.everything = true;
        else await this.host.invalidate(undefined);
      }
    }
    // A foreign key of the table into itself (a tree with ON DELETE CASCADE, SET NULL, ON UPDATE
    // CASCADE) changes rows the statement does not return: the whole table is invalidated.
    const selfCascade = bound.info.dependents?.includes(id) ?? false;
    const others = selfCascade ? tables : tables.filter((t) => t !== id);
    const publishing = !frame && !selfCascade && bound.policy.pattern === 'write-through' && request.kind !== 'delete';
    const prepared = publishing ? await this.prepare(id, codec, request.knownKeys) : undefined;
    let written: WrittenRows<T>;
    try {
      written = await request.execute();
    } catch (error) {
      // A statement the database rejected changed nothing; any other failure (a lost
      // connection, a timeout) may have committed, so invalidating is the safe answer.
      if (rejectedByDatabase(error)) throw error;
      if (frame) {
        for (const t of tables) {
          frame.tables.add(t);
          frame.wholeTables.add(t);
        }
      } else await this.host.invalidate(tables);
      throw error;
    }
    if (frame) {
      frame.tables.add(id);
      for (const t of others) {
        frame.tables.add(t);
        frame.wholeTables.add(t);
      }
      if (!written.rows) frame.wholeTables.add(id);
      for (const row of written.rows ?? []) {
        const pk = codec.encodeRow(row);
        if (pk === undefined) frame.wholeTables.add(id);
        else frame.rows.push({ table: id, pk, row: undefined });
      }
      return written.result;
    }
    await this.publish(bound, codec, written.rows, others, prepared);
    return written.result;
  }

  /** Evicts one row entry and invalidates the table's query entries. */
  async invalidateRow(id: string, values: readonly unknown[]): Promise<void> {
    const codec = this.codecs.get(id);
    if (!codec) return this.host.invalidate([id]);
    const pk = codec.encode(values);
    if (pk === undefined) {
      throw new CacheError('E_ROW_KEY', `cannot address a row of "${id}" by ${JSON.stringify(values.map(String))}`);
    }
    const bound = this.deps.registry.get(id) as BoundTable;
    await this.evictAndBump(bound.info.id, bound.policy.pattern, [{ table: id, pk }], [], [id]);
  }

  /** Publishes an outermost committed transaction: evicts its rows, bumps its tables' generations. */
  async commit(frame: TransactionFrame): Promise<void> {
    if (frame.everything) return this.host.invalidate(undefined);
    const whole = [...frame.wholeTables];
    const queryOnly = [...frame.tables].filter((t) => !frame.wholeTables.has(t));
    const seen = new Set<string>();
    const rows: { table: string; pk: string }[] = [];
    for (const r of frame.rows) {
      const k = `${r.table}\u0000${r.pk}`;
      if (frame.wholeTables.has(r.table) || seen.has(k) || !this.codecs.has(r.table)) continue;
      seen.add(k);
      rows.push(r);
    }
    if (whole.length + queryOnly.length + rows.length === 0) return;
    const first = this.deps.registry.get((whole[0] ?? queryOnly[0] ?? rows[0]?.table) as string);
    await this.evictAndBump(first?.info.id ?? '*', first?.policy.pattern ?? 'cache-aside', rows, whole, queryOnly);
  }

  private async evictAndBump(
    label: string,
    pattern: BoundTable['policy']['pattern'],
    rows: readonly { table: string; pk: string }[],
    whole: readonly string[],
    queryOnly: readonly string[],
  ): Promise<void> {
    const { keys, store, guard, telemetry, registry } = this.deps;
    await telemetry.operation('invalidate', label, pattern, async (scope) => {
      const items: CounterWrite[] = rows.map((r) => ({
        counter: keys.rowCounter(r.table, r.pk),
        key: keys.rowEntry(r.table, r.pk),
        expected: 0,
        ttlMs: 1,
      }));
      let ttlMs = MIN_COUNTER_TTL_MS;
      for (const r of rows) ttlMs = Math.max(ttlMs, counterTtl(registry.get(r.table) as BoundTable));
      const [evicted, bumped] = await Promise.all([
        items.length > 0
          ? guard.run('evict', () => store.incrThenSetOrDeleteMany(items, { init: counterInit(), ttlMs }), {
              force: true,
            })
          : [],
        this.host.bump(whole, queryOnly),
      ]);
      const lost = new Set<string>();
      if (evicted === UNAVAILABLE) for (const r of rows) lost.add(r.table);
      if (!bumped) for (const t of [...whole, ...queryOnly]) lost.add(t);
      if (lost.size > 0) this.host.markUndelivered([...lost]);
      scope.result(lost.size > 0 ? 'bypass' : 'ok');
    });
  }

  /** Before a write-through statement: reads the generations and announces the known keys. */
  private async prepare(
    id: string,
    codec: RowKeyCodec,
    knownKeys: readonly (readonly unknown[])[] | undefined,
  ): Promise<Prepared | undefined> {
    const { keys, store, guard, hooks, registry } = this.deps;
    const known = knownKeys ? (uniqueKeys(codec, knownKeys) ?? []) : [];
    const ttlMs = counterTtl(registry.get(id) as BoundTable);
    const [generations, intents] = await Promise.all([
      guard.run('get', () => store.getMany([keys.globalGeneration(), keys.rowGeneration(id)])),
      known.length > 0
        ? guard.run('intent', () =>
            store.incr(
              known.map((k) => keys.rowCounter(id, k.pk)),
              { init: counterInit(), ttlMs },
            ),
          )
        : [],
    ]);
    if (generations === UNAVAILABLE || intents === UNAVAILABLE) return undefined;
    if (hooks?.afterIntent) {
      await hooks.afterIntent(
        id,
        known.map((k) => k.pk),
      );
    }
    return {
      header: generationHeader(generations.map(readCounter)),
      intents: new Map(known.map((k, i) => [k.pk, intents[i] as number])),
    };
  }

  /**
   * After a committed write: each written row is set when its counter proves no other writer
   * overlapped (write-through with a generation header), else evicted.
   */
  private async publish(
    bound: BoundTable,
    codec: RowKeyCodec,
    rows: readonly RawRow[] | undefined,
    others: readonly string[],
    prepared: Prepared | undefined,
  ): Promise<void> {
    const { keys, store, guard, telemetry, hooks } = this.deps;
    const id = bound.info.id;
    const init = counterInit();
    const byPk = new Map<string, CounterWrite>();
    let unaddressable = rows === undefined;
    for (const row of rows ?? []) {
      const pk = codec.encodeRow(row);
      if (pk === undefined) {
        unaddressable = true;
        continue;
      }
      const item: CounterWrite = {
        counter: keys.rowCounter(id, pk),
        key: keys.rowEntry(id, pk),
        expected: 0,
        ttlMs: bound.policy.ttlMs,
      };
      // The same key twice in one statement cannot be ordered: evict it.
      const timing = prepared && !byPk.has(pk) ? this.freshness.timing(bound, 1) : undefined;
      const value = prepared && timing ? this.encode(bound, prepared.header, row, timing.meta) : undefined;
      if (prepared && value && timing) {
        item.value = value;
        item.ttlMs = timing.storeTtlMs;
        // With an intent, only our own increment may have happened since; without one, the
        // counter must not have existed (nobody touched the row within the counter's life).
        const intent = prepared.intents.get(pk);
        item.expected = intent === undefined ? 'created' : intent + 1;
      }
      byPk.set(pk, item);
    }
    const items = [...byPk.values()];
    if (hooks?.beforePublish) await hooks.beforePublish(id, [...byPk.keys()]);
    const whole = unaddressable && !others.includes(id) ? [id, ...others] : [...others];
    const queryOnly = whole.includes(id) ? [] : [id];
    await telemetry.operation(prepared ? 'put' : 'invalidate', id, bound.policy.pattern, async (scope) => {
      const [published, bumped] = await Promise.all([
        items.length > 0
          ? guard.run('publish', () => store.incrThenSetOrDeleteMany(items, { init, ttlMs: counterTtl(bound) }), {
              force: true,
            })
          : [],
        this.host.bump(whole, queryOnly),
      ]);
      const lost = new Set<string>();
      if (published === UNAVAILABLE) lost.add(id);
      if (!bumped) for (const t of [...whole, ...queryOnly]) lost.add(t);
      if (lost.size > 0) this.host.markUndelivered([...lost]);
      scope.result(lost.size > 0 ? 'bypass' : 'ok');
    });
  }

  /** A row's entry, or undefined when it is too large to cache (counted). */
  private encode(bound: BoundTable, header: string, row: RawRow, meta: EntryMeta | undefined): Buffer | undefined {
    const { telemetry } = this.deps;
    let value: Buffer;
    try {
      value = encodeEnvelope(header, row, meta);
    } catch {
      telemetry.oversized(bound.info.id, bound.policy.pattern);
      return undefined;
    }
    if (value.length > bound.policy.maxValueBytes) {
      telemetry.oversized(bound.info.id, bound.policy.pattern);
      return undefined;
    }
    return value;
  }
}

interface WantedKey {
  pk: string;
  values: readonly unknown[];
}

/** Encodes and de-duplicates keys in order; undefined when one cannot be encoded. */
function uniqueKeys(codec: RowKeyCodec, keys: readonly (readonly unknown[])[]): WantedKey[] | undefined {
  const out = new Map<string, WantedKey>();
  for (const values of keys) {
    const pk = codec.encode(values);
    if (pk === undefined) return undefined;
    if (!out.has(pk)) out.set(pk, { pk, values });
  }
  return [...out.values()];
}

/** A row entry's row and freshness metadata, or undefined when its generations differ or it is corrupt. */
function decodeRow(entry: Uint8Array, header: string): { row: RawRow; meta: EntryMeta | undefined } | undefined {
  const head = envelopeHeader(entry);
  if (!head || head.generations !== header) return undefined;
  try {
    const row = decodeEnvelope(entry);
    return row && typeof row === 'object' && !Array.isArray(row) ? { row: row as RawRow, meta: head.meta } : undefined;
  } catch {
    return undefined;
  }
}

/** A missing counter restarts far above any value it could have had (see docs/patterns.md). */
function counterInit(): number {
  return Date.now() * 1000;
}

function counterTtl(table: BoundTable): number {
  return Math.max(2 * table.policy.ttlMs, MIN_COUNTER_TTL_MS);
}

/**
 * True when the database itself reported the statement failed (a SQLSTATE error response), so
 * nothing it did was committed. Connection-class errors (08xxx) are not trusted.
 */
export function rejectedByDatabase(error: unknown): boolean {
  const seen = new Set<unknown>();
  let current: unknown = error;
  while (current && typeof current === 'object' && !seen.has(current)) {
    seen.add(current);
    const { code, severity } = current as { code?: unknown; severity?: unknown };
    if (typeof code === 'string' && typeof severity === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
      return !code.startsWith('08');
    }
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}
