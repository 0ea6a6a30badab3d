import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatResult } from '../../chaos/report.js';
import { runChaos } from '../../chaos/run-chaos.js';
import { type LocalCluster, startRedisCluster } from '../stores/redis-cluster-harness.js';

// The consistency checker against a 3-node Redis Cluster (three local redis-server processes in
// cluster mode) through an ioredis Cluster client, with connection kills on every node and
// PostgreSQL backends terminated during the run.

let cluster: LocalCluster | undefined;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
});

describe('chaos on a Redis Cluster', () => {
  it('serves no stale read and loses or duplicates no write', async () => {
    if (!cluster) throw new Error('cluster not started');
    const result = await runChaos({
      ops: 3000,
      workers: 6,
      seconds: 15,
      seed: 31,
      cluster: cluster.ports.map((port) => ({ host: '127.0.0.1', port })),
      faults: ['redis-client-kill', 'pg-terminate'],
      faultIntervalMs: 500,
    });
    const summary = formatResult(result, 3);
    expect(result.faults['redis-client-kill'], summary).toBeGreaterThan(0);
    expect(result.cache.hits, summary).toBeGreaterThan(0);
    expect(result.check.staleReads, summary).toBe(0);
    expect(result.check.lostWrites, summary).toBe(0);
    expect(result.check.duplicatedWrites, summary).toBe(0);
    expect(result.check.anomalies, summary).toEqual([]);
  }, 120_000);
});
