import { parseArgs } from 'node:util';
import pg from 'pg';
import type { Catalog, TableInfo } from '../../src/catalog.js';
import { parseDuration } from '../../src/duration.js';
import { RowKeyCodec } from '../../src/engine/row-key.js';
import type { RawRow } from '../../src/engine/rows.js';
import {
  canScanKeys,
  type KeyScanCapable,
  type TableVerification,
  verifyRowEntries,
} from '../../src/engine/verify-rows.js';
import type { KeySpace } from '../../src/keys.js';
import { bindPolicy } from '../../src/policy/index.js';
import type { Policy } from '../../src/policy/types.js';
import type { CacheStore } from '../../src/store.js';
import { helpOption, parseOrFail, REDIS_OPTIONS_HELP, redisOptions, required, usageHint } from '../args.js';
import type { CliCommand } from '../command.js';
import { deployment } from '../deployment.js';
import { CliError } from '../errors.js';
import { loadPolicyArg, loadSchema } from '../load.js';
import { columns } from '../output.js';
import { openRedis, redisFailure } from '../redis.js';

const usage = `Usage: tablecache verify --policy <file> --schema <module> --database-url <url> [options]

Checks that the cache agrees with the database: samples cached row entries (the rows primary-key
reads and write-through keep) from Redis, reads the same rows from PostgreSQL by primary key and
reports, per table, the rows that differ. Differences come from writes that bypassed tablecache
(another service, psql, a migration). Values are not shown unless --show-values is given.

Only row entries can be checked from Redis: query results are stored under hashes of their SQL
and parameters, which are not stored. To check those, enable createCache({ verify }) in the app.

Options:
  --table <name>        Only this table (repeatable; id, database name or export name)
  --sample <n>          Row entries sampled per table (default: 200)
  --show-values         Print the differing values (may print personal data)
  --confirm <time>      How long a difference must persist, the entry unchanged, to count
                        (a write through the app may be between its commit and its eviction;
                        default: 1s)
  --json                Print the findings as JSON
  --policy <file>       The app's policy (file, directory or module)
  --schema <module>     The app's Drizzle schema module (.js, or .ts through tsx)
  --database-url <url>  The app's database (default: $DATABASE_URL)
${REDIS_OPTIONS_HELP}
  -h, --help            Show this help

Exit codes: 0 no drift found; 1 drift found, or the policy does not fit the schema; 2 usage
errors, unreachable Redis or database.`;

/** What `verify` needs: the deployment's store and keys and a way to read rows from the database. */
export interface VerifyTarget {
  readonly policy: Policy;
  readonly catalog: Catalog;
  /** The app's keys (prefix, namespace, version). */
  readonly keys: KeySpace;
  readonly store: CacheStore;
  readonly scanner: KeyScanCapable;
  /** Reads full rows by primary key, raw values (see `pgRowReader`). */
  fetch(table: TableInfo, keys: readonly (readonly unknown[])[]): Promise<RawRow[]>;
}

/** What to verify. */
export interface VerifySelection {
  /** Table names as given (`--table`); every table with row entries when empty. */
  readonly tables: readonly string[];
  readonly sample: number;
  readonly confirmMs: number;
}

/** Per-table findings of `tablecache verify`. */
export interface VerifyReport {
  readonly tables: readonly TableVerification[];
  /** Total confirmed differences. */
  readonly drifted: number;
}

