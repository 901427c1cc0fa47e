/**
 * CQL lexer: statement text → tokens with positions (offset, line, column).
 *
 * Follows Cassandra's lexer (Lexer.g) for the subset ringkv speaks: unquoted identifiers are
 * case-insensitive (lowercased), "quoted" identifiers keep their case ("" escapes a quote),
 * 'strings' ('' escapes a quote) and $$pg-style strings$$, integers and floats (with NaN and
 * Infinity), 0x blobs, unquoted uuids, `?` bind markers, -- // and block comments.
 *
 * Unlike Cassandra's lexer a minus sign is always its own token: `c = c -1` is a counter
 * decrement here, and the parser folds `- 5` into a negative literal where a term is expected.
 *
 * Pure module: no I/O.
 */
import { CqlSyntaxError, type SourcePos } from './errors.js';

export type TokenKind =
  | 'ident' // unquoted identifier or keyword; `text` is lowercased
  | 'qident' // "quoted identifier"; `text` is the unescaped name, case kept
  | 'string'
  | 'integer'
  | 'float'
  | 'blob' // `text` is the hex digits after 0x, lowercased
  | 'uuid' // `text` is the lowercased uuid
  | 'symbol'
  | 'bind'
  | 'eof';

export interface Token {
  kind: TokenKind;
  text: string;
  pos: SourcePos;
}

const UUID_RE = /[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/y;
const IDENT_RE = /[A-Za-z][A-Za-z0-9_]*/y;
const NUMBER_RE = /[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?/y;
const BLOB_RE = /0[xX][0-9a-fA-F]*/y;
const TWO_CHAR_SYMBOLS = new Set(['<=', '>=', '!=']);
const ONE_CHAR_SYMBOLS = new Set(['(', ')', ',', ';', '=', '<', '>', '*', '.', '+', '-', ':', '[', ']', '{', '}']);

function isIdentChar(c: string | undefined): boolean {
  return c !== undefined && /[A-Za-z0-9_]/.test(c);
}

/** Tokenizes the whole statement; throws CqlSyntaxError on a character no token starts with. */
export function tokenize(src: string, maxTokens: number): Token[] {
  const out: Token[] = [];
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const posAt = (offset: number): SourcePos => ({ offset, line, column: offset - lineStart + 1 });
  const advanceLines = (from: number, to: number): void => {
    for (let k = from; k < to; k++) {
      if (src.charCodeAt(k) === 10) {
        line++;
        lineStart = k + 1;
      }
    }
  };
  const push = (kind: TokenKind, text: string, start: SourcePos): void => {
    if (out.length >= maxTokens) throw new CqlSyntaxError(`statement has more than ${maxTokens} tokens`, start, 'a shorter statement');
    out.push({ kind, text, pos: start });
  };
  /** Reads a quoted token at i (the quote doubled inside is one quote); returns the index after it. */
  const readQuoted = (quote: string, start: SourcePos, what: string, emit: (text: string) => void): number => {
    let text = '';
    let k = i + 1;
    for (;;) {
      const q = src.indexOf(quote, k);
      if (q < 0) throw new CqlSyntaxError(`unterminated ${what}`, start, `a closing ${quote}`);
      text += src.slice(k, q);
      if (src[q + 1] !== quote) {
        k = q + 1;
        break;
      }
      text += quote;
      k = q + 2;
    }
    emit(text);
    advanceLines(i, k);
    return k;
  };
  while (i < src.length) {
    const c = src[i]!;
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      if (c === '\n') {
        line++;
        lineStart = i + 1;
      }
      i++;
      continue;
    }
    if ((c === '-' && src[i + 1] === '-') || (c === '/' && src[i + 1] === '/')) {
      while (i < src.length && src[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) throw new CqlSyntaxError('unterminated block comment', posAt(i), '*/');
      advanceLines(i, end + 2);
      i = end + 2;
      continue;
    }
    const start = posAt(i);
    if (c === "'") {
      i = readQuoted("'", start, 'string literal', (text) => push('string', text, start));
      continue;
    }
    if (c === '$' && src[i + 1] === '$') {
      const end = src.indexOf('$$', i + 2);
      if (end < 0) throw new CqlSyntaxError('unterminated $$ string literal', start, 'a closing $$');
      const s = src.slice(i + 2, end);
      advanceLines(i, end + 2);
      i = end + 2;
      push('string', s, start);
      continue;
    }
    if (c === '"') {
      i = readQuoted('"', start, 'quoted identifier', (text) => {
        if (text.length === 0) throw new CqlSyntaxError('empty quoted identifier', start, 'a name');
        push('qident', text, start);
      });
      continue;
    }
    if (c === '?') {
      i++;
      push('bind', '?', start);
      continue;
    }
    // A uuid may start with a digit or a letter, so it is tried before numbers and identifiers.
    UUID_RE.lastIndex = i;
    if (UUID_RE.test(src) && !isIdentChar(src[UUID_RE.lastIndex])) {
      push('uuid', src.slice(i, UUID_RE.lastIndex).toLowerCase(), start);
      i = UUID_RE.lastIndex;
      continue;
    }
    BLOB_RE.lastIndex = i;
    if (c === '0' && BLOB_RE.test(src)) {
      const end = BLOB_RE.lastIndex;
      if (isIdentChar(src[end])) throw new CqlSyntaxError(`invalid blob literal ${src.slice(i, end + 1)}`, start, 'hex digits after 0x');
      push('blob', src.slice(i + 2, end).toLowerCase(), start);
      i = end;
      continue;
    }
    NUMBER_RE.lastIndex = i;
    if (c >= '0' && c <= '9' && NUMBER_RE.test(src)) {
      const end = NUMBER_RE.lastIndex;
      if (isIdentChar(src[end])) throw new CqlSyntaxError(`invalid number ${src.slice(i, end + 1)}`, start, 'a number');
      const text = src.slice(i, end);
      push(/[.eE]/.test(text) ? 'float' : 'integer', text, start);
      i = end;
      continue;
    }
    IDENT_RE.lastIndex = i;
    if (IDENT_RE.test(src)) {
      const text = src.slice(i, IDENT_RE.lastIndex);
      i = IDENT_RE.lastIndex;
      const lower = text.toLowerCase();
      if (lower === 'nan' || lower === 'infinity') push('float', lower === 'nan' ? 'NaN' : 'Infinity', start);
      else push('ident', lower, start);
      continue;
    }
    const two = src.slice(i, i + 2);
    if (TWO_CHAR_SYMBOLS.has(two)) {
      push('symbol', two, start);
      i += 2;
      continue;
    }
    if (ONE_CHAR_SYMBOLS.has(c)) {
      push('symbol', c, start);
      i++;
      continue;
    }
    throw new CqlSyntaxError(`unexpected character ${JSON.stringify(c)}`, start, 'a CQL token');
  }
  out.push({ kind: 'eof', text: '', pos: posAt(i) });
  return out;
}
