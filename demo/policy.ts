import { eq } from 'drizzle-orm';
import { definePolicy, type Pattern, type Policy, type TableCache } from '../src/index.js';
import type { DemoDb } from './backend.js';
import type * as schema from './schema.js';
import { inventory, pageViews, type TableName } from './schema.js';

/** Each table's pattern as the shop would configure it. */
export const WANTED: Readonly<Record<TableName, Pattern>> = {
  users: 'cache-aside',
  products: 'write-through',
  inventory: 'write-through',
  page_views: 'write-back',
  payments: 'none',
};

/** The demo's policy for the given patterns (keys are the schema's export names, so typos fail to compile). */
export function demoPolicy(namespace: string, patterns: Readonly<Record<TableName, Pattern>>): Policy {
  return definePolicy<typeof schema>({
    namespace,
    version: 1,
    defaults: { pattern: 'none' },
    tables: {
      users: { pattern: patterns.users, ttl: '10m' },
      products: { pattern: patterns.products, ttl: '10m' },
      inventory: { pattern: patterns.inventory, ttl: '1m' },
      pageViews:
        patterns.page_views === 'write-back'
          ? { pattern: 'write-back', ttl: '10m', flush: { every: '500ms', batch: 500 } }
          : { pattern: patterns.page_views, ttl: '10m' },
      payments: { pattern: patterns.payments },
    },
  });
}

/**
 * Whether write-through works in this build: after a write through the cache, the next primary-key
 * read of the written row must be a hit (cache-aside would evict it and miss).
 */
export async function writeThroughWorks(db: DemoDb, cache: TableCache): Promise<boolean> {
  const read = () => db.select().from(inventory).where(eq(inventory.productId, 1));
  const [row] = await read();
  await cache.flush();
  await db
    .update(inventory)
    .set({ stock: row?.stock ?? 0 })
    .where(eq(inventory.productId, 1));
  await cache.flush();
  const hits = () => cache.stats().tables.inventory?.hits ?? 0;
  const before = hits();
  await read();
  return hits() > before;
}

/** Whether write-back works in this build: a write to page_views must go through the write-back journal. */
export async function writeBackWorks(db: DemoDb, cache: TableCache): Promise<boolean> {
  await db.insert(pageViews).values({ productId: 1, userId: 1, viewedAt: new Date() });
  await cache.flush();
  const wb = cache.stats().writeBack.page_views;
  return wb !== undefined && wb.pending + wb.flushed > 0;
}
