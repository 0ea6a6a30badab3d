import { eq } from 'drizzle-orm';
import { cacheCounts, cachedClient } from '../context.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';
import { ITEM_COUNT } from '../schema.js';

const POLICY = { itemsWt: { pattern: 'write-through', ttl: '30m' } } as const;

/**
 * Write-through: a single-row update through tablecache against the same update on plain
 * Drizzle, and read-after-write (update a row, then read it by primary key) with its hit rate.
 * Consecutive operations touch different rows, so concurrent writers never wait on a row lock.
 */
export const writeThrough: Scenario = {
  name: 'write-through',
  title: 'Write-through writes and read-after-write',
  async unavailable(ctx) {
    // Available when a primary-key read right after a write-through update is a hit on the new value.
    const { itemsWt } = ctx.tables;
    const probe = cachedClient(ctx, 'write-through-probe', POLICY);
    try {
      await probe.db.select().from(itemsWt).where(eq(itemsWt.id, 1));
      await probe.db.update(itemsWt).set({ qty: 4242 }).where(eq(itemsWt.id, 1));
      await probe.cache.flush();
      const before = cacheCounts(probe.cache);
      const [row] = await probe.db.select().from(itemsWt).where(eq(itemsWt.id, 1));
      const hits = cacheCounts(probe.cache).hits - before.hits;
      if (hits !== 1) return 'a primary-key read right after a write-through update was not a hit';
      if (row?.qty !== 4242) throw new Error(`read after a write-through update returned qty ${row?.qty}, not 4242`);
      return undefined;
    } finally {
      await probe.cache.close();
    }
  },
  async run(ctx, rec) {
    const { itemsWt } = ctx.tables;
    const tc = cachedClient(ctx, 'write-through', POLICY);
    const rowOf = (i: number) => (i % ITEM_COUNT) + 1;
    try {
      const update = (db: typeof ctx.db, i: number) =>
        db
          .update(itemsWt)
          .set({ qty: i % 1000 })
          .where(eq(itemsWt.id, rowOf(i)));
      const read = (db: typeof ctx.db, i: number) =>
        db
          .select()
          .from(itemsWt)
          .where(eq(itemsWt.id, rowOf(i)));
      const subjects: Labelled[] = [
        { name: 'tablecache.wt.update', label: 'tablecache write-through update', op: (i) => update(tc.db, i) },
        { name: 'direct.update', label: 'direct Drizzle update', op: (i) => update(ctx.db, i) },
        {
          name: 'tablecache.wt.read-after-write',
          label: 'tablecache update + read by key',
          op: async (i) => {
            await update(tc.db, i);
            return read(tc.db, i);
          },
        },
        {
          name: 'direct.read-after-write',
          label: 'direct Drizzle update + read by key',
          op: async (i) => {
            await update(ctx.db, i);
            return read(ctx.db, i);
          },
        },
      ];
      const before = cacheCounts(tc.cache);
      const g = await measureGroup(ctx, rec, subjects, [1, 64]);
      const after = cacheCounts(tc.cache);
      const reads = after.reads - before.reads;
      rec.fact('read-after-write hit rate', reads > 0 ? (after.hits - before.hits) / reads : 0);
      const wt = g.get('tablecache.wt.update', 1).p50Us ?? Number.NaN;
      const direct = g.get('direct.update', 1).p50Us ?? Number.NaN;
      rec.fact('write-through update p50 / direct update p50 (c=1)', wt / direct);
      rec.fact(
        'write-through update throughput / direct update (c=64)',
        g.get('tablecache.wt.update', 64).perSecond / g.get('direct.update', 64).perSecond,
      );
      rec.fact(
        'read-after-write p50, tablecache / direct (c=1)',
        (g.get('tablecache.wt.read-after-write', 1).p50Us ?? Number.NaN) /
          (g.get('direct.read-after-write', 1).p50Us ?? Number.NaN),
      );
    } finally {
      await tc.cache.close();
    }
  },
};
