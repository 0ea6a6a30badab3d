import { describe, expect, it } from 'vitest';
import { formatResult } from '../../chaos/report.js';
import { runChaos } from '../../chaos/run-chaos.js';

// The short CI version of `npm run chaos`: two tablecache instances over a Redis server of the
// test's own and the local PostgreSQL, every pattern this build supports, Redis restarts,
// freezes (SIGSTOP), CLIENT KILL and pg_terminate_backend during the run.

describe('chaos: consistency under faults', () => {
  it('serves no stale read and loses or duplicates no write under Redis and PostgreSQL faults', async () => {
    // At most 500 ops/s: the run lasts 8-10 s however fast the machine, long enough for the seeded
    // fault sequence to reach every kind (pg-terminate first comes eighth, about 3.5 s in).
    const result = await runChaos({
      ops: 4000,
      workers: 6,
      seconds: 10,
      seed: 7,
      faultIntervalMs: 400,
      opsPerSecond: 500,
    });
    const summary = formatResult(result, 3);
    // Every fault kind actually happened, and the workload did real work through the cache.
    expect(result.faultEvents.map((f) => f.kind)).toEqual(
      expect.arrayContaining(['redis-restart', 'redis-freeze', 'redis-client-kill', 'pg-terminate']),
    );
    expect(result.check.reads, summary).toBeGreaterThan(500);
    expect(result.cache.hits, summary).toBeGreaterThan(0);
    expect(result.check.staleReads, summary).toBe(0);
    expect(result.check.lostWrites, summary).toBe(0);
    expect(result.check.duplicatedWrites, summary).toBe(0);
    expect(result.check.anomalies, summary).toEqual([]);
  }, 90_000);

  it('with every TTL strategy on short TTLs (entries expire, slide, refresh and serve stale), still no stale read', async () => {
    const result = await runChaos({
      ops: 4000,
      workers: 6,
      seconds: 20,
      seed: 11,
      // At a fixed rate: entries age in wall-clock time, and a fast machine running as fast as it
      // can writes (and invalidates) every row before its 300 ms TTL runs out, so nothing expires
      // and nothing is served stale (seen in CI at 1,200 ops/s: 0 stale serves).
      opsPerSecond: 400,
      // Faults that leave the cache up (restarts and freezes are the first test's): entries age.
      // Spaced wider than the 2 s recovery quarantine after a lost connection (reads bypass the
      // cache meanwhile), so entries get to expire and be served within grace between faults.
      faults: ['redis-client-kill', 'pg-terminate'],
      faultIntervalMs: 2500,
      // Many rows, so some sit unwritten past their 300 ms TTL and are served within grace.
      keys: { items: 300, seeded: 250, groups: 3, counters: 4 },
      patterns: ['cache-aside', 'write-through'],
      freshness: true,
    });
    const summary = formatResult(result, 3);
    expect(result.check.reads, summary).toBeGreaterThan(500);
    expect(result.cache.hits, summary).toBeGreaterThan(0);
    expect(result.cache.stale, summary).toBeGreaterThan(0); // grace really served expired entries
    expect(result.check.staleReads, summary).toBe(0);
    expect(result.check.lostWrites, summary).toBe(0);
    expect(result.check.anomalies, summary).toEqual([]);
  }, 90_000);

  it('control: the same harness reports stale reads when writes bypass tablecache', async () => {
    const result = await runChaos({
      ops: 1500,
      workers: 4,
      seconds: 10,
      seed: 3,
      faults: [],
      patterns: ['cache-aside'],
      bypassWrites: true,
    });
    expect(result.check.staleReads, formatResult(result, 1)).toBeGreaterThan(0);
    expect(result.check.lostWrites).toBe(0);
    expect(result.check.duplicatedWrites).toBe(0);
  }, 60_000);
});
