import type { Engine } from '../engine/engine.js';
import { CacheError } from '../errors.js';
import type { KeySpace } from '../keys.js';
import type { Policy } from '../policy/types.js';
import type { CacheStore } from '../store.js';
import type { Telemetry } from '../telemetry.js';
import { journalOf } from './journal.js';
import { type WriteBackOptions, WriteBackRuntime } from './runtime.js';
import { writeBackTables } from './tables.js';

const runtimes = new WeakMap<Engine, WriteBackRuntime>();

/** The write-back runtime of an engine, when its policy has write-back tables. */
export function writeBackOf(engine: Engine): WriteBackRuntime | undefined {
  return runtimes.get(engine);
}

/** What `createCache` hands over when it attaches. */
export interface WriteBackSetup {
  readonly engine: Engine;
  readonly store: CacheStore;
  readonly keys: KeySpace;
  readonly telemetry: Telemetry;
  readonly onError: (error: CacheError) => void;
  readonly policy: Policy;
  readonly options: WriteBackOptions | undefined;
}

/**
 * Creates the write-back runtime of a freshly attached engine, or undefined when no table uses
 * pattern write-back. Throws a PolicyError for column types write-back cannot represent, and a
 * CacheError when the store has no journal.
 */
export function createWriteBack(setup: WriteBackSetup): WriteBackRuntime | undefined {
  const { engine, store } = setup;
  const tables = writeBackTables(engine.registry, setup.keys);
  if (tables.length === 0) return undefined;
  const journal = journalOf(store);
  if (!journal) {
    throw new CacheError(
      'E_WRITE_BACK_STORE',
      `store "${store.name}" has no write-back journal; tables ${tables.map((t) => `"${t.id}"`).join(', ')} use pattern "write-back" (use redisStore or memoryStore)`,
    );
  }
  const runtime = new WriteBackRuntime({
    journal,
    tables,
    telemetry: setup.telemetry,
    onError: setup.onError,
    invalidate: (ids) => engine.invalidate([...ids]),
    lookup: (name) => engine.registry.lookup(name)?.info.id,
    namespace: `${setup.policy.namespace}:v${setup.policy.version}`,
    options: setup.options ?? {},
  });
  runtimes.set(engine, runtime);
  return runtime;
}
