import { randomUUID } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../src/errors.js';
import { readCounter } from '../../src/store.js';
import { checkRedisDurability, redisStore } from '../../stores/redis.js';
import { runStoreConformance } from '../conformance/store-suite.js';

const url = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
const value = (...b: number[]): Uint8Array => new Uint8Array(b);

runStoreConformance('redis (own client from a URL)', async () => {
  const store = redisStore(url);
  return { store, cleanup: () => store.close() };
});

runStoreConformance('redis (caller client with keyPrefix)', async () => {
  const client = new Redis(url, { keyPrefix: `tc:test:${randomUUID()}:` });
  const store = redisStore(client);
  return {
    store,
    cleanup: async () => {
      await store.close();
      await client.quit();
    },
  };
});

describe('redisStore', () => {
  let raw: Redis;

  beforeAll(() => {
    raw = new Redis(url);
  });

  afterAll(async () => {
    await raw.quit();
  });

  it("applies the client's keyPrefix to plain commands and scripts alike", async () => {
    const prefix = `tc:test:prefix:${randomUUID()}:`;
    const client = new Redis(url, { keyPrefix: prefix });
    const store = redisStore(client);
    const tag = `{${randomUUID()}}`;
    const keys = ['set', 'guarded', 'counter', 'written', 'lease'].map((name) => `${tag}:${name}`);
    const [set, guarded, counter, written, lease] = keys as [string, string, string, string, string];
    try {
      await store.set([{ key: set, value: value(1), ttlMs: 60_000 }]);
      expect(await store.setIfCounters({ key: guarded, value: value(2), ttlMs: 60_000 }, [])).toBe(true);
      await store.incr([counter], { init: 10 });
      expect(await store.incrThenSetOrDelete(counter, 12, { key: written, value: value(3), ttlMs: 60_000 })).toBe(true);
      expect(await store.setIfAbsent({ key: lease, value: value(4), ttlMs: 60_000 })).toBe(true);

      const prefixed = await raw.mgetBuffer(...keys.map((k) => prefix + k));
      expect(prefixed.map((b) => (b === null ? null : [...b]))).toEqual([[1], [2], [...Buffer.from('12')], [3], [4]]);
      expect(await raw.exists(...keys)).toBe(0);

      await store.delete(keys);
      expect(await raw.exists(...keys.map((k) => prefix + k))).toBe(0);
    } finally {
      await raw.del(...keys.map((k) => prefix + k));
      await client.quit();
    }
  });

  it('gives a counter without ttlMs no expiry and one with ttlMs a PTTL', async () => {
    const store = redisStore(raw);
    const tag = `tc:test:{${randomUUID()}}`;
    try {
      await store.incr([`${tag}:forever`], { init: 5 });
      await store.incr([`${tag}:mortal`], { ttlMs: 60_000 });
      expect(await raw.pttl(`${tag}:forever`)).toBe(-1);
      const pttl = await raw.pttl(`${tag}:mortal`);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(60_000);
    } finally {
      await raw.del(`${tag}:forever`, `${tag}:mortal`);
    }
  });

  it('falls back to EVAL when the server lost its cached scripts', async () => {
    const store = redisStore(raw);
    const key = `tc:test:{${randomUUID()}}:n`;
    try {
      await store.incr([key]);
      await raw.script('FLUSH');
      expect(await store.incr([key])).toEqual([2]);
      expect(readCounter((await store.getMany([key]))[0])).toBe(2);
    } finally {
      await raw.del(key);
    }
  });

  it('wraps Redis errors in StoreError with the cause kept', async () => {
    const store = redisStore(raw);
    const key = `tc:test:{${randomUUID()}}:text`;
    try {
      await store.set([{ key, value: Buffer.from('not a number'), ttlMs: 60_000 }]);
      const error = await store.incr([key]).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('E_STORE');
      expect((error as StoreError).cause).toBeInstanceOf(Error);
    } finally {
      await raw.del(key);
    }
  });

  it('closes the client it opened from a URL', async () => {
    const name = `tc-test-${randomUUID()}`;
    const withName = new URL(url);
    withName.searchParams.set('connectionName', name);
    const store = redisStore(withName.toString());
    await store.getMany(['tc:test:close-probe']);
    expect(await clientNames(raw)).toContain(name);
    await store.close();
    await expect.poll(() => clientNames(raw)).not.toContain(name);
    await expect(store.getMany(['tc:test:close-probe'])).rejects.toBeInstanceOf(StoreError);
    // Closing twice is harmless.
    await expect(store.close()).resolves.toBeUndefined();
  });

  it('leaves a client passed in open', async () => {
    const client = new Redis(url);
    try {
      const store = redisStore(client);
      await store.getMany(['tc:test:close-probe']);
      await store.close();
      expect(client.status).toBe('ready');
      expect(await client.ping()).toBe('PONG');
    } finally {
      await client.quit();
    }
  });

  it('detaches from a client passed in on close, so stores opened and closed on it leave no listeners', async () => {
    const client = new Redis(url);
    const counts = () => ['close', 'ready', 'end'].map((e) => client.listenerCount(e));
    try {
      await client.ping();
      const before = counts();
      for (let i = 0; i < 20; i++) {
        const store = redisStore(client);
        await store.getMany(['tc:test:listener-probe']);
        expect(counts().every((n, j) => n > (before[j] as number))).toBe(true);
        await store.close();
      }
      expect(counts()).toEqual(before);
    } finally {
      await client.quit();
    }
  });

  describe('against a server that never answers', () => {
    let server: Server;
    const sockets = new Set<Socket>();

    beforeAll(async () => {
      server = createServer((socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    });

    afterAll(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    const silentUrl = (): string => {
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('no TCP address');
      return `redis://127.0.0.1:${address.port}`;
    };

    it('fails a call with a StoreError after commandTimeoutMs', async () => {
      const store = redisStore(silentUrl(), { commandTimeoutMs: 100 });
      try {
        const error = await store.getMany(['k']).catch((e: unknown) => e);
        expect(error).toBeInstanceOf(StoreError);
        expect((error as StoreError).message).toMatch(/timed out after 100 ms/);
      } finally {
        await store.close();
      }
    });

    it('reports unknown durability when CONFIG cannot be read', async () => {
      const client = new Redis(silentUrl(), { lazyConnect: true });
      try {
        expect(await checkRedisDurability(client, { commandTimeoutMs: 100 })).toEqual({
          appendonly: undefined,
          maxmemoryPolicy: undefined,
        });
      } finally {
        client.disconnect();
      }
    });
  });

  it('reads appendonly and maxmemory-policy with checkRedisDurability', async () => {
    const [, appendonly] = (await raw.config('GET', 'appendonly')) as string[];
    const [, policy] = (await raw.config('GET', 'maxmemory-policy')) as string[];
    expect(await checkRedisDurability(raw)).toEqual({ appendonly: appendonly === 'yes', maxmemoryPolicy: policy });
  });
});

/** Names of the connections the server currently has. */
async function clientNames(client: Redis): Promise<string[]> {
  const list = String(await client.client('LIST'));
  return [...list.matchAll(/ name=(\S*)/g)].map((m) => m[1] ?? '');
}
