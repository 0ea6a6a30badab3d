/**
 * The row-state machine: how a write changes a cached row. Row entries are flat field maps:
 * `x` ('1' exists, '0' known absent), `c:<column>` field values, plus bookkeeping (`n` pending
 * writes, `e` generation stamp, `s` suspect). The memory journal runs this code; the Redis
 * journal runs its Lua twin (lua.ts). Keep them identical: the journal conformance suite checks.
 */
import { addDecimal, compareDecimal } from './decimal.js';
import type { Change, RowWrite } from './ops.js';

/** How applying a write went. `dup`/`range`/`value`: the database would reject it or we cannot predict it. */
export type ApplyStatus = 'ok' | 'dup' | 'unknown' | 'range' | 'value';

/** The outcome of one write on a row: status and the row count the statement reports. */
export interface Applied {
  status: ApplyStatus;
  count: number;
}

/** Applies `write` to the fields of a valid row entry, in place unless the status is not ok. */
export function applyWrite(fields: Map<string, string>, write: RowWrite): Applied {
  const present = fields.get('x') === '1';
  switch (write.k) {
    case 'del':
      if (!present) return { status: 'ok', count: 0 };
      clearColumns(fields);
      fields.set('x', '0');
      return { status: 'ok', count: 1 };
    case 'ins':
      if (present) return { status: 'dup', count: 0 };
      setRow(fields, write.v ?? []);
      return { status: 'ok', count: 1 };
    case 'insn':
      if (present) return { status: 'ok', count: 0 };
      setRow(fields, write.v ?? []);
      return { status: 'ok', count: 1 };
    case 'ups':
      if (!present) {
        setRow(fields, write.v ?? []);
        return { status: 'ok', count: 1 };
      }
      return { status: update(fields, write.s ?? []), count: 1 };
    case 'upd':
      if (!present) return { status: 'ok', count: 0 };
      return { status: update(fields, write.s ?? []), count: 1 };
  }
}

/** Whether a field map holds a column the database has not computed yet. */
export function hasUnknown(fields: Map<string, string>, columns?: readonly string[]): boolean {
  if (columns) return columns.some((c) => fields.get(`c:${c}`) === 'u');
  for (const [k, v] of fields) if (k.startsWith('c:') && v === 'u') return true;
  return false;
}

function clearColumns(fields: Map<string, string>): void {
  for (const key of [...fields.keys()]) if (key.startsWith('c:')) fields.delete(key);
}

function setRow(fields: Map<string, string>, values: readonly Change[]): void {
  clearColumns(fields);
  for (const c of values) fields.set(`c:${c.c}`, c.v);
  fields.set('x', '1');
}

function update(fields: Map<string, string>, changes: readonly Change[]): ApplyStatus {
  const staged = new Map<string, string>();
  const current = (column: string) => staged.get(column) ?? fields.get(`c:${column}`);
  for (const c of changes) {
    if (c.k === 's') {
      staged.set(c.c, c.v);
      continue;
    }
    const now = current(c.c);
    if (now === undefined || now === 'u') return 'unknown';
    if (now === 'n') continue;
    const sum = addDecimal(now.slice(1), c.v);
    if (sum === undefined) return 'value';
    if (c.lo !== undefined && c.hi !== undefined && (compareDecimal(sum, c.lo) < 0 || compareDecimal(sum, c.hi) > 0)) {
      return 'range';
    }
    staged.set(c.c, `v${sum}`);
  }
  for (const [column, v] of staged) fields.set(`c:${column}`, v);
  return 'ok';
}
