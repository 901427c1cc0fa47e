/**
 * CQL terms and the clauses statements share, built of them (parser.ts and ddl.ts use these):
 * values (literals, `?` bind markers counted in order, function calls within the nesting bound),
 * `USING TTL / TIMESTAMP`, and WHERE relations (`=`, ranges, IN lists, `token(...)`), with the
 * unsupported forms (`!=`, CONTAINS, LIKE, multi-column relations, named binds, `IF ...`) refused
 * by name.
 *
 * Pure: no I/O.
 */
import { CALL_NAMES, type CallName, type Relation, type RelationOp, type Term } from './ast.js';
import { CqlSyntaxError } from './errors.js';
import { CQL_LIMITS, lwtUnsupported } from './grammar.js';
import type { TokenCursor } from './token-cursor.js';

const RELATION_OPS: ReadonlySet<string> = new Set(['=', '<', '<=', '>', '>=']);

/** A value: a literal, a negative number, a `?` bind marker, true/false/null, or a function call. */
export function term(c: TokenCursor): Term {
  const t = c.peek();
  switch (t.kind) {
    case 'string':
      c.skip();
      return { kind: 'string', value: t.text };
    case 'integer':
      c.skip();
      return { kind: 'integer', text: t.text };
    case 'float':
      c.skip();
      return { kind: 'float', text: t.text };
    case 'blob':
      c.skip();
      return { kind: 'blob', hex: t.text };
    case 'uuid':
      c.skip();
      return { kind: 'uuid', value: t.text };
    case 'bind':
      c.skip();
      return { kind: 'bind', index: c.nextBind() };
    case 'symbol':
      if (t.text === '-') {
        const n = c.peek(1);
        if (n.kind === 'integer' || n.kind === 'float') {
          c.skip(2);
          return n.kind === 'integer' ? { kind: 'integer', text: `-${n.text}` } : { kind: 'float', text: `-${n.text}` };
        }
      }
      if (t.text === ':') throw new CqlSyntaxError('named bind markers (:name) are not supported', t.pos, 'a value or ?');
      return c.fail('a value');
    case 'ident': {
      if (t.text === 'true' || t.text === 'false') {
        c.skip();
        return { kind: 'boolean', value: t.text === 'true' };
      }
      if (t.text === 'null') {
        c.skip();
        return { kind: 'null' };
      }
      if (c.isSym('(', 1)) return call(c);
      return c.fail('a value');
    }
    default:
      return c.fail('a value');
  }
}

function call(c: TokenCursor): Term {
  const t = c.next();
  const name = t.text;
  if (!(CALL_NAMES as readonly string[]).includes(name)) {
    throw new CqlSyntaxError(`unknown function ${name}`, t.pos, `one of ${CALL_NAMES.join(', ')}`);
  }
  if (++c.depth > CQL_LIMITS.maxNestingDepth) {
    throw new CqlSyntaxError(`function calls nested deeper than ${CQL_LIMITS.maxNestingDepth}`, t.pos, 'less nesting');
  }
  c.expectSym('(');
  const args: Term[] = [];
  if (!c.isSym(')')) {
    do {
      if (args.length >= CQL_LIMITS.maxColumns) throw new CqlSyntaxError(`more than ${CQL_LIMITS.maxColumns} arguments`, c.peek().pos, 'fewer arguments');
      args.push(term(c));
    } while (c.acceptSym(','));
  }
  c.expectSym(')');
  c.depth--;
  return { kind: 'call', name: name as CallName, args };
}

/** `USING TTL t AND TIMESTAMP t` in either order, each at most once (after the USING). */
export function usingClause(c: TokenCursor, allowTtl: boolean): { ttl?: Term; timestamp?: Term } {
  const out: { ttl?: Term; timestamp?: Term } = {};
  do {
    const t = c.peek();
    if (allowTtl && c.acceptKw('ttl')) {
      if (out.ttl !== undefined) throw new CqlSyntaxError('TTL given twice', t.pos, 'TIMESTAMP');
      out.ttl = term(c);
    } else if (c.acceptKw('timestamp')) {
      if (out.timestamp !== undefined) throw new CqlSyntaxError('TIMESTAMP given twice', t.pos, allowTtl ? 'TTL' : 'WHERE');
      out.timestamp = term(c);
    } else c.fail(allowTtl ? 'TTL or TIMESTAMP' : 'TIMESTAMP');
  } while (c.acceptKw('and'));
  return out;
}

/** A write's `IF ...` (a lightweight transaction) is refused with its own error. */
export function rejectLwt(c: TokenCursor): void {
  if (c.isKw('if')) throw lwtUnsupported();
}

function relationOp(c: TokenCursor): RelationOp {
  const t = c.peek();
  if (t.kind === 'symbol' && RELATION_OPS.has(t.text)) {
    c.skip();
    return t.text as RelationOp;
  }
  if (t.kind === 'symbol' && t.text === '!=') throw new CqlSyntaxError('!= is not supported in WHERE', t.pos, '=, <, <=, >, >= or IN');
  if (t.kind === 'ident' && (t.text === 'contains' || t.text === 'like' || t.text === 'is')) {
    throw new CqlSyntaxError(`${t.text.toUpperCase()} is not supported in WHERE`, t.pos, '=, <, <=, >, >= or IN');
  }
  return c.fail('=, <, <=, >, >= or IN');
}

function relation(c: TokenCursor): Relation {
  const t = c.peek();
  if (c.acceptKw('token')) {
    c.expectSym('(');
    const columns: string[] = [];
    do columns.push(c.ident('partition key column'));
    while (c.acceptSym(','));
    c.expectSym(')');
    const op = relationOp(c);
    return { kind: 'token', columns, op, value: term(c) };
  }
  if (c.isSym('(')) throw new CqlSyntaxError('multi-column relations ((c1, c2) > (...)) are not supported', t.pos, 'a column name');
  const column = c.ident('column name');
  if (c.acceptKw('in')) {
    if (c.peek().kind === 'bind') {
      c.skip();
      return { kind: 'in', column, values: { kind: 'bind', index: c.nextBind() } };
    }
    c.expectSym('(');
    const values: Term[] = [];
    if (!c.isSym(')')) {
      do {
        if (values.length >= CQL_LIMITS.maxInListItems) {
          throw new CqlSyntaxError(`IN list has more than ${CQL_LIMITS.maxInListItems} values`, c.peek().pos, 'a shorter IN list');
        }
        values.push(term(c));
      } while (c.acceptSym(','));
    }
    c.expectSym(')');
    return { kind: 'in', column, values };
  }
  const op = relationOp(c);
  return { kind: 'compare', column, op, value: term(c) };
}

/** `WHERE relation AND relation ...`. */
export function whereClause(c: TokenCursor): Relation[] {
  c.expectKw('where');
  const out: Relation[] = [];
  do {
    if (out.length >= CQL_LIMITS.maxColumns) throw new CqlSyntaxError(`more than ${CQL_LIMITS.maxColumns} relations`, c.peek().pos, 'fewer relations');
    out.push(relation(c));
  } while (c.acceptKw('and'));
  return out;
}
