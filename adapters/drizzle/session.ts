import { DrizzleQueryError } from 'drizzle-orm';
import type { RelationName } from '../../src/adapter.js';
import type { Engine } from '../../src/engine/engine.js';
import type { RawRow } from '../../src/engine/rows.js';
import type { TransactionFrame } from '../../src/engine/transaction.js';
import {
  type ResultShape,
  readOwnRows,
  resultShapeOf,
  selectByKeys,
  selectResult,
  takeAppendedRows,
  zip,
} from './driver-result.js';
import {
  holdForBegin,
  type ManualTransactionContext,
  manualControl,
  runTransactionControl,
} from './manual-transaction.js';
import { planStatement, type QueryPlan, type StatementOrigin } from './query-plan.js';
import { planRowRead, planRowWrite, type RowReadPlan, type RowWritePlan } from './row-plan.js';
// Write-back (issue 4).
import { writeBackHook } from './write-back-hook.js';

/** Drizzle's session surface that tablecache relies on (pg-core `PgSession`). */
export interface DrizzleSession {
  prepareQuery(query: { sql: string; params: unknown[] }, ...rest: unknown[]): DrizzlePreparedQuery;
  transaction(callback: (tx: DrizzleTransaction) => Promise<unknown>, config?: unknown): Promise<unknown>;
  count?(sql: unknown, token?: unknown): Promise<number>;
  client?: unknown;
}

/** Drizzle's prepared-query surface: `queryWithCache` is where every statement meets the driver. */
export interface DrizzlePreparedQuery {
  queryWithCache(queryString: string, params: unknown[], query: () => Promise<unknown>): Promise<unknown>;
  execute(placeholderValues?: Record<string, unknown>): Promise<unknown>;
}

/** Drizzle's transaction object (a `PgDatabase` with a session and a nesting level). */
export interface DrizzleTransaction {
  session: DrizzleSession;
  dialect: unknown;
  schema: unknown;
  nestedIndex: number;
  transaction(callback: (tx: DrizzleTransaction) => Promise<unknown>): Promise<unknown>;
}

/** State shared by all sessions of one wrapped client. */
export interface ClientContext extends ManualTransactionContext {
  /** True when the client is one connection rather than a pool. */
  singleConnection: boolean;
  /** Write-back (issue 4): the schema module, for column defaults; else read from the Drizzle client. */
  schema?: Record<string, unknown> | undefined;
}

const RAW = Symbol('tablecache.rawSession');
type WrappedSession = DrizzleSession & { [RAW]: DrizzleSession; pendingOrigin: Partial<StatementOrigin> | undefined };

/** The driver result minus its internals (parsers, prototypes), which is what gets cached. */
function cacheableResult(result: unknown): unknown {
  if (!result || typeof result !== 'object') return result;
  // postgres-js hands Drizzle the row array itself (with extra properties); keep it an array.
  if (Array.isArray(result)) return [...result];
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(result)) {
    if (key.startsWith('_') || typeof value === 'function') continue;
    // pg's Field objects are class instances: as plain objects the entry stays on the fast JSON path.
    out[key] = key === 'fields' && Array.isArray(value) ? value.map(plainField) : value;
  }
  return out;
}

/**
 * The cacheable part of an array-mode result (builder selects, relational queries): Drizzle reads
 * only its rows (`result.rows`, or the result itself where the driver returns an array), so the
 * entry keeps only those. Without pg's `fields` metadata the entry is several times smaller, which
 * is most of a hit's decode time.
 */
function cacheableRows(result: unknown): unknown {
  if (!result || typeof result !== 'object') return result;
  if (Array.isArray(result)) return [...result];
  const rows = (result as { rows?: unknown }).rows;
  return Array.isArray(rows) ? { rows } : cacheableResult(result);
}

function plainField(field: unknown): unknown {
  return field && typeof field === 'object' ? { ...field } : field;
}

/** Runs the driver, wrapping its failure as Drizzle does. */
function driverCall(run: () => Promise<unknown>, sql: string, params: unknown[]): () => Promise<unknown> {
  return () => {
    try {
      return run().catch((error: unknown) => {
        throw new DrizzleQueryError(sql, params, error as Error);
      });
    } catch (error) {
      return Promise.reject(new DrizzleQueryError(sql, params, error as Error));
    }
  };
}

