/**
 * The database side of write-back on a Drizzle PostgreSQL session: parameterized multi-row
 * statements built with Drizzle's `sql` (identifiers from the schema via `sql.identifier`, casts
 * from the parsed column types, every value a bound parameter), run on the unwrapped session.
 */
import { type SQL, sql } from 'drizzle-orm';
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

/** The bookkeeping table the flusher creates: the newest applied stream id per namespace and table. */
export const OFFSETS_TABLE = 'tablecache_write_back_offsets';

/** The part of a Drizzle PgSession / PgTransaction the sink uses. */
export interface SqlRunner {
  execute(query: SQL): Promise<unknown>;
}

/** A Drizzle PgSession: runs statements and opens transactions (nested ones are savepoints). */
export interface SinkSession extends SqlRunner {
  transaction<T>(callback: (tx: SinkSession) => Promise<T>, config?: unknown): Promise<T>;
}

/** Parameters per statement stay well below PostgreSQL's limit of 65535. */
const MAX_PARAMS = 30_000;
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
        await session.execute(
          sql`select current_setting('DateStyle') as ds, current_setting('TimeZone') as tz, current_setting('extra_float_digits') as efd, current_setting('bytea_output') as bo`,
        ),
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
      const perKey = table.primaryKey.length;
      const chunk = Math.max(1, Math.floor(MAX_PARAMS / perKey));
      for (let start = 0; start < pks.length; start += chunk) {
        const keys = pks.slice(start, start + chunk);
        const types = new Map(table.columns.map((c) => [c.name, c.type.kind]));
        const pkCols = table.primaryKey.map(
          (c, i) => sql`${asText(col(c), types.get(c))} as ${sql.identifier(`k${i}`)}`,
        );
        const valueCols = table.columns.map(
          (c, i) => sql`${asText(col(c.name), c.type.kind)} as ${sql.identifier(`c${i}`)}`,
        );
        const query = sql`select ${sql.join([...pkCols, ...valueCols], sql`, `)} from ${tableRef(table)} where ${keyMatch(table, keys, undefined)}`;
        for (const row of rowsOf(await session.execute(query))) {
          const pk = table.primaryKey.map((_, i) => String(row[`k${i}`]));
          const values: Record<string, string | null> = {};
          table.columns.forEach((c, i) => {
            const v = row[`c${i}`];
            values[c.name] = v === null || v === undefined ? null : String(v);
          });
          found.set(rowIdentity(pk), values);
        }
      }
      return pks.map((pk) => found.get(rowIdentity([...pk])) ?? null);
    },

    async transaction<T>(options: SinkTransactionOptions, fn: (tx: SinkTransaction) => Promise<T>): Promise<T> {
      await ensureBookkeeping();
      return session.transaction(async (tx) => {
        await tx.execute(sql.raw(`set local lock_timeout = ${Math.max(1, Math.round(options.lockTimeoutMs))}`));
        await tx.execute(
          sql.raw(`set local statement_timeout = ${Math.max(1, Math.round(options.statementTimeoutMs))}`),
        );
        return fn(sinkTransaction(tx));
      });
    },
  };
}

async function createOffsetsTable(session: SqlRunner): Promise<void> {
  try {
    await session.execute(
      sql`create table if not exists ${sql.identifier(OFFSETS_TABLE)} (namespace text not null, table_name text not null, last_id text not null, epoch bigint not null, updated_at timestamptz not null default now(), primary key (namespace, table_name))`,
    );
  } catch (error) {
    // Two processes creating it at once: one wins, the other sees a duplicate; either way it exists.
    const code =
      (error as { cause?: { code?: unknown }; code?: unknown }).cause?.code ?? (error as { code?: unknown }).code;
    if (code !== '23505' && code !== '42P07') throw error;
  }
}

