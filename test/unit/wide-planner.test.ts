import { describe, expect, it } from 'vitest';
import {
  cellSuffix,
  coerceParam,
  cqlTokenToRing,
  decodeCell,
  encodeClustering,
  markerSuffix,
  PARTITION_DELETION_SUFFIX,
  parseRangeTombstoneSuffix,
  parseTimestampText,
  rowDeletionSuffix,
  serializePartitionKey,
  valueToJson,
  type SelectPlan,
  type WritePlan,
} from '../../src/wide/index.js';
import { RingkvError } from '../../src/util/errors.js';
import { thrown } from '../helpers/thrown.js';
import { ctxAt, plan, schemaOf } from '../helpers/wide-store.js';

const users = schemaOf('CREATE TABLE users (user_id text, timestamp timestamp, event text, n int, PRIMARY KEY (user_id, timestamp))');
const wide = schemaOf('CREATE TABLE w (k int, c1 int, c2 text, v double, PRIMARY KEY (k, c1, c2)) WITH CLUSTERING ORDER BY (c1 DESC)');
const counters = schemaOf('CREATE TABLE cnt (k int PRIMARY KEY, hits counter)');
const T0 = Date.UTC(2024, 0, 1);

function err(schema: typeof users, cql: string, params: unknown[] = []): RingkvError {
  return thrown(() => plan(schema, cql, ctxAt(T0, 1, params)), RingkvError);
}

