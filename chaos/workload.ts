import { between, eq, type SQL, sql, TransactionRollbackError } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import type { TableCache } from '../src/index.js';
import type { Observation, Op, WriteIntent } from './history.js';
import type { Prng } from './prng.js';
import type { KeySpaceConfig, PatternTables } from './tables.js';

/** A Drizzle client wrapped by tablecache. */
export type ChaosDb = NodePgDatabase<Record<string, unknown>>;
type Tx = Parameters<Parameters<ChaosDb['transaction']>[0]>[0];
type Executor = ChaosDb | Tx;

/** One app instance: its own Redis connection, pg pool, cache and wrapped client. */
export interface Instance {
  name: string;
  db: ChaosDb;
  /** Where writes go: `db`, or the unwrapped client in a control run that must find stale reads. */
  writer: ChaosDb;
  cache: TableCache;
}

interface ItemRow {
  id: number;
  version: number;
  val: string;
}

/** The operations of the workload, with their weights. */
export const OPERATIONS = [
  ['read-point', 30],
  ['read-list', 10],
  ['read-join', 5],
  ['read-counter', 8],
  ['insert', 8],
  ['update', 14],
  ['update-raw', 3],
  ['delete', 6],
  ['increment', 8],
  ['tx-commit', 5],
  ['tx-rollback', 3],
] as const;

/** An operation name. */
export type OperationKind = (typeof OPERATIONS)[number][0];

/** Collects operations as they happen. */
export class Recorder {
  readonly ops: Op[] = [];
  private nextId = 1;
  /** Operations that ended with an error (counted even when the history is not kept). */
  failed = 0;
  /** Called with each operation that ended with an error. */
  onError: ((op: Op) => void) | undefined;

  /** `keep: false` (the soak) counts operations without keeping them, so memory stays flat. */
  constructor(private readonly keep = true) {}

  /** How many operations were started. */
  get count(): number {
    return this.nextId - 1;
  }

  /** Starts recording an operation (its start time is now). */
  begin(worker: number, instance: string, kind: string): Op {
    const op: Op = {
      id: this.nextId++,
      worker,
      instance,
      kind,
      start: 0,
      end: 0,
      ok: false,
      writes: [],
      observations: [],
    };
    if (this.keep) this.ops.push(op);
    op.start = performance.now();
    return op;
  }

  /** Ends an operation (its end time is now). */
  end(op: Op, error?: unknown): void {
    op.end = performance.now();
    op.ok = error === undefined;
    if (error !== undefined) {
      op.error = describeError(error);
      this.failed++;
      this.onError?.(op);
    }
  }
}

/** The error's code and first message line, for the report. */
export function describeError(error: unknown): string {
  let e: unknown = error;
  const parts: string[] = [];
  for (let depth = 0; e && depth < 4; depth++) {
    const { code, message } = e as { code?: unknown; message?: unknown };
    parts.push(
      `${typeof code === 'string' ? `${code} ` : ''}${String(message ?? e)
        .split('\n')[0]
        ?.slice(0, 120)}`,
    );
    e = (e as { cause?: unknown }).cause;
  }
  return parts.join(' <- ');
}

/** Everything one operation needs. */
export interface OperationContext {
  rng: Prng;
  instance: Instance;
  set: PatternTables;
  keys: KeySpaceConfig;
  recorder: Recorder;
  worker: number;
}

/** Runs one randomly chosen operation and records it. Never throws. */
export async function runOperation(ctx: OperationContext, kind: OperationKind): Promise<Op> {
  const op = ctx.recorder.begin(ctx.worker, ctx.instance.name, `${kind} ${ctx.set.pattern}`);
  try {
    await OPERATION_IMPLS[kind](ctx, op);
    finish(op.writes, 'ok');
    ctx.recorder.end(op);
  } catch (error) {
    finish(op.writes, isTransaction(kind) ? undefined : 'unknown');
    ctx.recorder.end(op, error);
  }
  return op;
}

function isTransaction(kind: OperationKind): boolean {
  return kind === 'tx-commit' || kind === 'tx-rollback';
}

