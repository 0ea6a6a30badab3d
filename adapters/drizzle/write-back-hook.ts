/**
 * Where statements on write-back tables leave the normal path. Called by the session wrapper for
 * every statement: primary-key writes through Drizzle's builders are journaled and acknowledged
 * without touching PostgreSQL; primary-key reads are served from row entries (read your writes);
 * every other write first drains the table's pending writes, then runs synchronously (order kept)
 * and invalidates. Other reads go to the database, which may lag by the flush interval.
 */
import type { Engine } from '../../src/engine/engine.js';
import type { BoundTable } from '../../src/engine/registry.js';
import type { TransactionFrame } from '../../src/engine/transaction.js';
import { PolicyError, WriteBackError } from '../../src/errors.js';
import { writeBackOf } from '../../src/write-back/attach.js';
import type { Fields } from '../../src/write-back/journal.js';
import { fieldValue, rowIdentity } from '../../src/write-back/ops.js';
import { canonicalValue, NOT_EXACT } from '../../src/write-back/pg-types.js';
import type { WriteBackRuntime } from '../../src/write-back/runtime.js';
import type { WriteBackTable } from '../../src/write-back/tables.js';
import type { QueryPlan } from './query-plan.js';
import { type PointRead, parsePointRead } from './sql-scan.js';
import { columnDefaults, type DefaultSpec } from './write-back-columns.js';
import {
  type DriverKind,
  decoderFor,
  driverOf,
  readResult,
  type TextDecoder,
  writeResult,
} from './write-back-driver.js';
import { parseWrite } from './write-back-parse.js';
import { drizzleSink, type SinkSession } from './write-back-sink.js';
import { buildWrites } from './write-back-writes.js';

/** One statement as the session wrapper sees it. */
export interface WriteBackStatement {
  readonly sql: string;
  readonly params: readonly unknown[];
  readonly plan: QueryPlan;
  /** `array` for builder selects and RETURNING (Drizzle maps the rows), `object` otherwise. */
  readonly rowMode: 'array' | 'object';
  /** Drizzle's query type for builder statements; undefined for raw `db.execute`. */
  readonly type: 'select' | 'insert' | 'update' | 'delete' | undefined;
  readonly transaction: TransactionFrame | undefined;
  /** Runs the statement against the database. */
  readonly execute: () => Promise<unknown>;
}

/** The hook of one wrapped session. */
export interface WriteBackHook {
  /** The raw driver result for a statement on a write-back table; undefined when it is not one. */
  handle(statement: WriteBackStatement): Promise<unknown> | undefined;
}

/** What the session wrapper knows about its client. */
export interface WriteBackClient {
  readonly engine: Engine;
  readonly singleConnection: boolean;
  /** The schema module, for column defaults (else taken from the Drizzle client). */
  readonly schema?: Record<string, unknown> | undefined;
}

interface Shared {
  readonly runtime: WriteBackRuntime;
  readonly engine: Engine;
  readonly driver: DriverKind | undefined;
  readonly singleConnection: boolean;
  readonly defaults: Map<string, Map<string, DefaultSpec>>;
  decoder: Promise<TextDecoder> | undefined;
}

const sharedByRuntime = new WeakMap<WriteBackRuntime, Shared>();
/** Parses by SQL text: builders send the same text for every execution of a statement shape. */
const MEMO_LIMIT = 2000;
const writes = new Map<string, ReturnType<typeof parseWrite>>();
const reads = new Map<string, PointRead | null>();

function memo<T>(map: Map<string, T>, key: string, compute: () => T): T {
  if (map.has(key)) return map.get(key) as T;
  const value = compute();
  if (map.size >= MEMO_LIMIT) map.clear();
  map.set(key, value);
  return value;
}
/** Tables drained in a transaction already (keyed by the outermost frame). */
const drainedIn = new WeakMap<TransactionFrame, Set<string>>();

/**
 * The write-back hook of a session, or undefined when the cache has no write-back tables. The
 * root session (`root`) also gives the runtime its database side (and starts the flusher).
 * Throws a PolicyError for schemas write-back cannot serve exactly.
 */
