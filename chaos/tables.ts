import { integer, pgTable, text } from 'drizzle-orm/pg-core';
import { buildCatalog } from '../adapters/drizzle/index.js';
import { createCache, definePolicy, type Pattern, type Policy, type TablePolicy } from '../src/index.js';
import { memoryStore } from '../stores/memory.js';
import type { TableModel } from './history.js';

/** A table whose rows carry a unique value per write and a database-assigned version. */
export function itemsTable(name: string) {
  return pgTable(name, {
    id: integer('id').primaryKey(),
    version: integer('version').notNull(),
    val: text('val').notNull(),
    grp: integer('grp').notNull(),
  });
}

/** A table of counters that are only ever incremented. */
export function countersTable(name: string) {
  return pgTable(name, {
    id: integer('id').primaryKey(),
    n: integer('n').notNull(),
  });
}

/** An items table. */
export type ItemsTable = ReturnType<typeof itemsTable>;
/** A counters table. */
export type CountersTable = ReturnType<typeof countersTable>;

/** The two tables of one caching pattern, and how the workload and the checker treat them. */
export interface PatternTables {
  pattern: Pattern;
  /** Export names in the Drizzle schema (also the database names). */
  itemsName: string;
  countersName: string;
  items: ItemsTable;
  counters: CountersTable;
  /** Whether writes can ask for RETURNING (write-back acknowledges before the database runs them). */
  returning: boolean;
  /** Counters are incremented through `cache.increment` (write-back) rather than an UPDATE. */
  incrementThroughCache: boolean;
  itemsModel: TableModel;
  countersModel: TableModel;
}

/** The size of the key space: small, so operations collide. */
export interface KeySpaceConfig {
  /** Item keys are 1..items; 1..seeded exist at the start. */
  items: number;
  seeded: number;
  /** List reads read one group (`id % groups`). */
  groups: number;
  /** Counter keys are 1..counters. */
  counters: number;
}

/** The default key space. */
export const DEFAULT_KEYS: KeySpaceConfig = { items: 12, seeded: 8, groups: 3, counters: 4 };

const SHORT: Record<Pattern, string> = { 'cache-aside': 'ca', 'write-through': 'wt', 'write-back': 'wb', none: 'no' };

/** The tables of `pattern`. */
export function patternTables(pattern: Pattern): PatternTables {
  const p = SHORT[pattern];
  const itemsName = `${p}_items`;
  const countersName = `${p}_counters`;
  const writeBack = pattern === 'write-back';
  const ordering = writeBack ? 'realtime' : 'version';
  return {
    pattern,
    itemsName,
    countersName,
    items: itemsTable(itemsName),
    counters: countersTable(countersName),
    returning: !writeBack,
    incrementThroughCache: writeBack,
    // Write-back: primary-key reads see acknowledged writes; other queries read the database, which lags.
    itemsModel: { kind: 'items', pattern, ordering, checkLists: !writeBack },
    countersModel: { kind: 'counters', pattern, ordering, checkLists: !writeBack },
  };
}

/** The Drizzle schema module of a table set. */
export function schemaOf(sets: readonly PatternTables[]): Record<string, unknown> {
  const schema: Record<string, unknown> = {};
  for (const s of sets) {
    schema[s.itemsName] = s.items;
    schema[s.countersName] = s.counters;
  }
  return schema;
}

/** The TTL strategies of a `--freshness` run: every one of them, on short TTLs. */
const FRESHNESS_ENTRY = {
  ttl: '300ms',
  ttlJitter: 0.3,
  sliding: { maxAge: '1s' },
  earlyRefresh: { beta: 2 },
  grace: '2s',
  serveStaleOnDbError: true,
} as const;

/**
 * The policy of a table set (namespace per run, so runs sharing a Redis never meet). With
 * `freshness`, cache-aside and write-through tables use every TTL strategy on short TTLs.
 */
export function policyOf(sets: readonly PatternTables[], namespace: string, freshness = false): Policy {
  const tables: Record<string, TablePolicy<never>> = {};
  for (const s of sets) {
    const strategies = freshness && (s.pattern === 'cache-aside' || s.pattern === 'write-through');
    const entry: TablePolicy<never> = strategies
      ? { pattern: s.pattern, ...FRESHNESS_ENTRY }
      : { pattern: s.pattern, ttl: '10m' };
    tables[s.itemsName] = entry;
    tables[s.countersName] = entry;
  }
  return definePolicy({ namespace, version: 1, defaults: { pattern: 'none' }, tables });
}

/**
 * The patterns this build of tablecache can run: cache-aside and none always; write-through when
 * the policy binds it; write-back when it binds and `cache.increment` exists.
 */
export function supportedPatterns(): Pattern[] {
  const out: Pattern[] = ['cache-aside', 'none'];
  for (const pattern of ['write-through', 'write-back'] as const) {
    const sets = [patternTables(pattern)];
    try {
      const cache = createCache({ store: memoryStore(), policy: policyOf(sets, 'probe') });
      cache.attach(buildCatalog(schemaOf(sets)));
      const increment = (cache as unknown as { increment?: unknown }).increment;
      void cache.close();
      if (pattern === 'write-back' && typeof increment !== 'function') continue;
      out.push(pattern);
    } catch {
      // Not supported by this build.
    }
  }
  return out;
}

/** DDL: the audit machinery (a per-key version counter and an audit log, kept by triggers) and the tables. */
export function ddlOf(schema: string, sets: readonly PatternTables[]): string {
  const parts = [
    `create table ${schema}.chaos_keys (tbl text not null, id int not null, counter int not null, primary key (tbl, id))`,
    `create table ${schema}.chaos_audit (seq bigserial primary key, tbl text not null, id int not null, version int not null, val text not null, op char(1) not null)`,
    // Every version comes from the per-key counter, so versions only grow, across deletes too.
    // An insert first locks an existing row, so every write locks the row and then the counter:
    // the same order as UPDATE, hence no deadlocks between them.
    `create function ${schema}.chaos_version() returns trigger language plpgsql as $fn$
     begin
       if TG_OP = 'INSERT' then
         execute format('select 1 from %I.%I where id = $1 for update', TG_TABLE_SCHEMA, TG_TABLE_NAME) using NEW.id;
       end if;
       insert into ${schema}.chaos_keys as k (tbl, id, counter) values (TG_TABLE_NAME, NEW.id, 1)
         on conflict (tbl, id) do update set counter = k.counter + 1
         returning k.counter into NEW.version;
       return NEW;
     end $fn$`,
    `create function ${schema}.chaos_audit_row() returns trigger language plpgsql as $fn$
     begin
       if TG_OP = 'DELETE' then
         insert into ${schema}.chaos_audit (tbl, id, version, val, op) values (TG_TABLE_NAME, OLD.id, OLD.version, OLD.val, 'D');
         return OLD;
       end if;
       insert into ${schema}.chaos_audit (tbl, id, version, val, op) values (TG_TABLE_NAME, NEW.id, NEW.version, NEW.val, left(TG_OP, 1));
       return NEW;
     end $fn$`,
  ];
  for (const s of sets) {
    parts.push(
      `create table ${schema}.${s.itemsName} (id int primary key, version int not null, val text not null, grp int not null)`,
      `create trigger chaos_version before insert or update on ${schema}.${s.itemsName} for each row execute function ${schema}.chaos_version()`,
      `create trigger chaos_audit after insert or update or delete on ${schema}.${s.itemsName} for each row execute function ${schema}.chaos_audit_row()`,
      `create table ${schema}.${s.countersName} (id int primary key, n int not null)`,
    );
  }
  return parts.join(';\n');
}