/** Sets the status of intents that do not have one yet. */
function finish(writes: WriteIntent[], status: WriteIntent['status'] | undefined): void {
  if (!status) return;
  for (const w of writes) if (!w.status) w.status = status;
}

type Impl = (ctx: OperationContext, op: Op) => Promise<void>;

const itemKey = (ctx: OperationContext) => ctx.rng.between(1, ctx.keys.items);
const counterKey = (ctx: OperationContext) => ctx.rng.between(1, ctx.keys.counters);
const token = (op: Op) => `o${op.id}.${op.writes.length}`;

function observeItem(set: PatternTables, key: number, row: ItemRow | undefined, list: boolean): Observation {
  const obs: Observation = { table: set.itemsName, key, list, val: row?.val ?? null };
  if (row && set.itemsModel.ordering === 'version') obs.version = row.version;
  return obs;
}

/** A primary-key read, by the select builder, the relational API or a prepared statement. */
async function readPoint(ctx: OperationContext, op: Op): Promise<void> {
  const { set, instance, rng } = ctx;
  const t = set.items;
  const k = itemKey(ctx);
  const variant = rng.int(3);
  let row: ItemRow | undefined;
  if (variant === 0) {
    row = (await instance.db.select().from(t).where(eq(t.id, k)))[0];
  } else if (variant === 1) {
    const query = instance.db.query as unknown as Record<
      string,
      { findFirst(c: { where: SQL }): Promise<ItemRow | undefined> }
    >;
    row = await (query[set.itemsName] as { findFirst(c: { where: SQL }): Promise<ItemRow | undefined> }).findFirst({
      where: eq(t.id, k),
    });
  } else {
    const prepared = instance.db
      .select({ id: t.id, version: t.version, val: t.val })
      .from(t)
      .where(eq(t.id, sql.placeholder('id')))
      .prepare(`chaos_point_${set.itemsName}`);
    row = (await prepared.execute({ id: k }))[0];
  }
  op.observations.push(observeItem(set, k, row, false));
}

/** A list read: one group, or a range of keys. */
async function readList(ctx: OperationContext, op: Op): Promise<void> {
  const { set, instance, rng, keys } = ctx;
  const t = set.items;
  let wanted: number[];
  let rows: ItemRow[];
  if (rng.int(2) === 0) {
    const g = rng.int(keys.groups);
    wanted = range(1, keys.items).filter((k) => k % keys.groups === g);
    rows = await instance.db.select().from(t).where(eq(t.grp, g)).orderBy(t.id);
  } else {
    const a = rng.between(1, keys.items);
    const b = Math.min(keys.items, a + rng.int(5));
    wanted = range(a, b);
    rows = await instance.db
      .select({ id: t.id, version: t.version, val: t.val })
      .from(t)
      .where(between(t.id, a, b))
      .orderBy(t.id);
  }
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const k of wanted) op.observations.push(observeItem(set, k, byId.get(k), true));
}

/** A join of counters with items: the entry depends on two tables. */
async function readJoin(ctx: OperationContext, op: Op): Promise<void> {
  const { set, instance } = ctx;
  const t = set.items;
  const c = set.counters;
  const rows = await instance.db
    .select({ cid: c.id, n: c.n, id: t.id, version: t.version, val: t.val })
    .from(c)
    .leftJoin(t, eq(t.id, c.id))
    .orderBy(c.id);
  for (const r of rows) {
    op.observations.push({ table: set.countersName, key: r.cid, list: true, n: r.n });
    const row =
      r.id === null || r.val === null || r.version === null ? undefined : { id: r.id, version: r.version, val: r.val };
    op.observations.push(observeItem(set, r.cid, row, true));
  }
}

async function readCounter(ctx: OperationContext, op: Op): Promise<void> {
  const c = ctx.set.counters;
  const k = counterKey(ctx);
  const rows = await ctx.instance.db.select({ n: c.n }).from(c).where(eq(c.id, k));
  op.observations.push({ table: ctx.set.countersName, key: k, list: false, n: rows[0]?.n ?? 0 });
}

