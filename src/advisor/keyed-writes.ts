import { classifyWrite, writesByKey } from './statements.js';

/** One normalized statement and how often it ran (a pg_stat_statements row). */
export interface RecordedStatement {
  /** The statement text, constants replaced by `$n` as pg_stat_statements records it. */
  readonly query: string;
  /** Times it ran in the window. */
  readonly calls: number;
}

/** What `countKeyedWrites` needs to know of a table. */
export interface KeyedTable {
  readonly schema: string;
  readonly name: string;
  readonly primaryKey: readonly string[];
}

/** Write statement calls of one table, and how many addressed rows by primary key. */
export interface KeyedWriteCount {
  statements: number;
  byKey: number;
}

/**
 * Counts, per table (by index in `tables`), the calls of INSERT, UPDATE and DELETE statements and
 * those by primary key. A schema-qualified statement matches that schema's table; an unqualified
 * one matches the only table of that name, and is skipped when several tables share the name.
 */
export function countKeyedWrites(
  statements: readonly RecordedStatement[],
  tables: readonly KeyedTable[],
): KeyedWriteCount[] {
  const counts = tables.map(() => ({ statements: 0, byKey: 0 }));
  const byName = new Map<string, number[]>();
  tables.forEach((t, i) => {
    byName.set(t.name, [...(byName.get(t.name) ?? []), i]);
  });
  for (const { query, calls } of statements) {
    if (!(calls > 0)) continue;
    const write = classifyWrite(query);
    if (write === undefined) continue;
    const candidates = (byName.get(write.table) ?? []).filter(
      (i) => write.schema === undefined || tables[i]?.schema === write.schema,
    );
    const index = candidates.length === 1 ? candidates[0] : undefined;
    const table = index === undefined ? undefined : tables[index];
    const count = index === undefined ? undefined : counts[index];
    if (table === undefined || count === undefined) continue;
    count.statements += calls;
    if (writesByKey(write, table.primaryKey)) count.byKey += calls;
  }
  return counts;
}
