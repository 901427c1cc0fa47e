import { describe, expect, it } from 'vitest';
import { CqlSyntaxError, CQL_LIMITS, parseCql, printCql, type Statement } from '../../src/cql/index.js';
import { RingkvError } from '../../src/util/errors.js';
import { thrown } from '../helpers/thrown.js';

function syntaxError(text: string): CqlSyntaxError {
  return thrown(() => parseCql(text), CqlSyntaxError);
}

describe('parseCql', () => {
  it("parses the seed's query verbatim (timestamp is a non-reserved keyword used as a column)", () => {
    const s = parseCql("SELECT * FROM users WHERE user_id = '123' AND timestamp > '2023-01-01'");
    expect(s).toEqual<Statement>({
      kind: 'select',
      table: 'users',
      selection: { kind: 'all' },
      where: [
        { kind: 'compare', column: 'user_id', op: '=', value: { kind: 'string', value: '123' } },
        { kind: 'compare', column: 'timestamp', op: '>', value: { kind: 'string', value: '2023-01-01' } },
      ],
      orderBy: [],
      allowFiltering: false,
    });
  });

  it('parses CREATE TABLE with a composite partition key, clustering order and options', () => {
    const s = parseCql(`CREATE TABLE IF NOT EXISTS events (
        tenant text, user_id text, timestamp timestamp, seq int, event varchar, "Payload" blob,
        PRIMARY KEY ((tenant, user_id), timestamp, seq)
      ) WITH CLUSTERING ORDER BY (timestamp DESC, seq ASC) AND default_time_to_live = 3600 AND n = 3;`);
    expect(s).toEqual({
      kind: 'createTable',
      ifNotExists: true,
      table: 'events',
      columns: [
        { name: 'tenant', type: 'text' },
        { name: 'user_id', type: 'text' },
        { name: 'timestamp', type: 'timestamp' },
        { name: 'seq', type: 'int' },
        { name: 'event', type: 'text' },
        { name: 'Payload', type: 'blob' },
      ],
      partitionKey: ['tenant', 'user_id'],
      clustering: ['timestamp', 'seq'],
      clusteringOrder: [
        { column: 'timestamp', order: 'desc' },
        { column: 'seq', order: 'asc' },
      ],
      options: [
        { name: 'default_time_to_live', value: 3600 },
        { name: 'n', value: 3 },
      ],
    });
  });

  it('parses the PRIMARY KEY (pk, ck) and inline PRIMARY KEY forms', () => {
    const a = parseCql('create table t (k text, c int, v text, primary key (k, c))');
    expect(a).toMatchObject({ partitionKey: ['k'], clustering: ['c'] });
    const b = parseCql('CREATE TABLE t (key text PRIMARY KEY, type text, ttl int)');
    expect(b).toMatchObject({ partitionKey: ['key'], clustering: [], columns: [{ name: 'key' }, { name: 'type' }, { name: 'ttl' }] });
    expect(syntaxError('CREATE TABLE t (k text PRIMARY KEY, c int, PRIMARY KEY (k, c))').message).toMatch(/multiple PRIMARY KEYs/);
  });

  it('parses INSERT with USING TTL / TIMESTAMP in either order, and bind markers in text order', () => {
    const a = parseCql("INSERT INTO t (k, c, v) VALUES (?, 5, 'x') USING TTL 60 AND TIMESTAMP ?");
    expect(a).toMatchObject({ values: [{ kind: 'bind', index: 0 }, { kind: 'integer', text: '5' }, { kind: 'string', value: 'x' }], ttl: { kind: 'integer', text: '60' }, timestamp: { kind: 'bind', index: 1 } });
    const b = parseCql('INSERT INTO t (k) VALUES (1) USING TIMESTAMP 123 AND TTL 5');
    expect(b).toMatchObject({ ttl: { text: '5' }, timestamp: { text: '123' } });
    expect(syntaxError('INSERT INTO t (k, v) VALUES (1)').message).toMatch(/2 columns named but 1 values/);
  });

  it('parses literals: negative numbers, floats, NaN/Infinity, blobs, uuids, booleans, null, now(), toTimestamp(now())', () => {
    const s = parseCql(
      "INSERT INTO t (a, b, c, d, e, f, g, h, i, j) VALUES (-5, -1.5e3, NaN, -Infinity, 0xCAFE, 123e4567-E89B-12d3-a456-426614174000, true, null, now(), toTimestamp(now()))",
    );
    expect((s as { values: unknown[] }).values).toEqual([
      { kind: 'integer', text: '-5' },
      { kind: 'float', text: '-1.5e3' },
      { kind: 'float', text: 'NaN' },
      { kind: 'float', text: '-Infinity' },
      { kind: 'blob', hex: 'cafe' },
      { kind: 'uuid', value: '123e4567-e89b-12d3-a456-426614174000' },
      { kind: 'boolean', value: true },
      { kind: 'null' },
      { kind: 'call', name: 'now', args: [] },
      { kind: 'call', name: 'totimestamp', args: [{ kind: 'call', name: 'now', args: [] }] },
    ]);
  });

  it("parses strings with '' escapes, $$ strings, quoted identifiers and comments", () => {
    const s = parseCql(`-- a comment
      SELECT "Weird ""Col""", v /* block
      comment */ FROM t WHERE k = 'it''s' AND v = $$raw 'text'$$ // trailing`);
    expect(s).toMatchObject({
      selection: { kind: 'columns', columns: ['Weird "Col"', 'v'] },
      where: [{ value: { value: "it's" } }, { value: { value: "raw 'text'" } }],
    });
  });

  it('parses UPDATE with SET, counter increments and decrements', () => {
    const s = parseCql('UPDATE t USING TTL 10 SET a = 1, c = c + 3, d = d - ?, e = e -1 WHERE k = 1 AND ck IN (1, 2)');
    expect(s).toMatchObject({
      kind: 'update',
      ttl: { text: '10' },
      assignments: [
        { kind: 'set', column: 'a' },
        { kind: 'counter', column: 'c', op: '+', value: { text: '3' } },
        { kind: 'counter', column: 'd', op: '-', value: { kind: 'bind', index: 0 } },
        { kind: 'counter', column: 'e', op: '-', value: { text: '1' } },
      ],
      where: [{ kind: 'compare' }, { kind: 'in', column: 'ck', values: [{ text: '1' }, { text: '2' }] }],
    });
    expect(syntaxError('UPDATE t SET a = b + 1 WHERE k = 1').message).toMatch(/only a = a \+ <value>/);
  });

  it('parses DELETE of columns, rows and ranges with USING TIMESTAMP', () => {
    expect(parseCql('DELETE a, b FROM t USING TIMESTAMP 5 WHERE k = 1')).toMatchObject({ kind: 'delete', columns: ['a', 'b'], timestamp: { text: '5' } });
    expect(parseCql('DELETE FROM t WHERE k = 1 AND c >= 3 AND c < 9')).toMatchObject({ columns: [], where: [{}, { op: '>=' }, { op: '<' }] });
  });

  it('parses SELECT with COUNT, token ranges, IN ?, ORDER BY, both LIMITs and ALLOW FILTERING', () => {
    expect(parseCql('SELECT COUNT(*) FROM t WHERE k = 1')).toMatchObject({ selection: { kind: 'count' } });
    expect(parseCql('SELECT count(1) FROM t')).toMatchObject({ selection: { kind: 'count' } });
    expect(parseCql('SELECT count FROM t')).toMatchObject({ selection: { kind: 'columns', columns: ['count'] } });
    expect(parseCql('SELECT * FROM t WHERE token(a, b) > ? AND token(a, b) <= token(1, 2)')).toMatchObject({
      where: [
        { kind: 'token', columns: ['a', 'b'], op: '>', value: { kind: 'bind', index: 0 } },
        { kind: 'token', op: '<=', value: { kind: 'call', name: 'token' } },
      ],
    });
    expect(parseCql('SELECT * FROM t WHERE k IN ? AND c = ?')).toMatchObject({ where: [{ kind: 'in', values: { kind: 'bind', index: 0 } }, { value: { index: 1 } }] });
    const s = parseCql('SELECT a FROM t WHERE k = 1 ORDER BY c DESC, d LIMIT 10 PER PARTITION LIMIT 2 ALLOW FILTERING');
    expect(s).toMatchObject({ orderBy: [{ column: 'c', order: 'desc' }, { column: 'd', order: 'asc' }], limit: { text: '10' }, perPartitionLimit: { text: '2' }, allowFiltering: true });
    expect(printCql(s)).toBe('SELECT a FROM t WHERE k = 1 ORDER BY c DESC, d ASC PER PARTITION LIMIT 2 LIMIT 10 ALLOW FILTERING');
  });

  it('parses DROP TABLE [IF EXISTS] and ALTER TABLE ADD (one or several columns)', () => {
    expect(parseCql('DROP TABLE IF EXISTS t')).toEqual({ kind: 'dropTable', ifExists: true, table: 't' });
    expect(parseCql('ALTER TABLE t ADD x int')).toEqual({ kind: 'alterTable', table: 't', add: [{ name: 'x', type: 'int' }] });
    expect(parseCql('ALTER TABLE t ADD (x int, y timeuuid)')).toMatchObject({ add: [{ name: 'x' }, { name: 'y', type: 'timeuuid' }] });
  });
});

