import { readFileSync } from 'node:fs';
import { drizzle } from 'drizzle-orm/node-postgres';
import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { createDatabase } from '../../chaos/database.js';
import { type RedisServer, startRedisServer } from '../../chaos/redis-server.js';
import { formatResult } from '../../chaos/report.js';
import { runChaos } from '../../chaos/run-chaos.js';
import { type CacheError, createCache, definePolicy } from '../../src/index.js';
import { redisStore } from '../../stores/redis.js';

// Redis AUTH and ACL users through the ioredis options. The ACL below is the one
// docs/reliability.md shows: keys under the `tc:` prefix, and only the commands tablecache sends
// (the store, its Lua scripts, the write-back journal, and what ioredis sends on connect).

const ADMIN_PASSWORD = 'admin-Pw-8d1f';
const USER_PASSWORD = 'tc-Pw-5e2a';

/** `ACL SETUSER` arguments of the tablecache user (docs/reliability.md). */
const TABLECACHE_ACL = [
  'tablecache',
  'reset',
  'on',
  `>${USER_PASSWORD}`,
  '~tc:*',
  'resetchannels',
  '-@all',
  // Connection: ioredis's ready check (INFO), CLIENT SETNAME (connectionName), PING.
  '+info',
  '+ping',
  '+client|setname',
  // The store and its scripts.
  '+mget',
  '+get',
  '+set',
  '+del',
  '+exists',
  '+incr',
  '+incrby',
  '+pexpire',
  '+eval',
  '+evalsha',
  // Write-back journal (streams, row hashes, the server clock).
  '+time',
  '+hget',
  '+hgetall',
  '+hmget',
  '+hset',
  '+hincrby',
  '+xadd',
  '+xack',
  '+xautoclaim',
  '+xdel',
  '+xlen',
  '+xpending',
  '+xrange',
  '+xrevrange',
  '+xreadgroup',
  '+xgroup|create',
];

const admin = { password: ADMIN_PASSWORD };
const requirepass = ['--requirepass', ADMIN_PASSWORD];

describe('Redis AUTH', () => {
  it('runs the workload with requirepass and the password in the ioredis options', async () => {
    const result = await runChaos({
      ops: 800,
      workers: 3,
      seconds: 15,
      seed: 21,
      faults: [],
      redisServer: { args: requirepass, admin, client: { password: ADMIN_PASSWORD } },
    });
    expect(result.cache.storeErrors, formatResult(result)).toBe(0);
    expect(result.cache.hits).toBeGreaterThan(0);
    expect(result.check.anomalies).toEqual([]);
  }, 60_000);
});

