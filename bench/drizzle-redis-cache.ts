import { getTableName, is, Table } from 'drizzle-orm';
import { Cache, type MutationOption } from 'drizzle-orm/cache/core';
import type { CacheConfig } from 'drizzle-orm/cache/core/types';
import type { Redis } from 'ioredis';

/**
 * The baseline: Drizzle's built-in query cache (`drizzle(pool, { cache })`, drizzle-orm >= 0.44)
 * with a Redis-backed `Cache` written the way Drizzle's docs show a custom cache: `strategy: 'all'`
 * caches every select under Drizzle's SHA-256 hash of the SQL and parameters, and a mutation
 * drops every entry of the tables it touches (a Redis set per table lists them).
 */
export class RedisDrizzleCache extends Cache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds = 600,
  ) {
    super();
  }

  override strategy(): 'all' {
    return 'all';
  }

  override async get(key: string): Promise<unknown[] | undefined> {
    const value = await this.redis.get(this.prefix + key);
    return value === null ? undefined : (JSON.parse(value) as unknown[]);
  }

  override async put(key: string, response: unknown, tables: string[], _isTag: boolean, config?: CacheConfig) {
    const entry = this.prefix + key;
    const pipeline = this.redis.pipeline();
    pipeline.set(entry, JSON.stringify(response), 'EX', config?.ex ?? this.ttlSeconds);
    for (const table of tables) pipeline.sadd(this.tableSet(table), entry);
    await pipeline.exec();
  }

  override async onMutate(params: MutationOption): Promise<void> {
    const list = params.tables === undefined ? [] : Array.isArray(params.tables) ? params.tables : [params.tables];
    const sets = list.map((t) => this.tableSet(is(t, Table) ? getTableName(t) : String(t)));
    const tags = params.tags === undefined ? [] : Array.isArray(params.tags) ? params.tags : [params.tags];
    if (sets.length === 0 && tags.length === 0) return;
    const entries = sets.length > 0 ? await this.redis.sunion(...sets) : [];
    const doomed = [...entries, ...sets, ...tags.map((tag) => this.prefix + tag)];
    if (doomed.length > 0) await this.redis.del(...doomed);
  }

  private tableSet(table: string): string {
    return `${this.prefix}table:${table}`;
  }
}
