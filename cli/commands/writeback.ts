import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type OpenWriteBack, openWriteBack } from '../../adapters/drizzle/write-back-worker.js';
import type { CacheError } from '../../src/errors.js';
import type { Policy } from '../../src/policy/types.js';
import type { WriteBackOptions } from '../../src/write-back/runtime.js';
import type { WriteBackTable } from '../../src/write-back/tables.js';
import { helpOption, parseOrFail, required } from '../args.js';
import type { CliCommand } from '../command.js';
import { CliError } from '../errors.js';
import { loadPolicyArg, loadSchema } from '../load.js';
import { columns, formatMs } from '../output.js';
import { parseRedisUrl } from '../redis.js';

const usage = `Usage: tablecache writeback <status|drain|dlq list|dlq replay|dlq drop> --policy <file> --schema <module> [options]

Operates the write-back journal of a deployment.

  status        Pending writes, oldest pending age, flusher lease and dead letters per table
  drain         Applies every pending write now (needs --database-url), then exits
  dlq list      Lists dead letters: writes that kept failing, with the database error
  dlq replay    Journals dead letters again (after fixing the cause; needs --database-url)
  dlq drop      Deletes dead letters for good

Options:
  --policy <file>         The app's policy (file, directory or module)
  --schema <module>       The app's Drizzle schema module (.js, or .ts through tsx)
  --redis-url <url>       Redis the app's cache uses (default: $REDIS_URL)
  --database-url <url>    PostgreSQL the app writes to (default: $DATABASE_URL)
  --prefix <prefix>       The app's createCache({ prefix }) (default: tc)
  --table <name>          Only this table (required for replay and drop)
  --id <id>               A dead letter id (repeatable) for replay and drop
  --all                   Every dead letter of the table, for replay and drop
  --count <n>             Dead letters to list (default: 100)
  --json                  Print JSON
  -h, --help              Show this help

Exit codes: 0 ok; 1 the policy does not fit the schema; 2 usage errors, unreachable services.`;

/** The options every write-back command shares, as parseArgs returns them. */
export interface WriteBackArgs {
  policy?: string | undefined;
  schema?: string | undefined;
  'redis-url'?: string | undefined;
  'database-url'?: string | undefined;
  prefix?: string | undefined;
}

/** Loads policy and schema and opens the deployment's write-back runtime. */
export async function openFromArgs(
  values: WriteBackArgs,
  text: string,
  options: { database: boolean; writeBack?: WriteBackOptions; onError?: (error: CacheError) => void },
): Promise<OpenWriteBack> {
  const policy: Policy = await loadPolicyArg(required(values.policy, '--policy <file>', text));
  const target = parseRedisUrl(values['redis-url']);
  const schemaPath = required(values.schema, '--schema <module>', text);
  // loadSchema checks the module (and registers tsx for TypeScript); the flusher needs the module itself.
  await loadSchema(schemaPath);
  const module = (await import(pathToFileURL(resolve(schemaPath)).href)) as Record<string, unknown>;
  const schema = hasTables(module) ? module : ((module.default ?? module) as Record<string, unknown>);
  const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
  if (options.database && !databaseUrl) {
    throw new CliError('E_CLI_USAGE', `missing --database-url (or set DATABASE_URL)\n${text.split('\n', 1)[0]}`);
  }
  return openWriteBack({
    policy,
    schema,
    redisUrl: target.url,
    databaseUrl: options.database ? databaseUrl : undefined,
    prefix: values.prefix,
    writeBack: options.writeBack ?? { worker: false },
    onError: options.onError ?? ((e) => console.error(`[tablecache] ${e.code}: ${e.message}`)),
  });
}

