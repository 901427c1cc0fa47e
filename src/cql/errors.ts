import { RingkvError } from '../util/errors.js';

/** A position in the statement text: 0-based offset, 1-based line and column. */
export interface SourcePos {
  offset: number;
  line: number;
  column: number;
}

/**
 * A syntax error: a `bad_request` RingkvError whose message names the position and what was
 * expected (`line 1:27: expected FROM, found 'FORM'`), with the same facts in `details` for
 * clients that point at the text.
 */
export class CqlSyntaxError extends RingkvError {
  readonly pos: SourcePos;
  readonly expected: string;
  constructor(problem: string, pos: SourcePos, expected: string) {
    super('bad_request', `line ${pos.line}:${pos.column}: ${problem} (expected ${expected})`, {
      line: pos.line,
      column: pos.column,
      offset: pos.offset,
      expected,
    });
    this.name = 'CqlSyntaxError';
    this.pos = pos;
    this.expected = expected;
  }
}