/** Inserts (or upserts) one item; the intent is recorded before the statement runs. */
async function insertItem(ctx: OperationContext, op: Op, db: Executor, k: number): Promise<void> {
  const { set, rng, keys } = ctx;
  const t = set.items;
  const val = token(op);
  const intent = pushIntent(op, { table: set.itemsName, key: k, kind: 'put', val });
  const insert = db.insert(t).values({ id: k, version: 0, val, grp: k % keys.groups });
  if (!set.returning) {
    await insert.onConflictDoUpdate({ target: t.id, set: { val } });
    return;
  }
  const rows =
    rng.int(3) === 0
      ? await insert.onConflictDoUpdate({ target: t.id, set: { val } }).returning({ version: t.version })
      : await insert.onConflictDoNothing().returning({ version: t.version });
  applied(intent, rows[0]?.version);
}

async function updateItem(ctx: OperationContext, op: Op, db: Executor, k: number): Promise<void> {
  const { set } = ctx;
  const t = set.items;
  const val = token(op);
  const intent = pushIntent(op, { table: set.itemsName, key: k, kind: 'put', val });
  const update = db.update(t).set({ val }).where(eq(t.id, k));
  if (!set.returning) {
    intent.conditional = true;
    await update;
    return;
  }
  const rows = await update.returning({ version: t.version });
  applied(intent, rows[0]?.version);
}

/** An update through raw SQL (`db.execute`), which the adapter recognises as a write. */
async function updateRaw(ctx: OperationContext, op: Op): Promise<void> {
  const { set, instance } = ctx;
  const k = itemKey(ctx);
  const val = token(op);
  const intent = pushIntent(op, { table: set.itemsName, key: k, kind: 'put', val });
  const result = await instance.writer.execute<{ version: number }>(
    sql`update ${set.items} set val = ${val} where id = ${k} returning version`,
  );
  applied(intent, result.rows[0]?.version);
}

async function deleteItem(ctx: OperationContext, op: Op, db: Executor, k: number): Promise<void> {
  const { set } = ctx;
  const t = set.items;
  const intent = pushIntent(op, { table: set.itemsName, key: k, kind: 'delete' });
  const del = db.delete(t).where(eq(t.id, k));
  if (!set.returning) {
    await del;
    return;
  }
  const rows = await del.returning({ version: t.version });
  applied(intent, rows[0]?.version);
}

async function incrementCounter(ctx: OperationContext, op: Op, db: Executor, k: number): Promise<void> {
  const { set, instance } = ctx;
  pushIntent(op, { table: set.countersName, key: k, kind: 'increment' });
  if (set.incrementThroughCache) {
    const cache = instance.cache as unknown as {
      increment(table: string, pk: unknown, deltas: Record<string, number>): Promise<unknown>;
    };
    await cache.increment(set.countersName, k, { n: 1 });
    return;
  }
  const c = set.counters;
  await db
    .update(c)
    .set({ n: sql`${c.n} + 1` })
    .where(eq(c.id, k));
}

/**
 * A transaction writing two or three items (in key order, so transactions never deadlock each
 * other) and maybe a counter, with a read inside and sometimes a savepoint that rolls back.
 * `tx-rollback` rolls the whole transaction back at the end.
 */
async function transaction(ctx: OperationContext, op: Op, rollback: boolean): Promise<void> {
  const { rng, instance, set } = ctx;
  const count = 2 + rng.int(2);
  const keys = [...new Set(Array.from({ length: count }, () => itemKey(ctx)))].sort((a, b) => a - b);
  const savepointKey = keys.pop();
  let done = false;
  let savepointIntents: WriteIntent[] = [];
  try {
    await instance.writer.transaction(async (tx) => {
      for (const k of keys) await writeOne(ctx, op, tx, k);
      if (rng.int(2) === 0)
        await tx
          .select()
          .from(set.items)
          .where(eq(set.items.id, keys[0] ?? 1));
      if (savepointKey !== undefined) {
        if (rng.int(3) === 0) {
          const before = op.writes.length;
          await tx
            .transaction(async (sp) => {
              await writeOne(ctx, op, sp, savepointKey);
              sp.rollback();
            })
            .catch(() => undefined);
          savepointIntents = op.writes.slice(before);
        } else {
          await writeOne(ctx, op, tx, savepointKey);
        }
      }
      if (!set.incrementThroughCache && rng.int(2) === 0) await incrementCounter(ctx, op, tx, counterKey(ctx));
      if (rollback) tx.rollback();
      done = true;
    });
  } catch (error) {
    // Failed before COMMIT was sent: nothing happened. Failed at COMMIT: unknown.
    finish(op.writes, done ? 'unknown' : 'rolled-back');
    // The rollback this operation asked for is its normal outcome.
    if (rollback && error instanceof TransactionRollbackError) return;
    throw error;
  } finally {
    for (const w of savepointIntents) w.status = 'rolled-back';
  }
  finish(op.writes, 'ok');
}