export function writeBackHook(client: WriteBackClient, raw: object, root: boolean): WriteBackHook | undefined {
  const runtime = writeBackOf(client.engine);
  if (!runtime) return undefined;
  let shared = sharedByRuntime.get(runtime);
  if (!shared) {
    const driver = driverOf(raw);
    if (driver === 'node-postgres' && client.singleConnection) {
      throw new PolicyError(
        'write-back needs a connection pool (pg.Pool): its flusher runs transactions of its own next to the application',
        { table: [...runtime.tables.keys()][0] },
      );
    }
    const schema = client.schema ?? (raw as { schema?: { fullSchema?: Record<string, unknown> } }).schema?.fullSchema;
    const defaults = new Map<string, Map<string, DefaultSpec>>();
    for (const t of runtime.tables.values()) defaults.set(t.id, columnDefaults(schema, t.info));
    shared = {
      runtime,
      engine: client.engine,
      driver,
      singleConnection: client.singleConnection,
      defaults,
      decoder: undefined,
    };
    sharedByRuntime.set(runtime, shared);
  }
  if (root && !runtime.attached) runtime.attachSink(drizzleSink(raw as SinkSession));
  const s = shared;
  return { handle: (statement) => handle(s, statement) };
}

function handle(s: Shared, st: WriteBackStatement): Promise<unknown> | undefined {
  const { plan } = st;
  if (plan.kind === 'other') return undefined;
  const { engine, runtime } = s;
  if (plan.relations === null) {
    if (plan.kind !== 'write') return undefined;
    // A write whose targets are unknown may touch any table: apply every pending write first.
    return (async () => {
      await drainTables(s, [...runtime.tables.values()], st.transaction);
      return engine.write({ relations: null, transaction: st.transaction, execute: st.execute });
    })();
  }
  const touched = touchedTables(s, plan);
  if (touched.length === 0) return undefined;
  if (st.transaction || !s.driver) {
    return (async () => {
      await drainTables(s, touched, st.transaction);
      if (plan.kind === 'write')
        return engine.write({ relations: plan.relations, transaction: st.transaction, execute: st.execute });
      return st.execute();
    })();
  }
  if (plan.kind === 'read') {
    if (plan.locking || plan.relations.length !== 1 || st.rowMode !== 'array') return undefined;
    const point = memo(reads, st.sql, () => parsePointRead(st.sql));
    const table = point ? tableOf(s, engine.registry.resolve(point.table)) : undefined;
    return point && table ? serveRead(s, table, point, st) : undefined;
  }
  const parsed =
    st.type !== undefined && st.type !== 'select' && plan.relations.length === 1
      ? memo(writes, st.sql, () => parseWrite(st.sql))
      : null;
  const target = parsed ? tableOf(s, engine.registry.resolve(parsed.table)) : undefined;
  if (parsed && target) return journal(s, target, parsed, st);
  return runSync(s, touched, st);
}

/** The write-back tables a statement reads, or may change (cascades included). */
function touchedTables(s: Shared, plan: Extract<QueryPlan, { kind: 'read' | 'write' }>): WriteBackTable[] {
  const { engine, runtime } = s;
  const relations = plan.relations ?? [];
  let ids: string[];
  if (plan.kind === 'write') ids = engine.registry.planWrite(relations) ?? [...runtime.tables.keys()];
  else ids = relations.map((r) => engine.registry.resolve(r)?.info.id).filter((id): id is string => id !== undefined);
  const out: WriteBackTable[] = [];
  for (const id of new Set(ids)) {
    const t = runtime.table(id);
    if (t) out.push(t);
  }
  return out;
}

function tableOf(s: Shared, bound: BoundTable | undefined): WriteBackTable | undefined {
  return bound ? s.runtime.table(bound.info.id) : undefined;
}

/** Drains tables, once per transaction (entries written later by others are concurrent anyway). */
async function drainTables(
  s: Shared,
  tables: readonly WriteBackTable[],
  frame: TransactionFrame | undefined,
): Promise<void> {
  let done: Set<string> | undefined;
  if (frame) {
    let root = frame;
    while (root.parent) root = root.parent;
    done = drainedIn.get(root);
    if (!done) {
      done = new Set();
      drainedIn.set(root, done);
    }
  }
  for (const t of tables) {
    if (done?.has(t.id)) continue;
    if (frame && s.singleConnection) {
      // On one connection the flusher would wait for this very transaction: refuse instead of hanging.
      const status = (await s.runtime.status()).find((x) => x.table === t.id);
      if (status && status.length > 0) {
        throw new WriteBackError(
          'E_WRITE_BACK_TRANSACTION',
          `write-back table "${t.id}" has ${status.length} pending writes, which cannot be flushed while a transaction holds the only connection; call cache.flush() before the transaction`,
        );
      }
    } else await s.runtime.drain(t);
    done?.add(t.id);
  }
}

