/** A plain data mapping: an object literal, `JSON.parse` or YAML output, or a null-prototype map. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** An own property of a record, never one inherited from `Object.prototype`. */
export function own(record: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** Shortens untrusted text for messages, marking the cut. */
export function truncate(text: string, max = 64): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** Quotes a name or key for messages: JSON-escaped (so control characters show) and truncated. */
export function quote(text: string, max = 64): string {
  return JSON.stringify(truncate(text, max));
}

/** A short, safe description of an untrusted value for messages (never the whole value). */
export function describe(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return quote(value, 40);
    case 'number':
    case 'boolean':
      return String(value);
    case 'bigint':
      return truncate(`${value}n`, 40);
    case 'undefined':
      return 'undefined';
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'a list';
      return isRecord(value) ? 'a mapping' : 'an object';
  }
}

// \p{Cs} only matches lone surrogates in a `u` regex: they cannot be encoded as UTF-8.
const BAD_CHARS = /[\p{Cc}\p{Cs}]/u;

/** Why `name` is not a usable name (empty, too long, control characters), or undefined. */
export function nameProblem(name: string, maxLength: number): string | undefined {
  if (name.length === 0) return 'must not be empty';
  // Counted in code points; over 2 code units per allowed character it is too long either way.
  if (name.length > maxLength && (name.length > 2 * maxLength || [...name].length > maxLength)) {
    return `must be at most ${maxLength} characters long`;
  }
  if (BAD_CHARS.test(name)) return 'must not contain control characters or unpaired surrogates';
  return undefined;
}
