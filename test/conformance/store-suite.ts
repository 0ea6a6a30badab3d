import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CacheStore, readCounter } from '../../src/store.js';

/** A store to test and how to release it. */
export interface StoreUnderTest {
  /** The store the suite drives. */
  store: CacheStore;
  /** Closes the store and anything the factory opened for it. */
  cleanup(): Promise<void>;
}

/** Optional abilities of the store under test. */
export interface StoreCapabilities {
  /** Moves the store's clock forward; without it the suite waits in real time for TTLs to pass. */
  advance?: (ms: number) => void | Promise<void>;
}

/**
 * TTL short enough to wait out in real time, yet long enough that the checks made right after a
 * write (the entry or counter is there) hold on a loaded machine: a second between two commands.
 */
const SHORT_TTL = 1000;
/** Past SHORT_TTL, so expiry is certain without timing assertions (Redis expires on access). */
const PAST_SHORT_TTL = 1200;
const LONG_TTL = 60_000;

/**
 * Runs the `CacheStore` contract tests against one store. Every test uses its own keys under one
 * `{tag}` hash tag, so the suite also runs on Redis Cluster, and deletes them afterwards.
 */
export function runStoreConformance(
  name: string,
  makeStore: () => Promise<StoreUnderTest>,
  capabilities: StoreCapabilities = {},
): void {
  describe(`${name}: CacheStore conformance`, () => {
    let subject: StoreUnderTest | undefined;
    let used: string[] = [];

    beforeAll(async () => {
      subject = await makeStore();
    });

    afterEach(async () => {
      if (subject && used.length > 0) await subject.store.delete(used);
      used = [];
    });

    afterAll(async () => {
      await subject?.cleanup();
    });

    const store = (): CacheStore => {
      if (!subject) throw new Error('store not created');
      return subject.store;
    };

    /** A key factory for one test: every key shares a fresh hash tag. */
    const keyspace = (): ((name: string) => string) => {
      const tag = randomUUID();
      return (key) => {
        const full = `tc:conformance:{${tag}}:${key}`;
        used.push(full);
        return full;
      };
    };

    const elapse = async (ms: number): Promise<void> => {
      if (capabilities.advance) await capabilities.advance(ms);
      else await sleep(ms);
    };

    const counter = async (key: string): Promise<number> => readCounter((await store().getMany([key]))[0]);

    describe('getMany / set', () => {
      it('round-trips arbitrary bytes: NUL, invalid UTF-8, empty and large values', async () => {
        const k = keyspace();
        const values: Record<string, Uint8Array> = {
          nul: new Uint8Array([0x00, 0x01, 0x00, 0x00]),
          invalidUtf8: new Uint8Array([0xc3, 0x28, 0xff, 0xfe, 0xed, 0xa0, 0x80, 0x80]),
          allBytes: Uint8Array.from({ length: 256 }, (_, i) => i),
          empty: new Uint8Array(0),
          large: new Uint8Array(randomBytes(256 * 1024)),
        };
        const names = Object.keys(values);
        await store().set(names.map((n) => ({ key: k(n), value: values[n]!, ttlMs: LONG_TTL })));
        const got = await store().getMany(names.map(k));
        expect(got).toHaveLength(names.length);
        names.forEach((n, i) => {
          const bytes = got[i];
          expect(bytes, n).toBeInstanceOf(Uint8Array);
          expect(sameBytes(bytes!, values[n]!), n).toBe(true);
        });
      });

      it('accepts a Buffer or a subarray view and stores only the viewed bytes', async () => {
        const k = keyspace();
        const backing = new Uint8Array([9, 9, 1, 2, 3, 9, 9]);
        await store().set([
          { key: k('view'), value: backing.subarray(2, 5), ttlMs: LONG_TTL },
          { key: k('buffer'), value: Buffer.from([4, 5, 6]), ttlMs: LONG_TTL },
        ]);
        const [view, buffer] = await store().getMany([k('view'), k('buffer')]);
        expect(Array.from(view!)).toEqual([1, 2, 3]);
        expect(Array.from(buffer!)).toEqual([4, 5, 6]);
      });

      it('keeps stored bytes apart from the caller buffers', async () => {
        const k = keyspace();
        const value = new Uint8Array([1, 2, 3]);
        await store().set([{ key: k('a'), value, ttlMs: LONG_TTL }]);
        value[0] = 42;
        const [first] = await store().getMany([k('a')]);
        first![1] = 42;
        const [second] = await store().getMany([k('a')]);
        expect(Array.from(second!)).toEqual([1, 2, 3]);
      });

      it('reads missing keys as null and an empty key list as an empty result', async () => {
        const k = keyspace();
        expect(await store().getMany([k('missing')])).toEqual([null]);
        expect(await store().getMany([])).toEqual([]);
        await expect(store().set([])).resolves.toBeUndefined();
      });

      it('returns values in key order with mixed present, missing and repeated keys', async () => {
        const k = keyspace();
        await store().set([
          { key: k('b'), value: new Uint8Array([2]), ttlMs: LONG_TTL },
          { key: k('d'), value: new Uint8Array([4]), ttlMs: LONG_TTL },
        ]);
        const got = await store().getMany([k('a'), k('b'), k('c'), k('d'), k('e'), k('b')]);
        expect(got.map((v) => (v === null ? null : Array.from(v)))).toEqual([null, [2], null, [4], null, [2]]);
      });

      it('overwrites an existing value', async () => {
        const k = keyspace();
        await store().set([{ key: k('a'), value: new Uint8Array([1]), ttlMs: LONG_TTL }]);
        await store().set([{ key: k('a'), value: new Uint8Array([2, 2]), ttlMs: LONG_TTL }]);
        const [got] = await store().getMany([k('a')]);
        expect(Array.from(got!)).toEqual([2, 2]);
      });
    });

    describe('TTL', () => {
      it('expires an entry after its TTL and keeps a longer-lived one', async () => {
        const k = keyspace();
        await store().set([
          { key: k('short'), value: new Uint8Array([1]), ttlMs: SHORT_TTL },
          { key: k('long'), value: new Uint8Array([2]), ttlMs: LONG_TTL },
        ]);
        expect((await store().getMany([k('short')]))[0]).not.toBeNull();
        await elapse(PAST_SHORT_TTL);
        const [short, long] = await store().getMany([k('short'), k('long')]);
        expect(short).toBeNull();
        expect(Array.from(long!)).toEqual([2]);
      });

      it('resets the TTL when a value is overwritten', async () => {
        const k = keyspace();
        await store().set([{ key: k('a'), value: new Uint8Array([1]), ttlMs: LONG_TTL }]);
        await store().set([{ key: k('a'), value: new Uint8Array([2]), ttlMs: SHORT_TTL }]);
        await elapse(PAST_SHORT_TTL);
        expect(await store().getMany([k('a')])).toEqual([null]);
      });
    });

    describe('delete', () => {
      it('removes entries and counters and ignores missing keys', async () => {
        const k = keyspace();
        await store().set([
          { key: k('a'), value: new Uint8Array([1]), ttlMs: LONG_TTL },
          { key: k('b'), value: new Uint8Array([2]), ttlMs: LONG_TTL },
        ]);
        await store().incr([k('n')]);
        await store().delete([k('a'), k('n'), k('missing')]);
        const [a, b, n] = await store().getMany([k('a'), k('b'), k('n')]);
        expect(a).toBeNull();
        expect(Array.from(b!)).toEqual([2]);
        expect(n).toBeNull();
        // A deleted counter starts over.
        expect(await store().incr([k('n')])).toEqual([1]);
        await expect(store().delete([])).resolves.toBeUndefined();
      });
    });

    describe('incr', () => {
      it('starts a missing counter at 1 and returns new values in key order', async () => {
        const k = keyspace();
        expect(await store().incr([k('a')])).toEqual([1]);
        expect(await store().incr([k('a')])).toEqual([2]);
        expect(await store().incr([k('a'), k('b')])).toEqual([3, 1]);
        expect(await store().incr([])).toEqual([]);
      });

      it('is atomic: 200 concurrent increments end at 200 with 200 distinct results', async () => {
        const k = keyspace();
        const results = await Promise.all(Array.from({ length: 200 }, () => store().incr([k('n')])));
        const values = results.map((r) => r[0]!);
        expect(new Set(values).size).toBe(200);
        expect([...values].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
        expect(await counter(k('n'))).toBe(200);
      });

      it('starts a missing counter from init and ignores init once it exists', async () => {
        const k = keyspace();
        expect(await store().incr([k('n')], { init: 1000 })).toEqual([1001]);
        expect(await store().incr([k('n')], { init: 1000 })).toEqual([1002]);
        expect(await store().incr([k('n')], { init: 5000 })).toEqual([1003]);
      });

      it('with floor, raises a counter below init to init (and leaves one above it alone)', async () => {
        const k = keyspace();
        await store().incr([k('low')], { init: 10 });
        await store().incr([k('high')], { init: 100 });
        expect(await store().incr([k('low'), k('high'), k('new')], { init: 50, floor: true })).toEqual([51, 102, 51]);
        const init = 1_700_000_000_000_000;
        expect(await store().incr([k('low')], { init, floor: true })).toEqual([init + 1]);
        expect(await counter(k('low'))).toBe(init + 1);
      });

      it('keeps large init values exact', async () => {
        const k = keyspace();
        const init = 1_700_000_000_000_000;
        expect(await store().incr([k('n')], { init })).toEqual([init + 1]);
        expect(await counter(k('n'))).toBe(init + 1);
      });

      it('never expires a counter without ttlMs, expires one with it', async () => {
        const k = keyspace();
        await store().incr([k('forever')]);
        await store().incr([k('mortal')], { ttlMs: SHORT_TTL, init: 10 });
        expect(await counter(k('mortal'))).toBe(11);
        await elapse(PAST_SHORT_TTL);
        const [forever, mortal] = await store().getMany([k('forever'), k('mortal')]);
        expect(readCounter(forever)).toBe(1);
        expect(mortal).toBeNull();
        // An expired counter is missing again, so init applies anew.
        expect(await store().incr([k('mortal')], { init: 10 })).toEqual([11]);
      });

      it('resets the counter TTL on each increment with ttlMs', async () => {
        const k = keyspace();
        await store().incr([k('n')], { ttlMs: SHORT_TTL });
        await store().incr([k('n')], { ttlMs: LONG_TTL });
        await elapse(PAST_SHORT_TTL);
        expect(await counter(k('n'))).toBe(2);
      });

      it('exposes counters through getMany as decimals that readCounter parses', async () => {
        const k = keyspace();
        await store().incr([k('a')]);
        await store().incr([k('a')]);
        await store().incr([k('a')]);
        await store().incr([k('b')], { init: 41 });
        await store().set([{ key: k('entry'), value: new Uint8Array([7]), ttlMs: LONG_TTL }]);
        const got = await store().getMany([k('a'), k('missing'), k('b'), k('entry')]);
        expect(new TextDecoder().decode(got[0]!)).toBe('3');
        expect(readCounter(got[0])).toBe(3);
        expect(got[1]).toBeNull();
        expect(readCounter(got[1])).toBe(0);
        expect(readCounter(got[2])).toBe(42);
        expect(Array.from(got[3]!)).toEqual([7]);
      });
    });

    describe('setIfCounters', () => {
      const entry = (key: string, byte: number, ttlMs = LONG_TTL) => ({ key, value: new Uint8Array([byte]), ttlMs });

      it('writes when every guard matches, a missing counter matching 0', async () => {
        const k = keyspace();
        await store().incr([k('c1')]);
        await store().incr([k('c1')]);
        const written = await store().setIfCounters(entry(k('e'), 1), [
          { key: k('c1'), expected: 2 },
          { key: k('c2'), expected: 0 },
        ]);
        expect(written).toBe(true);
        const [e, c2] = await store().getMany([k('e'), k('c2')]);
        expect(Array.from(e!)).toEqual([1]);
        // Guards only read: the missing counter was not created.
        expect(c2).toBeNull();
      });

      it('writes without guards', async () => {
        const k = keyspace();
        expect(await store().setIfCounters(entry(k('e'), 3), [])).toBe(true);
        expect(Array.from((await store().getMany([k('e')]))[0]!)).toEqual([3]);
      });

      it('refuses when any guard differs and leaves the old value', async () => {
        const k = keyspace();
        await store().set([entry(k('e'), 1)]);
        await store().incr([k('c1')]);
        expect(
          await store().setIfCounters(entry(k('e'), 2), [
            { key: k('c1'), expected: 1 },
            { key: k('c2'), expected: 1 },
          ]),
        ).toBe(false);
        expect(await store().setIfCounters(entry(k('e'), 2), [{ key: k('c1'), expected: 0 }])).toBe(false);
        expect(await store().setIfCounters(entry(k('fresh'), 2), [{ key: k('c1'), expected: 2 }])).toBe(false);
        const [e, fresh] = await store().getMany([k('e'), k('fresh')]);
        expect(Array.from(e!)).toEqual([1]);
        expect(fresh).toBeNull();
      });

      it('refuses a fill that read the counter before a concurrent increment', async () => {
        const k = keyspace();
        await store().incr([k('gen')], { init: 7 });
        const observed = await counter(k('gen'));
        await store().incr([k('gen')]);
        expect(await store().setIfCounters(entry(k('e'), 1), [{ key: k('gen'), expected: observed }])).toBe(false);
        expect(await store().getMany([k('e')])).toEqual([null]);
        const current = await counter(k('gen'));
        expect(await store().setIfCounters(entry(k('e'), 1), [{ key: k('gen'), expected: current }])).toBe(true);
      });

      it('gives the written entry its TTL', async () => {
        const k = keyspace();
        expect(await store().setIfCounters(entry(k('e'), 1, SHORT_TTL), [])).toBe(true);
        await elapse(PAST_SHORT_TTL);
        expect(await store().getMany([k('e')])).toEqual([null]);
      });
    });

    describe('incrThenSetOrDelete', () => {
      const entry = (key: string, byte: number, ttlMs = LONG_TTL) => ({ key, value: new Uint8Array([byte]), ttlMs });

      it('increments and writes when the new value is the expected one', async () => {
        const k = keyspace();
        await store().incr([k('c')]);
        expect(await store().incrThenSetOrDelete(k('c'), 2, entry(k('e'), 5))).toBe(true);
        const [e, c] = await store().getMany([k('e'), k('c')]);
        expect(Array.from(e!)).toEqual([5]);
        expect(readCounter(c)).toBe(2);
      });

      it('increments and deletes the entry when another writer overlapped', async () => {
        const k = keyspace();
        await store().set([entry(k('e'), 1)]);
        await store().incr([k('c')]);
        expect(await store().incrThenSetOrDelete(k('c'), 5, entry(k('e'), 9))).toBe(false);
        const [e, c] = await store().getMany([k('e'), k('c')]);
        expect(e).toBeNull();
        expect(readCounter(c)).toBe(2);
      });

      it('applies init to a missing counter', async () => {
        const k = keyspace();
        expect(await store().incrThenSetOrDelete(k('c'), 1001, entry(k('e'), 1), { init: 1000 })).toBe(true);
        expect(await counter(k('c'))).toBe(1001);
        expect(await store().incrThenSetOrDelete(k('c'), 1002, entry(k('e'), 2), { init: 1000 })).toBe(true);
        expect(Array.from((await store().getMany([k('e')]))[0]!)).toEqual([2]);
      });

      it('of two overlapping writers, lets one write and the other clear the entry', async () => {
        const k = keyspace();
        // Both writers expect 1; only the one whose increment produced it may write, and the
        // later one, seeing 2, deletes what the first wrote.
        const results = await Promise.all([
          store().incrThenSetOrDelete(k('c'), 1, entry(k('e'), 1)),
          store().incrThenSetOrDelete(k('c'), 1, entry(k('e'), 2)),
        ]);
        expect(results.filter(Boolean)).toHaveLength(1);
        const [c, e] = await store().getMany([k('c'), k('e')]);
        expect(readCounter(c)).toBe(2);
        expect(e).toBeNull();
      });

      it('gives the counter its ttlMs and the entry its own TTL', async () => {
        const k = keyspace();
        expect(await store().incrThenSetOrDelete(k('c'), 1, entry(k('e'), 1), { ttlMs: SHORT_TTL })).toBe(true);
        expect(await store().incrThenSetOrDelete(k('c2'), 1, entry(k('e2'), 1, SHORT_TTL))).toBe(true);
        await elapse(PAST_SHORT_TTL);
        const [c, e, c2, e2] = await store().getMany([k('c'), k('e'), k('c2'), k('e2')]);
        expect(c).toBeNull();
        expect(Array.from(e!)).toEqual([1]);
        expect(readCounter(c2)).toBe(1);
        expect(e2).toBeNull();
      });
    });

    describe('incrThenSetOrDeleteMany', () => {
      const item = (counter: string, key: string, expected: number, byte?: number, ttlMs = LONG_TTL) => ({
        counter,
        key,
        expected,
        value: byte === undefined ? undefined : new Uint8Array([byte]),
        ttlMs,
      });

      it('returns [] for no items', async () => {
        expect(await store().incrThenSetOrDeleteMany([])).toEqual([]);
      });

      it('per item, writes when the incremented counter is the expected one and deletes otherwise', async () => {
        const k = keyspace();
        await store().set([{ key: k('e2'), value: new Uint8Array([7]), ttlMs: LONG_TTL }]);
        await store().incr([k('c2')]);
        const written = await store().incrThenSetOrDeleteMany([
          item(k('c1'), k('e1'), 1, 1),
          item(k('c2'), k('e2'), 1, 2),
          item(k('c3'), k('e3'), 1, 3),
        ]);
        expect(written).toEqual([true, false, true]);
        const [e1, e2, e3, c1, c2, c3] = await store().getMany([k('e1'), k('e2'), k('e3'), k('c1'), k('c2'), k('c3')]);
        expect(Array.from(e1!)).toEqual([1]);
        expect(e2).toBeNull();
        expect(Array.from(e3!)).toEqual([3]);
        expect([readCounter(c1), readCounter(c2), readCounter(c3)]).toEqual([1, 2, 1]);
      });

      it('always deletes and still increments an item without a value', async () => {
        const k = keyspace();
        await store().set([{ key: k('e'), value: new Uint8Array([1]), ttlMs: LONG_TTL }]);
        expect(await store().incrThenSetOrDeleteMany([item(k('c'), k('e'), 1)])).toEqual([false]);
        const [e, c] = await store().getMany([k('e'), k('c')]);
        expect(e).toBeNull();
        expect(readCounter(c)).toBe(1);
      });

      it('applies init and the counter ttlMs to missing counters, the entry its own TTL', async () => {
        const k = keyspace();
        const init = Date.now() * 1000;
        expect(
          await store().incrThenSetOrDeleteMany([item(k('c'), k('e'), init + 1, 1, SHORT_TTL)], {
            init,
            ttlMs: SHORT_TTL,
          }),
        ).toEqual([true]);
        expect(await counter(k('c'))).toBe(init + 1);
        await elapse(PAST_SHORT_TTL);
        expect(await store().getMany([k('c'), k('e')])).toEqual([null, null]);
      });

      it("with expected 'created', writes only when the increment created the counter", async () => {
        const k = keyspace();
        await store().incr([k('c2')], { init: 1000 });
        const created = { expected: 'created' as const, value: new Uint8Array([9]), ttlMs: LONG_TTL };
        const written = await store().incrThenSetOrDeleteMany(
          [
            { counter: k('c1'), key: k('e1'), ...created },
            { counter: k('c2'), key: k('e2'), ...created },
          ],
          { init: 1000 },
        );
        expect(written).toEqual([true, false]);
        expect(await store().incrThenSetOrDeleteMany([{ counter: k('c1'), key: k('e1'), ...created }])).toEqual([
          false,
        ]);
        const [e1, e2, c1, c2] = await store().getMany([k('e1'), k('e2'), k('c1'), k('c2')]);
        expect([e1, e2]).toEqual([null, null]);
        expect([readCounter(c1), readCounter(c2)]).toEqual([1002, 1002]);
      });

      it('handles more items than fit one script call, in order', async () => {
        const k = keyspace();
        const items = Array.from({ length: 600 }, (_, i) => item(k(`c${i}`), k(`e${i}`), i % 3 === 0 ? 1 : 2, i % 256));
        const written = await store().incrThenSetOrDeleteMany(items);
        expect(written).toEqual(items.map((_, i) => i % 3 === 0));
        const values = await store().getMany([k('e0'), k('e1'), k('e599')]);
        expect(values.map((v) => (v ? Array.from(v) : null))).toEqual([[0], null, null]);
      });
    });

    describe('setIfAbsent', () => {
      const entry = (key: string, byte: number, ttlMs = LONG_TTL) => ({ key, value: new Uint8Array([byte]), ttlMs });

      it('sets only when the key is absent', async () => {
        const k = keyspace();
        expect(await store().setIfAbsent(entry(k('lease'), 1))).toBe(true);
        expect(await store().setIfAbsent(entry(k('lease'), 2))).toBe(false);
        expect(Array.from((await store().getMany([k('lease')]))[0]!)).toEqual([1]);
        await store().incr([k('counter')]);
        expect(await store().setIfAbsent(entry(k('counter'), 3))).toBe(false);
        expect(await counter(k('counter'))).toBe(1);
      });

      it('sets again after the key expired or was deleted', async () => {
        const k = keyspace();
        expect(await store().setIfAbsent(entry(k('a'), 1, SHORT_TTL))).toBe(true);
        expect(await store().setIfAbsent(entry(k('b'), 1))).toBe(true);
        await elapse(PAST_SHORT_TTL);
        await store().delete([k('b')]);
        expect(await store().setIfAbsent(entry(k('a'), 2))).toBe(true);
        expect(await store().setIfAbsent(entry(k('b'), 2))).toBe(true);
        const got = await store().getMany([k('a'), k('b')]);
        expect(got.map((v) => Array.from(v!))).toEqual([[2], [2]]);
      });

      it('grants a lease to exactly one of many concurrent callers', async () => {
        const k = keyspace();
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store().setIfAbsent(entry(k('lease'), i))),
        );
        expect(results.filter(Boolean)).toHaveLength(1);
        const winner = results.indexOf(true);
        expect(Array.from((await store().getMany([k('lease')]))[0]!)).toEqual([winner]);
      });
    });
  });
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