describe('write plans', () => {
  it('INSERT: a row marker and one cell per column, all at the statement timestamp, null as a cell tombstone', () => {
    const p = plan(users, "INSERT INTO users (user_id, timestamp, event, n) VALUES ('u', 5, 'login', null) USING TTL 30 AND TIMESTAMP 77", ctxAt(T0, 1)) as WritePlan;
    expect(p.partitions).toHaveLength(1);
    const part = p.partitions[0]!;
    expect(Buffer.from(part.partitionKey).toString()).toBe('u');
    const ck = encodeClustering(users.clustering, [5]);
    const bySuffix = new Map(part.entries.map((e) => [Buffer.from(e.suffix).toString('hex'), decodeCell(e.record)]));
    expect(bySuffix.get(markerSuffix(ck).toString('hex'))).toMatchObject({ kind: 'expiring', ts: 77, ttl: 30, ldt: T0 / 1000 + 30 });
    expect(bySuffix.get(cellSuffix(ck, 'event').toString('hex'))).toMatchObject({ kind: 'expiring', ts: 77, value: Buffer.from('login') });
    expect(bySuffix.get(cellSuffix(ck, 'n').toString('hex'))).toMatchObject({ kind: 'tombstone', ts: 77, ldt: T0 / 1000 });
    expect(part.entries.map((e) => Buffer.from(e.suffix).toString('hex'))).toEqual([...bySuffix.keys()].sort());
  });

  it('UPDATE with IN writes each named row without a marker; counters become counter updates', () => {
    const p = plan(wide, 'UPDATE w SET v = ? WHERE k IN (1, 2) AND c1 = 3 AND c2 IN (?, ?)', ctxAt(T0, 9, [1.5, 'a', 'b'])) as WritePlan;
    expect(p.partitions).toHaveLength(2);
    for (const part of p.partitions) {
      expect(part.entries.map((e) => Buffer.from(e.suffix).toString('hex')).sort()).toEqual(
        [cellSuffix(encodeClustering(wide.clustering, [3, 'a']), 'v'), cellSuffix(encodeClustering(wide.clustering, [3, 'b']), 'v')].map((b) => b.toString('hex')).sort(),
      );
    }
    const c = plan(counters, 'UPDATE cnt SET hits = hits + 2 WHERE k = 1', ctxAt(T0, 1)) as WritePlan;
    expect(c.partitions).toEqual([]);
    expect(c.counterUpdates).toMatchObject([{ column: 'hits', delta: 2n }]);
  });

  it('DELETE: partition deletion, row deletion, range tombstone, cell tombstones', () => {
    const del = (cql: string, params: unknown[] = []): WritePlan => plan(wide, cql, ctxAt(T0, 5, params)) as WritePlan;
    expect(del('DELETE FROM w WHERE k = 1').partitions[0]!.entries.map((e) => e.suffix)).toEqual([PARTITION_DELETION_SUFFIX]);
    expect(del("DELETE FROM w WHERE k = 1 AND c1 = 2 AND c2 = 'x'").partitions[0]!.entries.map((e) => Buffer.from(e.suffix))).toEqual([
      rowDeletionSuffix(encodeClustering(wide.clustering, [2, 'x'])),
    ]);
    const rt = del('DELETE FROM w WHERE k = 1 AND c1 > 2').partitions[0]!.entries;
    expect(rt).toHaveLength(1);
    // c1 is DESC: "c1 > 2" is the bytes before the encoding of 2.
    expect(parseRangeTombstoneSuffix(rt[0]!.suffix)).toEqual({ start: Buffer.alloc(0), end: encodeClustering(wide.clustering, [2]) });
    expect(decodeCell(rt[0]!.record)).toMatchObject({ kind: 'tombstone', ts: 5 });
    const cells = del("DELETE v FROM w USING TIMESTAMP 3 WHERE k = 1 AND c1 = 2 AND c2 = 'x'").partitions[0]!.entries;
    expect(cells.map((e) => Buffer.from(e.suffix))).toEqual([cellSuffix(encodeClustering(wide.clustering, [2, 'x']), 'v')]);
    expect(decodeCell(cells[0]!.record).ts).toBe(3);
  });

  it("refuses what Cassandra refuses, naming the column and type", () => {
    const cases: Array<[typeof users, string, unknown[], RegExp]> = [
      [users, "INSERT INTO users (user_id, timestamp, n) VALUES ('1', '2023-01-01', 'x')", [], /Invalid STRING constant \(x\) for "n" of type int/],
      [users, "INSERT INTO users (user_id, timestamp, n) VALUES ('1', 'yesterday', 1)", [], /Invalid STRING constant \(yesterday\) for "timestamp" of type timestamp/],
      [users, 'INSERT INTO users (user_id, timestamp, n) VALUES (?, ?, ?)', ['1', 0, 'x'], /bind marker 3 \("n" of type int\): expected a 32-bit integer, got "x"/],
      [users, 'INSERT INTO users (user_id, timestamp) VALUES (?, ?)', ['1'], /There were 2 markers\(\?\) in CQL but 1 bound variables/],
      [users, "INSERT INTO users (user_id, n) VALUES ('1', 1)", [], /Some clustering keys are missing: timestamp/],
      [users, "INSERT INTO users (user_id, timestamp, nope) VALUES ('1', 1, 1)", [], /Undefined column name nope in table users/],
      [users, "UPDATE users SET n = 1 WHERE timestamp = 1", [], /Some partition key parts are missing: user_id/],
      [users, "UPDATE users SET user_id = 'x' WHERE user_id = 'u' AND timestamp = 1", [], /PRIMARY KEY part user_id found in SET part/],
      [users, "UPDATE users SET n = 1 WHERE user_id = 'u' AND timestamp > 1", [], /only = and IN are allowed here/],
      [users, "UPDATE users SET n = 1 WHERE user_id = 'u' AND timestamp = 1 AND event = 'x'", [], /Non PRIMARY KEY columns found in where clause: event/],
      [users, "DELETE n FROM users WHERE user_id = 'u' AND timestamp > 1", [], /Range deletions are not supported for specific columns/],
      [users, "DELETE user_id FROM users WHERE user_id = 'u'", [], /Invalid identifier user_id for deletion/],
      [counters, 'INSERT INTO cnt (k, hits) VALUES (1, 1)', [], /INSERT statements are not allowed on counter tables/],
      [counters, 'UPDATE cnt SET hits = 5 WHERE k = 1', [], /Cannot set the value of counter column hits/],
      [users, "UPDATE users SET n = n + 1 WHERE user_id = 'u' AND timestamp = 1", [], /for non counter column n/],
      [wide, "INSERT INTO w (k, c1, c2) VALUES (1, 1, ?)", [null], /Invalid null value in condition for column c2/],
      [schemaOf('CREATE TABLE f (k int, c double, PRIMARY KEY (k, c))'), 'INSERT INTO f (k, c) VALUES (1, NaN)', [], /NaN is not allowed as a key value \("c" of type double\)/],
      [users, "INSERT INTO users (user_id, timestamp) VALUES ('u', 1) USING TTL 700000000", [], /TTL must be between 0 and 630720000/],
    ];
    for (const [schema, cql, params, re] of cases) {
      const e = err(schema, cql, params);
      expect(e.status, cql).toBe(400);
      expect(e.message, cql).toMatch(re);
    }
    const big = err(users, 'INSERT INTO users (user_id, timestamp, event) VALUES (?, 1, ?)', ['u', 'x'.repeat(1024 * 1024 + 1)]);
    expect(big.code).toBe('too_large');
    expect(big.message).toMatch(/column event/);
  });
});

