import { cannedDrizzle } from '../canned-client.js';
import { cachedClient } from '../context.js';
import type { Labelled, Scenario } from '../scenario.js';
import { measureGroup } from '../scenario.js';
import { quantile } from '../stats.js';
import { eventRow, writeBackMissing } from '../write-back-support.js';

const FLUSH_EVERY_MS = 1000;
const LAG_RATE = 5000;
const MAX_IN_FLIGHT = 10_000;

/**
 * Write-back acknowledgement (P4) against the floor of any durable Redis queue (a pipelined
 * SET + XADD) and a direct single-row insert; then the sync lag at a sustained 5,000 writes/s (P6),
 * measured from outside: each write's acknowledgement time against the database clock at the
 * moment the flusher inserted its row (a `landed_at` column default the flusher does not know of).
 */
export const writeBack: Scenario = {
  name: 'write-back',
  title: 'Write-back acknowledgement and sync lag (P4, P6)',
  unavailable: writeBackMissing,
  async run(ctx, rec) {
    const { events, rawEvents } = ctx.tables;
    const tc = cachedClient(ctx, 'write-back', {
      events: { pattern: 'write-back', flush: { every: FLUSH_EVERY_MS / 1000, batch: 500, maxPending: 1_000_000 } },
    });
    let nextId = 0;
    const id = () => ++nextId;
    let nextRaw = 0;
    // Drizzle's own cost of building and sending an insert, answered from memory after the first.
    const canned = cannedDrizzle(ctx.pool, ctx.tables);
    try {
      const stream = `${ctx.keyPrefix}:wb-floor:stream`;
      const subjects: Labelled[] = [
        {
          name: 'tablecache.wb.ack',
          label: 'tablecache write-back insert (acknowledged)',
          op: () => tc.db.insert(events).values(eventRow(id())),
        },
        {
          name: 'floor.set-xadd',
          label: 'floor: pipelined SET + XADD',
          op: (i) => {
            const row = JSON.stringify(eventRow(i));
            return ctx.redis
              .pipeline()
              .set(`${ctx.keyPrefix}:wb-floor:row:${i % 10_000}`, row, 'PX', 600_000)
              .xadd(stream, 'MAXLEN', '~', '100000', '*', 'row', row)
              .exec();
          },
        },
        {
          name: 'direct.insert',
          label: 'direct Drizzle single-row insert',
          op: () => ctx.db.insert(rawEvents).values(eventRow(++nextRaw)),
        },
        {
          name: 'floor.drizzle-no-io.insert',
          label: 'floor: Drizzle alone, insert builder (no I/O)',
          op: () => canned.insert(rawEvents).values(eventRow(++nextRaw)),
        },
      ];
      const g = await measureGroup(ctx, rec, subjects, [1, 64]);
      await tc.cache.flush();
      const landed = await ctx.db.$count(events);
      rec.fact('acknowledged inserts', nextId);
      rec.fact('of them in PostgreSQL after flush()', landed);
      if (landed !== nextId) throw new Error(`${nextId} acknowledged write-back inserts, ${landed} in PostgreSQL`);
      const ack = g.get('tablecache.wb.ack', 1).p50Us ?? Number.NaN;
      const floor = g.get('floor.set-xadd', 1).p50Us ?? Number.NaN;
      rec.ratio('P4a', ack / floor, '<=', 1.3, `p50 ${ack} vs ${floor} µs`);
      const ack64 = g.get('tablecache.wb.ack', 64).perSecond;
      const direct64 = g.get('direct.insert', 64).perSecond;
      rec.ratio('P4b', ack64 / direct64, '>=', 5, `${ack64} vs ${direct64} ops/s`);

      // Sync lag: open-loop writes at LAG_RATE for lagSeconds; each row's landed_at (the database
      // clock when the flusher inserted it) minus the wall-clock time its write was acknowledged.
      const seconds = ctx.budget.lagSeconds;
      const total = LAG_RATE * seconds;
      const base = nextId + 1;
      nextId += total;
      const ackAt = new Float64Array(total);
      let issued = 0;
      let acked = 0;
      let inFlight = 0;
      let behind = 0;
      const failures: unknown[] = [];
      const wallClock = () => performance.timeOrigin + performance.now();
      const started = performance.now();
      ctx.log(`  sustaining ${LAG_RATE} writes/s for ${seconds} s`);
      while (issued < total) {
        const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * LAG_RATE));
        while (issued < due) {
          if (inFlight >= MAX_IN_FLIGHT) {
            behind++;
            break;
          }
          const k = issued++;
          inFlight++;
          void tc.db
            .insert(events)
            .values(eventRow(base + k))
            .then(
              () => {
                ackAt[k] = wallClock();
                acked++;
                inFlight--;
              },
              (error: unknown) => {
                failures.push(error);
                inFlight--;
              },
            );
        }
        await sleep(2);
      }
      const issuedIn = (performance.now() - started) / 1000;
      while (inFlight > 0) await sleep(5);
      await tc.cache.flush();
      const { rows } = await ctx.pool.query<{ id: string; ms: number }>(
        `select id, extract(epoch from landed_at)::float8 * 1000 as ms
         from ${quote(ctx.schemaName)}.wb_events where id >= $1 and id < $2`,
        [base, base + total],
      );
      // Only acknowledged writes have a lag (a write that failed may still have been queued).
      const lags = rows
        .map((r) => ({ landed: r.ms, acked: ackAt[Number(r.id) - base] as number }))
        .filter((r) => r.acked > 0)
        .map((r) => r.landed - r.acked)
        .sort((a, b) => a - b);
      rec.fact('sync lag: writes issued', total);
      rec.fact('sync lag: achieved rate (writes/s)', total / issuedIn);
      rec.fact('sync lag: acknowledged', acked);
      rec.fact('sync lag: rows in PostgreSQL', rows.length);
      if (failures.length > 0) {
        const first = failures[0] instanceof Error ? failures[0].message : String(failures[0]);
        rec.fact('sync lag: writes that failed', failures.length);
        rec.note(`${failures.length} write-back writes failed under the sustained load, first: ${first}`);
      }
      if (behind > 0) rec.note(`the writer hit ${MAX_IN_FLIGHT} writes in flight ${behind} times (acks fell behind)`);
      const p50 = quantile(lags, 0.5);
      const p99 = quantile(lags, 0.99);
      rec.fact('sync lag p50 (ms)', p50);
      rec.fact('sync lag p99 (ms)', p99);
      rec.fact('sync lag max (ms)', lags[lags.length - 1] ?? Number.NaN);
      const own = tc.cache.stats().writeBack;
      for (const [table, s] of Object.entries(own)) {
        rec.fact(`tablecache's own lag figures for ${table}: p50 / p99 (ms)`, `${s.lagP50Ms} / ${s.lagP99Ms}`);
      }
      rec.target(
        'P6',
        p99,
        `${Math.round(p99)} ms`,
        failures.length === 0 && lags.length === total && p99 <= FLUSH_EVERY_MS + 250,
        `p50 ${Math.round(p50)} ms, flush every ${FLUSH_EVERY_MS} ms, ${lags.length}/${total} acknowledged rows landed` +
          (failures.length > 0 ? `, ${failures.length} writes failed` : ''),
      );
    } finally {
      await tc.cache.close();
    }
  },
};

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