describe('parseCql errors', () => {
  it('name the line:column and what was expected', () => {
    const e = syntaxError('SELECT * FORM users');
    expect(e.message).toBe("line 1:10: unexpected 'form' (expected FROM)");
    expect(e.details).toMatchObject({ line: 1, column: 10, offset: 9, expected: 'FROM' });
    const m = syntaxError('SELECT *\nFROM users\nWHERE k = = 3');
    expect(m.message).toMatch(/^line 3:11: unexpected '='/);
    expect(m.status).toBe(400);
  });

  it('say a reserved keyword must be quoted to be a column name', () => {
    expect(syntaxError('SELECT from FROM t').message).toMatch(/FROM is a reserved keyword: quote it as "from"/);
    expect(parseCql('SELECT "from" FROM t')).toMatchObject({ selection: { columns: ['from'] } });
  });

  it('refuse lightweight transactions with a clear out-of-scope error', () => {
    for (const q of ['INSERT INTO t (k) VALUES (1) IF NOT EXISTS', 'UPDATE t SET v = 1 WHERE k = 1 IF v = 2', 'DELETE FROM t WHERE k = 1 IF EXISTS']) {
      const err = thrown(() => parseCql(q), RingkvError);
      expect(err.status).toBe(400);
      expect(err.message).toMatch(/lightweight transactions .* out of scope/);
    }
  });

  it('report unterminated strings, bad characters, unknown functions and types', () => {
    expect(syntaxError("SELECT * FROM t WHERE k = 'abc").message).toMatch(/^line 1:27: unterminated string literal/);
    expect(syntaxError('SELECT * FROM t WHERE k = @').message).toMatch(/unexpected character "@"/);
    expect(syntaxError('SELECT * FROM t WHERE k = foo(1)').message).toMatch(/unknown function foo/);
    expect(syntaxError('CREATE TABLE t (k decimal PRIMARY KEY)').message).toMatch(/unsupported column type decimal/);
    expect(syntaxError('SELECT * FROM ks.t').message).toMatch(/keyspace/);
    expect(syntaxError('SELECT * FROM t WHERE k = 1 LIMIT -1').message).toMatch(/expected a positive integer or \?/);
  });

  it('enforce the bounds: IN-list size, nesting, identifier size, statement length', () => {
    const many = Array.from({ length: CQL_LIMITS.maxInListItems + 1 }, (_, i) => i).join(', ');
    expect(syntaxError(`SELECT * FROM t WHERE k IN (${many})`).message).toMatch(/IN list has more than 1000 values/);
    const nested = 'toTimestamp('.repeat(CQL_LIMITS.maxNestingDepth + 1) + 'now()' + ')'.repeat(CQL_LIMITS.maxNestingDepth + 1);
    expect(syntaxError(`INSERT INTO t (k) VALUES (${nested})`).message).toMatch(/nested deeper than 8/);
    expect(syntaxError(`SELECT ${'x'.repeat(65)} FROM t`).message).toMatch(/longer than 64 bytes/);
    const err = thrown(() => parseCql(`SELECT * FROM t WHERE k = '${'x'.repeat(CQL_LIMITS.maxStatementChars)}'`), RingkvError);
    expect(err.code).toBe('too_large');
  });
});
