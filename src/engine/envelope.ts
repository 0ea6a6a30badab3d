import { decodeValue, encodeValue } from '../serializer.js';

const NEWLINE = 0x0a;
const META_SEPARATOR = ';';
const META_FIELD = /^\d{1,16}$/;

/**
 * Freshness metadata an entry may carry after its generations (TTL strategies, see
 * docs/freshness.md). Times are milliseconds of the cache's clock.
 */
export interface EntryMeta {
  /** When the value was read from the database. */
  readonly filledAt: number;
  /** When the value stops being fresh (its logical expiry; the store keeps it `grace` longer). */
  readonly expiresAt: number;
  /** How long the query took to compute, for early refresh (at least 1). */
  readonly computeMs: number;
}

/** The parsed first line of an entry. */
export interface EnvelopeHeader {
  /** The generations the entry depends on. */
  readonly generations: string;
  /** Freshness metadata, when the entry was written with some. */
  readonly meta: EntryMeta | undefined;
}

/**
 * An entry is `<generations>\n<encoded value>`, or `<generations>;<filledAt>,<expiresAt>,<computeMs>\n
 * <encoded value>` when its table uses a TTL strategy that needs to know the entry's age. The
 * generations are those of every table the entry depends on, as read before the database was
 * queried; a hit requires them to equal the current ones. Code that predates the metadata sees a
 * header that matches no generations, so it treats such entries as misses, never mis-decodes them.
 */
export function encodeEnvelope(generations: string, value: unknown, meta?: EntryMeta): Buffer {
  const body = encodeValue(value);
  const header = Buffer.from(`${headerLine(generations, meta)}\n`, 'latin1');
  return Buffer.concat([header, body], header.length + body.length);
}

/** The entry's header, or undefined when the entry is malformed (then it is a miss). */
export function envelopeHeader(bytes: Uint8Array): EnvelopeHeader | undefined {
  const end = bytes.indexOf(NEWLINE);
  if (end < 0) return undefined;
  const line = Buffer.from(bytes.buffer, bytes.byteOffset, end).toString('latin1');
  const at = line.indexOf(META_SEPARATOR);
  if (at < 0) return { generations: line, meta: undefined };
  const fields = line.slice(at + 1).split(',');
  if (fields.length !== 3 || !fields.every((f) => META_FIELD.test(f))) return undefined;
  const [filledAt, expiresAt, computeMs] = fields.map(Number) as [number, number, number];
  return { generations: line.slice(0, at), meta: { filledAt, expiresAt, computeMs } };
}

/** The generations header of an entry, or undefined when the entry is malformed. */
export function envelopeGenerations(bytes: Uint8Array): string | undefined {
  return envelopeHeader(bytes)?.generations;
}

/** Decodes the value of an entry (throws on corrupt input). */
export function decodeEnvelope(bytes: Uint8Array): unknown {
  const end = bytes.indexOf(NEWLINE);
  if (end < 0) throw new Error('malformed cache entry');
  return decodeValue(bytes, end + 1);
}

/** The same entry with new metadata (sliding expiration); the encoded value is kept as is. */
export function withMeta(bytes: Uint8Array, generations: string, meta: EntryMeta): Buffer {
  const end = bytes.indexOf(NEWLINE);
  if (end < 0) throw new Error('malformed cache entry');
  const header = Buffer.from(`${headerLine(generations, meta)}\n`, 'latin1');
  const body = Buffer.from(bytes.buffer, bytes.byteOffset + end + 1, bytes.length - end - 1);
  return Buffer.concat([header, body], header.length + body.length);
}

/** Joins generation numbers into an envelope header. */
export function generationHeader(generations: readonly number[]): string {
  return generations.join(',');
}

function headerLine(generations: string, meta: EntryMeta | undefined): string {
  if (!meta) return generations;
  const field = (n: number) => String(Math.max(0, Math.round(n)));
  return `${generations}${META_SEPARATOR}${field(meta.filledAt)},${field(meta.expiresAt)},${field(meta.computeMs)}`;
}