/** Drains the tables a write may touch, then runs it against the database and invalidates. */
async function runSync(s: Shared, tables: readonly WriteBackTable[], st: WriteBackStatement): Promise<unknown> {
  await drainTables(s, tables, st.transaction);
  const plan = st.plan as Extract<QueryPlan, { kind: 'write' }>;
  return s.engine.write({ relations: plan.relations, transaction: st.transaction, execute: st.execute });
}

async function journal(
  s: Shared,
  table: WriteBackTable,
  parsed: NonNullable<ReturnType<typeof parseWrite>>,
  st: WriteBackStatement,
): Promise<unknown> {
  const { runtime } = s;
  const built = buildWrites(parsed, {
    table,
    params: st.params,
    normalize: await runtime.normalizeContext(),
    defaults: s.defaults.get(table.id) ?? new Map(),
  });
  if (!built || (built.returning && st.rowMode !== 'array')) return runSync(s, [table], st);
  const outcome = await runtime.write(table, built.writes, { want: built.returning });
  if (outcome.kind === 'sync') return runSync(s, [table], st);
  let count = 0;
  const rows: unknown[][] = [];
  const decode = built.returning ? await decoder(s) : undefined;
  for (const r of outcome.rows) {
    count += r.count;
    if (decode && built.returning && r.count > 0 && r.fields)
      rows.push(decodeRow(decode, table, built.returning, r.fields));
  }
  return writeResult(s.driver as DriverKind, built.command, count, rows);
}

/** Whether an invalidation of `table` could not be delivered to Redis yet (reads then bypass). */
function undelivered(engine: Engine, table: string): boolean {
  return engine.isUndelivered([table]);
}

async function serveRead(s: Shared, table: WriteBackTable, point: PointRead, st: WriteBackStatement): Promise<unknown> {
  if (undelivered(s.engine, table.id)) {
    // Row entries may predate a write whose invalidation is not delivered: apply pending writes, read the database.
    await s.runtime.drain(table);
    return st.execute();
  }
  const pk = table.info.primaryKey;
  const columns = point.columns.map((c) => c.column);
  const keysFit = point.keys.every((k) => Object.keys(k).length === pk.length && pk.every((c) => Object.hasOwn(k, c)));
  if (!keysFit || !columns.every((c) => table.columns.has(c))) return st.execute();
  let limit: number | undefined;
  if (point.limitParam !== undefined) {
    const value = st.params[point.limitParam - 1];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return st.execute();
    limit = value;
  }
  const normalize = await s.runtime.normalizeContext();
  const pks: string[][] = [];
  const seen = new Set<string>();
  for (const key of point.keys) {
    const texts: string[] = [];
    for (const c of pk) {
      const text = canonicalValue(table.columns.get(c)!, st.params[(key[c] as number) - 1], normalize);
      // A key the column type cannot hold matches no row (or fails) in the database too.
      if (text === NOT_EXACT || text === null) return st.execute();
      texts.push(text);
    }
    const id = rowIdentity(texts);
    if (!seen.has(id)) {
      seen.add(id);
      pks.push(texts);
    }
  }
  const rows = await s.runtime.read(table, pks, [...new Set(columns)]);
  if (!rows) return st.execute();
  const decode = await decoder(s);
  let out = rows.filter((r): r is Fields => r !== null).map((r) => decodeRow(decode, table, columns, r));
  if (limit !== undefined) out = out.slice(0, limit);
  return readResult(s.driver as DriverKind, out);
}

function decodeRow(decode: TextDecoder, table: WriteBackTable, columns: readonly string[], fields: Fields): unknown[] {
  return columns.map((c) => {
    const value = fieldValue(fields[`c:${c}`] ?? 'u');
    if (value === undefined)
      throw new WriteBackError('E_WRITE_BACK', `column "${c}" of "${table.id}" is not known yet`);
    return value === null ? null : decode(table.columns.get(c)!.oid, value);
  });
}

function decoder(s: Shared): Promise<TextDecoder> {
  s.decoder ??= decoderFor(s.driver as DriverKind);
  return s.decoder;
}
