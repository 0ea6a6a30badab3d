import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { checkRedisDurability, redisStore } from '../../stores/redis.js';
import { runStoreConformance } from '../conformance/store-suite.js';
import { type LocalCluster, startRedisCluster } from './redis-cluster-harness.js';

let cluster: LocalCluster | undefined;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
});

function connect(keyPrefix?: string): Cluster {
  if (!cluster) throw new Error('cluster not started');
  const nodes = cluster.ports.map((port) => ({ host: '127.0.0.1', port }));
  return new Cluster(nodes, keyPrefix === undefined ? {} : { keyPrefix });
}

function clusterStore(keyPrefix?: string) {
  return async () => {
    const client = connect(keyPrefix);
    const store = redisStore(client);
    return {
      store,
      cleanup: async () => {
        await store.close();
        await client.quit();
      },
    };
  };
}

runStoreConformance('redis cluster', clusterStore());
runStoreConformance('redis cluster (keyPrefix)', clusterStore(`tc:test:${randomUUID()}:`));

describe('redisStore on a cluster', () => {
  let client: Cluster;

  beforeAll(() => {
    client = connect();
  });

  afterAll(async () => {
    await client.quit();
  });

  it('routes each hash tag to its own node and reads it back', async () => {
    const store = redisStore(client);
    const keys = Array.from({ length: 30 }, () => `tc:test:{${randomUUID()}}:k`);
    for (const [i, key] of keys.entries()) {
      await store.set([{ key, value: new Uint8Array([i]), ttlMs: 60_000 }]);
      await store.incr([`${key}:n`]);
    }
    for (const [i, key] of keys.entries()) {
      const [v, n] = await store.getMany([key, `${key}:n`]);
      expect(Array.from(v!)).toEqual([i]);
      expect(n).not.toBeNull();
    }
    // The keys really are spread: more than one master holds some of them (others answer MOVED).
    const holders = await Promise.all(
      cluster!.ports.map(async (port) => {
        const node = new Redis({ host: '127.0.0.1', port });
        try {
          const held = await Promise.all(keys.map((key) => node.exists(key).catch(() => 0)));
          return held.some((n) => n === 1);
        } finally {
          node.disconnect();
        }
      }),
    );
    expect(holders.filter(Boolean).length).toBeGreaterThan(1);
    await Promise.all(keys.map((key) => store.delete([key, `${key}:n`])));
  });

  it('fails with a StoreError when keys of one call span hash slots', async () => {
    const store = redisStore(client);
    const error = await store.getMany(['tc:test:{a}:x', 'tc:test:{b}:x']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreError);
    expect(String((error as StoreError).message)).toMatch(/CROSSSLOT/);
  });

  it('reads durability settings through a cluster client', async () => {
    expect(await checkRedisDurability(client)).toEqual({ appendonly: false, maxmemoryPolicy: 'noeviction' });
  });
});
