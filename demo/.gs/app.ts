import { eq } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createCache, definePolicy } from '../../src/index.js';
import { withCache } from '../../adapters/drizzle/index.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from './schema.js';

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, options: '-c search_path=gs_try' });
await pool.query('create schema if not exists gs_try; drop table if exists gs_try.users, gs_try.payments; create table gs_try.users (id integer primary key, name text not null); create table gs_try.payments (id integer primary key, user_id integer not null, amount integer not null); insert into gs_try.users values (1, \'Ada\')');
const policy = definePolicy<typeof schema>({
  namespace: 'gs-try',
  version: 1,
  defaults: { pattern: 'none' },
  tables: { users: { pattern: 'cache-aside', ttl: '10m' } },
});
const cache = createCache({ store: redisStore(new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379')), policy });
const db = withCache(drizzle(pool, { schema }), cache);
await db.select().from(schema.users).where(eq(schema.users.id, 1));
await db.select().from(schema.users).where(eq(schema.users.id, 1));
await db.update(schema.users).set({ name: 'Ada Lovelace' }).where(eq(schema.users.id, 1));
console.log(await db.select().from(schema.users).where(eq(schema.users.id, 1)));
await db.select().from(schema.payments);
console.dir(cache.stats().tables.users);
console.dir(cache.stats().tables.payments);
await cache.close();
await pool.query('drop schema gs_try cascade');
await pool.end();
