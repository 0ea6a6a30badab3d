import { and, eq, ne, sql } from 'drizzle-orm';
import type { NodePgDatabase } from 'drizzle-orm/node-postgres';
import { type BenchTables, ITEM_COUNT, itemCode } from './schema.js';

/**
 * The "lookup n" query: one item by code plus an always-true `id <> -(n + 1)`, so every n is a
 * distinct query (a distinct cache entry) while n and n + 10,000 return the same row.
 */
export function lookupParams(n: number): { code: string; neg: number } {
  return { code: itemCode((n % ITEM_COUNT) + 1), neg: -(n + 1) };
}

/** The lookup as a builder query. */
export function lookup(db: NodePgDatabase<BenchTables>, tables: BenchTables, n: number) {
  const { items } = tables;
  const p = lookupParams(n);
  return db
    .select()
    .from(items)
    .where(and(eq(items.code, p.code), ne(items.id, p.neg)));
}

/** The lookup as a prepared statement (`execute(lookupParams(n))`). */
export function prepareLookup(db: NodePgDatabase<BenchTables>, tables: BenchTables, name: string) {
  const { items } = tables;
  return db
    .select()
    .from(items)
    .where(and(eq(items.code, sql.placeholder('code')), ne(items.id, sql.placeholder('neg'))))
    .prepare(name);
}
