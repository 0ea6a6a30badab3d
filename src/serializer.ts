import { deserialize, serialize } from 'node:v8';

const JSON_TAG = 0x4a; // 'J': UTF-8 JSON follows
const V8_TAG = 0x56; // 'V': v8 structured serialization follows

/**
 * Encodes a cached value. Plain JSON values (the common case for driver rows) take the fast JSON
 * path; anything JSON would alter (Buffer, Date, bigint, NaN, undefined, -0) takes v8's
 * structured serialization, so a cached answer decodes to exactly what the database returned.
 */
export function encodeValue(value: unknown): Buffer {
  if (isJsonSafe(value, 0)) {
    const json = JSON.stringify(value);
    const out = Buffer.allocUnsafe(1 + Buffer.byteLength(json));
    out[0] = JSON_TAG;
    out.write(json, 1);
    return out;
  }
  const body = serialize(value);
  const out = Buffer.allocUnsafe(1 + body.length);
  out[0] = V8_TAG;
  body.copy(out, 1);
  return out;
}

/** Decodes what `encodeValue` wrote; throws on corrupt input (the caller treats it as a miss). */
export function decodeValue(bytes: Uint8Array, offset = 0): unknown {
  const tag = bytes[offset];
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (tag === JSON_TAG) return JSON.parse(buf.toString('utf8', offset + 1));
  if (tag === V8_TAG) return deserialize(buf.subarray(offset + 1));
  throw new Error('unknown cache value encoding');
}

function isJsonSafe(value: unknown, depth: number): boolean {
  if (depth > 64) return false;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true;
    case 'number':
      return Number.isFinite(value) && !Object.is(value, -0);
    case 'object': {
      if (value === null) return true;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) if (!isJsonSafe(value[i], depth + 1)) return false;
        return true;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) return false;
      for (const key in value) {
        if (!isJsonSafe((value as Record<string, unknown>)[key], depth + 1)) return false;
      }
      return true;
    }
    default:
      return false;
  }
}
