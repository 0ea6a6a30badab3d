import { bigint, boolean, integer, numeric, pgSchema, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * The benchmark tables, in a PostgreSQL schema of their own so a run never touches anything
 * else and is dropped whole at the end.
 */
export function benchSchema(name: string) {
  const schema = pgSchema(name);
  const itemColumns = () => ({
    id: integer('id').primaryKey(),
    code: text('code').notNull().unique(),
    name: text('name').notNull(),
    category: integer('category').notNull(),
    price: numeric('price', { precision: 10, scale: 2 }).notNull(),
    qty: integer('qty').notNull(),
    active: boolean('active').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  });
  const eventColumns = () => ({
    id: bigint('id', { mode: 'number' }).primaryKey(),
    itemId: integer('item_id').notNull(),
    kind: text('kind').notNull(),
    amount: integer('amount').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull(),
  });
  return {
    /** 10,000 rows, read by every read scenario (cache-aside). */
    items: schema.table('items', itemColumns()),
    /** A copy of `items` for write-through. */
    itemsWt: schema.table('items_wt', itemColumns()),
    /** Write-back inserts (acknowledgement, flush throughput, sync lag). */
    events: schema.table('wb_events', eventColumns()),
    /** Direct-insert baselines: same shape as `events`, never cached. */
    rawEvents: schema.table('raw_events', eventColumns()),
    /** Write-back counters (increments coalescing). */
    counters: schema.table('wb_counters', {
      id: integer('id').primaryKey(),
      views: bigint('views', { mode: 'number' }).notNull().default(0),
    }),
  };
}

/** The tables of one run. */
export type BenchTables = ReturnType<typeof benchSchema>;

/** Row count of `items` (and `items_wt`). */
export const ITEM_COUNT = 10_000;

/** The `code` of item `id` (1-based): the non-key column the query-entry scenarios filter on. */
export function itemCode(id: number): string {
  return `item-${id}`;
}
