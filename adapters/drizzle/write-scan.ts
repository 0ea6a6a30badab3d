/**
 * Reads the shape of the INSERT, UPDATE and DELETE statements Drizzle builders emit, enough to
 * learn which primary keys a write names before it runs and whether it may change a key.
 * Anything unusual yields null, and the caller then treats the write's rows as unknown.
 */
import { type Token, tokenize } from './sql-lexer.js';

/** What {@link parseWriteShape} found. */
export interface WriteShape {
  /** The statement verb. */
  verb: 'insert' | 'update' | 'delete';
  /** The target as written, alias included (`"t"`, `"s"."t" "a"`), for a synthesized point read. */
  target: string;
  /**
   * Columns an UPDATE's SET or an upsert's DO UPDATE SET assigns; null when they could not be
   * read (then the write may change a primary key).
   */
  assigned: string[] | null;
  /** UPDATE ... FROM or DELETE ... USING: other relations are visible to RETURNING. */
  joins: boolean;
  /** The WHERE condition of an UPDATE or DELETE, as written (RETURNING excluded). */
  where?: string;
  /** An INSERT ... VALUES: the column list and, per row, the `$n` of each column (null for others). */
  values?: { columns: string[]; rows: (number | null)[][] };
}

/** Parses one Drizzle-style INSERT, UPDATE or DELETE; null for anything else (WITH, multi-statement, ...). */
export function parseWriteShape(sql: string): WriteShape | null {
  const toks = tokenize(sql);
  if (toks.some((t) => t.unterminated || (t.kind === 'op' && t.value === ';'))) return null;
  return new WriteParser(sql, toks).parse();
}

class WriteParser {
  private i = 0;
  private readonly partner: Int32Array;

  constructor(
    private readonly sql: string,
    private readonly toks: Token[],
  ) {
    this.partner = new Int32Array(toks.length).fill(-1);
    const stack: number[] = [];
    for (let k = 0; k < toks.length; k++) {
      const t = toks[k] as Token;
      if (t.kind === 'open') stack.push(k);
      else if (t.kind === 'close') {
        const open = stack.pop();
        if (open !== undefined) this.partner[open] = k;
      }
    }
  }

  parse(): WriteShape | null {
    if (this.word('insert')) return this.insert();
    if (this.word('update')) return this.update();
    if (this.word('delete')) return this.delete();
    return null;
  }

  private insert(): WriteShape | null {
    if (!this.word('into')) return null;
    const target = this.target();
    if (!target) return null;
    let columns: string[] | undefined;
    if (this.peek()?.kind === 'open') {
      const close = this.partner[this.i] as number;
      if (close < 0) return null;
      columns = [];
      for (let k = this.i + 1; k < close; k++) {
        const t = this.toks[k] as Token;
        if (t.kind === 'ident' || t.kind === 'word') columns.push(t.value);
        else if (!(t.kind === 'op' && t.value === ',')) return null;
      }
      this.i = close + 1;
    }
    if (this.word('overriding')) {
      if (!this.word('system') && !this.word('user')) return null;
      if (!this.word('value')) return null;
    }
    let values: WriteShape['values'];
    if (this.word('values')) {
      const rows: (number | null)[][] = [];
      do {
        const row = this.tuple();
        if (!row) return null;
        rows.push(row);
      } while (this.op(','));
      if (columns && rows.every((r) => r.length === columns.length)) values = { columns, rows };
    } else if (!this.skipUntil(['on', 'returning'])) return null;
    let assigned: string[] | null = [];
    if (this.word('on')) {
      if (!this.word('conflict')) return null;
      if (!this.skipUntil(['do'])) return null;
      this.word('do');
      if (this.word('update')) {
        if (!this.word('set')) return null;
        assigned = this.assignments(['where', 'returning']);
      } else if (!this.word('nothing')) return null;
    }
    const shape: WriteShape = { verb: 'insert', target, assigned, joins: false };
    if (values) shape.values = values;
    return shape;
  }

  private update(): WriteShape | null {
    this.word('only');
    const target = this.target();
    if (!target || !this.word('set')) return null;
    const assigned = this.assignments(['from', 'where', 'returning']);
    const joins = this.peekWord('from');
    return this.tail({ verb: 'update', target, assigned, joins }, joins);
  }

