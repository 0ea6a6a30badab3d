/**
 * The database side of write-back on a Drizzle PostgreSQL session: parameterized multi-row
 * statements (identifiers from the schema, quoted; casts from the parsed column types; every
 * value a bound parameter), run through the unwrapped session's `prepareQuery`. Batches travel as
 * one text-array parameter per column, unnested by the statement: its text does not grow with the
 * row count, and the server parses a few parameters instead of one per cell.
 */
import type { ColumnOp, RowPlan } from '../../src/write-back/coalesce.js';
import { fieldValue, rowIdentity } from '../../src/write-back/ops.js';
import type { NormalizeContext } from '../../src/write-back/pg-types.js';
import type {
  ApplyResult,
  Fill,
  Offset,
  SinkTable,
  SinkTransaction,
  SinkTransactionOptions,
  WriteBackSink,
} from '../../src/write-back/sink.js';
import { textArrayLiteral } from './pg-array.js';

/** The bookkeeping table the flusher creates: the newest applied stream id per namespace and table. */
export const OFFSETS_TABLE = 'tablecache_write_back_offsets';

/** The part of a Drizzle PgSession the sink uses (`prepareQuery` with raw results; transactions). */
export interface SinkSession {
  prepareQuery(
    query: { sql: string; params: unknown[] },
    fields: undefined,
    name: undefined,
    isResponseInArrayMode: boolean,
  ): { execute(): Promise<unknown> };
  transaction<T>(callback: (tx: SinkTransactionHandle) => Promise<T>, config?: unknown): Promise<T>;
}

/** A Drizzle PgTransaction: its session runs statements; `transaction` opens a savepoint. */
export interface SinkTransactionHandle {
  session: SinkSession;
  transaction<T>(callback: (tx: SinkTransactionHandle) => Promise<T>): Promise<T>;
}

/** A statement: text with `$n` placeholders and its parameters. */
interface Query {
  sql: string;
  params: unknown[];
}

/** Parameters per statement stay well below PostgreSQL's limit of 65535. */
const MAX_PARAMS = 30_000;
/** Rows per array statement: big enough to amortize a round trip, small enough to bound one message. */
const ROWS_PER_STATEMENT = 5_000;
const UTC_ZONES = new Set([
  'utc',
  'etc/utc',
  'gmt',
  'etc/gmt',
  'uct',
  'etc/uct',
  'universal',
  'etc/universal',
  'zulu',
  'etc/zulu',
  'greenwich',
  'etc/greenwich',
  'gmt0',
  'etc/gmt0',
  'gmt+0',
  'gmt-0',
  'etc/gmt+0',
  'etc/gmt-0',
]);

function run(session: SinkSession, query: Query): Promise<unknown> {
  return session.prepareQuery(query, undefined, undefined, false).execute();
}