function sinkTransaction(tx: SinkSession): SinkTransaction {
  const offsets = sql.identifier(OFFSETS_TABLE);
  return {
    async lockOffset(namespace, table): Promise<Offset> {
      await tx.execute(
        sql`insert into ${offsets} (namespace, table_name, last_id, epoch) values (${namespace}, ${table}, '', 0) on conflict (namespace, table_name) do nothing`,
      );
      const [row] = rowsOf(
        await tx.execute(
          sql`select last_id, epoch::text as epoch from ${offsets} where namespace = ${namespace} and table_name = ${table} for update`,
        ),
      );
      const lastId = String(row?.last_id ?? '');
      return { lastId: lastId === '' ? undefined : lastId, epoch: Number(row?.epoch ?? 0) };
    },

    async setOffset(namespace, table, lastId, epoch) {
      await tx.execute(
        sql`update ${offsets} set last_id = ${lastId}, epoch = ${String(epoch)}::bigint, updated_at = now() where namespace = ${namespace} and table_name = ${table}`,
      );
    },

    apply: (table, plans) => applyPlans(tx, table, plans),

    savepoint<T>(fn: () => Promise<T>): Promise<T> {
      return tx.transaction(() => fn());
    },
  };
}

/** Applies plans round by round: DELETE, then INSERT, then UPDATE, each a few multi-row statements. */
async function applyPlans(tx: SqlRunner, table: SinkTable, plans: readonly RowPlan[]): Promise<ApplyResult> {
  const fills: Fill[] = [];
  let affected = 0;
  const rounds = Math.max(0, ...plans.map((p) => p.rounds.length));
  for (let r = 0; r < rounds; r++) {
    const deletes: RowPlan[] = [];
    const inserts = new Map<'ins' | 'insn' | 'ups', { plan: RowPlan; kind: 'ins' | 'insn' | 'ups' }[]>();
    const updates = new Map<string, { pk: string[]; ops: Map<string, ColumnOp> }[]>();
    const conflicts: { plan: RowPlan; ops: Map<string, ColumnOp> }[] = [];
    for (const plan of plans) {
      const round = plan.rounds[r];
      if (!round) continue;
      if (round.del) deletes.push(plan);
      if (round.ins) {
        const kind = round.ins.kind;
        const list = inserts.get(kind) ?? [];
        list.push({ plan, kind });
        inserts.set(kind, list);
      }
      if (round.upd && round.upd.size > 0) addUpdate(updates, plan.pk, round.upd);
    }
    for (let i = 0; i < deletes.length; ) {
      const chunk = deletes.slice(i, i + Math.floor(MAX_PARAMS / table.primaryKey.length));
      i += chunk.length;
      affected += affectedOf(
        await tx.execute(
          sql`delete from ${tableRef(table)} where ${keyMatch(
            table,
            chunk.map((p) => p.pk),
            undefined,
          )}`,
        ),
      );
    }
    for (const [kind, rows] of inserts) {
      const result = await insertRows(
        tx,
        table,
        r,
        kind,
        rows.map((x) => x.plan),
      );
      fills.push(...result.fills);
      affected += result.affected;
      if (kind === 'ups') {
        // Rows the insert skipped exist: they get the ON CONFLICT DO UPDATE changes.
        for (const x of rows) {
          const ins = x.plan.rounds[r]?.ins;
          if (!result.inserted.has(x.plan.identity) && ins?.conflict && ins.conflict.size > 0) {
            conflicts.push({ plan: x.plan, ops: ins.conflict });
          }
        }
      }
    }
    // Conflict updates apply before the round's own updates (which come later in the row's history).
    const conflictGroups = new Map<string, { pk: string[]; ops: Map<string, ColumnOp> }[]>();
    for (const c of conflicts) addUpdate(conflictGroups, c.plan.pk, c.ops);
    for (const groups of [conflictGroups, updates]) {
      for (const rows of groups.values()) {
        const result = await updateRows(tx, table, rows);
        fills.push(...result.fills);
        affected += result.affected;
      }
    }
  }
  return { fills, affected };
}

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

