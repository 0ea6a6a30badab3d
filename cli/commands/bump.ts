import { parseArgs } from 'node:util';
import { readCounter } from '../../src/store.js';
import { helpOption, parseOrFail, REDIS_OPTIONS_HELP, redisOptions, required } from '../args.js';
import type { CliCommand } from '../command.js';
import { deployment, openCache, undelivered } from '../deployment.js';
import { loadPolicyArg } from '../load.js';

const usage = `Usage: tablecache bump --policy <file> [options]

Invalidates every cached entry of the policy's namespace and version at once, for all app
instances (it bumps the namespace-wide generation; no entry is deleted, old ones expire by TTL).
Use it after a bulk change outside the app. After a migration that changes what queries return,
raising "version" in the policy and deploying does the same for good.

Options:
  --policy <file>     The app's policy (file, directory or module): namespace and version
${REDIS_OPTIONS_HELP}
  -h, --help          Show this help

Exit codes: 0 bumped; 1 the policy is malformed; 2 usage errors, unreachable Redis.`;

/** `tablecache bump`: invalidates a whole namespace (`cache.invalidateAll()` from the shell). */
export const command: CliCommand = {
  name: 'bump',
  summary: 'invalidate every cached entry of the namespace (namespace-wide generation)',
  usage,
  async run(argv) {
    const { values } = parseOrFail(
      () =>
        parseArgs({
          args: argv,
          options: { ...helpOption, ...redisOptions, policy: { type: 'string' } },
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
    // The namespace-wide generation does not depend on the schema: attach an empty catalog, with
    // the table entries left out so that they need not match it.
    const target = deployment({ ...policy, tables: new Map() }, values);
    const { cache, store, problems } = await openCache(target, { tables: [] });
    let generation: number;
    try {
      await cache.invalidateAll();
      if ((cache.stats().tables['*']?.invalidations ?? 0) === 0) {
        throw undelivered(target, `bump namespace "${policy.namespace}"`, problems);
      }
      generation = readCounter((await store.getMany([target.keys.globalGeneration()]))[0]);
    } finally {
      await cache.close();
    }
    console.log(
      `bumped namespace "${policy.namespace}" version ${policy.version} at ${target.target.shown}: generation ${generation}`,
    );
    console.log('every entry cached before is now unreachable');
    return 0;
  },
};
