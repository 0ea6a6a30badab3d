/**
 * Recognises the single-table writes write-back can journal, exactly: INSERT ... VALUES with
 * parameters (optionally ON CONFLICT on the key DO NOTHING / DO UPDATE), UPDATE ... SET by primary
 * key, DELETE by primary key, each with an optional RETURNING of plain columns. Anything else is
 * null and runs synchronously. Parameters are referenced by index; values are never in the SQL.
 */
import { tokenize } from './sql-lexer.js';
import type { QualifiedName } from './sql-scan.js';
import { TokenCursor } from './token-cursor.js';

/** A VALUES cell. */
export type Cell = { param: number } | { keyword: 'default' | 'null' };

/** The right side of `column = ...` in SET. */
export type SetValue =
  | { param: number }
  | { keyword: 'default' | 'null' }
  /** `excluded.column` in ON CONFLICT DO UPDATE. */
  | { excluded: string }
  /** `column + $n` / `column - $n` / `$n + column`. */
  | { delta: number; negative: boolean };

/** One `column = value` of SET. */
export interface Assignment {
  column: string;
  value: SetValue;
}

/** A primary-key predicate: every key as column -> parameter index. */
export type KeyList = Record<string, number>[];

/** A recognised write. */
export type ParsedWrite =
  | {
      kind: 'insert';
      table: QualifiedName;
      columns: string[];
      rows: Cell[][];
      conflict?:
        | { target: string[] | null; action: 'nothing' }
        | { target: string[]; action: 'update'; set: Assignment[] };
      returning?: string[] | '*';
    }
  | { kind: 'update'; table: QualifiedName; set: Assignment[]; keys: KeyList; returning?: string[] | '*' }
  | { kind: 'delete'; table: QualifiedName; keys: KeyList; returning?: string[] | '*' };

/** Parses one write; null when it is not one of the exact shapes above. */
export function parseWrite(sql: string): ParsedWrite | null {
  const toks = tokenize(sql);
  if (toks.some((t) => t.unterminated || t.backslash)) return null;
  return new WriteParser(toks).parse();
}

class WriteParser extends TokenCursor {
  private table: string[] = [];
  private alias: string | undefined;

  parse(): ParsedWrite | null {
    const result = this.word('insert')
      ? this.insert()
      : this.word('update')
        ? this.update()
        : this.word('delete')
          ? this.delete()
          : null;
    if (!result) return null;
    this.op(';');
    return this.i === this.toks.length ? result : null;
  }

  private insert(): ParsedWrite | null {
    if (!this.word('into') || !this.tableName()) return null;
    if (this.word('as')) {
      const alias = this.name();
      if (alias === null) return null;
      this.alias = alias;
    }
    const columns = this.nameList();
    if (!columns || !this.word('values')) return null;
    const rows: Cell[][] = [];
    do {
      if (!this.kind('open')) return null;
      const row: Cell[] = [];
      do {
        const cell = this.cell();
        if (!cell) return null;
        row.push(cell);
      } while (this.op(','));
      if (!this.kind('close') || row.length !== columns.length) return null;
      rows.push(row);
    } while (this.op(','));
    const out: ParsedWrite = { kind: 'insert', table: this.qualified(), columns, rows };
    if (this.word('on')) {
      if (!this.word('conflict')) return null;
      let target: string[] | null = null;
      if (this.peek()?.kind === 'open') {
        target = this.nameList();
        if (!target) return null;
      }
      if (!this.word('do')) return null;
      if (this.word('nothing')) out.conflict = { target, action: 'nothing' };
      else if (this.word('update') && this.word('set') && target) {
        const set = this.assignments(true);
        if (!set) return null;
        out.conflict = { target, action: 'update', set };
      } else return null;
    }
    return this.returning(out);
  }

  private update(): ParsedWrite | null {
    if (!this.tableName()) return null;
    this.optionalAlias();
    if (!this.word('set')) return null;
    const set = this.assignments(false);
    if (!set || !this.word('where')) return null;
    const keys = this.predicate();
    if (!keys) return null;
    return this.returning({ kind: 'update', table: this.qualified(), set, keys });
  }

  private delete(): ParsedWrite | null {
    if (!this.word('from') || !this.tableName()) return null;
    this.optionalAlias();
    if (!this.word('where')) return null;
    const keys = this.predicate();
    if (!keys) return null;
    return this.returning({ kind: 'delete', table: this.qualified(), keys });
  }

  private returning<T extends ParsedWrite>(out: T): T | null {
    if (!this.word('returning')) return out;
    if (this.op('*')) {
      out.returning = '*';
      return out;
    }
    const columns: string[] = [];
    do {
      const column = this.columnRef();
      if (column === null) return null;
      columns.push(column);
    } while (this.op(','));
    out.returning = columns;
    return out;
  }

