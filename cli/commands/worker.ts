import { parseArgs } from 'node:util';
import type { FlusherHooks } from '../../src/write-back/flusher.js';
import { helpOption, parseOrFail } from '../args.js';
import type { CliCommand } from '../command.js';
import { CliError } from '../errors.js';
import { openFromArgs } from './writeback.js';

const usage = `Usage: tablecache worker --policy <file> --schema <module> --database-url <url> --redis-url <url> [options]

Flushes write-back tables: applies journaled writes to PostgreSQL in batches, as the in-app
flusher does. Run it when applications use createCache({ writeBack: { worker: false } }), or next
to them: flushers share the work (one flusher per table at a time, others take over when one
dies). SIGTERM or SIGINT drains every pending write, then exits.

Options:
  --policy <file>         The app's policy (file, directory or module)
  --schema <module>       The app's Drizzle schema module (.js, or .ts through tsx)
  --database-url <url>    PostgreSQL the app writes to (default: $DATABASE_URL)
  --redis-url <url>       Redis the app's cache uses (default: $REDIS_URL)
  --prefix <prefix>       The app's createCache({ prefix }) (default: tc)
  --consumer <name>       This flusher's name in the consumer group (default: host:pid:random)
  --lease-ttl <time>      A flusher silent this long is replaced, e.g. 10s (default: 10s)
  -h, --help              Show this help

Exit codes: 0 drained and stopped; 1 the policy does not fit the schema; 2 usage errors, unreachable services.`;

/**
 * Test hook: TABLECACHE_WORKER_CRASH=before-commit|after-commit[:N] kills the process with
 * SIGKILL inside the Nth flush (default the first) right before COMMIT, or right after it
 * and before the entries are acknowledged.
 */
function crashHooks(spec: string | undefined): FlusherHooks | undefined {
  if (!spec) return undefined;
  const [point, nth] = spec.split(':');
  if (point !== 'before-commit' && point !== 'after-commit')
    throw new CliError('E_CLI_USAGE', `bad TABLECACHE_WORKER_CRASH ${spec}`);
  let remaining = Number(nth ?? '1');
  const maybeCrash = () => {
    if (--remaining <= 0) process.kill(process.pid, 'SIGKILL');
  };
  return point === 'before-commit' ? { beforeCommit: maybeCrash } : { afterCommit: maybeCrash };
}

/** `tablecache worker`: a flusher process for write-back tables. */
export const command: CliCommand = {
  name: 'worker',
  summary: 'flush write-back tables to PostgreSQL in a process of its own',
  usage,
  async run(argv) {
    const { values } = parseOrFail(
      () =>
        parseArgs({
          args: argv,
          options: {
            ...helpOption,
            policy: { type: 'string' },
            schema: { type: 'string' },
            'database-url': { type: 'string' },
            'redis-url': { type: 'string' },
            prefix: { type: 'string' },
            consumer: { type: 'string' },
            'lease-ttl': { type: 'string' },
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
    const leaseTtl = values['lease-ttl'];
    const open = await openFromArgs(values, usage, {
      database: true,
      writeBack: {
        worker: true,
        consumer: values.consumer,
        leaseTtl:
          leaseTtl === undefined
            ? undefined
            : /^\d+(\.\d+)?$/.test(leaseTtl)
              ? Number(leaseTtl)
              : (leaseTtl as `${number}s`),
        hooks: crashHooks(process.env.TABLECACHE_WORKER_CRASH),
      },
    });
    const names = [...open.runtime.tables.keys()];
    console.log(`tablecache worker: flushing ${names.join(', ')}`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    });
    console.log('tablecache worker: draining');
    await open.close();
    console.log('tablecache worker: stopped');
    return 0;
  },
};
