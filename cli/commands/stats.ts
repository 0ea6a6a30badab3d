import { parseArgs } from 'node:util';
import { bindPolicy } from '../../src/policy/index.js';
import { readCounter } from '../../src/store.js';
import { helpOption, parseOrFail, REDIS_OPTIONS_HELP, redisOptions, required } from '../args.js';
import type { CliCommand } from '../command.js';
import { deployment } from '../deployment.js';
import { loadPolicyArg, loadSchema } from '../load.js';
import { columns } from '../output.js';
import { openRedis, redisFailure } from '../redis.js';

const usage = `Usage: tablecache stats --policy <file> --schema <module> [options]

Shows what Redis can tell about a running deployment: the namespace-wide generation and, per
table, its pattern and generations (0: never invalidated; each invalidation increments them).
Hits, misses and latency are per process: read them with cache.stats() or OpenTelemetry.

Options:
  --policy <file>     The app's policy (file, directory or module)
  --schema <module>   The app's Drizzle schema module (.js, or .ts through tsx)
  --json              Print the figures as JSON
${REDIS_OPTIONS_HELP}
  -h, --help          Show this help

Exit codes: 0 ok; 1 the policy does not fit the schema; 2 usage errors, unreachable Redis.`;

/** Per-table figures `tablecache stats` reports. */
interface TableFigures {
  pattern: string;
  queryGeneration: number;
  rowGeneration: number;
}

/** `tablecache stats`: per-table figures read from Redis. */
export const command: CliCommand = {
  name: 'stats',
  summary: 'show generations per table (and what else Redis can tell) for a deployment',
  usage,
  async run(argv) {
    const { values } = parseOrFail(
      () =>
        parseArgs({
          args: argv,
          options: {
            ...helpOption,
            ...redisOptions,
            policy: { type: 'string' },
            schema: { type: 'string' },
            json: { type: 'boolean' },
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
    const policy = await loadPolicyArg(required(values.policy, '--policy <file>', usage));
    const target = deployment(policy, values);
    const schema = await loadSchema(required(values.schema, '--schema <module>', usage));
    const bound = bindPolicy(policy, schema.catalog);
    const tables = schema.catalog.tables.filter((t) => t.kind === 'table');
    const { keys } = target;
    const counterKeys = [
      keys.globalGeneration(),
      ...tables.flatMap((t) => [keys.queryGeneration(t.id), keys.rowGeneration(t.id)]),
    ];

    const store = await openRedis(target.target, target.timeoutMs);
    let counters: number[];
    try {
      counters = (await store.getMany(counterKeys)).map(readCounter);
    } catch (error) {
      throw redisFailure(target.target, error);
    } finally {
      await store.close();
    }

    const figures: Record<string, TableFigures> = {};
    tables.forEach((t, i) => {
      figures[t.id] = {
        pattern: bound.policyOf(t.id).pattern,
        queryGeneration: counters[1 + 2 * i] ?? 0,
        rowGeneration: counters[2 + 2 * i] ?? 0,
      };
    });
    const report = {
      namespace: policy.namespace,
      version: policy.version,
      prefix: target.prefix,
      redis: target.target.shown,
      generation: counters[0] ?? 0,
      tables: figures,
    };
    if (values.json) {
      console.log(JSON.stringify(report, null, 2));
      return 0;
    }
    console.log(
      `namespace "${policy.namespace}" version ${policy.version} (prefix ${target.prefix}) at ${report.redis}`,
    );
    console.log(`namespace generation: ${report.generation}\n`);
    const rows = [['table', 'pattern', 'query generation', 'row generation']];
    for (const [id, f] of Object.entries(figures)) {
      rows.push([id, f.pattern, String(f.queryGeneration), String(f.rowGeneration)]);
    }
    console.log(columns(rows));
    return 0;
  },
};