describe('select plans', () => {
  it('partition reads: keys, clustering ranges as row-region suffix ranges, order and limits', () => {
    const p = plan(users, "SELECT * FROM users WHERE user_id = '123' AND timestamp > '2023-01-01' ORDER BY timestamp DESC LIMIT 10", ctxAt(T0, 0)) as SelectPlan;
    expect(p.partitions!.map((x) => Buffer.from(x.partitionKey).toString())).toEqual(['123']);
    expect(p.reverse).toBe(true);
    expect(p.limit).toBe(10);
    expect(p.ranges).toHaveLength(1);
    const after = Buffer.concat([Buffer.of(0x10), encodeClustering(users.clustering, [Date.UTC(2023, 0, 1) + 1])]);
    expect(Buffer.compare(p.ranges[0]!.start, after)).toBeLessThanOrEqual(0);
    expect(Buffer.compare(p.ranges[0]!.start, Buffer.concat([Buffer.of(0x10), encodeClustering(users.clustering, [Date.UTC(2023, 0, 1)])]))).toBeGreaterThan(0);
    expect(p.ranges[0]!.end).toEqual(Buffer.of(0x11));
    // c1 is declared DESC and c2 ASC: ORDER BY c1 ASC, c2 DESC reads the partition backwards.
    expect((plan(wide, 'SELECT * FROM w WHERE k = 1 ORDER BY c1 ASC, c2 DESC', ctxAt(T0, 0)) as SelectPlan).reverse).toBe(true);
    const inPlan = plan(users, "SELECT * FROM users WHERE user_id IN ('a', 'b', 'a')", ctxAt(T0, 0)) as SelectPlan;
    expect(inPlan.partitions!.map((x) => Buffer.from(x.partitionKey).toString())).toEqual(['a', 'b']);
  });

  it('token ranges and full scans: CQL tokens are signed, the ring unsigned', () => {
    const p = plan(users, 'SELECT * FROM users WHERE token(user_id) > -9223372036854775808 AND token(user_id) <= ?', ctxAt(T0, 0, ['42'])) as SelectPlan;
    expect(p.partitions).toBeNull();
    expect(p.tokenRange).toEqual({ start: { token: 0n, inclusive: false }, end: { token: cqlTokenToRing(42n), inclusive: true } });
    const q = plan(users, "SELECT * FROM users WHERE token(user_id) >= token('123')", ctxAt(T0, 0)) as SelectPlan;
    const expected = ctxAt(0, 0).tokenOf!(serializePartitionKey(users.partitionKey, ['123']));
    expect(q.tokenRange).toEqual({ start: { token: expected, inclusive: true } });
    expect((plan(users, 'SELECT * FROM users', ctxAt(T0, 0)) as SelectPlan).tokenRange).toEqual({});
  });

  it("refuses restrictions Cassandra refuses, with the ALLOW FILTERING reason for scans", () => {
    const cases: Array<[string, RegExp]> = [
      ["SELECT * FROM users WHERE timestamp > '2023-01-01'", /ALLOW FILTERING/],
      ["SELECT * FROM users WHERE user_id = '1' AND event = 'x'", /use ALLOW FILTERING \(column event is not part of the primary key\)/],
      ["SELECT * FROM users WHERE user_id > '1'", /Only EQ and IN relation are supported on the partition key/],
      ["SELECT * FROM users WHERE token(user_id) > 0 AND user_id = '1'", /cannot be restricted by both a normal relation and a token relation/],
      ['SELECT * FROM users WHERE token(timestamp) > 0', /token function arguments must be the partition key columns/],
      ["SELECT * FROM users WHERE user_id = '1' AND timestamp > 1 AND timestamp > 2", /More than one restriction was found for the start bound on timestamp/],
      ["SELECT * FROM users WHERE user_id = '1' AND timestamp = 1 AND timestamp > 2", /cannot be restricted by more than one relation if it includes an Equal/],
      ["SELECT * FROM w WHERE k = 1 AND c2 = 'a'", /PRIMARY KEY column "c2" cannot be restricted as preceding column "c1" is not restricted/],
      ["SELECT * FROM w WHERE k = 1 AND c1 > 1 AND c2 = 'a'", /Clustering column "c2" cannot be restricted \(preceding column "c1" is restricted by a non-EQ relation\)/],
      ['SELECT * FROM w WHERE k = 1 ORDER BY v', /only supported on the clustered columns of the PRIMARY KEY, got v/],
      ['SELECT * FROM w WHERE k = 1 ORDER BY c2', /following their declared order in the PRIMARY KEY/],
      ['SELECT * FROM w WHERE k = 1 ORDER BY c1 DESC, c2 DESC', /Unsupported order by relation/],
      ['SELECT * FROM w ORDER BY c1', /ORDER BY is only supported when the partition key is restricted by an EQ or an IN/],
      ['SELECT * FROM w WHERE k IN (1, 2) ORDER BY c1', /both ORDER BY and a IN restriction on the partition key/],
      ['SELECT * FROM w WHERE k = 1 LIMIT 0', /LIMIT must be strictly positive/],
      ['SELECT nope FROM w WHERE k = 1', /Undefined column name nope/],
    ];
    for (const [cql, re] of cases) {
      const schema = cql.includes('FROM users') ? users : wide;
      expect(err(schema, cql).message, cql).toMatch(re);
    }
    // With ALLOW FILTERING the same queries plan, filtering row by row.
    const f = plan(wide, "SELECT * FROM w WHERE k = 1 AND c2 = 'a' ALLOW FILTERING", ctxAt(T0, 0)) as SelectPlan;
    expect(f.filters.map((x) => [x.column, x.kind])).toEqual([['c2', 'clustering']]);
    expect(f.filters[0]!.test('a')).toBe(true);
    expect(f.filters[0]!.test('b')).toBe(false);
  });

  it('refuses statements on a dropped table', () => {
    const dropped = { ...users, dropped: true };
    expect(err(dropped, "SELECT * FROM users WHERE user_id = '1'").message).toBe('unconfigured table users');
  });
});