describe('a Redis ACL user limited to the tc: prefix and the commands tablecache needs', () => {
  it('grants every command the Lua scripts call, and the documented ACL line is this one', () => {
    const sources = ['src/write-back/lua.ts', 'stores/redis.ts'].map((f) => readFileSync(f, 'utf8')).join('\n');
    const called = new Set([...sources.matchAll(/redis\.call\('([A-Za-z]+)'/g)].map((m) => `+${m[1]?.toLowerCase()}`));
    expect(called.size).toBeGreaterThan(10);
    expect([...called].filter((c) => !TABLECACHE_ACL.includes(c))).toEqual([]);
    const documented = readFileSync('docs/reliability.md', 'utf8').match(/^ACL SETUSER tablecache .*$/m)?.[0];
    // From the key pattern on (the documented line has a placeholder password).
    expect(documented?.split(' ').slice(6)).toEqual(TABLECACHE_ACL.slice(4));
  });

  it('runs every supported pattern through that user without a single store error', async () => {
    const result = await runChaos({
      ops: 1500,
      workers: 4,
      seconds: 20,
      seed: 22,
      faults: [],
      redisServer: {
        args: requirepass,
        admin,
        client: { username: 'tablecache', password: USER_PASSWORD },
        setup: async (redis) => {
          await redis.call('ACL', 'SETUSER', ...TABLECACHE_ACL);
        },
      },
    });
    expect(result.cache.storeErrors, formatResult(result)).toBe(0);
    expect(result.cache.hits).toBeGreaterThan(0);
    expect(result.cache.fills).toBeGreaterThan(0);
    expect(result.check.anomalies).toEqual([]);
  }, 60_000);

  describe('what the user cannot do', () => {
    let server: RedisServer;
    let user: Redis;

    beforeAll(async () => {
      server = await startRedisServer({ args: requirepass, probe: admin });
      const root = new Redis({ port: server.port, ...admin });
      await root.call('ACL', 'SETUSER', ...TABLECACHE_ACL);
      await root.set('other:secret', 'x');
      root.disconnect();
      user = new Redis({ port: server.port, username: 'tablecache', password: USER_PASSWORD, maxRetriesPerRequest: 0 });
    });
    afterAll(async () => {
      user.disconnect();
      await server.stop();
    });

    it('refuses keys outside the prefix and every administrative command', async () => {
      expect(await user.set('tc:{ns:v1}:probe', 'ok')).toBe('OK');
      await expect(user.get('other:secret')).rejects.toThrow(/NOPERM/);
      await expect(user.set('other:key', 'x')).rejects.toThrow(/NOPERM/);
      for (const command of [
        ['FLUSHALL'],
        ['KEYS', '*'],
        ['CONFIG', 'GET', 'dir'],
        ['ACL', 'LIST'],
        ['SCRIPT', 'FLUSH'],
        ['SCAN', '0'],
        ['SHUTDOWN', 'NOSAVE'],
      ]) {
        await expect(user.call(command[0] as string, ...command.slice(1))).rejects.toThrow(/NOPERM/);
      }
      // A script may not reach outside the prefix either.
      await expect(user.eval("return redis.call('GET', KEYS[1])", 1, 'other:secret')).rejects.toThrow(
        /NOPERM|No permissions/,
      );
    });

    it('with a wrong password or a prefix the ACL does not allow, queries are still answered and onError says why, without the password', async () => {
      const database = await createDatabase('acl');
      const people = pgTable('people', { id: integer('id').primaryKey(), name: text('name').notNull() });
      await database.admin.query(
        "create table people (id int primary key, name text not null); insert into people values (1, 'ada')",
      );
      try {
        for (const variant of ['wrong-password', 'wrong-prefix'] as const) {
          const errors: CacheError[] = [];
          const client = new Redis({
            port: server.port,
            username: 'tablecache',
            password: variant === 'wrong-password' ? 'not-the-password' : USER_PASSWORD,
            maxRetriesPerRequest: 0,
            retryStrategy: () => null,
          });
          client.on('error', () => {});
          const cache = createCache({
            store: redisStore(client),
            prefix: variant === 'wrong-prefix' ? 'app' : 'tc',
            policy: definePolicy({ namespace: 'acl', version: 1, tables: { people: { pattern: 'cache-aside' } } }),
            onError: (e) => errors.push(e),
          });
          const db = withCache(drizzle(database.pool(variant, 2), { schema: { people } }), cache);
          for (let i = 0; i < 3; i++) expect((await db.select().from(people))[0]?.name).toBe('ada');
          expect(errors.length, variant).toBeGreaterThan(0);
          expect(errors.every((e) => e.code === 'E_STORE')).toBe(true);
          const text = errors.map((e) => `${e.message} ${String((e.cause as Error | undefined)?.message)}`).join('\n');
          expect(text).toMatch(
            variant === 'wrong-password' ? /WRONGPASS|NOAUTH|closed|timed out/ : /NOPERM|No permissions/,
          );
          expect(text).not.toContain(USER_PASSWORD);
          expect(text).not.toContain('not-the-password');
          await cache.close();
          client.disconnect();
        }
      } finally {
        await database.drop();
      }
    });
  });
});
