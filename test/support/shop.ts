import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll } from 'vitest';
import type { TableCache } from '../../src/index.js';
import { SHOP_DDL } from '../fixtures/shop-schema.js';
import { type IsolatedDatabase, isolatedDatabase } from './pg.js';
import { redisClient } from './redis.js';

/** The services one shop test file shares: its own PostgreSQL schema and a Redis connection. */
export interface ShopServices {
  /** The file's isolated shop schema (valid inside tests and hooks). */
  readonly database: IsolatedDatabase;
  /** A Redis client for the test Redis (valid inside tests and hooks). */
  readonly redis: Redis;
  /** Closes the instance's cache after the current test. */
  track<T extends { cache: TableCache }>(instance: T): T;
}

/** Registers the hooks that create the shop schema and Redis client, and close tracked caches. */
export function useShopServices(): ShopServices {
  let database: IsolatedDatabase | undefined;
  let redis: Redis | undefined;
  const open: { cache: TableCache }[] = [];
  beforeAll(async () => {
    database = await isolatedDatabase(SHOP_DDL);
    redis = redisClient();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((i) => i.cache.close()));
  });
  afterAll(async () => {
    await database?.drop();
    await redis?.quit();
  });
  return {
    get database() {
      if (!database) throw new Error('the shop database exists only inside tests and hooks');
      return database;
    },
    get redis() {
      if (!redis) throw new Error('the Redis client exists only inside tests and hooks');
      return redis;
    },
    track(instance) {
      open.push(instance);
      return instance;
    },
  };
}