async function writeOne(ctx: OperationContext, op: Op, db: Executor, k: number): Promise<void> {
  const choice = ctx.rng.int(4);
  if (choice === 0) return insertItem(ctx, op, db, k);
  if (choice === 1) return deleteItem(ctx, op, db, k);
  return updateItem(ctx, op, db, k);
}

const OPERATION_IMPLS: Record<OperationKind, Impl> = {
  'read-point': readPoint,
  'read-list': readList,
  'read-join': readJoin,
  'read-counter': readCounter,
  insert: (ctx, op) => insertItem(ctx, op, ctx.instance.writer, itemKey(ctx)),
  update: (ctx, op) => updateItem(ctx, op, ctx.instance.writer, itemKey(ctx)),
  'update-raw': updateRaw,
  delete: (ctx, op) => deleteItem(ctx, op, ctx.instance.writer, itemKey(ctx)),
  increment: (ctx, op) => incrementCounter(ctx, op, ctx.instance.writer, counterKey(ctx)),
  'tx-commit': (ctx, op) => transaction(ctx, op, false),
  'tx-rollback': (ctx, op) => transaction(ctx, op, true),
};

function pushIntent(op: Op, intent: Omit<WriteIntent, 'status'>): WriteIntent {
  // The status is filled in when the outcome is known.
  const full = intent as WriteIntent;
  op.writes.push(full);
  return full;
}

function applied(intent: WriteIntent, version: number | undefined): void {
  intent.applied = version !== undefined;
  if (version !== undefined) intent.version = version;
}

/** Reads every key of a table set through one instance (point reads and every group), recorded as one op each. */
export async function sweep(ctx: Omit<OperationContext, 'rng'>, label: string): Promise<void> {
  const { set, instance, keys, recorder } = ctx;
  const t = set.items;
  for (let k = 1; k <= keys.items; k++) {
    const op = recorder.begin(-1, instance.name, `${label} ${set.pattern}`);
    try {
      const row = (await instance.db.select().from(t).where(eq(t.id, k)))[0];
      op.observations.push(observeItem(set, k, row, false));
      recorder.end(op);
    } catch (error) {
      recorder.end(op, error);
    }
  }
  for (let k = 1; k <= keys.counters; k++) {
    const op = recorder.begin(-1, instance.name, `${label} ${set.pattern}`);
    try {
      const rows = await instance.db.select({ n: set.counters.n }).from(set.counters).where(eq(set.counters.id, k));
      op.observations.push({ table: set.countersName, key: k, list: false, n: rows[0]?.n ?? 0 });
      recorder.end(op);
    } catch (error) {
      recorder.end(op, error);
    }
  }
  for (let g = 0; g < keys.groups; g++) {
    const op = recorder.begin(-1, instance.name, `${label} ${set.pattern}`);
    try {
      const rows = await instance.db.select().from(t).where(eq(t.grp, g)).orderBy(t.id);
      const byId = new Map(rows.map((r) => [r.id, r]));
      for (let k = 1; k <= keys.items; k++) {
        if (k % keys.groups === g) op.observations.push(observeItem(set, k, byId.get(k), true));
      }
      recorder.end(op);
    } catch (error) {
      recorder.end(op, error);
    }
  }
}

function range(a: number, b: number): number[] {
  return Array.from({ length: b - a + 1 }, (_, i) => a + i);
}
