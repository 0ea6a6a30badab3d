import { eq } from 'drizzle-orm';
import { cachedClient } from '../context.js';
import { runCount } from '../harness.js';
import type { Scenario } from '../scenario.js';
import { Samples } from '../stats.js';
import { eventRow, incrementOf, writeBackMissing } from '../write-back-support.js';

/** Rows per cycle: below the largest flush batch, so nothing flushes until `cache.flush()`. */
const CYCLE_ROWS = 9_000;
const RAW_ROWS_PER_STATEMENT = 100;

/**
 * Write-back flush throughput (P5): in each cycle, 9,000 inserts are acknowledged (the flusher
 * idle: a batch of 10,000 and an interval of an hour), then `cache.flush()` is timed; each cycle
 * is interleaved with the baseline, the same rows inserted 100 per statement. Then increments
 * coalescing: N increments to one row, one flush, and a statement-level trigger counts the
 * statements that reached the table.
 */
export const flush: Scenario = {
  name: 'flush',
  title: 'Write-back flush throughput and increments coalescing (P5)',
  unavailable: writeBackMissing,
  async run(ctx, rec) {
    const { events, counters } = ctx.tables;
    const idle = { every: '1h', batch: 10_000, maxPending: 1_000_000 } as const;
    const tc = cachedClient(ctx, 'flush', {
      events: { pattern: 'write-back', flush: idle },
      counters: { pattern: 'write-back', flush: idle },
    });
    const s = `"${ctx.schemaName.replace(/"/g, '""')}"`;
    try {
      const cycles = Math.max(2, Math.ceil(ctx.budget.flushRows / CYCLE_ROWS));
      let nextId = 1_000_000_000;
      let nextRaw = 1_000_000_000;
      const flushTally = { ops: 0, seconds: 0, latencies: new Samples() };
      const rawTally = { ops: 0, seconds: 0, latencies: new Samples() };
      let ackSeconds = 0;
      for (let cycle = 0; cycle < cycles; cycle++) {
        const flushCycle = async () => {
          const first = nextId;
          nextId += CYCLE_ROWS;
          ackSeconds += await runCount((i) => tc.db.insert(events).values(eventRow(first + i)), 0, CYCLE_ROWS, 64);
          const t0 = performance.now();
          await tc.cache.flush();
          flushTally.seconds += (performance.now() - t0) / 1000;
          flushTally.ops += CYCLE_ROWS;
        };
        const rawCycle = async () => {
          const t0 = performance.now();
          for (let done = 0; done < CYCLE_ROWS; done += RAW_ROWS_PER_STATEMENT) {
            const params: unknown[] = [];
            const tuples: string[] = [];
            for (let r = 0; r < RAW_ROWS_PER_STATEMENT; r++) {
              const row = eventRow(nextRaw++);
              const b = params.length;
              tuples.push(`($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5})`);
              params.push(row.id, row.itemId, row.kind, row.amount, row.createdAt);
            }
            await ctx.pool.query(
              `insert into ${s}.raw_events (id, item_id, kind, amount, created_at) values ${tuples.join(', ')}`,
              params,
            );
          }
          rawTally.seconds += (performance.now() - t0) / 1000;
          rawTally.ops += CYCLE_ROWS;
        };
        if (cycle % 2 === 0) {
          await flushCycle();
          await rawCycle();
        } else {
          await rawCycle();
          await flushCycle();
        }
      }
      const landed = Number(
        (await ctx.pool.query<{ n: string }>(`select count(*) as n from ${s}.wb_events where id >= 1000000000`)).rows[0]
          ?.n,
      );
      if (landed !== flushTally.ops) throw new Error(`${flushTally.ops} rows written back, ${landed} in PostgreSQL`);
      const flushed = rec.measure('tablecache.wb.flush', 'tablecache write-back flush', 1, flushTally, 'row');
      const raw = rec.measure('raw.insert-100', 'raw insert, 100 rows per statement', 1, rawTally, 'row');
      rec.fact('acknowledgement rate while queueing (writes/s, c=64)', flushTally.ops / ackSeconds);
      rec.ratio('P5a', flushed.perSecond / raw.perSecond, '>=', 0.6, `${flushed.perSecond} vs ${raw.perSecond} rows/s`);

      const increment = incrementOf(tc.cache);
      if (!increment) throw new Error('cache.increment disappeared');
      const n = ctx.budget.increments;
      const [before] = await ctx.db.select().from(counters).where(eq(counters.id, 1));
      const logged = async () =>
        (await ctx.pool.query<{ op: string }>(`select op from ${s}.statement_log order by at`)).rows.map((r) => r.op);
      const logBefore = (await logged()).length;
      await runCount(() => increment('counters', 1, { views: 1 }), 0, n, 16);
      await tc.cache.flush();
      const statements = (await logged()).slice(logBefore);
      const [after] = await ctx.db.select().from(counters).where(eq(counters.id, 1));
      const added = (after?.views ?? 0) - (before?.views ?? 0);
      rec.fact('increments', n);
      rec.fact('views added in PostgreSQL', added);
      rec.fact('statements on the counters table', statements.join(', ') || 'none');
      rec.target(
        'P5b',
        statements.length,
        `${statements.length} statement(s)`,
        statements.length === 1 && added === n,
        `${n} increments of views on one row, one flush: ${statements.join(', ') || 'no statement'}, views +${added}`,
      );
    } finally {
      await tc.cache.close();
    }
  },
};