/** Builds the sink on an unwrapped Drizzle session. */
export function drizzleSink(session: SinkSession): WriteBackSink {
  let bookkeeping: Promise<void> | undefined;
  const ensureBookkeeping = () => {
    bookkeeping ??= createOffsetsTable(session).catch((error: unknown) => {
      bookkeeping = undefined;
      throw error;
    });
    return bookkeeping;
  };

  return {
    async settings(): Promise<NormalizeContext> {
      const [row] = rowsOf(
        await run(session, {
          sql: "select current_setting('DateStyle') as ds, current_setting('TimeZone') as tz, current_setting('extra_float_digits') as efd, current_setting('bytea_output') as bo",
          params: [],
        }),
      );
      const get = (k: string) => String(row?.[k] ?? '');
      return {
        dateStyleIso: get('ds').toUpperCase().startsWith('ISO'),
        timeZoneUtc: UTC_ZONES.has(get('tz').toLowerCase()),
        floatExact: Number(get('efd')) >= 1,
        byteaHex: get('bo') === 'hex',
      };
    },

    async loadRows(table, pks) {
      const found = new Map<string, Record<string, string | null>>();
      const chunk = Math.max(1, Math.floor(MAX_PARAMS / table.primaryKey.length));
      const kinds = new Map(table.columns.map((c) => [c.name, c.type.kind]));
      for (let start = 0; start < pks.length; start += chunk) {
        const q = new Builder();
        const list = [
          ...table.primaryKey.map((c, i) => `${asText(ident(c), kinds.get(c))} as "k${i}"`),
          ...table.columns.map((c, i) => `${asText(ident(c.name), c.type.kind)} as "c${i}"`),
        ];
        q.add(`select ${list.join(', ')} from ${tableRef(table)} where `);
        keyMatch(q, table, pks.slice(start, start + chunk));
        for (const row of rowsOf(await run(session, q.query()))) {
          const pk = table.primaryKey.map((_, i) => String(row[`k${i}`]));
          const values: Record<string, string | null> = {};
          table.columns.forEach((c, i) => {
            values[c.name] = textOf(row[`c${i}`]);
          });
          found.set(rowIdentity(pk), values);
        }
      }
      return pks.map((pk) => found.get(rowIdentity([...pk])) ?? null);
    },

    async transaction<T>(options: SinkTransactionOptions, fn: (tx: SinkTransaction) => Promise<T>): Promise<T> {
      await ensureBookkeeping();
      return session.transaction(async (tx) => {
        const ms = (n: number) => String(Math.max(1, Math.round(n)));
        // set_config(..., true) is SET LOCAL: both timeouts in one round trip.
        await run(tx.session, {
          sql: "select set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)",
          params: [ms(options.lockTimeoutMs), ms(options.statementTimeoutMs)],
        });
        return fn(sinkTransaction(tx));
      });
    },
  };
}

async function createOffsetsTable(session: SinkSession): Promise<void> {
  try {
    await run(session, {
      sql: `create table if not exists ${ident(OFFSETS_TABLE)} (namespace text not null, table_name text not null, last_id text not null, epoch bigint not null, updated_at timestamptz not null default now(), primary key (namespace, table_name))`,
      params: [],
    });
  } catch (error) {
    // Two processes creating it at once: one wins, the other sees a duplicate; either way it exists.
    const code =
      (error as { cause?: { code?: unknown }; code?: unknown }).cause?.code ?? (error as { code?: unknown }).code;
    if (code !== '23505' && code !== '42P07') throw error;
  }
}

function sinkTransaction(tx: SinkTransactionHandle): SinkTransaction {
  const offsets = ident(OFFSETS_TABLE);
  return {
    async lockOffset(namespace, table): Promise<Offset> {
      // Creates the row or locks the existing one (DO UPDATE takes the row lock, like FOR UPDATE).
      const [row] = rowsOf(
        await run(tx.session, {
          sql: `insert into ${offsets} as o (namespace, table_name, last_id, epoch) values ($1, $2, '', 0) on conflict (namespace, table_name) do update set last_id = o.last_id returning o.last_id, o.epoch::text as epoch`,
          params: [namespace, table],
        }),
      );
      const lastId = String(row?.last_id ?? '');
      return { lastId: lastId === '' ? undefined : lastId, epoch: Number(row?.epoch ?? 0) };
    },

    async setOffset(namespace, table, lastId, epoch) {
      await run(tx.session, {
        sql: `update ${offsets} set last_id = $1, epoch = $2::text::bigint, updated_at = now() where namespace = $3 and table_name = $4`,
        params: [lastId, String(epoch), namespace, table],
      });
    },

    apply: (table, plans) => applyPlans(tx.session, table, plans),

    savepoint<T>(fn: () => Promise<T>): Promise<T> {
      return tx.transaction(() => fn());
    },
  };
}

