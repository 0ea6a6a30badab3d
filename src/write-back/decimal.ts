/**
 * Exact decimal arithmetic on PostgreSQL's canonical `numeric` text (`-12.50`, `0`, `3.000`),
 * with BigInt. The Lua journal script mirrors `addDecimal`; both must agree digit for digit.
 */

/** A parsed decimal: `digits * 10^-scale`, sign included in `digits`. */
export interface Decimal {
  readonly digits: bigint;
  readonly scale: number;
}

const CANONICAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;
const INPUT = /^([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?$/;
/** Exponents beyond this are refused rather than expanded into huge strings. */
const MAX_EXPONENT = 1000;

/** Parses canonical text as PostgreSQL outputs it; undefined for anything else (NaN included). */
export function parseCanonical(text: string): Decimal | undefined {
  if (!CANONICAL.test(text)) return undefined;
  const dot = text.indexOf('.');
  if (dot < 0) return { digits: BigInt(text), scale: 0 };
  return { digits: BigInt(text.slice(0, dot) + text.slice(dot + 1)), scale: text.length - dot - 1 };
}

/**
 * Parses numeric input the way PostgreSQL's numeric_in does for finite values: optional sign,
 * digits with an optional point, optional exponent; the scale is the fraction digits minus the
 * exponent (never below 0). Surrounding whitespace is allowed. Undefined when not such a number.
 */
export function parseNumericInput(text: string): Decimal | undefined {
  const match = INPUT.exec(text.trim());
  if (!match) return undefined;
  const [, sign, whole = '', fraction = '', exponentText] = match;
  if (whole === '' && fraction === '') return undefined;
  const exponent = exponentText === undefined ? 0 : Number(exponentText);
  if (!Number.isSafeInteger(exponent) || Math.abs(exponent) > MAX_EXPONENT) return undefined;
  let digits = BigInt(`${whole || '0'}${fraction}`);
  let scale = fraction.length - exponent;
  if (scale < 0) {
    digits *= 10n ** BigInt(-scale);
    scale = 0;
  }
  return { digits: sign === '-' ? -digits : digits, scale };
}

/** PostgreSQL's output of a decimal: fixed point, `scale` fraction digits, never `-0`. */
export function formatDecimal(value: Decimal): string {
  const negative = value.digits < 0n;
  let text = (negative ? -value.digits : value.digits).toString();
  if (value.scale > 0) {
    text = text.padStart(value.scale + 1, '0');
    text = `${text.slice(0, text.length - value.scale)}.${text.slice(text.length - value.scale)}`;
  }
  return negative && value.digits !== 0n ? `-${text}` : text;
}

/** Brings a decimal to `scale` digits, rounding half away from zero as PostgreSQL does. */
export function rescale(value: Decimal, scale: number): Decimal {
  if (scale === value.scale) return value;
  if (scale > value.scale) return { digits: value.digits * 10n ** BigInt(scale - value.scale), scale };
  const factor = 10n ** BigInt(value.scale - scale);
  const negative = value.digits < 0n;
  const magnitude = negative ? -value.digits : value.digits;
  let quotient = magnitude / factor;
  if ((magnitude % factor) * 2n >= factor) quotient += 1n;
  return { digits: negative ? -quotient : quotient, scale };
}

/** Adds two canonical decimals; the result's scale is the larger of the two (PostgreSQL's rule). */
export function addDecimal(a: string, b: string): string | undefined {
  const x = parseCanonical(a);
  const y = parseCanonical(b);
  if (!x || !y) return undefined;
  const scale = Math.max(x.scale, y.scale);
  return formatDecimal({ digits: rescale(x, scale).digits + rescale(y, scale).digits, scale });
}

/** Compares two canonical decimals: -1, 0 or 1. */
export function compareDecimal(a: string, b: string): number {
  const x = parseCanonical(a);
  const y = parseCanonical(b);
  if (!x || !y) throw new RangeError('compareDecimal needs canonical decimals');
  const scale = Math.max(x.scale, y.scale);
  const d = rescale(x, scale).digits - rescale(y, scale).digits;
  return d < 0n ? -1 : d > 0n ? 1 : 0;
}

/** Number of digits before the point (0 for values below 1), for numeric(p, s) overflow checks. */
export function integerDigits(value: Decimal): number {
  const magnitude = value.digits < 0n ? -value.digits : value.digits;
  const whole = magnitude / 10n ** BigInt(value.scale);
  return whole === 0n ? 0 : whole.toString().length;
}
