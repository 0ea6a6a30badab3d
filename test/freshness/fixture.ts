// The shared setup of the TTL strategy tests: a cache on the shop's products with one policy
// entry, on the memory store with an injected clock and random source (every timing forced), or
// on Redis with the real clock (short real TTLs, read back with PTTL).
import { type MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { asc } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/node-postgres';
import { beforeEach } from 'vitest';
import { withCache } from '../../adapters/drizzle/index.js';
import { type CacheOptions, createCache, definePolicy, type TableCache, type TablePolicy } from '../../src/index.js';
import { memoryStore } from '../../stores/memory.js';
import { redisStore } from '../../stores/redis.js';
import * as schema from '../fixtures/shop-schema.js';
import { countQueries } from '../support/pg.js';
import { type ShopServices, useShopServices } from '../support/shop.js';

/** The fake clock's start. */
export const T0 = 1_700_000_000_000;
/** Resolves after `ms` of real time. */
export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A metric reader collected on demand. */
export class TestMetricReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** One cache under test with its Drizzle client, query counter, clock and random source. */
export interface Setup {
  cache: TableCache;
  db: ReturnType<typeof drizzle<typeof schema>>;
  queries: { readonly count: number; reset(): void };
  clock: { t: number };
  random: { value: number };
}

/** Options of `setup`: the store (memory by default), hooks, a meter provider. */
export interface SetupOptions {
  store?: 'memory' | 'redis';
  hooks?: CacheOptions['hooks'];
  meterProvider?: MeterProvider;
}

/** The fixture a TTL strategy test file uses (valid inside tests and hooks). */
export interface FreshnessFixture extends ShopServices {
  /** This test's namespace (fresh per test; may be changed to start another one). */
  namespace: string;
  /** A cache on products with `entry`. */
  setup(entry: TablePolicy<never>, options?: SetupOptions): Setup;
  /** Runs `read` and returns how many statements reached the database (background work included). */
  queriesOf(s: Setup, read: () => Promise<unknown>): Promise<number>;
  /** The PTTL of every key of `kind` (`q` query, `r` row entries) of the current namespace. */
  ttls(kind: 'q' | 'r'): Promise<number[]>;
}

/** Registers the hooks (shop schema, Redis, two products per test) and returns the fixture. */
export function useFreshnessFixture(): FreshnessFixture {
  const services = useShopServices();
  const fixture: FreshnessFixture = {
    get database() {
      return services.database;
    },
    get redis() {
      return services.redis;
    },
    track: (instance) => services.track(instance),
    namespace: '',
    setup(entry, options = {}) {
      const clock = { t: T0 };
      const random = { value: 0.5 };
      const pool = services.database.pool(3);
      const queries = countQueries(pool);
      const onRedis = options.store === 'redis';
      const cache = createCache({
        store: onRedis ? redisStore(services.redis) : memoryStore({ now: () => clock.t }),
        policy: definePolicy<typeof schema>({ namespace: fixture.namespace, version: 1, tables: { products: entry } }),
        ...(onRedis ? {} : { now: () => clock.t }),
        random: () => random.value,
        hooks: options.hooks,
        meterProvider: options.meterProvider,
        onError: () => {},
      });
      return services.track({ cache, db: withCache(drizzle(pool, { schema }), cache), queries, clock, random });
    },
    async queriesOf(s, read) {
      s.queries.reset();
      await read();
      await s.cache.flush();
      return s.queries.count;
    },
    async ttls(kind) {
      const keys = await services.redis.keys(`tc:{${fixture.namespace}:v1}:${kind}:*`);
      return Promise.all(keys.map((k) => services.redis.pttl(k)));
    },
  };
  beforeEach(async () => {
    fixture.namespace = `fresh-${Math.random().toString(36).slice(2)}`;
    await services.database.run('truncate products');
    await services.database.run("insert into products values (1, 'pen', '1.50', 10), (2, 'ink', '7.25', 3)");
  });
  return fixture;
}

/** All products by id. */
export const list = (s: Setup) => s.db.select().from(schema.products).orderBy(asc(schema.products.id));
/** The titles of all products by id. */
export const titles = async (s: Setup) => (await list(s)).map((p) => p.title);
/** The products table's in-process figures. */
export const stats = (s: Setup) => s.cache.stats().tables.products!;
