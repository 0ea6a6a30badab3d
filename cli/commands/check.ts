import { parseArgs } from 'node:util';
import { bindPolicy } from '../../src/policy/index.js';
import { helpOption, parseOrFail, required, usageHint } from '../args.js';
import type { CliCommand } from '../command.js';
import { CliError } from '../errors.js';
import { loadPolicyArg, loadSchema } from '../load.js';
import { columns, formatMs } from '../output.js';

const usage = `Usage: tablecache check <policy> --schema <module>

Validates a policy against a Drizzle schema, exactly as withCache() does at start-up: unknown
tables, bad patterns or TTLs, write-back on a table without a primary key, views without "reads".

Arguments:
  <policy>            A .json, .yaml or .yml policy file, a directory of them, or a JS/TS
                      module exporting "policy" (or a default export)

Options:
  --schema <module>   The Drizzle schema module (.js, or .ts through tsx)
  -h, --help          Show this help

Exit codes: 0 the policy fits the schema; 1 the policy has problems (each printed with its file,
table and field); 2 usage errors (missing or unloadable module).`;

/** `tablecache check`: validates a policy against a schema module. */
export const command: CliCommand = {
  name: 'check',
  summary: 'validate a policy against a Drizzle schema (exit 1 on problems)',
  usage,
  async run(argv) {
    const { values, positionals } = parseOrFail(
      () =>
        parseArgs({
          args: argv,
          options: { ...helpOption, schema: { type: 'string' } },
          allowPositionals: true,
          strict: true,
        }),
      usage,
    );
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (positionals.length > 1) {
      throw new CliError(
        'E_CLI_USAGE',
        `expected one policy, got ${positionals.length} arguments\n${usageHint(usage)}`,
      );
    }
    const policyPath = required(positionals[0], 'the policy argument', usage);
    const schemaPath = required(values.schema, '--schema <module>', usage);
    const policy = await loadPolicyArg(policyPath);
    const schema = await loadSchema(schemaPath);
    const bound = bindPolicy(policy, schema.catalog);

    const rows = [['table', 'kind', 'pattern', 'ttl', 'configured by']];
    for (const info of schema.catalog.tables) {
      const resolved = bound.policyOf(info.id);
      const key = bound.keys.get(info.id);
      rows.push([
        info.id,
        info.kind,
        resolved.pattern,
        resolved.pattern === 'none' ? '-' : formatMs(resolved.ttlMs),
        key === undefined ? 'defaults' : `tables.${key}`,
      ]);
    }
    console.log(`ok: ${policyPath} fits ${schemaPath} (namespace "${policy.namespace}", version ${policy.version})\n`);
    console.log(columns(rows));
    return 0;
  },
};
