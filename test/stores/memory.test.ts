import { describe, expect, it } from 'vitest';
import { readCounter } from '../../src/store.js';
import { memoryStore } from '../../stores/memory.js';
import { runStoreConformance } from '../conformance/store-suite.js';

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);
const entry = (key: string, value: Uint8Array, ttlMs = 60_000) => ({ key, value, ttlMs });

let clock = 1_000_000;
runStoreConformance(
  'memory (injected clock)',
  async () => {
    const store = memoryStore({ now: () => clock });
    return { store, cleanup: () => store.close() };
  },
  {
    advance: (ms) => {
      clock += ms;
    },
  },
);

runStoreConformance('memory (real clock)', async () => {
  const store = memoryStore();
  return { store, cleanup: () => store.close() };
});

describe('memoryStore budget', () => {
  it('evicts the least recently used entry beyond maxEntries', async () => {
    const store = memoryStore({ maxEntries: 3 });
    await store.set([entry('a', bytes(1)), entry('b', bytes(1)), entry('c', bytes(1))]);
    // Reading `a` makes `b` the least recently used.
    await store.getMany(['a']);
    await store.set([entry('d', bytes(1))]);
    const got = await store.getMany(['a', 'b', 'c', 'd']);
    expect(got.map((v) => v !== null)).toEqual([true, false, true, true]);
  });

  it('evicts by key plus value bytes beyond maxBytes', async () => {
    // Each entry costs 1 key byte + 99 value bytes = 100 bytes.
    const store = memoryStore({ maxBytes: 250 });
    await store.set([entry('a', bytes(99)), entry('b', bytes(99))]);
    expect((await store.getMany(['a', 'b'])).every((v) => v !== null)).toBe(true);
    await store.set([entry('c', bytes(99))]);
    const got = await store.getMany(['a', 'b', 'c']);
    expect(got.map((v) => v !== null)).toEqual([false, true, true]);
    // Overwriting with a smaller value frees room instead of counting twice.
    await store.set([entry('b', bytes(9)), entry('d', bytes(99))]);
    expect((await store.getMany(['b', 'c', 'd'])).map((v) => v !== null)).toEqual([true, true, true]);
  });

  it('skips an entry larger than the whole budget instead of flushing everything', async () => {
    const store = memoryStore({ maxBytes: 100 });
    await store.set([entry('a', bytes(10)), entry('big', bytes(10))]);
    await store.set([entry('big', bytes(500))]);
    const [a, big] = await store.getMany(['a', 'big']);
    expect(a).not.toBeNull();
    // The old value of `big` is gone too: a stale value must not outlive a newer write.
    expect(big).toBeNull();
  });

  it('never evicts counters under entry or byte pressure', async () => {
    const store = memoryStore({ maxEntries: 2, maxBytes: 64 });
    await store.incr(['gen:1'], { init: 500 });
    await store.incr(['gen:2']);
    for (let i = 0; i < 100; i++) await store.set([entry(`row:${i}`, bytes(20))]);
    const [g1, g2, last] = await store.getMany(['gen:1', 'gen:2', 'row:99']);
    expect(readCounter(g1)).toBe(501);
    expect(readCounter(g2)).toBe(1);
    expect(last).not.toBeNull();
  });
});
