import type { TableInfo } from '../catalog.js';
import { stableParams } from '../hash.js';

/** Turns one key value into the text PostgreSQL compares it as, or undefined when unsure. */
type Canonical = (value: unknown) => string | undefined;

const INTEGER_TYPES =
  /^(smallint|integer|int|int2|int4|int8|bigint|smallserial|serial|serial2|serial4|serial8|bigserial)$/;
const TEXT_TYPES = /^(text|varchar|character varying)(\s*\(\s*\d+\s*\))?$/;
const INTEGER_TEXT = /^\s*[+-]?\d+\s*$/;
const UUID_HEX = /^[0-9a-f]{32}$/;

const integer: Canonical = (value) => {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? String(value) : undefined;
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string' && INTEGER_TEXT.test(value)) return BigInt(value.trim()).toString();
  return undefined;
};

const text: Canonical = (value) => {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  return undefined;
};

const uuid: Canonical = (value) => {
  if (typeof value !== 'string') return undefined;
  const hex = value
    .replace(/^\{|\}$/g, '')
    .replace(/-/g, '')
    .toLowerCase();
  if (!UUID_HEX.test(hex)) return undefined;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
};

function canonicalFor(type: string): Canonical | undefined {
  const t = type.trim().toLowerCase();
  if (INTEGER_TYPES.test(t)) return integer;
  if (TEXT_TYPES.test(t)) return text;
  if (t === 'uuid') return uuid;
  return undefined;
}

/**
 * Encodes primary keys for row-entry keys. A parameter (`1`, `'1'`, `1n`) and the driver's raw
 * value of the same key (an int8 arrives as a string) encode alike, through the column's type.
 * Only integer, text/varchar and uuid keys are supported: for other types (numeric, timestamps,
 * char(n), citext, ...) two spellings of one key could not be told equal, so no codec exists.
 */
export class RowKeyCodec {
  private constructor(
    /** Primary-key column names, in key order. */
    readonly columns: readonly string[],
    private readonly canonical: readonly Canonical[],
  ) {}

  /** The codec of a table, or undefined when it has no primary key or an unsupported key type. */
  static of(table: TableInfo): RowKeyCodec | undefined {
    if (table.kind !== 'table' || table.primaryKey.length === 0) return undefined;
    const canonical: Canonical[] = [];
    for (const name of table.primaryKey) {
      const column = table.columns.find((c) => c.name === name);
      const fn = column ? canonicalFor(column.type) : undefined;
      if (!fn) return undefined;
      canonical.push(fn);
    }
    return new RowKeyCodec(table.primaryKey, canonical);
  }

  /** Encodes key values given in primary-key column order; undefined when one cannot be encoded. */
  encode(values: readonly unknown[]): string | undefined {
    if (values.length !== this.canonical.length) return undefined;
    const parts: string[] = [];
    for (let i = 0; i < values.length; i++) {
      const part = (this.canonical[i] as Canonical)(values[i]);
      if (part === undefined) return undefined;
      parts.push(part);
    }
    return stableParams(parts);
  }

  /** Encodes the key of a row (column name -> raw driver value). */
  encodeRow(row: Readonly<Record<string, unknown>>): string | undefined {
    return this.encode(this.columns.map((c) => row[c]));
  }
}
