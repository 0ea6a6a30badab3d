/**
 * The text PostgreSQL outputs for a jsonb value: object keys deduplicated (last wins) and sorted
 * by length then bytes, numbers printed as numeric. Parsing that text gives the same JavaScript
 * value (keys in the same order) as parsing what the database returns.
 */
import { formatDecimal, parseNumericInput } from './decimal.js';

type Json = null | boolean | { num: string } | string | Json[] | Map<string, Json>;

const MAX_DEPTH = 1000;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const STRING = /"(?:[^"\\]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const SPACE = /[ \t\n\r]*/y;

/** True when `text` is one JSON value PostgreSQL's json type accepts. */
export function isJsonText(text: string): boolean {
  return parseJson(text, false) !== undefined;
}

/** The canonical jsonb output of JSON text; undefined when jsonb would reject it. */
export function canonicalJsonb(text: string): string | undefined {
  const value = parseJson(text, true);
  return value === undefined ? undefined : render(value);
}

function parseJson(text: string, jsonb: boolean): Json | undefined {
  let i = 0;
  const skip = () => {
    SPACE.lastIndex = i;
    SPACE.exec(text);
    i = SPACE.lastIndex;
  };
  const string = (): string | undefined => {
    STRING.lastIndex = i;
    const m = STRING.exec(text);
    if (!m) return undefined;
    i = STRING.lastIndex;
    // JSON strings may not hold raw control characters.
    for (let k = 0; k < m[0].length; k++) if (m[0].charCodeAt(k) < 0x20) return undefined;
    const s = JSON.parse(m[0]) as string;
    if (LONE_SURROGATE.test(s) || (jsonb && s.includes('\u0000'))) return undefined;
    return s;
  };
  const value = (depth: number): Json | undefined => {
    if (depth > MAX_DEPTH) return undefined;
    skip();
    const c = text[i];
    if (c === '{') {
      i++;
      const map = new Map<string, Json>();
      skip();
      if (text[i] === '}') {
        i++;
        return map;
      }
      for (;;) {
        skip();
        const key = string();
        if (key === undefined) return undefined;
        skip();
        if (text[i++] !== ':') return undefined;
        const v = value(depth + 1);
        if (v === undefined) return undefined;
        map.delete(key);
        map.set(key, v);
        skip();
        const next = text[i++];
        if (next === '}') return map;
        if (next !== ',') return undefined;
      }
    }
    if (c === '[') {
      i++;
      const list: Json[] = [];
      skip();
      if (text[i] === ']') {
        i++;
        return list;
      }
      for (;;) {
        const v = value(depth + 1);
        if (v === undefined) return undefined;
        list.push(v);
        skip();
        const next = text[i++];
        if (next === ']') return list;
        if (next !== ',') return undefined;
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [
      ['true', true],
      ['false', false],
      ['null', null],
    ] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return undefined;
    i = NUMBER.lastIndex;
    if (!jsonb) return { num: m[0] };
    const d = parseNumericInput(m[0]);
    return d ? { num: formatDecimal(d) } : undefined;
  };
  const result = value(0);
  skip();
  return result !== undefined && i === text.length ? result : undefined;
}

function render(value: Json): string {
  if (value === null) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(render).join(', ')}]`;
  if (value instanceof Map) {
    const keys = [...value.keys()].sort(compareKeys);
    return `{${keys.map((k) => `${JSON.stringify(k)}: ${render(value.get(k) as Json)}`).join(', ')}}`;
  }
  return value.num;
}

/** jsonb orders keys by byte length, then bytewise. */
function compareKeys(a: string, b: string): number {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length - y.length || Buffer.compare(x, y);
}