/** `tablecache writeback ...`: status, drain and dead letters of the write-back journal. */
export const command: CliCommand = {
  name: 'writeback',
  summary: 'show, drain and repair the write-back journal (status, drain, dlq list|replay|drop)',
  usage,
  async run(argv) {
    const { values, positionals } = parseOrFail(
      () =>
        parseArgs({
          args: argv,
          options: {
            ...helpOption,
            policy: { type: 'string' },
            schema: { type: 'string' },
            'redis-url': { type: 'string' },
            'database-url': { type: 'string' },
            prefix: { type: 'string' },
            table: { type: 'string' },
            id: { type: 'string', multiple: true },
            all: { type: 'boolean' },
            count: { type: 'string' },
            json: { type: 'boolean' },
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
    const action = positionals.join(' ');
    const known = ['status', 'drain', 'dlq list', 'dlq replay', 'dlq drop'];
    if (!known.includes(action)) {
      throw new CliError(
        'E_CLI_USAGE',
        `${action ? `unknown action "${action}"` : 'missing action'}: use ${known.join(', ')}\n${usage.split('\n', 1)[0]}`,
      );
    }
    const database = action === 'drain' || action === 'dlq replay';
    const open = await openFromArgs(values, usage, { database });
    try {
      const tables = selectTables(open, values.table, action === 'dlq replay' || action === 'dlq drop');
      switch (action) {
        case 'status':
          return await status(open, tables, values.json === true);
        case 'drain':
          for (const t of tables) await open.runtime.drain(t);
          console.log(
            values.json
              ? JSON.stringify({ drained: tables.map((t) => t.id) })
              : `drained ${tables.map((t) => t.id).join(', ')}`,
          );
          return 0;
        case 'dlq list':
          return await list(open, tables, count(values.count), values.json === true);
        default:
          return await repair(
            open,
            tables[0] as WriteBackTable,
            action === 'dlq replay',
            values.id ?? [],
            values.all === true,
            values.json === true,
          );
      }
    } finally {
      await open.close();
    }
  },
};

function selectTables(open: OpenWriteBack, name: string | undefined, requireOne: boolean): WriteBackTable[] {
  const all = [...open.runtime.tables.values()];
  if (name === undefined) {
    if (requireOne)
      throw new CliError('E_CLI_USAGE', `--table is required; write-back tables: ${all.map((t) => t.id).join(', ')}`);
    return all;
  }
  const table = open.runtime.table(name) ?? all.find((t) => t.info.name === name || t.info.aliases.includes(name));
  if (!table)
    throw new CliError(
      'E_CLI_USAGE',
      `"${name}" is not a write-back table; they are: ${all.map((t) => t.id).join(', ')}`,
    );
  return [table];
}

async function status(open: OpenWriteBack, tables: readonly WriteBackTable[], json: boolean): Promise<number> {
  const ids = new Set(tables.map((t) => t.id));
  const rows = (await open.runtime.status()).filter((s) => ids.has(s.table));
  if (json) {
    console.log(JSON.stringify(rows, null, 2));
    return 0;
  }
  console.log(
    columns([
      ['table', 'pending', 'oldest', 'applied through', 'flusher', 'dead letters'],
      ...rows.map((s) => [
        s.table,
        String(s.length),
        s.length > 0 ? formatMs(s.oldestAgeMs) : '-',
        s.applied ?? '-',
        s.lease?.split('|')[0] ?? '-',
        String(s.deadLetters),
      ]),
    ]),
  );
  return 0;
}

async function list(open: OpenWriteBack, tables: readonly WriteBackTable[], n: number, json: boolean): Promise<number> {
  const out: { table: string; id: string; original: string; at: string; error: string; write: unknown }[] = [];
  for (const t of tables) {
    for (const d of await open.runtime.deadLetters(t, n)) {
      out.push({
        table: t.id,
        id: d.id,
        original: d.original,
        at: new Date(d.at).toISOString(),
        error: d.error,
        write: JSON.parse(d.payload),
      });
    }
  }
  if (json) console.log(JSON.stringify(out, null, 2));
  else if (out.length === 0) console.log('no dead letters');
  else {
    console.log(
      columns([
        ['table', 'id', 'at', 'error', 'write'],
        ...out.map((d) => [d.table, d.id, d.at, d.error.replace(/\s+/g, ' '), JSON.stringify(d.write)]),
      ]),
    );
  }
  return 0;
}

async function repair(
  open: OpenWriteBack,
  table: WriteBackTable,
  replay: boolean,
  ids: readonly string[],
  all: boolean,
  json: boolean,
): Promise<number> {
  if (ids.length === 0 && !all)
    throw new CliError('E_CLI_USAGE', 'name dead letters with --id <id> (repeatable) or --all');
  const letters = (await open.runtime.deadLetters(table, 1_000_000)).filter((d) => all || ids.includes(d.id));
  const missing = all ? [] : ids.filter((id) => !letters.some((d) => d.id === id));
  const done = replay
    ? await open.runtime.replayDeadLetters(table, letters)
    : await open.runtime.dropDeadLetters(
        table,
        letters.map((d) => d.id),
      );
  const verb = replay ? 'replayed' : 'dropped';
  if (json) console.log(JSON.stringify({ table: table.id, [verb]: done, missing }));
  else
    console.log(
      `${verb} ${done} dead letter(s) of ${table.id}${missing.length > 0 ? `; not found: ${missing.join(', ')}` : ''}`,
    );
  return missing.length > 0 ? 2 : 0;
}

function count(value: string | undefined): number {
  if (value === undefined) return 100;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new CliError('E_CLI_USAGE', `--count must be a positive whole number, got ${value}`);
  return n;
}

function hasTables(module: Record<string, unknown>): boolean {
  return Object.values(module).some((v) => typeof v === 'object' && v !== null && Symbol.for('drizzle:Name') in v);
}
