/**
 * Recursive-descent parser for ringkv's CQL subset: tokens (lexer.ts) → typed AST (ast.ts).
 * This file is the entry point, the statement dispatch and the data statements (SELECT, INSERT,
 * UPDATE, DELETE); the productions they share are in terms.ts (values, USING, WHERE), the table
 * definitions in ddl.ts, and the token primitives in token-cursor.ts.
 *
 * Hand-written rather than generated: the grammar is a few dozen productions, CQL's
 * non-reserved keywords (a column may be called `timestamp`, `key`, `ttl`) are decided by
 * context at each use, every error must name its position and what was expected, and every
 * input dimension has a named bound checked before work is done. A parser toolkit would add
 * a dependency and a grammar language for less control over exactly those points.
 *
 * Bounds (CQL_LIMITS in grammar.ts): statement length, token count, call nesting, IN-list size, columns per
 * statement, identifier size. A statement past a bound is a syntax error naming the bound.
 *
 * Pure module: no I/O.
 */
import { RingkvError } from '../util/errors.js';
import type { Assignment, Delete, Insert, Order, Select, Selection, Statement, Term, Update } from './ast.js';
import { CqlSyntaxError } from './errors.js';
import { parseAlterTable, parseCreateTable, parseDropTable } from './ddl.js';
import { CQL_LIMITS } from './grammar.js';
import { tokenize } from './lexer.js';
import { rejectLwt, term, usingClause, whereClause } from './terms.js';
import { TokenCursor } from './token-cursor.js';

/** One statement and its optional `;`, up to the end of the tokens. */
function statement(c: TokenCursor): Statement {
  const t = c.peek();
  let s: Statement;
  if (c.acceptKw('select')) s = parseSelect(c);
  else if (c.acceptKw('insert')) s = parseInsert(c);
  else if (c.acceptKw('update')) s = parseUpdate(c);
  else if (c.acceptKw('delete')) s = parseDelete(c);
  else if (c.acceptKw('create')) s = parseCreateTable(c);
  else if (c.acceptKw('drop')) s = parseDropTable(c);
  else if (c.acceptKw('alter')) s = parseAlterTable(c);
  else if (c.isKw('begin') || c.isKw('apply')) {
    throw new CqlSyntaxError('BATCH statements are not supported', t.pos, 'SELECT, INSERT, UPDATE, DELETE, CREATE TABLE, DROP TABLE or ALTER TABLE');
  } else c.fail('SELECT, INSERT, UPDATE, DELETE, CREATE TABLE, DROP TABLE or ALTER TABLE');
  c.acceptSym(';');
  if (c.peek().kind !== 'eof') c.fail('end of statement');
  return s;
}

/** `SELECT * | COUNT(*) | columns FROM t [WHERE] [ORDER BY] [PER PARTITION LIMIT] [LIMIT] [ALLOW FILTERING]`. */
function parseSelect(c: TokenCursor): Select {
  let selection: Selection;
  if (c.acceptSym('*')) selection = { kind: 'all' };
  else if (c.isKw('count') && c.isSym('(', 1)) {
    c.skip(2);
    const a = c.peek();
    if (a.kind === 'integer' && a.text === '1') c.skip();
    else if (!c.acceptSym('*')) c.fail('* or 1 (COUNT(*) or COUNT(1))');
    c.expectSym(')');
    selection = { kind: 'count' };
  } else {
    // DISTINCT and JSON are not reserved: `SELECT json FROM t` selects a column called json.
    if ((c.isKw('distinct') || c.isKw('json')) && !c.isKw('from', 1) && !c.isSym(',', 1)) {
      throw new CqlSyntaxError(`SELECT ${c.peek().text.toUpperCase()} is not supported`, c.peek().pos, '*, COUNT(*) or column names');
    }
    const columns: string[] = [];
    do {
      columns.push(c.ident('column name or *'));
      c.countColumns(columns.length);
      if (c.isSym('(')) throw new CqlSyntaxError('functions in the selection are not supported (only COUNT(*))', c.peek().pos, "',' or FROM");
      if (c.isKw('as')) throw new CqlSyntaxError('column aliases (AS) are not supported', c.peek().pos, "',' or FROM");
    } while (c.acceptSym(','));
    selection = { kind: 'columns', columns };
  }
  c.expectKw('from');
  const table = c.tableName();
  const where = c.isKw('where') ? whereClause(c) : [];
  if (c.isKw('group')) throw new CqlSyntaxError('GROUP BY is not supported', c.peek().pos, 'ORDER BY, LIMIT or end of statement');
  const orderBy: Select['orderBy'] = [];
  if (c.acceptKw('order')) {
    c.expectKw('by');
    do {
      const column = c.ident('clustering column');
      let order: Order = 'asc';
      if (c.acceptKw('desc')) order = 'desc';
      else c.acceptKw('asc');
      orderBy.push({ column, order });
      c.countColumns(orderBy.length);
    } while (c.acceptSym(','));
  }
  const out: Select = { kind: 'select', table, selection, where, orderBy, allowFiltering: false };
  // Cassandra's order is PER PARTITION LIMIT then LIMIT; either order is accepted, once each.
  for (let k = 0; k < 2; k++) {
    const t = c.peek();
    if (c.isKw('per')) {
      if (out.perPartitionLimit !== undefined) throw new CqlSyntaxError('PER PARTITION LIMIT given twice', t.pos, 'LIMIT, ALLOW FILTERING or end of statement');
      c.skip();
      c.expectKw('partition');
      c.expectKw('limit');
      out.perPartitionLimit = limitTerm(c);
    } else if (c.isKw('limit')) {
      if (out.limit !== undefined) throw new CqlSyntaxError('LIMIT given twice', t.pos, 'PER PARTITION LIMIT, ALLOW FILTERING or end of statement');
      c.skip();
      out.limit = limitTerm(c);
    }
  }
  if (c.acceptKw('allow')) {
    c.expectKw('filtering');
    out.allowFiltering = true;
  }
  return out;
}

