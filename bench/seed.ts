import type pg from 'pg';
import { ITEM_COUNT } from './schema.js';

/** Quotes an identifier for PostgreSQL. */
function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Creates the run's schema with its tables, 10,000 items (and their write-through copy), and a
 * statement log on the counters table that counts the write statements the flusher runs. Event
 * rows get `landed_at` from the database clock when they are inserted (the Drizzle schema does not
 * know the column, so whoever inserts leaves it to its default): the sync-lag measurement.
 */
export async function seed(pool: pg.Pool, schemaName: string): Promise<void> {
  const s = ident(schemaName);
  const items = (table: string) => `create table ${s}.${table} (
    id integer primary key,
    code text not null unique,
    name text not null,
    category integer not null,
    price numeric(10, 2) not null,
    qty integer not null,
    active boolean not null,
    created_at timestamptz not null)`;
  const events = (table: string) => `create table ${s}.${table} (
    id bigint primary key,
    item_id integer not null,
    kind text not null,
    amount integer not null,
    created_at timestamptz not null,
    landed_at timestamptz not null default clock_timestamp())`;
  await pool.query(`drop schema if exists ${s} cascade`);
  await pool.query(`create schema ${s}`);
  await pool.query(items('items'));
  await pool.query(items('items_wt'));
  await pool.query(events('wb_events'));
  await pool.query(events('raw_events'));
  await pool.query(`create table ${s}.wb_counters (id integer primary key, views bigint not null default 0)`);
  await pool.query(
    `insert into ${s}.items
     select g, 'item-' || g, 'Item number ' || g, g % 50, (g % 1000) / 10.0 + 1, g % 100, g % 3 <> 0,
            timestamptz '2025-01-01 00:00:00+00' + g * interval '1 minute'
     from generate_series(1, $1::int) g`,
    [ITEM_COUNT],
  );
  await pool.query(`insert into ${s}.items_wt select * from ${s}.items`);
  await pool.query(`insert into ${s}.wb_counters select g, 0 from generate_series(1, 100) g`);
  await pool.query(
    `create table ${s}.statement_log (op text not null, at timestamptz not null default clock_timestamp())`,
  );
  await pool.query(
    `create function ${s}.log_statement() returns trigger language plpgsql as $$
     begin insert into ${s}.statement_log (op) values (TG_OP); return null; end $$`,
  );
  await pool.query(
    `create trigger log_statement after insert or update or delete on ${s}.wb_counters
     for each statement execute function ${s}.log_statement()`,
  );
  await pool.query(`analyze ${s}.items, ${s}.items_wt`);
}

/** Drops the run's schema and everything in it. */
export async function dropSeed(pool: pg.Pool, schemaName: string): Promise<void> {
  await pool.query(`drop schema if exists ${ident(schemaName)} cascade`);
}
