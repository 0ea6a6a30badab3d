/**
 * Turns a recognised write (write-back-parse.ts) and its driver parameters into journal writes
 * in canonical text. Undefined when any value's stored form cannot be predicted exactly (the
 * statement then runs synchronously); a WriteBackError when an insert lacks its primary key.
 */
import { WriteBackError } from '../../src/errors.js';
import { type Change, field, type RowWrite, rowIdentity } from '../../src/write-back/ops.js';
import {
  type Canonical,
  type ColumnType,
  canonicalDelta,
  canonicalValue,
  deltaBounds,
  NOT_EXACT,
  type NormalizeContext,
} from '../../src/write-back/pg-types.js';
import type { WriteBackTable } from '../../src/write-back/tables.js';
import type { DefaultSpec } from './write-back-columns.js';
import type { Assignment, Cell, ParsedWrite } from './write-back-parse.js';

/** Journal writes of one statement. */
export interface BuiltWrites {
  readonly command: 'INSERT' | 'UPDATE' | 'DELETE';
  readonly writes: RowWrite[];
  /** Columns of RETURNING, in order, when the statement has one. */
  readonly returning: string[] | undefined;
}

/** What a conversion needs besides the statement. */
export interface BuildContext {
  readonly table: WriteBackTable;
  readonly params: readonly unknown[];
  readonly normalize: NormalizeContext;
  readonly defaults: ReadonlyMap<string, DefaultSpec>;
}

/** Converts a parsed write; see the module comment. */
export function buildWrites(parsed: ParsedWrite, ctx: BuildContext): BuiltWrites | undefined {
  const { table } = ctx;
  const returning = parsed.returning === '*' ? table.sink.columns.map((c) => c.name) : parsed.returning;
  if (returning && !returning.every((c) => table.columns.has(c))) return undefined;
  if (parsed.kind === 'insert') return buildInsert(parsed, ctx, returning);
  const keys = keysOf(parsed.keys, ctx);
  if (!keys) return undefined;
  if (parsed.kind === 'delete') {
    return { command: 'DELETE', writes: keys.map((pk) => ({ k: 'del', pk })), returning };
  }
  const changes = changesOf(parsed.set, ctx, undefined);
  if (!changes) return undefined;
  return { command: 'UPDATE', writes: keys.map((pk) => ({ k: 'upd', pk, s: changes })), returning };
}

function buildInsert(
  parsed: Extract<ParsedWrite, { kind: 'insert' }>,
  ctx: BuildContext,
  returning: string[] | undefined,
): BuiltWrites | undefined {
  const { table } = ctx;
  const slots = insertSlots(parsed, table);
  if (!slots) return undefined;
  let kind: RowWrite['k'] = 'ins';
  if (parsed.conflict) {
    // Only a conflict on the primary key is predictable: other unique constraints are not known here.
    if (!parsed.conflict.target || !sameSet(parsed.conflict.target, table.info.primaryKey)) return undefined;
    kind = parsed.conflict.action === 'nothing' ? 'insn' : 'ups';
  }
  const writes: RowWrite[] = [];
  for (const row of parsed.rows) {
    const values = new Map<string, string>();
    const v: Change[] = [];
    let missingKey: string | undefined;
    for (const { name, type, at, isKey } of slots.columns) {
      const cell = at >= 0 ? (row[at] as Cell) : undefined;
      if (isKey && (cell === undefined || !('param' in cell))) {
        missingKey ??= name;
        continue;
      }
      const f = cell ? cellField(cell, name, type, ctx) : defaultField(name, type, ctx);
      if (isKey && f === 'n') missingKey ??= name;
      if (f === undefined) return undefined;
      values.set(name, f);
      v.push(set(name, f));
    }
    if (missingKey !== undefined) {
      throw new WriteBackError(
        'E_WRITE_BACK_NO_PK',
        `an insert into write-back table "${table.id}" needs primary-key column "${missingKey}" up front (a value or a $defaultFn): the write is acknowledged before the database sees it`,
      );
    }
    const key = slots.key.map((i) => ((v[i] as Change).v as string).slice(1));
    if (returning?.some((c) => values.get(c) === 'u')) return undefined;
    const write: RowWrite = { k: kind, pk: key, v };
    if (parsed.conflict?.action === 'update') {
      const changes = changesOf(parsed.conflict.set, ctx, values);
      if (!changes) return undefined;
      write.s = changes;
    }
    writes.push(write);
  }
  return { command: 'INSERT', writes, returning };
}

/** Where each table column's value sits in an insert's rows, per statement shape and table. */
interface InsertSlots {
  /** Table columns in order: the index of their cell in a row (-1: DEFAULT), and whether a key column. */
  readonly columns: readonly { name: string; type: ColumnType; at: number; isKey: boolean }[];
  /** The index in `columns` of each primary-key column, in key order. */
  readonly key: readonly number[];
}

