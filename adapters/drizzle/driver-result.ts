import { entityKind } from 'drizzle-orm';
import type { TableInfo } from '../../src/catalog.js';
import type { RawRow } from '../../src/engine/rows.js';

/** How a driver hands array-mode rows to Drizzle: `{ rows }` (pg, PGlite, Neon) or the row array (postgres-js). */
export type ResultShape = 'rows-property' | 'row-array';

const ROWS_PROPERTY = new Set(['NodePgSession', 'PgliteSession', 'NeonSession', 'VercelPgSession']);

/** The result shape of a Drizzle session's driver, or undefined for drivers row entries do not know. */
export function resultShapeOf(session: object): ResultShape | undefined {
  const kind = (session.constructor as { [entityKind]?: string } | undefined)?.[entityKind];
  if (kind !== undefined && ROWS_PROPERTY.has(kind)) return 'rows-property';
  if (kind === 'PostgresJsSession') return 'row-array';
  return undefined;
}

/** A raw array-mode SELECT result holding `rows`, in the driver's shape (Drizzle reads only the rows). */
export function selectResult(shape: ResultShape, rows: unknown[][]): unknown {
  return shape === 'row-array' ? rows : { command: 'SELECT', rowCount: rows.length, rows, fields: [] };
}

/** The rows of a raw driver result. */
function rowsOf(result: unknown): unknown[] | undefined {
  if (Array.isArray(result)) return result;
  const rows = (result as { rows?: unknown } | null | undefined)?.rows;
  return Array.isArray(rows) ? rows : undefined;
}

/**
 * Takes the columns tablecache appended to a write's RETURNING out of the raw result, so the
 * caller sees what it asked for: in array mode the last `columns.length` values of each row;
 * in object mode (the caller had no RETURNING) every row, leaving `rows` empty as before.
 * Returns the written rows, or undefined when the result has an unknown shape.
 */
export function takeAppendedRows(
  result: unknown,
  mode: 'array' | 'object',
  columns: readonly string[],
): RawRow[] | undefined {
  const rows = rowsOf(result);
  if (!rows) return undefined;
  const n = columns.length;
  const out: RawRow[] = [];
  if (mode === 'array') {
    for (const row of rows) {
      if (!Array.isArray(row) || row.length < n) return undefined;
    }
    for (const row of rows as unknown[][]) out.push(zip(columns, row.splice(row.length - n, n)));
    const fields = (result as { fields?: unknown }).fields;
    if (Array.isArray(fields) && fields.length >= n) fields.splice(fields.length - n, n);
    return out;
  }
  for (const row of rows) {
    if (!row || typeof row !== 'object') return undefined;
    const source = row as Record<string, unknown>;
    const picked: RawRow = {};
    for (const c of columns) picked[c] = source[c];
    out.push(picked);
  }
  if (Array.isArray(result)) result.length = 0;
  else {
    const holder = result as { rows: unknown[]; fields?: unknown };
    holder.rows = [];
    if (Array.isArray(holder.fields)) holder.fields = [];
  }
  return out;
}

/** Reads the written rows from a result whose own RETURNING lists every column at `positions`. */
export function readOwnRows(
  result: unknown,
  columns: readonly string[],
  positions: readonly number[],
): RawRow[] | undefined {
  const rows = rowsOf(result);
  if (!rows) return undefined;
  const out: RawRow[] = [];
  for (const row of rows) {
    if (!Array.isArray(row)) return undefined;
    const picked: RawRow = {};
    for (let i = 0; i < columns.length; i++) picked[columns[i] as string] = row[positions[i] as number];
    out.push(picked);
  }
  return out;
}

/** Pairs column names with the values of one array-mode row. */
export function zip(columns: readonly string[], values: readonly unknown[]): RawRow {
  const row: RawRow = {};
  for (let i = 0; i < columns.length; i++) row[columns[i] as string] = values[i];
  return row;
}

/** Quotes an identifier for PostgreSQL. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * A SELECT of every column of `table` for the given primary keys (`$n` parameters, never
 * interpolated values): `"id" in ($1, $2)` or `("a", "b") in (($1, $2), ($3, $4))`.
 */
export function selectByKeys(
  table: TableInfo,
  keys: readonly (readonly unknown[])[],
): { sql: string; params: unknown[] } {
  const params: unknown[] = [];
  const param = (value: unknown): string => {
    params.push(value);
    return `$${params.length}`;
  };
  const pk = table.primaryKey;
  const where =
    pk.length === 1
      ? `${quoteIdent(pk[0] as string)} in (${keys.map((k) => param(k[0])).join(', ')})`
      : `(${pk.map(quoteIdent).join(', ')}) in (${keys.map((k) => `(${k.map(param).join(', ')})`).join(', ')})`;
  const from = table.schema ? `${quoteIdent(table.schema)}.${quoteIdent(table.name)}` : quoteIdent(table.name);
  return {
    sql: `select ${table.columns.map((c) => quoteIdent(c.name)).join(', ')} from ${from} where ${where}`,
    params,
  };
}