async function insertRows(
  tx: SqlRunner,
  table: SinkTable,
  round: number,
  kind: 'ins' | 'insn' | 'ups',
  plans: readonly RowPlan[],
): Promise<{ fills: Fill[]; affected: number; inserted: Set<string> }> {
  const fills: Fill[] = [];
  const inserted = new Set<string>();
  let affected = 0;
  const columns = table.columns;
  const perRow = columns.length;
  const chunkSize = Math.max(1, Math.floor(MAX_PARAMS / perRow));
  for (let start = 0; start < plans.length; start += chunkSize) {
    const chunk = plans.slice(start, start + chunkSize);
    const unknown = new Set<string>();
    const tuples = chunk.map((plan) => {
      const values = plan.rounds[round]?.ins?.values ?? new Map<string, string>();
      const cells = columns.map((c) => {
        const f = values.get(c.name) ?? 'u';
        if (f === 'u') {
          unknown.add(c.name);
          return sql`default`;
        }
        return typed(fieldValue(f) ?? null, c.type.cast);
      });
      return sql`(${sql.join(cells, sql`, `)})`;
    });
    const target = sql.join(table.primaryKey.map(col), sql`, `);
    const conflict = kind === 'ins' ? sql`` : sql` on conflict (${target}) do nothing`;
    const wantReturn = unknown.size > 0 || kind === 'ups';
    const filled = columns.filter((c) => unknown.has(c.name));
    const returning = wantReturn
      ? sql` returning ${returningList(
          table,
          filled.map((c) => c.name),
        )}`
      : sql``;
    const result = await tx.execute(
      sql`insert into ${tableRef(table)} (${sql.join(
        columns.map((c) => col(c.name)),
        sql`, `,
      )}) values ${sql.join(tuples, sql`, `)}${conflict}${returning}`,
    );
    affected += affectedOf(result);
    if (wantReturn) {
      for (const row of rowsOf(result)) {
        const pk = table.primaryKey.map((_, i) => String(row[`k${i}`]));
        inserted.add(rowIdentity(pk));
        filled.forEach((c, i) => {
          const v = row[`f${i}`];
          fills.push({ pk, column: c.name, value: v === null || v === undefined ? null : String(v) });
        });
      }
    }
  }
  return { fills, affected, inserted };
}