/** Applies plans round by round: DELETE, then INSERT, then UPDATE, each a few multi-row statements. */
async function applyPlans(session: SinkSession, table: SinkTable, plans: readonly RowPlan[]): Promise<ApplyResult> {
  const fills: Fill[] = [];
  let affected = 0;
  const rounds = Math.max(0, ...plans.map((p) => p.rounds.length));
  for (let r = 0; r < rounds; r++) {
    const deletes: RowPlan[] = [];
    const inserts = new Map<'ins' | 'insn' | 'ups', RowPlan[]>();
    const updates = new Map<string, { pk: string[]; ops: Map<string, ColumnOp> }[]>();
    for (const plan of plans) {
      const round = plan.rounds[r];
      if (!round) continue;
      if (round.del) deletes.push(plan);
      if (round.ins) {
        const list = inserts.get(round.ins.kind) ?? [];
        list.push(plan);
        inserts.set(round.ins.kind, list);
      }
      if (round.upd && round.upd.size > 0) addUpdate(updates, plan.pk, round.upd);
    }
    for (let i = 0; i < deletes.length; i += ROWS_PER_STATEMENT) {
      affected += await deleteRows(session, table, deletes.slice(i, i + ROWS_PER_STATEMENT));
    }
    const conflicts = new Map<string, { pk: string[]; ops: Map<string, ColumnOp> }[]>();
    for (const [kind, rows] of inserts) {
      const result = await insertRows(session, table, r, kind, rows);
      fills.push(...result.fills);
      affected += result.affected;
      if (kind !== 'ups') continue;
      // Rows the insert skipped exist: they get the ON CONFLICT DO UPDATE changes.
      for (const plan of rows) {
        const conflict = plan.rounds[r]?.ins?.conflict;
        if (!result.inserted.has(plan.identity) && conflict && conflict.size > 0)
          addUpdate(conflicts, plan.pk, conflict);
      }
    }
    // Conflict updates come before the round's own updates (which are later in each row's history).
    for (const groups of [conflicts, updates]) {
      for (const rows of groups.values()) {
        const result = await updateRows(session, table, rows);
        fills.push(...result.fills);
        affected += result.affected;
      }
    }
  }
  return { fills, affected };
}

/** Groups update rows by what they change (set, add, DEFAULT per column): one statement per group. */
function addUpdate(
  groups: Map<string, { pk: string[]; ops: Map<string, ColumnOp> }[]>,
  pk: string[],
  ops: Map<string, ColumnOp>,
): void {
  const signature = [...ops.entries()]
    .map(([c, op]) => `${c}\u0000${'delta' in op ? 'd' : op.set === 'u' ? 'D' : 's'}`)
    .sort()
    .join('\u0001');
  const list = groups.get(signature) ?? [];
  list.push({ pk, ops });
  groups.set(signature, list);
}

async function deleteRows(session: SinkSession, table: SinkTable, plans: readonly RowPlan[]): Promise<number> {
  const types = new Map(table.columns.map((c) => [c.name, c.type.cast]));
  const pk = table.primaryKey;
  const q = new Builder();
  const source = arraySelect(
    q,
    pk.map((c, i) => ({ alias: `"k${i}"`, cast: types.get(c) as string, values: plans.map((p) => p.pk[i] as string) })),
  );
  const target = pk.length === 1 ? ident(pk[0] as string) : `(${pk.map(ident).join(', ')})`;
  return affectedOf(await run(session, q.add(`delete from ${tableRef(table)} where ${target} in (${source})`).query()));
}

