import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CQL_TYPES, parseCql, printCql, type Relation, type Statement, type Term } from '../../src/cql/index.js';

// Identifiers: plain names, non-reserved keywords (timestamp, key, ttl, count...), reserved words and
// names that must be quoted (upper case, spaces, quotes, non-ASCII).
const identArb = fc.oneof(
  fc.stringMatching(/^[a-z][a-z0-9_]{0,12}$/),
  fc.constantFrom('timestamp', 'key', 'type', 'ttl', 'count', 'values', 'clustering', 'filtering', 'per', 'partition', 'exists', 'json', 'distinct', 'as'),
  fc.constantFrom('from', 'select', 'token', 'limit', 'order', 'true', 'null', 'nan', 'where', 'and'),
  fc.string({ minLength: 1, maxLength: 12 }).filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= 64),
);

const tableArb = fc.stringMatching(/^[a-z][a-z0-9_]{0,10}$/);

const digits = fc.stringMatching(/^[0-9]{1,19}$/);
const literalArb: fc.Arbitrary<Term> = fc.oneof(
  fc.string({ maxLength: 20 }).map((value): Term => ({ kind: 'string', value })),
  fc.tuple(fc.boolean(), digits).map(([neg, d]): Term => ({ kind: 'integer', text: `${neg ? '-' : ''}${d}` })),
  fc
    .tuple(fc.boolean(), digits, fc.stringMatching(/^\.[0-9]{0,4}$|^$/), fc.stringMatching(/^[eE][+-]?[0-9]{1,3}$|^$/))
    .filter(([, , frac, exp]) => frac !== '' || exp !== '')
    .map(([neg, d, frac, exp]): Term => ({ kind: 'float', text: `${neg ? '-' : ''}${d}${frac}${exp}` })),
  fc.constantFrom<Term>({ kind: 'float', text: 'NaN' }, { kind: 'float', text: 'Infinity' }, { kind: 'float', text: '-Infinity' }),
  fc.boolean().map((value): Term => ({ kind: 'boolean', value })),
  fc.constant<Term>({ kind: 'null' }),
  fc.stringMatching(/^[0-9a-f]{0,16}$/).map((hex): Term => ({ kind: 'blob', hex })),
  fc.uuid().map((value): Term => ({ kind: 'uuid', value })),
  fc.constant<Term>({ kind: 'bind', index: -1 }),
  fc.constant<Term>({ kind: 'call', name: 'now', args: [] }),
  fc.constant<Term>({ kind: 'call', name: 'totimestamp', args: [{ kind: 'call', name: 'now', args: [] }] }),
);
const termArb: fc.Arbitrary<Term> = fc.oneof(
  { weight: 8, arbitrary: literalArb },
  { weight: 1, arbitrary: fc.array(literalArb, { maxLength: 3 }).map((args): Term => ({ kind: 'call', name: 'token', args })) },
);

const opArb = fc.constantFrom('=', '<', '<=', '>', '>=' as const);
const relationArb: fc.Arbitrary<Relation> = fc.oneof(
  fc.record({ kind: fc.constant('compare' as const), column: identArb, op: opArb, value: termArb }),
  fc.record({
    kind: fc.constant('in' as const),
    column: identArb,
    values: fc.oneof(fc.array(termArb, { maxLength: 4 }), fc.constant({ kind: 'bind' as const, index: -1 })),
  }),
  fc.record({ kind: fc.constant('token' as const), columns: fc.array(identArb, { minLength: 1, maxLength: 3 }), op: opArb, value: termArb }),
);
const whereArb = fc.array(relationArb, { minLength: 1, maxLength: 4 });
const typeArb = fc.constantFrom(...CQL_TYPES);
const orderArb = fc.constantFrom('asc' as const, 'desc' as const);
const limitArb = fc.oneof(digits.map((d): Term => ({ kind: 'integer', text: d })), fc.constant<Term>({ kind: 'bind', index: -1 }));

function opt<T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.option(a, { nil: undefined });
}

function withOptional<T extends object>(base: T, extra: Record<string, unknown>): T {
  const out = { ...base } as Record<string, unknown>;
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return out as T;
}