/** Wraps a Drizzle session so every statement goes through the engine. */
export function wrapSession(
  session: DrizzleSession,
  context: ClientContext,
  frame: TransactionFrame | undefined,
): DrizzleSession {
  const raw = (session as Partial<WrappedSession>)[RAW] ?? session;
  const wrapped = Object.create(raw) as WrappedSession;
  wrapped[RAW] = raw;
  wrapped.pendingOrigin = undefined;
  const currentFrame = () => frame ?? context.connectionFrame;
  // Raw BEGIN/COMMIT/ROLLBACK outside `db.transaction`, on one connection, open and close a frame.
  const onConnection = context.singleConnection && frame === undefined;
  // Write-back (issue 4): the hook for statements on write-back tables (undefined without any).
  const writeBack = writeBackHook(context, raw, frame === undefined);

  wrapped.prepareQuery = (query, ...rest) => {
    const [fields, , , customResultMapper, metadata] = rest as [
      unknown,
      unknown,
      unknown,
      unknown,
      { type?: StatementOrigin['type']; tables?: string[] } | undefined,
    ];
    const pending = wrapped.pendingOrigin;
    wrapped.pendingOrigin = undefined;
    const plan = planStatement(query.sql, {
      type: metadata?.type,
      tables: metadata?.tables,
      // Raw `db.execute` passes neither fields nor a mapper; builders and relational queries do.
      builder: (pending?.builder ?? false) || Boolean(fields) || Boolean(customResultMapper),
      declared: pending?.declared,
    });
    const rowMode = fields || customResultMapper ? 'array' : 'object';
    const shape = resultShapeOf(raw);
    const rowWrite = shape ? rowWritePlan(query.sql, plan, metadata?.type, rowMode, context.engine) : undefined;
    const rowRead = shape && rowMode === 'array' ? rowReadPlan(query.sql, plan, context.engine) : undefined;
    // Planned before it is prepared: a write whose rows are learned runs with the extended RETURNING.
    const prepared = raw.prepareQuery(rowWrite ? { ...query, sql: rowWrite.sql } : query, ...rest);
    // The identity of the last statement text: a prepared query sends the same text every time.
    let identityOf = '';
    let identity = '';
    prepared.queryWithCache = (queryString, params, run) => {
      try {
        return route(queryString, params, run);
      } catch (error) {
        return Promise.reject(error);
      }
    };
    // Not async: a cache hit resolves with one promise layer less.
    const route = (queryString: string, params: unknown[], run: () => Promise<unknown>): Promise<unknown> => {
      const execute = driverCall(run, rowWrite ? query.sql : queryString, params);
      const control = plan.kind === 'other' && onConnection ? manualControl(context, queryString) : undefined;
      if (plan.kind === 'other' && !control) return execute();
      // A transaction is about to begin on this connection: what is issued now runs after its BEGIN.
      const gate = frame === undefined ? context.gate : undefined;
      if (gate) return gate.then(() => route(queryString, params, run));
      if (control) return runTransactionControl(context, control, execute);
      if (plan.kind === 'other') return execute();
      // Write-back (issue 4): journals, serves or drains statements on write-back tables.
      const journaled = writeBack?.handle({
        sql: queryString,
        params,
        plan,
        rowMode,
        type: metadata?.type,
        transaction: currentFrame(),
        execute,
      });
      if (journaled) return journaled;
      if (plan.kind === 'write') {
        if (rowWrite && plan.relations) {
          // A write-through write announces its rows in the store before its statement: tracked
          // like a cached read, so a transaction opened meanwhile does not receive that statement.
          return trackIssued(
            context,
            currentFrame(),
            context.engine.writeRows({
              table: rowWrite.table,
              relations: plan.relations,
              transaction: currentFrame(),
              kind: rowWrite.kind,
              knownKeys: rowWrite.keys?.map((key) => key.map((i) => params[i - 1])),
              execute: async () => {
                const result = await execute();
                const rows = rowWrite.positions
                  ? readOwnRows(result, rowWrite.columns, rowWrite.positions)
                  : takeAppendedRows(result, rowMode, rowWrite.columns);
                return { result, rows };
              },
            }),
          );
        }
        return context.engine.write({ relations: plan.relations, transaction: currentFrame(), execute });
      }
      if (!plan.relations) return execute();
      const limit = rowRead?.limitParam === undefined ? undefined : params[rowRead.limitParam - 1];
      if (rowRead && shape && (limit === undefined || (Number.isSafeInteger(limit) && (limit as number) >= 0))) {
        return trackIssued(
          context,
          currentFrame(),
          context.engine.readRows({
            table: rowRead.table,
            keys: rowRead.keys.map((key) => key.map((i) => params[i - 1])),
            transaction: currentFrame(),
            fetch: (keys) => fetchRows(raw, rowRead, keys),
            assemble: (rows) => assemble(shape, rowRead, rows, limit as number | undefined),
            execute,
          }),
        );
      }
      if (identityOf !== queryString) {
        identityOf = queryString;
        identity = `${rowMode}\u0001${queryString}`;
      }
      const transaction = currentFrame();
      return trackIssued(
        context,
        transaction,
        context.engine.read({
          relations: plan.relations,
          identity,
          params,
          transaction,
          locking: plan.locking,
          execute,
          toCacheable: rowMode === 'array' ? cacheableRows : cacheableResult,
        }),
      );
    };
    return prepared;
  };

  if (raw.count) {
    const rawCount = raw.count;
    wrapped.count = (sql, token) => {
      wrapped.pendingOrigin = { builder: true };
      try {
        return rawCount.call(wrapped, sql, token);
      } finally {
        wrapped.pendingOrigin = undefined;
      }
    };
  }

  wrapped.transaction = async (callback, config) => {
    const txFrame = context.engine.beginTransaction(undefined);
    const onConnection = context.singleConnection;
    if (onConnection) context.connectionFrame = txFrame;
    // Reads and writes issued before this transaction would otherwise see its uncommitted writes,
    // or join it and be rolled back with it.
    const held = onConnection && frame === undefined ? holdForBegin(context) : undefined;
    const open = held ? await held : NO_HOLD;
    let callbackSettled = false;
    let result: unknown;
    try {
      result = await raw.transaction.call(
        wrapped,
        async (tx) => {
          open();
          const value = await callback(wrapTransaction(tx, context, txFrame));
          callbackSettled = true;
          return value;
        },
        config,
      );
    } catch (error) {
      open();
      if (onConnection) context.connectionFrame = undefined;
      // The callback finished but COMMIT failed: the outcome is unknown, so invalidate anyway.
      if (callbackSettled) await context.engine.commitTransaction(txFrame);
      else context.engine.rollbackTransaction(txFrame);
      throw error;
    }
    if (onConnection) context.connectionFrame = undefined;
    await context.engine.commitTransaction(txFrame);
    return result;
  };

  return wrapped;
}

