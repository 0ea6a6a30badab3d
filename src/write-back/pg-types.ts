/**
 * The column types write-back supports, and how a parameter value becomes the text PostgreSQL
 * would output for it once stored (its "canonical text"). Row entries hold canonical text, so a
 * cached read decodes to exactly what a database read returns. A value whose stored form cannot
 * be predicted exactly normalises to NOT_EXACT and the write runs synchronously instead.
 */

import { type Decimal, formatDecimal, integerDigits, parseNumericInput, rescale } from './decimal.js';
import { canonicalJsonb, isJsonText } from './jsonb.js';
import { formatDate, formatTimestamp, parseDateTime } from './pg-time.js';

/** The supported column kinds. */
export type ColumnKind =
  | 'int2'
  | 'int4'
  | 'int8'
  | 'numeric'
  | 'float8'
  | 'bool'
  | 'text'
  | 'uuid'
  | 'json'
  | 'jsonb'
  | 'timestamp'
  | 'timestamptz'
  | 'date'
  | 'bytea';

/** A supported column type with its modifiers. */
export interface ColumnType {
  readonly kind: ColumnKind;
  /** The type as a cast target, built from the parsed modifiers (never copied from input). */
  readonly cast: string;
  /** The PostgreSQL type OID (for driver parsers). */
  readonly oid: number;
  /** numeric(p, s): precision and scale; timestamp(p): fraction digits. */
  readonly precision?: number | undefined;
  readonly scale?: number | undefined;
  /** varchar(n): the length limit in characters. */
  readonly length?: number | undefined;
}

/** Session settings the canonical text of some types depends on. */
export interface NormalizeContext {
  /** `DateStyle` starts with ISO: dates print as `YYYY-MM-DD`. */
  readonly dateStyleIso: boolean;
  /** `TimeZone` is UTC: timestamptz prints with `+00`. */
  readonly timeZoneUtc: boolean;
  /** `extra_float_digits` >= 1: doubles print exactly. */
  readonly floatExact: boolean;
  /** `bytea_output` is hex. */
  readonly byteaHex: boolean;
}

/** The settings of a stock PostgreSQL server with TimeZone UTC. */
export const DEFAULT_CONTEXT: NormalizeContext = {
  dateStyleIso: true,
  timeZoneUtc: true,
  floatExact: true,
  byteaHex: true,
};

/** Returned when a value's stored form cannot be predicted exactly. */
export const NOT_EXACT: unique symbol = Symbol('tablecache.notExact');
/** A canonical text, SQL NULL, or NOT_EXACT. */
export type Canonical = string | null | typeof NOT_EXACT;

const INT_BOUNDS: Record<'int2' | 'int4' | 'int8', readonly [bigint, bigint]> = {
  int2: [-32768n, 32767n],
  int4: [-2147483648n, 2147483647n],
  int8: [-9223372036854775808n, 9223372036854775807n],
};

const SIMPLE: Record<string, ColumnType> = {};
for (const [names, kind, cast, oid] of [
  [['smallint', 'int2', 'smallserial', 'serial2'], 'int2', 'smallint', 21],
  [['integer', 'int', 'int4', 'serial', 'serial4'], 'int4', 'integer', 23],
  [['bigint', 'int8', 'bigserial', 'serial8'], 'int8', 'bigint', 20],
  [['double precision', 'float8'], 'float8', 'double precision', 701],
  [['boolean', 'bool'], 'bool', 'boolean', 16],
  [['text'], 'text', 'text', 25],
  [['uuid'], 'uuid', 'uuid', 2950],
  [['json'], 'json', 'json', 114],
  [['jsonb'], 'jsonb', 'jsonb', 3802],
  [['date'], 'date', 'date', 1082],
  [['bytea'], 'bytea', 'bytea', 17],
  [['timestamptz'], 'timestamptz', 'timestamptz', 1184],
] as const) {
  for (const name of names) SIMPLE[name] = { kind, cast, oid };
}