const statementArb: fc.Arbitrary<Statement> = fc.oneof(
  fc
    .record({
      ifNotExists: fc.boolean(),
      table: tableArb,
      columns: fc.array(fc.record({ name: identArb, type: typeArb }), { minLength: 1, maxLength: 5 }),
      partitionKey: fc.array(identArb, { minLength: 1, maxLength: 3 }),
      clustering: fc.array(identArb, { maxLength: 3 }),
      clusteringOrder: fc.array(fc.record({ column: identArb, order: orderArb }), { maxLength: 3 }),
      options: fc.array(fc.record({ name: fc.constantFrom('default_time_to_live', 'n', 'gc_grace_seconds', 'comment_x'), value: fc.nat(1_000_000) }), { maxLength: 3 }),
    })
    .map((r): Statement => ({ kind: 'createTable', ...r })),
  fc.record({ ifExists: fc.boolean(), table: tableArb }).map((r): Statement => ({ kind: 'dropTable', ...r })),
  fc.record({ table: tableArb, add: fc.array(fc.record({ name: identArb, type: typeArb }), { minLength: 1, maxLength: 3 }) }).map((r): Statement => ({ kind: 'alterTable', ...r })),
  fc
    .tuple(tableArb, fc.array(fc.tuple(identArb, termArb), { minLength: 1, maxLength: 5 }), opt(termArb), opt(termArb))
    .map(([table, cv, ttl, timestamp]): Statement =>
      withOptional({ kind: 'insert', table, columns: cv.map((x) => x[0]), values: cv.map((x) => x[1]) }, { ttl, timestamp }),
    ),
  fc
    .tuple(
      tableArb,
      opt(termArb),
      opt(termArb),
      fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant('set' as const), column: identArb, value: termArb }),
          fc.record({ kind: fc.constant('counter' as const), column: identArb, op: fc.constantFrom('+' as const, '-' as const), value: termArb }),
        ),
        { minLength: 1, maxLength: 4 },
      ),
      whereArb,
    )
    .map(([table, ttl, timestamp, assignments, where]): Statement => withOptional({ kind: 'update', table, assignments, where }, { ttl, timestamp })),
  fc
    .tuple(tableArb, fc.array(identArb, { maxLength: 3 }), opt(termArb), whereArb)
    .map(([table, columns, timestamp, where]): Statement => withOptional({ kind: 'delete', table, columns, where }, { timestamp })),
  fc
    .tuple(
      tableArb,
      fc.oneof(fc.constant({ kind: 'all' as const }), fc.constant({ kind: 'count' as const }), fc.array(identArb, { minLength: 1, maxLength: 4 }).map((columns) => ({ kind: 'columns' as const, columns }))),
      fc.oneof(fc.constant([] as Relation[]), whereArb),
      fc.array(fc.record({ column: identArb, order: orderArb }), { maxLength: 3 }),
      opt(limitArb),
      opt(limitArb),
      fc.boolean(),
    )
    .map(([table, selection, where, orderBy, perPartitionLimit, limit, allowFiltering]): Statement =>
      withOptional({ kind: 'select', table, selection, where, orderBy, allowFiltering }, { perPartitionLimit, limit }),
    ),
);

/** Numbers the bind markers in the order the printer writes them (the parser numbers them in text order). */
function renumber(s: Statement): Statement {
  let next = 0;
  const term = (t: Term): Term => {
    if (t.kind === 'bind') return { kind: 'bind', index: next++ };
    if (t.kind === 'call') return { ...t, args: t.args.map(term) };
    return t;
  };
  const opt = (t: Term | undefined): Term | undefined => (t === undefined ? undefined : term(t));
  const where = (rs: Relation[]): Relation[] =>
    rs.map((r) => {
      if (r.kind === 'in') return { ...r, values: Array.isArray(r.values) ? r.values.map(term) : { kind: 'bind', index: next++ } };
      return { ...r, value: term(r.value) };
    });
  switch (s.kind) {
    case 'insert': {
      const values = s.values.map(term);
      return withOptional({ kind: 'insert', table: s.table, columns: s.columns, values }, { ttl: opt(s.ttl), timestamp: opt(s.timestamp) });
    }
    case 'update': {
      const ttl = opt(s.ttl);
      const timestamp = opt(s.timestamp);
      const assignments = s.assignments.map((a) => ({ ...a, value: term(a.value) }));
      return withOptional({ kind: 'update', table: s.table, assignments, where: where(s.where) }, { ttl, timestamp });
    }
    case 'delete': {
      const timestamp = opt(s.timestamp);
      return withOptional({ kind: 'delete', table: s.table, columns: s.columns, where: where(s.where) }, { timestamp });
    }
    case 'select': {
      const w = where(s.where);
      const perPartitionLimit = opt(s.perPartitionLimit);
      const limit = opt(s.limit);
      return withOptional({ kind: 'select', table: s.table, selection: s.selection, where: w, orderBy: s.orderBy, allowFiltering: s.allowFiltering }, { perPartitionLimit, limit });
    }
    default:
      return s;
  }
}

describe('print → parse round trip', () => {
  it('parseCql(printCql(ast)) equals ast for generated statements', () => {
    fc.assert(
      fc.property(statementArb, (raw) => {
        const ast = renumber(raw);
        const text = printCql(ast);
        expect(parseCql(text)).toEqual(ast);
        // Printing is canonical: a second round trip gives the same text.
        expect(printCql(parseCql(text))).toBe(text);
      }),
      { numRuns: 1500 },
    );
  });
});
