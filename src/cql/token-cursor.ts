/**
 * The CQL parser's position in a statement's tokens (lexer.ts) and the primitives every grammar
 * production uses (parser.ts: statements and DML; terms.ts: values, USING and WHERE; ddl.ts: table
 * definitions): look-ahead, keywords decided by context (CQL's non-reserved keywords are
 * identifiers elsewhere), identifiers with their bounds, the bind-marker count and the call
 * nesting depth, and the syntax error naming the position and what was expected.
 *
 * Pure: no I/O.
 */
import { CqlSyntaxError } from './errors.js';
import { CQL_LIMITS, RESERVED_KEYWORDS } from './grammar.js';
import type { Token } from './lexer.js';

/** A token as an error message names it. */
export function describeToken(t: Token): string {
  switch (t.kind) {
    case 'eof':
      return 'end of statement';
    case 'string':
      return `string '${t.text.length > 20 ? t.text.slice(0, 20) + '...' : t.text}'`;
    case 'qident':
      return `"${t.text}"`;
    default:
      return `'${t.text}'`;
  }
}

export class TokenCursor {
  private i = 0;
  private binds = 0;
  /** Function calls open at the cursor (bounded by CQL_LIMITS.maxNestingDepth: terms.ts). */
  depth = 0;

  /** `toks` ends with an `eof` token (tokenize's output). */
  constructor(private readonly toks: readonly Token[]) {}

  /** The token `k` ahead (the final `eof` past the end). */
  peek(k = 0): Token {
    return this.toks[Math.min(this.i + k, this.toks.length - 1)]!;
  }

  /** The next token, consumed (the `eof` is never consumed). */
  next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  /** Consume `n` tokens the caller has looked at. */
  skip(n = 1): void {
    this.i += n;
  }

  /** The index of the next `?` bind marker, counted in statement order. */
  nextBind(): number {
    return this.binds++;
  }

  fail(expected: string, t: Token = this.peek()): never {
    throw new CqlSyntaxError(`unexpected ${describeToken(t)}`, t.pos, expected);
  }

  /** Is the token `k` ahead the (reserved or not) keyword `kw`? Quoted identifiers never are. */
  isKw(kw: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'ident' && t.text === kw;
  }

  acceptKw(kw: string): boolean {
    if (!this.isKw(kw)) return false;
    this.i++;
    return true;
  }

  expectKw(kw: string): void {
    if (!this.acceptKw(kw)) this.fail(kw.toUpperCase());
  }

  isSym(s: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'symbol' && t.text === s;
  }

  acceptSym(s: string): boolean {
    if (!this.isSym(s)) return false;
    this.i++;
    return true;
  }

  expectSym(s: string): void {
    if (!this.acceptSym(s)) this.fail(`'${s}'`);
  }

  /** Could the next token be a column or table name (an unquoted non-reserved identifier or a quoted one)? */
  atName(): boolean {
    const t = this.peek();
    return t.kind === 'qident' || (t.kind === 'ident' && !RESERVED_KEYWORDS.has(t.text));
  }

  /** A column or table name: an unquoted non-reserved identifier or a quoted one. */
  ident(what: string): string {
    const t = this.peek();
    if (this.atName()) {
      this.i++;
      if (Buffer.byteLength(t.text, 'utf8') > CQL_LIMITS.maxIdentifierBytes) {
        throw new CqlSyntaxError(`${what} is longer than ${CQL_LIMITS.maxIdentifierBytes} bytes`, t.pos, `a shorter ${what}`);
      }
      if (t.text.includes('\0')) throw new CqlSyntaxError(`${what} contains a NUL character`, t.pos, `a ${what} without NUL`);
      return t.text;
    }
    if (t.kind === 'ident') this.fail(`${what} (${t.text.toUpperCase()} is a reserved keyword: quote it as "${t.text}")`);
    return this.fail(what);
  }

  tableName(): string {
    const name = this.ident('table name');
    if (this.isSym('.')) {
      throw new CqlSyntaxError('keyspace-qualified table names are not supported (ringkv has no keyspaces)', this.peek().pos, 'a table name without a keyspace');
    }
    return name;
  }

  /** Refuse the `n`th column of a list past CQL_LIMITS.maxColumns. */
  countColumns(n: number): void {
    if (n > CQL_LIMITS.maxColumns) throw new CqlSyntaxError(`more than ${CQL_LIMITS.maxColumns} columns`, this.peek().pos, 'fewer columns');
  }
}