/** Insert rows of one kind; rows that leave the same columns to their DEFAULT share statements. */
async function insertRows(
  session: SinkSession,
  table: SinkTable,
  round: number,
  kind: 'ins' | 'insn' | 'ups',
  plans: readonly RowPlan[],
): Promise<{ fills: Fill[]; affected: number; inserted: Set<string> }> {
  const fills: Fill[] = [];
  const inserted = new Set<string>();
  let affected = 0;
  const groups = new Map<string, Map<string, string>[]>();
  for (const plan of plans) {
    const values = plan.rounds[round]?.ins?.values ?? new Map<string, string>();
    let signature = '';
    for (const c of table.columns) signature += (values.get(c.name) ?? 'u') === 'u' ? 'd' : 'v';
    const group = groups.get(signature);
    if (group) group.push(values);
    else groups.set(signature, [values]);
  }
  const conflict = kind === 'ins' ? '' : ` on conflict (${table.primaryKey.map(ident).join(', ')}) do nothing`;
  for (const [signature, group] of groups) {
    const given = table.columns.filter((_, i) => signature[i] === 'v');
    const filled = table.columns.filter((_, i) => signature[i] === 'd').map((c) => c.name);
    const wantReturn = filled.length > 0 || kind === 'ups';
    const returning = wantReturn ? ` returning ${returningList(table, filled, undefined)}` : '';
    for (let start = 0; start < group.length; start += ROWS_PER_STATEMENT) {
      const rows = group.slice(start, start + ROWS_PER_STATEMENT);
      const q = new Builder().add(`insert into ${tableRef(table)} `);
      if (given.length === 0) q.add(`select from generate_series(1, ${q.param(String(rows.length), 'integer')})`);
      else {
        const source = arraySelect(
          q,
          given.map((c, i) => ({
            alias: `"a${i}"`,
            cast: c.type.cast,
            values: rows.map((v) => fieldValue(v.get(c.name) as string) ?? null),
          })),
        );
        q.add(`(${given.map((c) => ident(c.name)).join(', ')}) ${source}`);
      }
      const result = await run(session, q.add(conflict + returning).query());
      affected += affectedOf(result);
      if (!wantReturn) continue;
      for (const row of rowsOf(result)) {
        const pk = table.primaryKey.map((_, i) => String(row[`k${i}`]));
        inserted.add(rowIdentity(pk));
        filled.forEach((c, i) => {
          fills.push({ pk, column: c, value: textOf(row[`f${i}`]) });
        });
      }
    }
  }
  return { fills, affected, inserted };
}

