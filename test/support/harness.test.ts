import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { isReachable, resolveServices } from './services.js';

const databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('test harness', () => {
  it('hands the same URLs to workers through env and inject', () => {
    expect(process.env.TEST_DATABASE_URL).toBe(inject('testDatabaseUrl'));
    expect(process.env.TEST_REDIS_URL).toBe(inject('testRedisUrl'));
  });

  it('reaches PostgreSQL', async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const result = await client.query<{ one: number }>('select 1 as one');
      expect(result.rows).toEqual([{ one: 1 }]);
    } finally {
      await client.end();
    }
  });

  it('reaches Redis', async () => {
    const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await redis.connect();
    try {
      expect(await redis.ping()).toBe('PONG');
    } finally {
      redis.disconnect();
    }
  });

  it('prefers URLs from the environment over anything else', async () => {
    const services = await resolveServices({
      TEST_DATABASE_URL: 'postgres://u@db.invalid:1/x',
      TEST_REDIS_URL: 'redis://cache.invalid:2',
      TEST_SERVICES: 'containers',
    });
    expect(services.database).toMatchObject({ url: 'postgres://u@db.invalid:1/x', source: 'env' });
    expect(services.redis).toMatchObject({ url: 'redis://cache.invalid:2', source: 'env' });
  });

  it('tells a listening port from a closed one', async () => {
    expect(await isReachable(databaseUrl)).toBe(true);
    // Port 1 (tcpmux) is never served on the test machines.
    expect(await isReachable('redis://127.0.0.1:1', 500)).toBe(false);
  });
});