function limitTerm(c: TokenCursor): Term {
  const t = c.peek();
  if (t.kind === 'integer' || t.kind === 'bind') return term(c);
  return c.fail('a positive integer or ?');
}

/** `INSERT INTO t (columns) VALUES (terms) [USING ...]`. */
function parseInsert(c: TokenCursor): Insert {
  c.expectKw('into');
  const table = c.tableName();
  c.expectSym('(');
  const columns: string[] = [];
  do {
    columns.push(c.ident('column name'));
    c.countColumns(columns.length);
  } while (c.acceptSym(','));
  c.expectSym(')');
  if (c.isKw('json')) throw new CqlSyntaxError('INSERT JSON is not supported', c.peek().pos, '(column, ...) VALUES');
  c.expectKw('values');
  const valuesPos = c.peek().pos;
  c.expectSym('(');
  const values: Term[] = [];
  do {
    values.push(term(c));
    c.countColumns(values.length);
  } while (c.acceptSym(','));
  c.expectSym(')');
  if (values.length !== columns.length) {
    throw new CqlSyntaxError(`${columns.length} columns named but ${values.length} values given`, valuesPos, `${columns.length} values`);
  }
  rejectLwt(c);
  const out: Insert = { kind: 'insert', table, columns, values };
  if (c.acceptKw('using')) Object.assign(out, usingClause(c, true));
  rejectLwt(c);
  return out;
}

/** `UPDATE t [USING ...] SET assignments WHERE ...`. */
function parseUpdate(c: TokenCursor): Update {
  const table = c.tableName();
  const out: Update = { kind: 'update', table, assignments: [], where: [] };
  if (c.acceptKw('using')) Object.assign(out, usingClause(c, true));
  c.expectKw('set');
  do {
    out.assignments.push(assignment(c));
    c.countColumns(out.assignments.length);
  } while (c.acceptSym(','));
  out.where = whereClause(c);
  rejectLwt(c);
  return out;
}

function assignment(c: TokenCursor): Assignment {
  const column = c.ident('column name');
  if (c.isSym('[') || c.isSym('.')) throw new CqlSyntaxError('collection and UDT element updates are not supported', c.peek().pos, "'='");
  c.expectSym('=');
  const t = c.peek();
  // `c = c + 3` / `c = c - 3`: an identifier that is not a call, a boolean or null.
  if (c.atName() && !c.isSym('(', 1)) {
    const other = c.ident('column name');
    if (other !== column) throw new CqlSyntaxError(`only ${column} = ${column} + <value> or ${column} - <value> may name a column`, t.pos, column);
    const opTok = c.peek();
    if (!c.isSym('+') && !c.isSym('-')) c.fail("'+' or '-'");
    c.skip();
    return { kind: 'counter', column, op: opTok.text as '+' | '-', value: term(c) };
  }
  return { kind: 'set', column, value: term(c) };
}

/** `DELETE [columns] FROM t [USING TIMESTAMP t] WHERE ...`. */
function parseDelete(c: TokenCursor): Delete {
  const columns: string[] = [];
  if (!c.isKw('from')) {
    do {
      columns.push(c.ident('column name or FROM'));
      c.countColumns(columns.length);
      if (c.isSym('[') || c.isSym('.')) throw new CqlSyntaxError('collection and UDT element deletes are not supported', c.peek().pos, "',' or FROM");
    } while (c.acceptSym(','));
  }
  c.expectKw('from');
  const table = c.tableName();
  const out: Delete = { kind: 'delete', table, columns, where: [] };
  if (c.acceptKw('using')) {
    const u = usingClause(c, false);
    if (u.timestamp !== undefined) out.timestamp = u.timestamp;
  }
  out.where = whereClause(c);
  rejectLwt(c);
  return out;
}

/**
 * Parses one CQL statement (an optional trailing `;`). Throws CqlSyntaxError (a 400 naming the
 * position and what was expected), or a bad_request RingkvError for out-of-scope features
 * such as lightweight transactions.
 */
export function parseCql(text: string): Statement {
  if (typeof text !== 'string') throw new RingkvError('bad_request', 'a CQL statement must be a string');
  if (text.length > CQL_LIMITS.maxStatementChars) {
    throw new RingkvError('too_large', `CQL statement of ${text.length} characters is longer than the ${CQL_LIMITS.maxStatementChars} allowed`);
  }
  return statement(new TokenCursor(tokenize(text, CQL_LIMITS.maxTokens)));
}
