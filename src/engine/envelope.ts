import { decodeValue, encodeValue } from '../serializer.js';

const NEWLINE = 0x0a;

/**
 * An entry is `<generations>\n<encoded value>`: the generations of every table the entry depends
 * on, as read before the database was queried. A hit requires them to equal the current ones.
 */
export function encodeEnvelope(generations: string, value: unknown): Buffer {
  const body = encodeValue(value);
  const header = Buffer.from(`${generations}\n`, 'latin1');
  return Buffer.concat([header, body], header.length + body.length);
}

/** The generations header of an entry, or undefined when the entry is malformed. */
export function envelopeGenerations(bytes: Uint8Array): string | undefined {
  const end = bytes.indexOf(NEWLINE);
  if (end < 0) return undefined;
  return Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1');
}

/** Decodes the value of an entry (throws on corrupt input). */
export function decodeEnvelope(bytes: Uint8Array): unknown {
  const end = bytes.indexOf(NEWLINE);
  if (end < 0) throw new Error('malformed cache entry');
  return decodeValue(bytes, end + 1);
}

/** Joins generation numbers into an envelope header. */
export function generationHeader(generations: readonly number[]): string {
  return generations.join(',');
}
