// The entry header with freshness metadata: old entries stay readable, new ones are never
// mis-decoded by code that predates the metadata, malformed metadata is a miss.
import { describe, expect, it } from 'vitest';
import {
  decodeEnvelope,
  encodeEnvelope,
  envelopeGenerations,
  envelopeHeader,
  withMeta,
} from '../../src/engine/envelope.js';

const meta = { filledAt: 1_700_000_000_000, expiresAt: 1_700_000_600_000, computeMs: 12 };

/** How the engine before the metadata read the header: the whole first line. */
function legacyGenerations(bytes: Uint8Array): string {
  return Buffer.from(bytes.subarray(0, bytes.indexOf(0x0a))).toString('latin1');
}

describe('envelope with freshness metadata', () => {
  it('round-trips the generations, the metadata and the value', () => {
    const value = { rows: [[1, 'ada', 10n, new Date(0), Buffer.from('x')]] };
    const bytes = encodeEnvelope('7,3', value, meta);
    expect(envelopeHeader(bytes)).toEqual({ generations: '7,3', meta });
    expect(envelopeGenerations(bytes)).toBe('7,3');
    expect(decodeEnvelope(bytes)).toEqual(value);
  });

  it('reads entries without metadata (written before it existed, or by tables without a strategy)', () => {
    const bytes = encodeEnvelope('7,3', [1, 2]);
    expect(envelopeHeader(bytes)).toEqual({ generations: '7,3', meta: undefined });
    expect(legacyGenerations(bytes)).toBe('7,3');
    expect(decodeEnvelope(bytes)).toEqual([1, 2]);
  });

  it('an entry with metadata never matches the generations older code compares, so it is a miss there', () => {
    const bytes = encodeEnvelope('7,3', [1], meta);
    expect(legacyGenerations(bytes)).not.toBe('7,3');
    expect(legacyGenerations(bytes).startsWith('7,3;')).toBe(true);
  });

  it('treats malformed metadata as a malformed entry (a miss), never as generations', () => {
    const bad = ['7,3;1,2', '7,3;1,2,x', '7,3;;;', '7,3;1,2,3,4', '7,3;-1,2,3', '7,3;1e3,2,3'];
    for (const line of bad) {
      const bytes = Buffer.concat([Buffer.from(`${line}\n`, 'latin1'), encodeEnvelope('', 1).subarray(1)]);
      expect(envelopeHeader(bytes), line).toBeUndefined();
      expect(envelopeGenerations(bytes), line).toBeUndefined();
    }
    expect(envelopeHeader(Buffer.from('no newline'))).toBeUndefined();
  });

  it('withMeta rewrites the header and keeps the encoded value byte for byte', () => {
    const bytes = encodeEnvelope('7,3', { a: [1, 2, 3] }, meta);
    const later = { ...meta, expiresAt: meta.expiresAt + 60_000 };
    const moved = withMeta(bytes, '7,3', later);
    expect(envelopeHeader(moved)).toEqual({ generations: '7,3', meta: later });
    const body = (b: Uint8Array) => Buffer.from(b.subarray(b.indexOf(0x0a) + 1));
    expect(body(moved).equals(body(bytes))).toBe(true);
    // A view into a larger buffer (as the stores return them) works too.
    const padded = Buffer.concat([Buffer.from('xxxx'), bytes]);
    expect(decodeEnvelope(withMeta(padded.subarray(4), '7,3', later))).toEqual({ a: [1, 2, 3] });
  });
});