  private assignments(inConflict: boolean): Assignment[] | null {
    const out: Assignment[] = [];
    do {
      const column = this.name();
      if (column === null || !this.op('=')) return null;
      const value = this.setValue(column, inConflict);
      if (!value) return null;
      out.push({ column, value });
    } while (this.op(','));
    return out;
  }

  private setValue(column: string, inConflict: boolean): SetValue | null {
    const start = this.i;
    const param = this.param();
    if (param !== null && !this.isOperator()) return { param };
    this.i = start;
    if (this.word('default')) return { keyword: 'default' };
    if (this.word('null')) return { keyword: 'null' };
    if (inConflict && this.word('excluded')) {
      if (!this.op('.')) return null;
      const name = this.name();
      return name === null ? null : { excluded: name };
    }
    const parens = this.kind('open');
    const delta = this.delta(column);
    if (!delta || (parens && !this.kind('close'))) return null;
    return delta;
  }

  /** `col + $n`, `col - $n`, `$n + col` where col is the assigned column. */
  private delta(column: string): SetValue | null {
    const first = this.param();
    if (first !== null) {
      if (!this.op('+')) return null;
      return this.columnRef() === column ? { delta: first, negative: false } : null;
    }
    if (this.columnRef() !== column) return null;
    const sign = this.op('+') ? false : this.op('-') ? true : null;
    if (sign === null) return null;
    const p = this.param();
    return p === null ? null : { delta: p, negative: sign };
  }

  /** `col = $n [and ...]` or `col in ($n, ...)`, optionally in parentheses. */
  private predicate(): KeyList | null {
    const parens = this.kind('open');
    const equal: Record<string, number> = {};
    let list: { column: string; params: number[] } | undefined;
    do {
      const column = this.columnRef();
      if (column === null || Object.hasOwn(equal, column) || list?.column === column) return null;
      if (this.op('=')) {
        const p = this.param();
        if (p === null) return null;
        equal[column] = p;
      } else if (this.word('in') && this.kind('open') && !list) {
        const params: number[] = [];
        do {
          const p = this.param();
          if (p === null) return null;
          params.push(p);
        } while (this.op(','));
        if (!this.kind('close')) return null;
        list = { column, params };
      } else return null;
    } while (this.word('and'));
    if (parens && !this.kind('close')) return null;
    if (!list) return [equal];
    const { column, params } = list;
    return params.map((p) => ({ ...equal, [column]: p }));
  }

  private cell(): Cell | null {
    const p = this.param();
    if (p !== null) return { param: p };
    if (this.word('default')) return { keyword: 'default' };
    if (this.word('null')) return { keyword: 'null' };
    return null;
  }

  /** A column, optionally qualified by the table (name, schema.name) or its alias. */
  private columnRef(): string | null {
    const parts: string[] = [];
    do {
      const n = this.name();
      if (n === null) return null;
      parts.push(n);
    } while (this.op('.'));
    const column = parts.pop() as string;
    if (parts.length === 0) return column;
    const ok =
      (this.alias !== undefined && parts.length === 1 && parts[0] === this.alias) ||
      (this.alias === undefined &&
        ((parts.length === 1 && parts[0] === this.table[this.table.length - 1]) ||
          (parts.length === 2 && this.table.length === 2 && parts[0] === this.table[0] && parts[1] === this.table[1])));
    return ok ? column : null;
  }

  private tableName(): boolean {
    const parts: string[] = [];
    do {
      const n = this.name();
      if (n === null) return false;
      parts.push(n);
    } while (this.op('.'));
    if (parts.length > 2) return false;
    this.table = parts;
    return true;
  }

  private optionalAlias(): void {
    const hadAs = this.word('as');
    const t = this.peek();
    if (t?.kind === 'ident' || (hadAs && t?.kind === 'word')) {
      this.alias = t.value;
      this.i++;
    }
  }

  private qualified(): QualifiedName {
    const name = this.table[this.table.length - 1] as string;
    return this.table.length === 2 ? { schema: this.table[0] as string, name } : { name };
  }

  private nameList(): string[] | null {
    if (!this.kind('open')) return null;
    const out: string[] = [];
    do {
      const n = this.name();
      if (n === null) return null;
      out.push(n);
    } while (this.op(','));
    return this.kind('close') ? out : null;
  }

  private isOperator(): boolean {
    const t = this.peek();
    return t?.kind === 'op' && t.value !== ',' && t.value !== ';';
  }

  private name(): string | null {
    const t = this.peek();
    if (t?.kind === 'ident' || (t?.kind === 'word' && !KEYWORDS.has(t.value))) {
      this.i++;
      return t.value;
    }
    return null;
  }
}

/** Words that end or structure a clause and are never taken as an unquoted name. */
const KEYWORDS = new Set([
  'insert',
  'into',
  'values',
  'default',
  'null',
  'on',
  'conflict',
  'do',
  'nothing',
  'update',
  'set',
  'where',
  'and',
  'or',
  'in',
  'returning',
  'delete',
  'from',
  'as',
  'excluded',
  'select',
  'with',
  'using',
  'not',
]);