async function updateRows(
  session: SinkSession,
  table: SinkTable,
  rows: readonly { pk: string[]; ops: Map<string, ColumnOp> }[],
): Promise<{ fills: Fill[]; affected: number }> {
  const first = rows[0];
  if (!first) return { fills: [], affected: 0 };
  const types = new Map(table.columns.map((c) => [c.name, c.type.cast]));
  const ops = [...first.ops.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const carried = ops.filter(([, op]) => 'delta' in op || op.set !== 'u').map(([c]) => c);
  const defaults = ops.filter(([, op]) => !('delta' in op) && op.set === 'u').map(([c]) => c);
  const t = '"__tc_t"';
  const v = '"__tc_v"';
  const assignments = ops
    .map(([c, op]) => {
      if ('delta' in op) return `${ident(c)} = ${t}.${ident(c)} + ${v}."v${carried.indexOf(c)}"`;
      if (op.set === 'u') return `${ident(c)} = default`;
      return `${ident(c)} = ${v}."v${carried.indexOf(c)}"`;
    })
    .join(', ');
  const match = table.primaryKey.map((c, i) => `${t}.${ident(c)} = ${v}."k${i}"`).join(' and ');
  const pkTypes = table.primaryKey.map((c) => types.get(c) as string);
  const fills: Fill[] = [];
  let affected = 0;
  for (let start = 0; start < rows.length; start += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(start, start + ROWS_PER_STATEMENT);
    const q = new Builder();
    const source = arraySelect(q, [
      ...pkTypes.map((cast, i) => ({ alias: `"k${i}"`, cast, values: chunk.map((r) => r.pk[i] as string) })),
      ...carried.map((c, i) => ({
        alias: `"v${i}"`,
        cast: types.get(c) as string,
        values: chunk.map((r) => {
          const op = r.ops.get(c) as ColumnOp;
          return 'delta' in op ? op.delta : (fieldValue(op.set) ?? null);
        }),
      })),
    ]);
    q.add(`update ${tableRef(table)} as ${t} set ${assignments} from (${source}) as ${v} where ${match}`);
    if (defaults.length > 0) q.add(` returning ${returningList(table, defaults, t)}`);
    const result = await run(session, q.query());
    affected += affectedOf(result);
    for (const row of defaults.length > 0 ? rowsOf(result) : []) {
      const pk = table.primaryKey.map((_, i) => String(row[`k${i}`]));
      defaults.forEach((c, i) => {
        fills.push({ pk, column: c, value: textOf(row[`f${i}`]) });
      });
    }
  }
  return { fills, affected };
}

/** Statement text with `$n` parameters: values only ever go into `params`. */
class Builder {
  private text = '';
  private readonly params: unknown[] = [];

  add(text: string): this {
    this.text += text;
    return this;
  }

  /**
   * A parameter cast to a column type (the cast comes from the parsed column type, never from
   * input). The parameter itself is text: canonical text goes through the type's input function,
   * and drivers that serialize by parameter type (PGlite) send it as the string it is.
   */
  param(value: string | null, cast: string): string {
    this.params.push(value);
    return `$${this.params.length}::text::${cast}`;
  }

  /** A column of values as one text-array parameter (see pg-array.ts). */
  array(values: readonly (string | null)[]): string {
    this.params.push(textArrayLiteral(values));
    return `$${this.params.length}::text::text[]`;
  }

  query(): Query {
    return { sql: this.text, params: this.params };
  }
}

/** One column of a batch: its alias in the row source, the cast target, a value per row. */
interface ArrayColumn {
  readonly alias: string;
  readonly cast: string;
  readonly values: readonly (string | null)[];
}

/**
 * `select "__tc_u"."a0"::cast as "a0", ... from unnest($1::text::text[], ...) as "__tc_u" ("a0", ...)`:
 * the rows of a batch, each element through its column type's input function (as `$n::text::cast`).
 */
function arraySelect(q: Builder, columns: readonly ArrayColumn[]): string {
  const u = '"__tc_u"';
  const list = columns.map((c) => `${u}.${c.alias}::${c.cast} as ${c.alias}`).join(', ');
  const arrays = columns.map((c) => q.array(c.values)).join(', ');
  return `select ${list} from unnest(${arrays}) as ${u} (${columns.map((c) => c.alias).join(', ')})`;
}

/** `pk::text as k0, ..., column::text as f0, ...` (qualified by `alias` when given). */
function returningList(table: SinkTable, columns: readonly string[], alias: string | undefined): string {
  const ref = (c: string) => (alias ? `${alias}.${ident(c)}` : ident(c));
  const kinds = new Map(table.columns.map((c) => [c.name, c.type.kind]));
  return [
    ...table.primaryKey.map((c, i) => `${asText(ref(c), kinds.get(c))} as "k${i}"`),
    ...columns.map((c, i) => `${asText(ref(c), kinds.get(c))} as "f${i}"`),
  ].join(', ');
}

/**
 * A column as the text its type's output function writes (what a driver receives): a cast to
 * text, except for boolean, whose cast says `true` where the output function says `t`.
 */
function asText(ref: string, kind: string | undefined): string {
  if (kind === 'bool') return `(case when ${ref} then 't' when not ${ref} then 'f' end)`;
  return `${ref}::text`;
}

/** Appends `"id" in ($1::text::integer, ...)` or `("a", "b") in (($1..., $2...), ...)`. */
function keyMatch(q: Builder, table: SinkTable, keys: readonly (readonly string[])[]): void {
  const types = new Map(table.columns.map((c) => [c.name, c.type.cast]));
  const pk = table.primaryKey;
  const tuples = keys.map((k) => {
    const cells = pk.map((c, i) => q.param(k[i] as string, types.get(c) as string));
    return pk.length === 1 ? (cells[0] as string) : `(${cells.join(', ')})`;
  });
  const target = pk.length === 1 ? ident(pk[0] as string) : `(${pk.map(ident).join(', ')})`;
  q.add(`${target} in (${tuples.join(', ')})`);
}

/** A quoted identifier (names come from the schema). */
function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

function tableRef(table: SinkTable): string {
  return table.schema ? `${ident(table.schema)}.${ident(table.name)}` : ident(table.name);
}

function textOf(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/** Object rows of a raw result: `{ rows }` (pg, PGlite) or the row array (postgres-js). */
function rowsOf(result: unknown): Record<string, unknown>[] {
  if (Array.isArray(result)) return result as Record<string, unknown>[];
  const rows = (result as { rows?: unknown } | null | undefined)?.rows;
  return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
}

/** Rows a statement changed: `rowCount` (pg), `affectedRows` (PGlite), `count` (postgres-js). */
function affectedOf(result: unknown): number {
  const r = result as { rowCount?: unknown; affectedRows?: unknown; count?: unknown } | null | undefined;
  const n = r?.rowCount ?? r?.affectedRows ?? r?.count;
  return typeof n === 'number' ? n : 0;
}
