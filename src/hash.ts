import * as crypto from 'node:crypto';

type OneShotHash = (algorithm: string, data: string, encoding: 'base64url') => string;
// Node >= 20.12 has a one-shot hash that skips the Hash object; older 20.x falls back.
const oneShot = (crypto as { hash?: OneShotHash }).hash;

/** A synchronous 128-bit digest (SHA-256, truncated), base64url: fast enough for every query. */
export function digest(input: string): string {
  const full = oneShot
    ? oneShot('sha256', input, 'base64url')
    : crypto.createHash('sha256').update(input).digest('base64url');
  return full.slice(0, 22);
}

/**
 * Serializes query parameters deterministically for hashing. Distinguishes types that JSON would
 * merge (1 vs '1' vs 1n, Date vs its string, Buffer vs array) so two queries never share a key.
 */
export function stableParams(params: readonly unknown[]): string {
  let out = '';
  for (const p of params) out += `${encodeParam(p)}\u0000`;
  return out;
}

// Every form is self-delimiting (strings carry their length), so the encoding is injective:
// ['a,sb'] and ['a', 'b'] never encode alike.
function encodeParam(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `s${value.length}:${value}`;
    case 'number':
      return Object.is(value, -0) ? 'n-0;' : `n${value};`;
    case 'bigint':
      return `b${value};`;
    case 'boolean':
      return value ? 'T' : 'F';
    case 'undefined':
      return 'u';
    case 'object': {
      if (value === null) return 'N';
      if (value instanceof Date) return `d${value.getTime()};`;
      if (value instanceof Uint8Array) {
        const b64 = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
        return `x${b64.length}:${b64}`;
      }
      if (Array.isArray(value)) return `a${value.length}[${value.map(encodeParam).join('')}]`;
      const keys = Object.keys(value).sort();
      const body = keys.map((k) => `${k.length}:${k}${encodeParam((value as Record<string, unknown>)[k])}`).join('');
      return `o${keys.length}{${body}}`;
    }
    default: {
      const text = String(value);
      return `?${text.length}:${text}`;
    }
  }
}