/** `tablecache verify`: samples cached rows and compares them with the database. */
export const command: CliCommand = {
  name: 'verify',
  summary: 'compare a sample of cached rows with the database and report drift',
  usage,
  async run(argv) {
    const { values } = parseOrFail(
      () =>
        parseArgs({
          args: argv,
          options: {
            ...helpOption,
            ...redisOptions,
            table: { type: 'string', multiple: true },
            sample: { type: 'string' },
            'show-values': { type: 'boolean' },
            confirm: { type: 'string' },
            json: { type: 'boolean' },
            policy: { type: 'string' },
            schema: { type: 'string' },
            'database-url': { type: 'string' },
          },
          allowPositionals: false,
          strict: true,
        }),
      usage,
    );
    if (values.help) {
      console.log(usage);
      return 0;
    }
    const sample = sampleSize(values.sample);
    const confirmMs = confirmDelay(values.confirm);
    const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
    if (databaseUrl === undefined || databaseUrl === '') {
      throw new CliError('E_CLI_USAGE', `missing --database-url <url> (or set DATABASE_URL)\n${usageHint(usage)}`);
    }
    const policy = await loadPolicyArg(required(values.policy, '--policy <file>', usage));
    const target = deployment(policy, values);
    const schema = await loadSchema(required(values.schema, '--schema <module>', usage));
    const selection: VerifySelection = { tables: values.table ?? [], sample, confirmMs };
    // Checked before any connection: an unknown table is a usage error.
    selectTables(policy, schema.catalog, target.keys, selection.tables);

    const store = await openRedis(target.target, target.timeoutMs);
    const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: target.timeoutMs });
    client.on('error', () => {});
    try {
      if (!canScanKeys(store)) {
        throw new CliError('E_CLI_REDIS', 'this Redis store cannot list keys (SCAN), which verify needs');
      }
      try {
        await client.connect();
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        throw new CliError('E_CLI_DATABASE', `cannot connect to the database: ${message}`, { cause: error });
      }
      const read = pgRowReader(client);
      const fetch = async (table: TableInfo, keys: readonly (readonly unknown[])[]): Promise<RawRow[]> => {
        try {
          return await read(table, keys);
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          throw new CliError('E_CLI_DATABASE', `reading ${table.id} from the database failed: ${message}`, {
            cause: error,
          });
        }
      };
      let report: VerifyReport;
      try {
        report = await verify(
          { policy, catalog: schema.catalog, keys: target.keys, store, scanner: store, fetch },
          selection,
        );
      } catch (error) {
        if (error instanceof CliError) throw error;
        throw redisFailure(target.target, error);
      }
      const where = `namespace "${policy.namespace}" version ${policy.version} at ${target.target.shown}`;
      console.log(
        values.json
          ? JSON.stringify(jsonReport(report, values['show-values'] ?? false), null, 2)
          : renderReport(report, where, values['show-values'] ?? false),
      );
      return report.drifted > 0 ? 1 : 0;
    } finally {
      await store.close();
      await client.end().catch(() => undefined);
    }
  },
};

/**
 * Verifies the row entries of the selected tables (every table with row entries when none is
 * named). Throws a CliError for a named table that has none.
 */
export async function verify(target: VerifyTarget, selection: VerifySelection): Promise<VerifyReport> {
  const tables = selectTables(target.policy, target.catalog, target.keys, selection.tables);
  const results: TableVerification[] = [];
  for (const table of tables) {
    results.push(
      await verifyRowEntries({
        store: target.store,
        scanner: target.scanner,
        keys: target.keys,
        table,
        sample: selection.sample,
        confirmMs: selection.confirmMs,
        fetch: (t, keys) => target.fetch(t, keys),
      }),
    );
  }
  return { tables: results, drifted: results.reduce((n, t) => n + t.drift.length, 0) };
}

/** The report as text: a table of counts, then each difference by key hash (values only when asked). */
export function renderReport(report: VerifyReport, where: string, showValues: boolean): string {
  const lines = [`verified cached rows of ${where}`, ''];
  lines.push(
    columns([
      ['table', 'sampled', 'checked', 'drifted'],
      ...report.tables.map((t) => [t.table, String(t.sampled), String(t.checked), String(t.drift.length)]),
    ]),
  );
  for (const t of report.tables) {
    if (t.drift.length === 0) continue;
    lines.push(
      '',
      `${t.table}: ${t.drift.length} cached ${t.drift.length === 1 ? 'row differs' : 'rows differ'} from the database`,
    );
    for (const d of t.drift) {
      lines.push(
        d.kind === 'deleted'
          ? `  key ${d.keyHash}  deleted in the database`
          : `  key ${d.keyHash}  changed: ${d.columns.join(', ')}`,
      );
      if (!showValues) continue;
      for (const c of d.columns) {
        lines.push(
          `    ${c}: cached ${shown(d.cached[c])}, database ${d.database ? shown(d.database[c]) : '(no row)'}`,
        );
      }
    }
  }
  lines.push(
    '',
    report.drifted > 0
      ? 'Drift found: writes bypassed tablecache. Run "tablecache invalidate <table>" (or --row <pk>) to drop the cached rows.'
      : 'No drift found in the sampled rows.',
    'Query results cannot be checked from Redis (only hashes of their SQL are stored): see createCache({ verify }).',
  );
  return lines.join('\n');
}

/** The report as a JSON-friendly object; values only with `showValues`. */
export function jsonReport(report: VerifyReport, showValues: boolean): unknown {
  return {
    drifted: report.drifted,
    tables: report.tables.map((t) => ({
      table: t.table,
      sampled: t.sampled,
      checked: t.checked,
      drift: t.drift.map((d) => ({
        keyHash: d.keyHash,
        kind: d.kind,
        columns: d.columns,
        ...(showValues && { cached: jsonValues(d.cached), database: d.database && jsonValues(d.database) }),
      })),
    })),
  };
}