async function updateRows(
  tx: SqlRunner,
  table: SinkTable,
  rows: readonly { pk: string[]; ops: Map<string, ColumnOp> }[],
): Promise<{ fills: Fill[]; affected: number }> {
  const first = rows[0];
  if (!first) return { fills: [], affected: 0 };
  const types = new Map(table.columns.map((c) => [c.name, c.type.cast]));
  const ops = [...first.ops.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const carried = ops.filter(([, op]) => 'delta' in op || op.set !== 'u').map(([c]) => c);
  const defaults = ops.filter(([, op]) => !('delta' in op) && op.set === 'u').map(([c]) => c);
  const t = sql.identifier('__tc_t');
  const v = sql.identifier('__tc_v');
  const assignments = ops.map(([c, op]) => {
    if ('delta' in op) return sql`${col(c)} = ${t}.${col(c)} + ${v}.${sql.identifier(`v${carried.indexOf(c)}`)}`;
    if (op.set === 'u') return sql`${col(c)} = default`;
    return sql`${col(c)} = ${v}.${sql.identifier(`v${carried.indexOf(c)}`)}`;
  });
  const aliases = [
    ...table.primaryKey.map((_, i) => sql.identifier(`k${i}`)),
    ...carried.map((_, i) => sql.identifier(`v${i}`)),
  ];
  const match = sql.join(
    table.primaryKey.map((c, i) => sql`${t}.${col(c)} = ${v}.${sql.identifier(`k${i}`)}`),
    sql` and `,
  );
  const pkTypes = table.primaryKey.map((c) => types.get(c) as string);
  const perRow = pkTypes.length + carried.length;
  const chunkSize = Math.max(1, Math.floor(MAX_PARAMS / perRow));
  const fills: Fill[] = [];
  let affected = 0;
  for (let start = 0; start < rows.length; start += chunkSize) {
    const chunk = rows.slice(start, start + chunkSize);
    const tuples = chunk.map((row) => {
      const cells = [
        ...row.pk.map((p, i) => typed(p, pkTypes[i] as string)),
        ...carried.map((c) => {
          const op = row.ops.get(c) as ColumnOp;
          return typed('delta' in op ? op.delta : (fieldValue(op.set) ?? null), types.get(c) as string);
        }),
      ];
      return sql`(${sql.join(cells, sql`, `)})`;
    });
    const returning = defaults.length > 0 ? sql` returning ${returningList(table, defaults, t)}` : sql``;
    const result = await tx.execute(
      sql`update ${tableRef(table)} as ${t} set ${sql.join(assignments, sql`, `)} from (values ${sql.join(tuples, sql`, `)}) as ${v} (${sql.join(aliases, sql`, `)}) where ${match}${returning}`,
    );
    affected += affectedOf(result);
    if (defaults.length > 0) {
      for (const row of rowsOf(result)) {
        const pk = table.primaryKey.map((_, i) => String(row[`k${i}`]));
        defaults.forEach((c, i) => {
          const value = row[`f${i}`];
          fills.push({ pk, column: c, value: value === null || value === undefined ? null : String(value) });
        });
      }
    }
  }
  return { fills, affected };
}

/** `pk::text as k0, ..., col::text as f0, ...` (qualified by `alias` when given). */
function returningList(
  table: SinkTable,
  columns: readonly string[],
  alias?: SQL | ReturnType<typeof sql.identifier>,
): SQL {
  const ref = (c: string) => (alias ? sql`${alias}.${col(c)}` : col(c));
  const kinds = new Map(table.columns.map((c) => [c.name, c.type.kind]));
  return sql.join(
    [
      ...table.primaryKey.map((c, i) => sql`${asText(ref(c), kinds.get(c))} as ${sql.identifier(`k${i}`)}`),
      ...columns.map((c, i) => sql`${asText(ref(c), kinds.get(c))} as ${sql.identifier(`f${i}`)}`),
    ],
    sql`, `,
  );
}

/**
 * A column as the text its type's output function writes (what a driver receives): a cast to
 * text, except for boolean, whose cast says `true` where the output function says `t`.
 */
function asText(ref: SQL, kind: string | undefined): SQL {
  if (kind === 'bool') return sql`(case when ${ref} then 't' when not ${ref} then 'f' end)`;
  return sql`${ref}::text`;
}

/** `"id" in ($1::integer, ...)` or `("a", "b") in (($1::integer, $2::text), ...)`. */
function keyMatch(table: SinkTable, keys: readonly (readonly string[])[], alias: SQL | undefined): SQL {
  const types = new Map(table.columns.map((c) => [c.name, c.type.cast]));
  const ref = (c: string) => (alias ? sql`${alias}.${col(c)}` : col(c));
  const pk = table.primaryKey;
  if (pk.length === 1) {
    const only = pk[0] as string;
    return sql`${ref(only)} in (${sql.join(
      keys.map((k) => typed(k[0] as string, types.get(only) as string)),
      sql`, `,
    )})`;
  }
  const tuple = sql.join(pk.map(ref), sql`, `);
  const values = keys.map(
    (k) =>
      sql`(${sql.join(
        pk.map((c, i) => typed(k[i] as string, types.get(c) as string)),
        sql`, `,
      )})`,
  );
  return sql`(${tuple}) in (${sql.join(values, sql`, `)})`;
}

/**
 * A bound parameter cast to a column type (the cast text comes from the parsed type, never from
 * input). The parameter itself is typed text: canonical text goes through the type's input
 * function, and drivers that serialize by parameter type (PGlite) send it as the string it is.
 */
function typed(value: string | null, cast: string): SQL {
  return sql`${value}::text::${sql.raw(cast)}`;
}

function col(name: string): SQL {
  return sql`${sql.identifier(name)}`;
}

function tableRef(table: SinkTable): SQL {
  return table.schema
    ? sql`${sql.identifier(table.schema)}.${sql.identifier(table.name)}`
    : sql`${sql.identifier(table.name)}`;
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
