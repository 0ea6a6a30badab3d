// The decisions of the TTL strategies, as pure functions: combination across tables, jitter,
// entry states, the XFetch rule and sliding expiry.
import { describe, expect, it } from 'vitest';
import type { TableInfo } from '../../src/catalog.js';
import {
  combineStrategy,
  entryState,
  jittered,
  jitterMsOf,
  refreshEarly,
  type Strategy,
  slidingExpiry,
} from '../../src/engine/freshness.js';
import type { BoundTable } from '../../src/engine/registry.js';
import { validatePolicy } from '../../src/policy/index.js';

function bound(name: string, entry: Record<string, unknown>): BoundTable {
  const policy = validatePolicy({ namespace: 'n', version: 1, tables: { [name]: entry } }).tables.get(name);
  const info: TableInfo = { id: name, name, aliases: [], columns: [], primaryKey: [], kind: 'table' };
  return { info, policy: policy! };
}

const base: Strategy = {
  ttlMs: 10_000,
  jitterMs: 0,
  graceMs: 0,
  serveStaleOnDbError: false,
  slidingMaxAgeMs: undefined,
  beta: undefined,
  meta: false,
};

describe('combineStrategy', () => {
  it('a table without strategies writes entries without metadata', () => {
    const s = combineStrategy([bound('a', { pattern: 'cache-aside', ttl: '10s' })], 10_000);
    expect(s).toEqual({ ...base });
  });

  it('takes the jitter of the table with the shortest TTL, the smallest grace, sliding only if all slide', () => {
    const a = bound('a', {
      pattern: 'cache-aside',
      ttl: '10s',
      ttlJitter: 0.2,
      grace: '30s',
      serveStaleOnDbError: true,
      sliding: { maxAge: '1m' },
    });
    const b = bound('b', {
      pattern: 'cache-aside',
      ttl: '1m',
      ttlJitter: '5s',
      grace: '20s',
      earlyRefresh: { beta: 2 },
    });
    const s = combineStrategy([a, b], 10_000);
    expect(s).toEqual({
      ttlMs: 10_000,
      jitterMs: 2000,
      graceMs: 20_000,
      serveStaleOnDbError: false,
      slidingMaxAgeMs: undefined,
      beta: 2,
      meta: true,
    });
    const c = bound('c', { pattern: 'cache-aside', ttl: '10s' });
    expect(combineStrategy([a, c], 10_000)).toMatchObject({ graceMs: 0, serveStaleOnDbError: false, meta: false });
    expect(combineStrategy([a, a], 10_000)).toMatchObject({ slidingMaxAgeMs: 60_000, serveStaleOnDbError: true });
  });
});

describe('jitter', () => {
  it('spreads a TTL uniformly over ttl ± jitter, never below 1 ms', () => {
    expect(jittered(10_000, 1000, () => 0)).toBe(9000);
    expect(jittered(10_000, 1000, () => 0.5)).toBe(10_000);
    expect(jittered(10_000, 1000, () => 0.999_999)).toBe(11_000);
    expect(jittered(10_000, 0, () => 0)).toBe(10_000);
    expect(jittered(2, 1, () => 0)).toBe(1);
  });

  it('a fraction is of the TTL in use, a duration is absolute, both stay below the TTL', () => {
    expect(jitterMsOf(bound('a', { pattern: 'cache-aside', ttlJitter: 0.1 }).policy, 60_000)).toBe(6000);
    expect(jitterMsOf(bound('a', { pattern: 'cache-aside', ttl: '1h', ttlJitter: '30s' }).policy, 60_000)).toBe(30_000);
    expect(jitterMsOf(bound('a', { pattern: 'cache-aside', ttl: '1h', ttlJitter: '30m' }).policy, 60_000)).toBe(59_999);
    expect(jitterMsOf(bound('a', { pattern: 'cache-aside' }).policy, 60_000)).toBe(0);
  });
});

describe('entryState', () => {
  const meta = { filledAt: 0, expiresAt: 10_000, computeMs: 5 };
  it('is fresh before the expiry, stale within grace after it, expired beyond', () => {
    const grace = { ...base, graceMs: 5000, meta: true };
    expect(entryState(meta, 9999, grace)).toBe('fresh');
    expect(entryState(meta, 10_000, grace)).toBe('stale');
    expect(entryState(meta, 14_999, grace)).toBe('stale');
    expect(entryState(meta, 15_000, grace)).toBe('expired');
    expect(entryState(meta, 10_000, base)).toBe('expired');
  });

  it('entries without metadata live as long as the store keeps them', () => {
    expect(entryState(undefined, Number.MAX_SAFE_INTEGER, { ...base, graceMs: 5000 })).toBe('fresh');
  });
});

describe('refreshEarly (XFetch)', () => {
  const meta = { filledAt: 0, expiresAt: 10_000, computeMs: 100 };
  it('refreshes when now - computeMs * beta * ln(random) reaches the expiry', () => {
    // -ln(0.5) = 0.693: with computeMs 100 and beta 1, from 69.3 ms before the expiry.
    expect(refreshEarly(meta, 9930, 1, () => 0.5)).toBe(false);
    expect(refreshEarly(meta, 9931, 1, () => 0.5)).toBe(true);
    // beta 2 doubles the head start.
    expect(refreshEarly(meta, 9862, 2, () => 0.5)).toBe(true);
    // random 1 refreshes only at the expiry; random near 0 refreshes early.
    expect(refreshEarly(meta, 9999, 1, () => 1)).toBe(false);
    expect(refreshEarly(meta, 1000, 1, () => 1e-300)).toBe(true);
  });

  it('the probability grows as the expiry nears and with the compute time', () => {
    const rate = (now: number, computeMs: number) => {
      let hits = 0;
      for (let i = 1; i <= 1000; i++) {
        if (refreshEarly({ ...meta, computeMs }, now, 1, () => i / 1001)) hits++;
      }
      return hits;
    };
    expect(rate(9000, 100)).toBeLessThan(rate(9800, 100));
    expect(rate(9800, 100)).toBeLessThan(rate(9990, 100));
    expect(rate(9800, 10)).toBeLessThan(rate(9800, 1000));
  });
});

describe('slidingExpiry', () => {
  const sliding = { ...base, ttlMs: 10_000, slidingMaxAgeMs: 25_000, meta: true };
  it('moves the expiry to ttl from now, capped by the maximum age since the fill', () => {
    const meta = { filledAt: 0, expiresAt: 10_000, computeMs: 1 };
    expect(slidingExpiry(meta, 4000, sliding)).toBe(14_000);
    expect(slidingExpiry({ ...meta, expiresAt: 20_000 }, 19_000, sliding)).toBe(25_000);
    expect(slidingExpiry({ ...meta, expiresAt: 25_000 }, 24_000, sliding)).toBeUndefined();
  });

  it('does not rewrite an entry for a move under 5% of the TTL', () => {
    const meta = { filledAt: 0, expiresAt: 10_000, computeMs: 1 };
    expect(slidingExpiry(meta, 400, sliding)).toBeUndefined();
    expect(slidingExpiry(meta, 500, sliding)).toBe(10_500);
    expect(slidingExpiry(meta, 4000, base)).toBeUndefined();
  });
});
