import type { RelationName } from '../../src/adapter.js';
import type { Engine } from '../../src/engine/engine.js';
import type { RowTable } from '../../src/engine/rows.js';
import { quoteIdent } from './driver-result.js';
import { tokenize } from './sql-lexer.js';
import { appendReturning, findReturning, type PointRead, parsePointRead } from './sql-scan.js';
import { parseWriteShape, type WriteShape } from './write-scan.js';

/** A primary-key read served from row entries. */
export interface RowReadPlan {
  /** The table read. */
  readonly table: RowTable;
  /** The selected columns (database names), in order. */
  readonly columns: readonly string[];
  /** Per key the query names, the 1-based parameter index of each primary-key column. */
  readonly keys: readonly (readonly number[])[];
  /** The parameter index of `limit $n`, when present. */
  readonly limitParam: number | undefined;
}

/** A write whose rows are learned by appending every column of its table to RETURNING. */
export interface RowWritePlan {
  /** The table written. */
  readonly table: RowTable;
  /** The statement verb. */
  readonly kind: 'insert' | 'update' | 'delete';
  /** The statement to run: the caller's, with every column of the table appended to RETURNING if needed. */
  readonly sql: string;
  /** Every column of the table (database names). */
  readonly columns: readonly string[];
  /** Whether the caller's statement had its own RETURNING. */
  readonly returning: boolean;
  /**
   * When the caller's own RETURNING already lists every column: the position of each of
   * `columns` in it (nothing is appended). Otherwise `columns` are appended, in order.
   */
  readonly positions: readonly number[] | undefined;
  /** Per key known before the statement runs, the 1-based parameter index of each key column. */
  readonly keys: readonly (readonly number[])[] | undefined;
}

const MEMO_LIMIT = 2000;
/** Plans per engine (its schema decides them) and SQL text: builders prepare on every execution. */
const memos = new WeakMap<Engine, Map<string, RowReadPlan | RowWritePlan | undefined>>();

function memo<T extends RowReadPlan | RowWritePlan>(
  engine: Engine,
  key: string,
  compute: () => T | undefined,
): T | undefined {
  let map = memos.get(engine);
  if (!map) {
    map = new Map();
    memos.set(engine, map);
  }
  if (map.has(key)) return map.get(key) as T | undefined;
  const value = compute();
  if (map.size >= MEMO_LIMIT) map.clear();
  map.set(key, value);
  return value;
}

/** Plans a select as a primary-key read of a row table, or undefined when it is not one. */
export function planRowRead(sql: string, engine: Engine): RowReadPlan | undefined {
  return memo(engine, `r\u0000${sql}`, () => computeRowRead(sql, engine));
}

/**
 * Plans a builder INSERT, UPDATE or DELETE of one row table. Undefined (the write then
 * invalidates the whole table) when it joins other relations, may change a primary key, or
 * has a shape this adapter does not read.
 */
export function planRowWrite(
  sql: string,
  relations: readonly RelationName[],
  engine: Engine,
): RowWritePlan | undefined {
  const names = relations.map((r) => `${r.schema ?? ''}.${r.name}`).join('\u0001');
  return memo(engine, `w\u0000${names}\u0000${sql}`, () => computeRowWrite(sql, relations, engine));
}

function computeRowRead(sql: string, engine: Engine): RowReadPlan | undefined {
  const read = parsePointRead(sql);
  if (!read) return undefined;
  const table = engine.rowTable(read.table);
  if (!table) return undefined;
  const names = new Set(table.info.columns.map((c) => c.name));
  if (!read.columns.every((c) => names.has(c.column))) return undefined;
  const keys = keyParams(read, table.info.primaryKey);
  if (!keys) return undefined;
  return { table, columns: read.columns.map((c) => c.column), keys, limitParam: read.limitParam };
}

function computeRowWrite(sql: string, relations: readonly RelationName[], engine: Engine): RowWritePlan | undefined {
  let table: RowTable | undefined;
  for (const rel of relations) {
    const t = engine.rowTable(rel);
    if (!t || (table && table.id !== t.id)) return undefined;
    table = t;
  }
  if (!table) return undefined;
  const shape = parseWriteShape(sql);
  if (!shape || shape.joins || !shape.assigned) return undefined;
  const pk = table.info.primaryKey;
  if (shape.assigned.some((c) => pk.includes(c))) return undefined;
  const columns = table.info.columns.map((c) => c.name);
  const returning = findReturning(sql);
  const positions = returning ? ownPositions(sql.slice(returning.index), columns) : undefined;
  let withReturning = sql;
  if (!positions) {
    try {
      withReturning = appendReturning(sql, columns.map(quoteIdent));
    } catch {
      return undefined;
    }
  }
  return {
    table,
    kind: shape.verb,
    sql: withReturning,
    columns,
    returning: returning !== null,
    positions,
    keys: knownKeys(shape, pk),
  };
}

/**
 * When a RETURNING list (`returning "a", "b", ...`, as Drizzle's `.returning()` writes it) names
 * every column of the table as a plain column, the position of each; else undefined.
 */
function ownPositions(returning: string, columns: readonly string[]): number[] | undefined {
  const toks = tokenize(returning);
  if (toks[0]?.kind !== 'word' || toks[0].value !== 'returning') return undefined;
  const listed: string[] = [];
  for (let i = 1; i < toks.length; i += 2) {
    const t = toks[i];
    if (t?.kind !== 'ident') return undefined;
    listed.push(t.value);
    const sep = toks[i + 1];
    if (sep && !(sep.kind === 'op' && sep.value === ',')) return undefined;
  }
  const positions = columns.map((c) => listed.indexOf(c));
  return positions.every((p) => p >= 0) ? positions : undefined;
}

/** The key parameters of a point read whose predicate is exactly the primary key. */
function keyParams(read: PointRead, pk: readonly string[]): number[][] | undefined {
  const predicate = Object.keys(read.predicate);
  if (predicate.length !== pk.length || !pk.every((c) => predicate.includes(c))) return undefined;
  const out: number[][] = [];
  for (const key of read.keys) {
    const params = pk.map((c) => key[c]);
    if (params.some((p) => p === undefined)) return undefined;
    out.push(params as number[]);
  }
  return out;
}

/** Keys an UPDATE/DELETE names in its WHERE, or an INSERT in its VALUES, as parameter indexes. */
function knownKeys(shape: WriteShape, pk: readonly string[]): number[][] | undefined {
  if (shape.verb === 'insert') {
    if (!shape.values) return undefined;
    const { columns, rows } = shape.values;
    const at = pk.map((c) => columns.indexOf(c));
    if (at.some((i) => i < 0)) return undefined;
    const out: number[][] = [];
    for (const row of rows) {
      const params = at.map((i) => row[i]);
      if (params.some((p) => p === null || p === undefined)) return undefined;
      out.push(params as number[]);
    }
    return out;
  }
  if (shape.where === undefined) return undefined;
  const read = parsePointRead(`select ${quoteIdent(pk[0] as string)} from ${shape.target} where ${shape.where}`);
  return read ? keyParams(read, pk) : undefined;
}
