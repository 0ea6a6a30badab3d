import { parseArgs } from 'node:util';
import type { RowKey } from '../../src/cache.js';
import type { TableInfo } from '../../src/catalog.js';
import { RowKeyCodec } from '../../src/engine/row-key.js';
import { readCounter } from '../../src/store.js';
import { helpOption, parseOrFail, REDIS_OPTIONS_HELP, redisOptions, required, usageHint } from '../args.js';
import type { CliCommand } from '../command.js';
import { deployment, openCache, undelivered } from '../deployment.js';
import { CliError } from '../errors.js';
import { loadPolicyArg, loadSchema } from '../load.js';
import { columns } from '../output.js';

const usage = `Usage: tablecache invalidate <table>... [--row <pk>]... --policy <file> --schema <module> [options]

Invalidates every cached entry of one or more tables, for all app instances at once (it bumps the
tables' generations in Redis, exactly as a write through the app does). Use it after a write that
bypassed the app: another service, psql, a migration.

Arguments:
  <table>             A table's id, database name or schema export name

Options:
  --row <pk>          Only this row changed (repeatable; one table only): evicts its row entry
                      and invalidates the table's query results, keeping the other rows cached.
                      A composite key is a JSON array in key order or an object by column,
                      e.g. --row '[7,2]'. Tables whose key type has no row entries are
                      invalidated whole.
  --policy <file>     The app's policy (file, directory or module): namespace and version
  --schema <module>   The app's Drizzle schema module (.js, or .ts through tsx)
${REDIS_OPTIONS_HELP}
  -h, --help          Show this help

Exit codes: 0 invalidated; 1 the policy does not fit the schema; 2 usage errors, unknown table,
unreachable Redis.`;

/** `tablecache invalidate`: bumps the generations of tables in a running deployment. */
export const command: CliCommand = {
  name: 'invalidate',
  summary: 'invalidate the cached entries of tables (after writes that bypassed the app)',
  usage,
  async run(argv) {
    const { values, positionals } = parseOrFail(
      () =>
        parseArgs({
          args: argv,
          options: {
            ...helpOption,
            ...redisOptions,
            row: { type: 'string', multiple: true },
            policy: { type: 'string' },
            schema: { type: 'string' },
          },
          allowPositionals: true,
          strict: true,
        }),
      usage,
    );
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (positionals.length === 0) required(undefined, 'the <table> argument', usage);
    const rows = values.row ?? [];
    if (rows.length > 0 && positionals.length !== 1) {
      throw new CliError(
        'E_CLI_USAGE',
        `--row needs exactly one table, got ${positionals.length}\n${usageHint(usage)}`,
      );
    }
    const policyPath = required(values.policy, '--policy <file>', usage);
    const schemaPath = required(values.schema, '--schema <module>', usage);
    const policy = await loadPolicyArg(policyPath);
    const target = deployment(policy, values);
    const schema = await loadSchema(schemaPath);
    const tables = positionals.map((name) => findTable(schema.catalog.tables, name));
    const [first] = tables;
    const keys = first && rows.length > 0 ? rows.map((row) => rowKey(first, row)) : [];

    const ids = [...new Set(tables.map((t) => t.id))];
    const { cache, store, problems } = await openCache(target, schema.catalog);
    let generations: number[];
    try {
      if (first && keys.length > 0) for (const key of keys) await cache.invalidateRow(first.id, key);
      else await cache.invalidate(ids);
      const done = cache.stats().tables;
      if (problems.length > 0 || ids.some((id) => (done[id]?.invalidations ?? 0) === 0)) {
        throw undelivered(target, `invalidate ${ids.join(', ')}`, problems);
      }
      generations = (await store.getMany(ids.map((id) => target.keys.queryGeneration(id)))).map(readCounter);
    } finally {
      await cache.close();
    }

    const where = `namespace "${policy.namespace}" version ${policy.version} at ${target.target.shown}`;
    if (first && keys.length > 0) {
      const what = RowKeyCodec.of(first)
        ? `evicted ${keys.length === 1 ? 'row' : 'rows'} ${rows.join(' ')} of ${first.id} and invalidated its query results`
        : `invalidated table ${first.id} (its key type has no row entries, so every entry of the table)`;
      console.log(`${what} (${where})\n`);
    } else {
      console.log(`invalidated ${ids.length === 1 ? 'table' : 'tables'} ${ids.join(', ')} (${where})\n`);
    }
    console.log(columns([['table', 'generation'], ...ids.map((id, i) => [id, String(generations[i] ?? 0)])]));
    return 0;
  },
};

function findTable(tables: readonly TableInfo[], name: string): TableInfo {
  const found = tables.find((t) => t.id === name) ?? tables.find((t) => t.name === name || t.aliases.includes(name));
  if (found) return found;
  const known = tables.map((t) => t.id).join(', ');
  throw new CliError('E_CLI_TABLE', `unknown table "${name}"; the schema has: ${known}`);
}

/** Parses a `--row` value into the key `cache.invalidateRow` takes, checked against the primary key. */
function rowKey(table: TableInfo, row: string): RowKey {
  if (table.kind !== 'table' || table.primaryKey.length === 0) {
    throw new CliError('E_CLI_USAGE', `--row: ${table.id} has no primary key; invalidate the whole table instead`);
  }
  if (table.primaryKey.length === 1) return row;
  let parsed: unknown;
  try {
    parsed = JSON.parse(row);
  } catch {
    parsed = undefined;
  }
  const cols = table.primaryKey;
  if (Array.isArray(parsed) && parsed.length === cols.length) return parsed;
  if (typeof parsed === 'object' && parsed !== null && cols.every((c) => Object.hasOwn(parsed, c))) {
    return parsed as Record<string, unknown>;
  }
  throw new CliError(
    'E_CLI_USAGE',
    `--row ${row}: ${table.id} has a composite primary key (${cols.join(', ')}); give a JSON array of ${cols.length} values or an object by column`,
  );
}