/** Parses a column's SQL type as an ORM reports it; undefined when write-back does not support it. */
export function parseColumnType(sqlType: string): ColumnType | undefined {
  const t = sqlType.trim().toLowerCase().replace(/\s+/g, ' ');
  const simple = SIMPLE[t];
  if (simple) return simple;
  let m = /^(?:numeric|decimal)(?: ?\( ?(\d+) ?(?:, ?(\d+) ?)?\))?$/.exec(t);
  if (m) {
    if (m[1] === undefined) return { kind: 'numeric', cast: 'numeric', oid: 1700 };
    const precision = Number(m[1]);
    const scale = Number(m[2] ?? '0');
    if (precision < 1 || precision > 1000 || scale > precision) return undefined;
    return { kind: 'numeric', cast: `numeric(${precision}, ${scale})`, oid: 1700, precision, scale };
  }
  m = /^(?:varchar|character varying)(?: ?\( ?(\d+) ?\))?$/.exec(t);
  if (m) {
    if (m[1] === undefined) return { kind: 'text', cast: 'varchar', oid: 1043 };
    const length = Number(m[1]);
    if (length < 1 || length > 10_485_760) return undefined;
    return { kind: 'text', cast: `varchar(${length})`, oid: 1043, length };
  }
  m = /^timestamp(?: ?\( ?(\d) ?\))?( without time zone| with time zone)?$/.exec(t);
  if (m) {
    const precision = m[1] === undefined ? undefined : Number(m[1]);
    if (precision !== undefined && precision > 6) return undefined;
    const tz = m[2] === ' with time zone';
    const base = tz ? 'timestamptz' : 'timestamp';
    return {
      kind: base,
      cast: precision === undefined ? base : `${base}(${precision})`,
      oid: tz ? 1184 : 1114,
      precision,
    };
  }
  return undefined;
}

/** Whether `increment` may add to a column of this type (exact arithmetic only). */
export function supportsDelta(type: ColumnType): boolean {
  return type.kind === 'int2' || type.kind === 'int4' || type.kind === 'int8' || type.kind === 'numeric';
}

/** The inclusive range a delta's result must stay in, as canonical text; undefined when unbounded. */
export function deltaBounds(type: ColumnType): readonly [string, string] | undefined {
  if (type.kind === 'int2' || type.kind === 'int4' || type.kind === 'int8') {
    const [lo, hi] = INT_BOUNDS[type.kind];
    return [lo.toString(), hi.toString()];
  }
  if (type.kind === 'numeric' && type.precision !== undefined) {
    const scale = type.scale ?? 0;
    const max: Decimal = { digits: 10n ** BigInt(type.precision) - 1n, scale };
    return [formatDecimal({ digits: -max.digits, scale }), formatDecimal(max)];
  }
  return undefined;
}

/**
 * The canonical text of a delta for a column, or NOT_EXACT when adding it could not be computed
 * exactly (a fraction for an integer column, more decimals than a numeric(p, s) column keeps).
 */
export function canonicalDelta(type: ColumnType, value: unknown): string | typeof NOT_EXACT {
  if (!supportsDelta(type)) return NOT_EXACT;
  if (type.kind !== 'numeric') {
    const n = integerOf(value);
    return n === undefined ? NOT_EXACT : n.toString();
  }
  const d = decimalOf(value);
  if (!d) return NOT_EXACT;
  if (type.scale === undefined && type.precision === undefined) return formatDecimal(d);
  const scale = type.scale ?? 0;
  // More decimals than the column keeps would be rounded by PostgreSQL: only trailing zeros may go.
  if (d.scale > scale && d.digits % 10n ** BigInt(d.scale - scale) !== 0n) return NOT_EXACT;
  return formatDecimal(rescale(d, scale));
}

/** The canonical text of a parameter value stored into a column of `type`. */
export function canonicalValue(
  type: ColumnType,
  value: unknown,
  context: NormalizeContext = DEFAULT_CONTEXT,
): Canonical {
  if (value === null || value === undefined) return null;
  switch (type.kind) {
    case 'int2':
    case 'int4':
    case 'int8': {
      const n = integerOf(value);
      if (n === undefined) return NOT_EXACT;
      const [lo, hi] = INT_BOUNDS[type.kind];
      return n < lo || n > hi ? NOT_EXACT : n.toString();
    }
    case 'numeric':
      return canonicalNumeric(type, value);
    case 'float8':
      return context.floatExact ? canonicalFloat(value) : NOT_EXACT;
    case 'bool':
      return canonicalBool(value);
    case 'text':
      return canonicalText(type, value);
    case 'uuid':
      return canonicalUuid(value);
    case 'json':
      if (typeof value === 'string') return isJsonText(value) ? value : NOT_EXACT;
      return plainObject(value) ? jsonOf(value) : NOT_EXACT;
    case 'jsonb': {
      const text = typeof value === 'string' ? value : plainObject(value) ? jsonOf(value) : NOT_EXACT;
      if (text === NOT_EXACT) return NOT_EXACT;
      return canonicalJsonb(text) ?? NOT_EXACT;
    }
    case 'timestamp':
    case 'timestamptz':
    case 'date':
      return canonicalTime(type, value, context);
    case 'bytea':
      return context.byteaHex ? canonicalBytea(value) : NOT_EXACT;
  }
}

function integerOf(value: unknown): bigint | undefined {
  if (typeof value === 'bigint') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : undefined;
  if (typeof value === 'string' && /^\s*[+-]?[0-9]+\s*$/.test(value)) return BigInt(value.trim());
  return undefined;
}

function decimalOf(value: unknown): Decimal | undefined {
  if (typeof value === 'bigint') return { digits: value, scale: 0 };
  if (typeof value === 'number') return Number.isFinite(value) ? parseNumericInput(String(value)) : undefined;
  if (typeof value === 'string') return parseNumericInput(value);
  return undefined;
}

