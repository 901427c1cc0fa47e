/**
 * Split CQL text into statements at `;` (as cqlsh does), without being fooled by a `;` inside a
 * 'string' ('' escapes a quote), a "quoted identifier", a $$string$$, or a -- // or block comment.
 * The shell feeds it the lines typed so far: complete statements run, the rest waits for more.
 *
 * Pure module: no I/O.
 */

export interface SplitResult {
  /** Complete statements, without their `;`, trimmed; empty statements (`;;`) are dropped. */
  statements: string[];
  /** Text after the last `;`: an incomplete statement (or only whitespace and comments). */
  rest: string;
}

export function splitStatements(text: string): SplitResult {
  const statements: string[] = [];
  let start = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === "'" || c === '"') {
      // A quoted string or identifier: a doubled quote is an escaped one.
      i++;
      while (i < n) {
        if (text[i] === c) {
          if (text[i + 1] === c) i += 2;
          else break;
        } else i++;
      }
      i++;
    } else if (c === '$' && next === '$') {
      const end = text.indexOf('$$', i + 2);
      i = end < 0 ? n : end + 2;
    } else if ((c === '-' && next === '-') || (c === '/' && next === '/')) {
      const end = text.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? n : end + 2;
    } else if (c === ';') {
      const s = text.slice(start, i).trim();
      if (s !== '' && !onlyComments(s)) statements.push(s);
      start = i + 1;
      i++;
    } else i++;
  }
  return { statements, rest: text.slice(start) };
}

/** Is the text (outside strings) nothing but comments and whitespace? */
export function onlyComments(s: string): boolean {
  return s.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(--|\/\/)[^\n]*/g, '').trim() === '';
}

/** Is the statement a SELECT (its first word, after whitespace and comments)? A SELECT changes nothing. */
export function isSelectStatement(text: string): boolean {
  const t = text.replace(/^(\s|--[^\n]*(\n|$)|\/\/[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*/, '');
  return /^select\b/i.test(t);
}