  private delete(): WriteShape | null {
    if (!this.word('from')) return null;
    this.word('only');
    const target = this.target();
    if (!target) return null;
    const joins = this.peekWord('using');
    return this.tail({ verb: 'delete', target, assigned: [], joins }, joins);
  }

  /** Reads `[from|using ...] [where ...] [returning ...]` after the target of an UPDATE or DELETE. */
  private tail(shape: WriteShape, joins: boolean): WriteShape | null {
    if (joins && !this.skipUntil(['where', 'returning'])) return null;
    if (this.word('where')) {
      const start = this.peek()?.start;
      if (start === undefined || !this.skipUntil(['returning'])) return null;
      const end = this.peek()?.start ?? this.sql.length;
      shape.where = this.sql.slice(start, end).trim();
    }
    return shape;
  }

  /** `"t"`, `"s"."t"`, optionally `[as] "alias"`: the source text. */
  private target(): string | null {
    const start = this.peek()?.start;
    if (start === undefined || this.peek()?.kind !== 'ident') return null;
    this.i++;
    if (this.op('.')) {
      if (this.peek()?.kind !== 'ident') return null;
      this.i++;
    }
    const hadAs = this.word('as');
    if (this.peek()?.kind === 'ident') this.i++;
    else if (hadAs) return null;
    const end = (this.toks[this.i - 1] as Token).end;
    return this.sql.slice(start, end);
  }

  /** One VALUES tuple: the `$n` of each element, null for any other expression. */
  private tuple(): (number | null)[] | null {
    if (this.peek()?.kind !== 'open') return null;
    const close = this.partner[this.i] as number;
    if (close < 0) return null;
    const out: (number | null)[] = [];
    let first = this.i + 1;
    for (let k = first; k <= close; k++) {
      const t = this.toks[k] as Token;
      if (t.kind === 'open') {
        k = this.partner[k] as number;
        if (k < 0) return null;
        continue;
      }
      if (k === close || (t.kind === 'op' && t.value === ',')) {
        const only = this.toks[first];
        out.push(k - first === 1 && only?.kind === 'param' ? Number(only.value) : null);
        first = k + 1;
      }
    }
    this.i = close + 1;
    return out;
  }

  /** SET targets up to a stop word at depth 0; null when the list has an unexpected shape. */
  private assignments(stops: readonly string[]): string[] | null {
    const out: string[] = [];
    for (;;) {
      const t = this.peek();
      if (t?.kind === 'ident' || t?.kind === 'word') {
        out.push(t.value);
        this.i++;
      } else if (t?.kind === 'open') {
        const close = this.partner[this.i] as number;
        if (close < 0) return null;
        for (let k = this.i + 1; k < close; k++) {
          const c = this.toks[k] as Token;
          if (c.kind === 'ident' || c.kind === 'word') out.push(c.value);
          else if (!(c.kind === 'op' && c.value === ',')) return null;
        }
        this.i = close + 1;
      } else return null;
      // Skip the value expression (and any subscript or field of the target) up to `,` or a stop.
      while (this.i < this.toks.length) {
        const c = this.toks[this.i] as Token;
        if (c.kind === 'open') {
          const close = this.partner[this.i] as number;
          if (close < 0) return null;
          this.i = close + 1;
          continue;
        }
        if (c.kind === 'op' && c.value === ',') break;
        if (c.kind === 'word' && stops.includes(c.value)) return out;
        this.i++;
      }
      if (this.i >= this.toks.length) return out;
      this.i++;
    }
  }

  /** Advances to the next depth-0 word in `stops` (or the end); false on a stray `)`. */
  private skipUntil(stops: readonly string[]): boolean {
    while (this.i < this.toks.length) {
      const t = this.toks[this.i] as Token;
      if (t.kind === 'open') {
        const close = this.partner[this.i] as number;
        if (close < 0) return false;
        this.i = close + 1;
        continue;
      }
      if (t.kind === 'close') return false;
      if (t.kind === 'word' && stops.includes(t.value)) return true;
      this.i++;
    }
    return true;
  }

  private peek(): Token | undefined {
    return this.toks[this.i];
  }

  private peekWord(value: string): boolean {
    const t = this.peek();
    return t?.kind === 'word' && t.value === value;
  }

  private word(value: string): boolean {
    if (!this.peekWord(value)) return false;
    this.i++;
    return true;
  }

  private op(value: string): boolean {
    const t = this.peek();
    if (t?.kind !== 'op' || t.value !== value) return false;
    this.i++;
    return true;
  }
}
