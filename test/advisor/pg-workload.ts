import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { databaseUrl } from '../support/pg.js';

/** A schema of its own holding the advisor's test tables, and a client bound to it. */
export interface AdvisorSchema {
  readonly schema: string;
  readonly client: pg.Client;
  /** Runs the standard workload (see `runWorkload`) and flushes its statistics. */
  workload(): Promise<void>;
  /** Drops the schema and closes the client. */
  drop(): Promise<void>;
}

/** Each statement `runWorkload` runs and how often, as pg_stat_statements would record it. */
export const WORKLOAD_STATEMENTS = [
  { query: 'select name from catalog_items where id = $1', calls: 400 },
  { query: 'update page_counters set hits = hits + $1 where id = $2', calls: 300 },
  { query: 'insert into payments (user_id, amount) values ($1, $2)', calls: 50 },
  { query: 'select amount from payments where id = $1', calls: 100 },
  { query: 'select body from notes where id = $1', calls: 40 },
  { query: 'update notes set body = $1 where id = $2', calls: 10 },
  { query: 'insert into click_log (at, url) values ($1, $2)', calls: 300 },
  { query: 'select count(*) from tags where name = $1', calls: 40 },
  { query: 'insert into tags (name) values ($1)', calls: 10 },
] as const;

/**
 * Creates the tables: catalog_items (read-heavy), page_counters (updated by key), payments
 * (money), notes (moderate writes), quiet (no traffic), click_log and tags (no primary key).
 */
export async function advisorSchema(): Promise<AdvisorSchema> {
  const schema = `tc_adv_${randomBytes(5).toString('hex')}`;
  const client = new pg.Client({ connectionString: databaseUrl(), options: `-c search_path=${schema}` });
  await client.connect();
  await client.query(`create schema ${schema}`);
  await client.query(`
    create table catalog_items (id int primary key, name text not null);
    create table page_counters (id int primary key, hits bigint not null default 0);
    create table payments (id serial primary key, user_id int not null, amount numeric not null);
    create table notes (id int primary key, body text not null);
    create table quiet (id int primary key);
    create table click_log (at int not null, url text not null);
    create table tags (name text not null);
    insert into catalog_items select i, 'item ' || i from generate_series(1, 20) i;
    insert into page_counters (id) select generate_series(1, 5);
    insert into notes select i, 'note ' || i from generate_series(1, 10) i;
  `);
  await flushStats(client);
  return {
    schema,
    client,
    async workload() {
      const byQuery = new Map<string, (i: number) => unknown[]>([
        ['select name from catalog_items where id = $1', (i) => [(i % 20) + 1]],
        ['update page_counters set hits = hits + $1 where id = $2', (i) => [1, (i % 5) + 1]],
        ['insert into payments (user_id, amount) values ($1, $2)', (i) => [i, '9.99']],
        ['select amount from payments where id = $1', (i) => [(i % 50) + 1]],
        ['select body from notes where id = $1', (i) => [(i % 10) + 1]],
        ['update notes set body = $1 where id = $2', (i) => [`edited ${i}`, (i % 10) + 1]],
        ['insert into click_log (at, url) values ($1, $2)', (i) => [i, `/page/${i % 7}`]],
        ['select count(*) from tags where name = $1', (i) => [`tag ${i % 3}`]],
        ['insert into tags (name) values ($1)', (i) => [`tag ${i}`]],
      ]);
      for (const { query, calls } of WORKLOAD_STATEMENTS) {
        const params = byQuery.get(query);
        if (params === undefined) throw new Error(`no parameters for ${query}`);
        for (let i = 0; i < calls; i++) await client.query(query, params(i));
      }
      await flushStats(client);
    },
    async drop() {
      await client.query(`drop schema ${schema} cascade`);
      await client.end();
    },
  };
}

/**
 * Makes the session's table counters visible to other sessions now: PostgreSQL 15+ otherwise
 * publishes them at most once a second, when the session goes idle.
 */
export async function flushStats(client: pg.Client): Promise<void> {
  await client.query('select pg_stat_force_next_flush()');
  await client.query('select 1');
}