const slotsByShape = new WeakMap<object, WeakMap<WriteBackTable, InsertSlots | null>>();

/** The slots of an insert (memoized: parsed writes are shared per SQL text), null when columns repeat or are unknown. */
function insertSlots(parsed: Extract<ParsedWrite, { kind: 'insert' }>, table: WriteBackTable): InsertSlots | null {
  let byTable = slotsByShape.get(parsed);
  if (!byTable) {
    byTable = new WeakMap();
    slotsByShape.set(parsed, byTable);
  }
  let slots = byTable.get(table);
  if (slots === undefined) {
    const pk = table.info.primaryKey;
    const valid =
      new Set(parsed.columns).size === parsed.columns.length && parsed.columns.every((c) => table.columns.has(c));
    const columns = table.sink.columns.map((c) => ({
      name: c.name,
      type: c.type,
      at: parsed.columns.indexOf(c.name),
      isKey: pk.includes(c.name),
    }));
    slots = valid ? { columns, key: pk.map((c) => columns.findIndex((x) => x.name === c)) } : null;
    byTable.set(table, slots);
  }
  return slots;
}

/** Primary keys of a predicate, deduplicated (the database touches each row once). */
function keysOf(list: readonly Record<string, number>[], ctx: BuildContext): string[][] | undefined {
  const pk = ctx.table.info.primaryKey;
  const seen = new Set<string>();
  const out: string[][] = [];
  for (const key of list) {
    if (Object.keys(key).length !== pk.length || !pk.every((c) => Object.hasOwn(key, c))) return undefined;
    const texts: string[] = [];
    for (const c of pk) {
      const text = canonicalValue(
        ctx.table.columns.get(c) as ColumnType,
        ctx.params[(key[c] as number) - 1],
        ctx.normalize,
      );
      if (text === NOT_EXACT || text === null) return undefined;
      texts.push(text);
    }
    const id = rowIdentity(texts);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(texts);
  }
  return out;
}

/** SET assignments as changes; `inserted` resolves `excluded.column` in ON CONFLICT DO UPDATE. */
function changesOf(
  assignments: readonly Assignment[],
  ctx: BuildContext,
  inserted: ReadonlyMap<string, string> | undefined,
): Change[] | undefined {
  const { table } = ctx;
  const seen = new Set<string>();
  const out: Change[] = [];
  for (const { column, value } of assignments) {
    const type = table.columns.get(column);
    if (!type || seen.has(column) || table.info.primaryKey.includes(column)) return undefined;
    seen.add(column);
    if ('delta' in value) {
      const d = canonicalDelta(type, ctx.params[value.delta - 1]);
      if (d === NOT_EXACT) return undefined;
      const bounds = deltaBounds(type);
      const v = value.negative ? negate(d) : d;
      out.push(bounds ? { k: 'd', c: column, v, lo: bounds[0], hi: bounds[1] } : { k: 'd', c: column, v });
      continue;
    }
    let f: string | undefined;
    if ('excluded' in value) f = inserted?.get(value.excluded);
    else if ('param' in value) f = fieldOf(canonicalValue(type, ctx.params[value.param - 1], ctx.normalize));
    else if (value.keyword === 'null') f = 'n';
    else f = defaultField(column, type, ctx);
    if (f === undefined) return undefined;
    out.push(set(column, f));
  }
  return out;
}

function cellField(cell: Cell, column: string, type: ColumnType, ctx: BuildContext): string | undefined {
  if ('param' in cell) return fieldOf(canonicalValue(type, ctx.params[cell.param - 1], ctx.normalize));
  return cell.keyword === 'null' ? 'n' : defaultField(column, type, ctx);
}

function defaultField(column: string, type: ColumnType, ctx: BuildContext): string | undefined {
  const spec = ctx.defaults.get(column) ?? { kind: 'db' };
  switch (spec.kind) {
    case 'null':
      return 'n';
    case 'db':
      return 'u';
    case 'required':
      return undefined;
    case 'value': {
      const text = canonicalValue(type, spec.driverValue, ctx.normalize);
      return text === NOT_EXACT ? 'u' : field(text);
    }
  }
}

function fieldOf(value: Canonical): string | undefined {
  return value === NOT_EXACT ? undefined : field(value);
}

function set(column: string, f: string): Change {
  return { k: 's', c: column, v: f };
}

function negate(decimal: string): string {
  if (decimal.startsWith('-')) return decimal.slice(1);
  return /^0(\.0+)?$/.test(decimal) ? decimal : `-${decimal}`;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x) => b.includes(x));
}
