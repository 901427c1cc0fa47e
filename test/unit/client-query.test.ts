import { describe, expect, it } from 'vitest';
import { QueryRouter, toQueryResult, wireParam } from '../../src/client/query.js';
import { serializePartitionKey } from '../../src/wide/partition-key.js';

describe('client: routing CQL statements by partition key', () => {
  const router = new QueryRouter();
  router.learn({ table: 'events', partitionKey: [{ name: 'user_id', type: 'text' }] });
  router.learn({ table: 'pairs', partitionKey: [{ name: 'a', type: 'int' }, { name: 'b', type: 'bigint' }] });
  const key = (cols: Parameters<typeof serializePartitionKey>[0], values: Parameters<typeof serializePartitionKey>[1]): Buffer => Buffer.from(serializePartitionKey(cols, values));

  it('serializes the partition key exactly as the server does, from literals, bind markers and INSERT values', () => {
    const one = key([{ name: 'user_id', type: 'text' }], ['123']);
    expect(Buffer.from(router.partitionKeyOf("SELECT * FROM events WHERE user_id = '123' AND timestamp > '2023-01-01'", [])!)).toEqual(one);
    expect(Buffer.from(router.partitionKeyOf('SELECT * FROM events WHERE user_id = ?', ['123'])!)).toEqual(one);
    expect(Buffer.from(router.partitionKeyOf("INSERT INTO events (timestamp, user_id) VALUES (1, '123')", [])!)).toEqual(one);
    expect(Buffer.from(router.partitionKeyOf('UPDATE pairs SET v = 1 WHERE b = ? AND a = 7', [2n ** 60n])!)).toEqual(key([{ name: 'a', type: 'int' }, { name: 'b', type: 'bigint' }], [7, 2n ** 60n]));
  });

  it('leaves to any node what it cannot route: unknown tables, IN, token ranges, calls, bad values, DDL, syntax errors', () => {
    expect(router.partitionKeyOf("SELECT * FROM other WHERE k = 'x'", [])).toBeUndefined();
    expect(router.partitionKeyOf("SELECT * FROM events WHERE user_id IN ('a', 'b')", [])).toBeUndefined();
    expect(router.partitionKeyOf('SELECT * FROM events WHERE token(user_id) > 0', [])).toBeUndefined();
    expect(router.partitionKeyOf('SELECT * FROM pairs WHERE a = 1', [])).toBeUndefined();
    expect(router.partitionKeyOf('SELECT * FROM events WHERE user_id = ?', [42])).toBeUndefined();
    expect(router.partitionKeyOf('DROP TABLE events', [])).toBeUndefined();
    expect(router.partitionKeyOf('SELEC nothing', [])).toBeUndefined();
  });

  it('sends bigints beyond 2^53 as decimal text and Dates as epoch ms; shapes replies', () => {
    expect(wireParam(2n ** 60n)).toBe('1152921504606846976');
    expect(wireParam(5n)).toBe(5);
    expect(wireParam(new Date(1000))).toBe(1000);
    expect(toQueryResult({ kind: 'rows', columns: ['a'], rows: [{ a: 1 }], pagingState: 'x' })).toEqual({ columns: ['a'], rows: [{ a: 1 }], pagingState: 'x', applied: false });
    expect(toQueryResult({ kind: 'applied', applied: true })).toEqual({ columns: [], rows: [], applied: true });
  });
});