function canonicalNumeric(type: ColumnType, value: unknown): Canonical {
  if (typeof value === 'string' && value.trim().toLowerCase() === 'nan') return 'NaN';
  const d = decimalOf(value);
  if (!d) return NOT_EXACT;
  if (type.precision === undefined) return formatDecimal(d);
  const scaled = rescale(d, type.scale ?? 0);
  if (integerDigits(scaled) > type.precision - (type.scale ?? 0)) return NOT_EXACT;
  return formatDecimal(scaled);
}

const FLOAT_TEXT = /^\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*$/;

function canonicalFloat(value: unknown): Canonical {
  let n: number;
  // Drivers send a number as String(n), which turns -0 into 0.
  if (typeof value === 'number') n = Object.is(value, -0) ? 0 : value;
  else if (typeof value === 'string') {
    const t = value.trim().toLowerCase();
    if (t === 'nan') return 'NaN';
    if (t === 'infinity' || t === 'inf' || t === '+infinity' || t === '+inf') return 'Infinity';
    if (t === '-infinity' || t === '-inf') return '-Infinity';
    if (!FLOAT_TEXT.test(value)) return NOT_EXACT;
    n = Number(value);
    // PostgreSQL rejects values that overflow or underflow to zero.
    if (!Number.isFinite(n) || (n === 0 && /[1-9]/.test(value.replace(/[eE].*$/, '')))) return NOT_EXACT;
  } else return NOT_EXACT;
  if (Number.isNaN(n)) return 'NaN';
  if (n === Number.POSITIVE_INFINITY) return 'Infinity';
  if (n === Number.NEGATIVE_INFINITY) return '-Infinity';
  return Object.is(n, -0) ? '-0' : String(n);
}

function canonicalBool(value: unknown): Canonical {
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value !== 'string') return NOT_EXACT;
  const t = value.trim().toLowerCase();
  if (t === 't' || t === 'true') return 't';
  if (t === 'f' || t === 'false') return 'f';
  return NOT_EXACT;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function canonicalText(type: ColumnType, value: unknown): Canonical {
  if (typeof value !== 'string' || value.includes('\u0000') || LONE_SURROGATE.test(value)) return NOT_EXACT;
  if (type.length === undefined) return value;
  const chars = [...value];
  if (chars.length <= type.length) return value;
  // PostgreSQL truncates an over-long varchar only when every cut character is a space.
  if (chars.slice(type.length).every((c) => c === ' ')) return chars.slice(0, type.length).join('');
  return NOT_EXACT;
}

function canonicalUuid(value: unknown): Canonical {
  if (typeof value !== 'string') return NOT_EXACT;
  const m = /^\{?([0-9a-f]{8})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{4})-?([0-9a-f]{12})\}?$/i.exec(value);
  if (!m || value.startsWith('{') !== value.endsWith('}')) return NOT_EXACT;
  return m.slice(1).join('-').toLowerCase();
}

function canonicalBytea(value: unknown): Canonical {
  if (value instanceof Uint8Array)
    return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (typeof value === 'string' && /^\\x(?:[0-9a-fA-F]{2})*$/.test(value)) return value.toLowerCase();
  return NOT_EXACT;
}

function canonicalTime(type: ColumnType, value: unknown, context: NormalizeContext): Canonical {
  if (!context.dateStyleIso) return NOT_EXACT;
  if (type.kind === 'timestamptz' && !context.timeZoneUtc) return NOT_EXACT;
  let text: string;
  if (typeof value === 'string') text = value;
  else if (value instanceof Date && type.kind === 'timestamptz' && Number.isFinite(value.getTime())) {
    text = value.toISOString();
  } else return NOT_EXACT;
  const lower = text.trim().toLowerCase();
  if (lower === 'infinity' || lower === '+infinity' || lower === '-infinity') {
    return lower === '-infinity' ? '-infinity' : 'infinity';
  }
  const parsed = parseDateTime(text);
  if (!parsed) return NOT_EXACT;
  if (type.kind === 'date') return formatDate(parsed);
  const digits = parsed.fraction.replace(/0+$/, '');
  if (digits.length > (type.precision ?? 6)) return NOT_EXACT;
  if (type.kind === 'timestamp') return formatTimestamp(parsed, undefined) ?? NOT_EXACT;
  if (parsed.offsetSeconds === undefined) return NOT_EXACT;
  return formatTimestamp(parsed, 0) ?? NOT_EXACT;
}

function plainObject(value: unknown): value is object {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function jsonOf(value: object): string | typeof NOT_EXACT {
  try {
    const text = JSON.stringify(value);
    return typeof text === 'string' ? text : NOT_EXACT;
  } catch {
    return NOT_EXACT;
  }
}