const NO_HOLD = (): void => {};

/** Remembers a cached read or row write issued outside a transaction on a single connection until it settles. */
function trackIssued<T>(context: ClientContext, frame: TransactionFrame | undefined, read: Promise<T>): Promise<T> {
  if (!context.singleConnection || frame) return read;
  context.reads ??= new Set();
  const reads = context.reads;
  reads.add(read);
  const done = () => reads.delete(read);
  read.then(done, done);
  return read;
}

/** The row-entry plan of a builder select that reads a row table by primary key. */
function rowReadPlan(sql: string, plan: QueryPlan, engine: Engine): RowReadPlan | undefined {
  if (plan.kind !== 'read' || plan.locking || plan.relations?.length !== 1) return undefined;
  return planRowRead(sql, engine);
}

/** The row-learning plan of a builder write, when its result mode fits (array mode = own RETURNING). */
function rowWritePlan(
  sql: string,
  plan: QueryPlan,
  type: StatementOrigin['type'],
  rowMode: 'array' | 'object',
  engine: Engine,
): RowWritePlan | undefined {
  if (plan.kind !== 'write' || !plan.relations || (type !== 'insert' && type !== 'update' && type !== 'delete')) {
    return undefined;
  }
  const rowWrite = planRowWrite(sql, plan.relations, engine);
  return rowWrite && rowWrite.returning === (rowMode === 'array') ? rowWrite : undefined;
}

/** Reads full rows by primary key through the unwrapped session, as raw driver values. */
async function fetchRows(
  session: DrizzleSession,
  plan: RowReadPlan,
  keys: readonly (readonly unknown[])[],
): Promise<RawRow[]> {
  const query = selectByKeys(plan.table.info, keys);
  const columns = plan.table.info.columns.map((c) => c.name);
  // A custom result mapper that keeps rows as they are: array mode, raw values.
  const prepared = session.prepareQuery(query, undefined, undefined, true, (rows: unknown[]) => rows);
  let rows: unknown;
  try {
    rows = await prepared.execute();
  } catch (error) {
    // Already wrapped when the session's own queryWithCache ran it: wrap once, as Drizzle does.
    if (error instanceof DrizzleQueryError) throw error;
    throw new DrizzleQueryError(query.sql, query.params, error as Error);
  }
  return (rows as unknown[][]).map((row) => zip(columns, row));
}

/** The raw result the driver would have returned for the point read, from rows in key order. */
function assemble(shape: ResultShape, plan: RowReadPlan, rows: readonly RawRow[], limit: number | undefined): unknown {
  const kept = limit === undefined ? rows : rows.slice(0, limit);
  return selectResult(
    shape,
    kept.map((row) => plan.columns.map((c) => row[c])),
  );
}

/** Marks the next statement a session prepares as a raw read of the declared relations. */
export function declareNextStatement(session: DrizzleSession, declared: readonly RelationName[]): void {
  (session as Partial<WrappedSession>).pendingOrigin = { declared };
}

/** Rebuilds a Drizzle transaction object around a wrapped session bound to `frame`. */
export function wrapTransaction(
  tx: DrizzleTransaction,
  context: ClientContext,
  frame: TransactionFrame,
): DrizzleTransaction {
  const session = wrapSession(tx.session, context, frame);
  const Ctor = tx.constructor as new (
    dialect: unknown,
    session: DrizzleSession,
    schema: unknown,
    nestedIndex: number,
  ) => DrizzleTransaction;
  const wrapped = new Ctor(tx.dialect, session, tx.schema, tx.nestedIndex);
  const rawNested = wrapped.transaction;
  wrapped.transaction = async (callback) => {
    const child = context.engine.beginTransaction(frame);
    let callbackSettled = false;
    try {
      const value = await rawNested.call(wrapped, async (inner) => {
        const v = await callback(wrapTransaction(inner, context, child));
        callbackSettled = true;
        return v;
      });
      await context.engine.commitTransaction(child);
      return value;
    } catch (error) {
      if (callbackSettled) await context.engine.commitTransaction(child);
      else context.engine.rollbackTransaction(child);
      throw error;
    }
  };
  return wrapped;
}
