import type { TableCache } from '../src/index.js';
import { type BenchContext, cachedClient } from './context.js';

/** The counter API write-back adds to the cache (issue 4): `increment(table, pk, deltas)`. */
export type Increment = (table: string, pk: unknown, deltas: Record<string, number>) => Promise<unknown>;

/** The cache's `increment`, bound, or undefined while write-back has not landed. */
export function incrementOf(cache: TableCache): Increment | undefined {
  const fn = (cache as unknown as { increment?: unknown }).increment;
  return typeof fn === 'function' ? (fn.bind(cache) as Increment) : undefined;
}

/**
 * Why write-back cannot be measured in this build, or undefined: the policy must accept the
 * pattern and the cache must offer `increment`.
 */
export async function writeBackMissing(ctx: BenchContext): Promise<string | undefined> {
  let probe: ReturnType<typeof cachedClient>;
  try {
    probe = cachedClient(ctx, 'write-back-probe', { events: { pattern: 'write-back' } });
  } catch (error) {
    return `a write-back policy is refused: ${error instanceof Error ? error.message : String(error)}`;
  }
  try {
    return incrementOf(probe.cache) ? undefined : 'the cache has no increment() yet';
  } finally {
    await probe.cache.close();
  }
}

/** One event row with id `id`. */
export function eventRow(id: number) {
  return {
    id,
    itemId: (id % 10_000) + 1,
    kind: id % 2 === 0 ? 'view' : 'click',
    amount: id % 100,
    createdAt: new Date(),
  };
}
