/**
 * Opens a cache with its write-back runtime on node-postgres, for processes that only flush or
 * operate the journal (`tablecache worker`, `tablecache writeback ...`). Applications do not need
 * this: `withCache` attaches write-back by itself.
 */
import { drizzle } from 'drizzle-orm/node-postgres';
import { createCache, type TableCache } from '../../src/cache.js';
import type { CacheError } from '../../src/errors.js';
import { CacheError as CacheErrorClass } from '../../src/errors.js';
import type { Policy } from '../../src/policy/types.js';
import { writeBackOf } from '../../src/write-back/attach.js';
import type { WriteBackOptions, WriteBackRuntime } from '../../src/write-back/runtime.js';
import { redisStore } from '../../stores/redis.js';
import { buildCatalog } from './catalog.js';
import { withCache } from './with-cache.js';

/** What to open. */
export interface OpenWriteBackOptions {
  readonly policy: Policy;
  /** The Drizzle schema module. */
  readonly schema: Record<string, unknown>;
  readonly redisUrl: string;
  /** Without it only journal operations work (status, dead letters): nothing reads the database. */
  readonly databaseUrl?: string | undefined;
  /** The applications' `createCache({ prefix })`. @default 'tc' */
  readonly prefix?: string | undefined;
  readonly writeBack?: WriteBackOptions | undefined;
  readonly onError?: ((error: CacheError) => void) | undefined;
}

/** An open cache with its write-back runtime. */
export interface OpenWriteBack {
  readonly cache: TableCache;
  readonly runtime: WriteBackRuntime;
  /** Closes the cache (draining when a database is attached) and the connections. */
  close(): Promise<void>;
}

/** Opens the cache, attaching the database side when `databaseUrl` is given. */
export async function openWriteBack(options: OpenWriteBackOptions): Promise<OpenWriteBack> {
  const cache = createCache({
    store: redisStore(options.redisUrl),
    policy: options.policy,
    prefix: options.prefix,
    writeBack: options.writeBack,
    onError: options.onError,
  });
  let pool: { end(): Promise<void> } | undefined;
  try {
    if (options.databaseUrl) {
      const pg = await import('pg');
      const created = new (pg.default ?? pg).Pool({ connectionString: options.databaseUrl, max: 4 });
      pool = created;
      withCache(drizzle(created, { schema: options.schema }), cache, { schema: options.schema });
    }
    const engine = cache.attach(buildCatalog(options.schema));
    const runtime = writeBackOf(engine);
    if (!runtime) throw new CacheErrorClass('E_WRITE_BACK_TABLE', 'the policy has no table with pattern "write-back"');
    return {
      cache,
      runtime,
      async close() {
        try {
          await cache.close();
        } finally {
          await pool?.end();
        }
      },
    };
  } catch (error) {
    await cache.close().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    throw error;
  }
}
