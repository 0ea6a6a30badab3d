import type { Token } from './sql-lexer.js';

/** A cursor over lexer tokens with the small matchers the SQL shape parsers share. */
export class TokenCursor {
  protected i = 0;

  constructor(protected readonly toks: readonly Token[]) {}

  /** The next token, not consumed. */
  protected peek(): Token | undefined {
    return this.toks[this.i];
  }

  /** Consumes the keyword `value` (lower case) if it is next. */
  protected word(value: string): boolean {
    const t = this.peek();
    if (t?.kind === 'word' && t.value === value) {
      this.i++;
      return true;
    }
    return false;
  }

  /** Consumes the operator or punctuation `value` if it is next. */
  protected op(value: string): boolean {
    const t = this.peek();
    if (t?.kind === 'op' && t.value === value) {
      this.i++;
      return true;
    }
    return false;
  }

  /** Consumes a token of `kind` if it is next. */
  protected kind(kind: Token['kind']): boolean {
    if (this.peek()?.kind === kind) {
      this.i++;
      return true;
    }
    return false;
  }

  /** Consumes a `$n` placeholder and returns n (from 1), or returns null and consumes nothing. */
  protected param(): number | null {
    const t = this.peek();
    if (t?.kind !== 'param') return null;
    const n = Number(t.value);
    if (!Number.isSafeInteger(n) || n < 1) return null;
    this.i++;
    return n;
  }
}