/**
 * Reads rows by primary key with node-postgres, raw values as Drizzle's node-postgres driver
 * hands them to the cache (timestamps, dates and intervals as the database's text).
 */
export function pgRowReader(
  client: pg.ClientBase,
): (table: TableInfo, keys: readonly (readonly unknown[])[]) => Promise<RawRow[]> {
  return async (table, keys) => {
    if (keys.length === 0) return [];
    const { text, values } = selectByKeys(table, keys);
    const result = await client.query<unknown[]>({ text, values, rowMode: 'array', types: RAW_TYPES });
    const names = table.columns.map((c) => c.name);
    return result.rows.map((row) => Object.fromEntries(names.map((n, i) => [n, row[i]])));
  };
}

// timestamptz, timestamp, date, interval and their arrays: Drizzle keeps the database's text.
const RAW_OIDS = new Set([1184, 1114, 1082, 1186, 1185, 1115, 1182, 1187, 1231]);
const RAW_TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    RAW_OIDS.has(oid)
      ? (value: string) => value
      : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

function selectByKeys(table: TableInfo, keys: readonly (readonly unknown[])[]): { text: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (value: unknown): string => {
    values.push(value);
    return `$${values.length}`;
  };
  const pk = table.primaryKey;
  const where =
    pk.length === 1
      ? `${ident(pk[0] as string)} in (${keys.map((k) => param(k[0])).join(', ')})`
      : `(${pk.map(ident).join(', ')}) in (${keys.map((k) => `(${k.map(param).join(', ')})`).join(', ')})`;
  const from = table.schema ? `${ident(table.schema)}.${ident(table.name)}` : ident(table.name);
  return { text: `select ${table.columns.map((c) => ident(c.name)).join(', ')} from ${from} where ${where}`, values };
}

function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** The tables to verify, registered in `keys`; a CliError for a named table without row entries. */
function selectTables(policy: Policy, catalog: Catalog, keys: KeySpace, names: readonly string[]): TableInfo[] {
  const bound = bindPolicy(policy, catalog);
  const hasRows = (t: TableInfo): boolean => {
    const pattern = bound.policyOf(t.id).pattern;
    return (pattern === 'cache-aside' || pattern === 'write-through') && RowKeyCodec.of(t) !== undefined;
  };
  for (const t of catalog.tables) keys.addTable(t);
  if (names.length === 0) return catalog.tables.filter(hasRows);
  const out: TableInfo[] = [];
  for (const name of names) {
    const t =
      catalog.tables.find((x) => x.id === name) ??
      catalog.tables.find((x) => x.name === name || x.aliases.includes(name));
    if (!t) {
      throw new CliError(
        'E_CLI_TABLE',
        `unknown table "${name}"; the schema has: ${catalog.tables.map((x) => x.id).join(', ')}`,
      );
    }
    if (!hasRows(t)) {
      throw new CliError(
        'E_CLI_TABLE',
        `table "${t.id}" has no row entries to verify: it needs pattern "cache-aside" or "write-through" and a primary key of an integer, text or uuid type`,
      );
    }
    if (!out.includes(t)) out.push(t);
  }
  return out;
}

function sampleSize(value: string | undefined): number {
  if (value === undefined) return 200;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new CliError('E_CLI_USAGE', `invalid --sample ${JSON.stringify(value)}: use a whole number of at least 1`);
  }
  return n;
}

function confirmDelay(value: string | undefined): number {
  if (value === undefined) return 1000;
  try {
    return parseDuration(value);
  } catch {
    throw new CliError('E_CLI_USAGE', `invalid --confirm ${JSON.stringify(value)}: use a duration such as 500ms or 2s`);
  }
}

/** A value for display: JSON where possible, bytes as hex, bigints as digits. */
function shown(value: unknown): string {
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString('hex')}`;
  if (typeof value === 'bigint') return value.toString();
  if (value === undefined) return 'null';
  const text = JSON.stringify(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** A row with JSON-safe values: bytes as `\\x` hex text, bigints as digits. */
function jsonValues(row: RawRow): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(row).map(([k, v]) => [
      k,
      v instanceof Uint8Array
        ? `\\x${Buffer.from(v).toString('hex')}`
        : typeof v === 'bigint'
          ? v.toString()
          : (v ?? null),
    ]),
  );
}