describe('value coercion', () => {
  it("reads Cassandra's timestamp text forms (UTC when no zone) and epoch milliseconds", () => {
    expect(parseTimestampText('2023-01-01')).toBe(Date.UTC(2023, 0, 1));
    expect(parseTimestampText('2023-01-01 12:34')).toBe(Date.UTC(2023, 0, 1, 12, 34));
    expect(parseTimestampText('2023-01-01T12:34:56.789Z')).toBe(Date.UTC(2023, 0, 1, 12, 34, 56, 789));
    expect(parseTimestampText('2023-01-01 12:34:56+0200')).toBe(Date.UTC(2023, 0, 1, 10, 34, 56));
    expect(parseTimestampText('2023-01-01 12:34:56-05:30')).toBe(Date.UTC(2023, 0, 1, 18, 4, 56));
    expect(parseTimestampText('0099-06-01')).toBe(new Date('0099-06-01T00:00:00Z').getTime());
    expect(parseTimestampText('1672531200000')).toBe(1672531200000);
    for (const bad of ['2023-02-30', '2023-13-01', '2023-01-01 25:00', 'yesterday', '']) expect(parseTimestampText(bad), bad).toBeNull();
  });

  it('coerces JSON parameters per type and renders JSON', () => {
    expect(coerceParam('9007199254740993', 0, 'b', 'bigint')).toBe(9007199254740993n);
    expect(valueToJson('bigint', 9007199254740993n)).toBe('9007199254740993');
    expect(valueToJson('bigint', 42n)).toBe(42);
    expect(coerceParam('0xcafe', 0, 'b', 'blob')).toEqual(Buffer.from('cafe', 'hex'));
    expect(coerceParam({ $base64: 'yv4=' }, 0, 'b', 'blob')).toEqual(Buffer.from('cafe', 'hex'));
    expect(valueToJson('blob', Buffer.from('cafe', 'hex'))).toBe('0xcafe');
    expect(coerceParam('-Infinity', 0, 'd', 'double')).toBe(-Infinity);
    expect(valueToJson('double', NaN)).toBe('NaN');
    expect(valueToJson('timestamp', 0)).toBe('1970-01-01T00:00:00.000Z');
    expect(coerceParam('A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', 0, 'u', 'uuid')).toBe('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
    expect(() => coerceParam('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 0, 'u', 'timeuuid')).toThrow(/expected a version 1 uuid string/);
    expect(() => coerceParam(1.5, 1, 'n', 'int')).toThrow(/bind marker 2 \("n" of type int\)/);
    expect(coerceParam(null, 0, 'n', 'int')).toBeNull();
  });
});
