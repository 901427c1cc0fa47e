import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodePagingState,
  deletionMapOf,
  mergeSlicePages,
  readRows,
  type Row,
  type SelectPlan,
  type StoredEntry,
  type WritePlan,
} from '../../src/wide/index.js';
import { ctxAt, MemoryReplica, plan, readPartitionPaged, schemaOf, select } from '../helpers/wide-store.js';

const EVENTS = 'CREATE TABLE users (user_id text, timestamp timestamp, event text, n int, PRIMARY KEY (user_id, timestamp))';
const T0 = Date.UTC(2024, 0, 1);

function write(r: MemoryReplica, schema: ReturnType<typeof schemaOf>, cql: string, nowMs: number, ts: number, params: unknown[] = []): WritePlan {
  const p = plan(schema, cql, ctxAt(nowMs, ts, params)) as WritePlan;
  r.apply(p);
  return p;
}

function query(r: MemoryReplica, schema: ReturnType<typeof schemaOf>, cql: string, nowMs: number, params: unknown[] = [], pageRows = 5000) {
  const p = plan(schema, cql, ctxAt(nowMs, 0, params)) as SelectPlan;
  return select(r, p, Math.floor(nowMs / 1000), pageRows);
}

describe('partition reads', () => {
  const schema = schemaOf(EVENTS);

  it("answers the seed's query with the seed's shape", () => {
    const r = new MemoryReplica();
    write(r, schema, "INSERT INTO users (user_id, timestamp, event) VALUES ('123', '2022-12-31', 'old')", T0, 1);
    write(r, schema, "INSERT INTO users (user_id, timestamp, event) VALUES ('123', '2023-01-02T10:00:00Z', 'login')", T0, 2);
    write(r, schema, "INSERT INTO users (user_id, timestamp, event, n) VALUES ('123', '2023-03-01 08:30', 'logout', 7)", T0, 3);
    write(r, schema, "INSERT INTO users (user_id, timestamp, event) VALUES ('456', '2023-05-01', 'other user')", T0, 4);
    const res = query(r, schema, "SELECT * FROM users WHERE user_id = '123' AND timestamp > '2023-01-01'", T0);
    expect(res).toEqual({
      rows: [
        { user_id: '123', timestamp: '2023-01-02T10:00:00.000Z', event: 'login', n: null },
        { user_id: '123', timestamp: '2023-03-01T08:30:00.000Z', event: 'logout', n: 7 },
      ],
      pagingState: null,
    });
    expect(query(r, schema, "SELECT COUNT(*) FROM users WHERE user_id = '123'", T0).rows).toEqual([{ count: 3 }]);
    expect(query(r, schema, "SELECT event FROM users WHERE user_id IN ('456', '123') AND timestamp >= ? LIMIT 3", T0, ['2023-01-02T10:00:00Z']).rows).toEqual([
      { event: 'other user' },
      { event: 'login' },
      { event: 'logout' },
    ]);
  });

  it('orders DESC, applies LIMIT, PER PARTITION LIMIT and pages with a paging state', () => {
    const r = new MemoryReplica();
    for (const u of ['a', 'b']) for (let i = 0; i < 20; i++) write(r, schema, 'INSERT INTO users (user_id, timestamp, n) VALUES (?, ?, ?)', T0, i + 1, [u, T0 + i, i]);
    const desc = query(r, schema, "SELECT n FROM users WHERE user_id = 'a' ORDER BY timestamp DESC LIMIT 5", T0);
    expect(desc.rows.map((x) => x.n)).toEqual([19, 18, 17, 16, 15]);
    const ppl = query(r, schema, "SELECT user_id, n FROM users WHERE user_id IN ('a', 'b') PER PARTITION LIMIT 2", T0);
    expect(ppl.rows).toEqual([
      { user_id: 'a', n: 0 },
      { user_id: 'a', n: 1 },
      { user_id: 'b', n: 0 },
      { user_id: 'b', n: 1 },
    ]);
    // Paging through both partitions 6 rows at a time gives every row once, in order.
    const p = plan(schema, "SELECT user_id, n FROM users WHERE user_id IN ('a', 'b') LIMIT 33", ctxAt(T0, 0)) as SelectPlan;
    const seen: unknown[] = [];
    let resume = null;
    for (let guard = 0; guard < 20; guard++) {
      const page = select(r, p, T0 / 1000, 6, resume);
      seen.push(...page.rows.map((x) => `${x.user_id}${x.n}`));
      if (page.pagingState === null) break;
      resume = decodePagingState(page.pagingState);
    }
    expect(seen).toEqual([...Array.from({ length: 20 }, (_, i) => `a${i}`), ...Array.from({ length: 13 }, (_, i) => `b${i}`)]);
  });

  it('row, range, partition and cell deletes hide exactly what they cover, and newer writes win over them', () => {
    const r = new MemoryReplica();
    for (let i = 0; i < 10; i++) write(r, schema, "INSERT INTO users (user_id, timestamp, event, n) VALUES ('u', ?, 'e', ?)", T0, 10 + i, [T0 + i, i]);
    write(r, schema, "DELETE FROM users WHERE user_id = 'u' AND timestamp = ?", T0, 100, [T0 + 1]);
    write(r, schema, "DELETE FROM users WHERE user_id = 'u' AND timestamp >= ? AND timestamp < ?", T0, 100, [T0 + 4, T0 + 7]);
    write(r, schema, "DELETE event FROM users WHERE user_id = 'u' AND timestamp = ?", T0, 100, [T0 + 8]);
    const n = (): unknown[] => query(r, schema, "SELECT n, event FROM users WHERE user_id = 'u'", T0).rows.map((x) => `${x.n}:${x.event}`);
    expect(n()).toEqual(['0:e', '2:e', '3:e', '7:e', '8:null', '9:e']);
    // A write newer than the range tombstone shows through; one at the delete's timestamp does not (the tie goes to the delete).
    write(r, schema, "INSERT INTO users (user_id, timestamp, n) VALUES ('u', ?, 55)", T0, 101, [T0 + 5]);
    write(r, schema, "INSERT INTO users (user_id, timestamp, n) VALUES ('u', ?, 66)", T0, 100, [T0 + 6]);
    expect(n()).toEqual(['0:e', '2:e', '3:e', '55:null', '7:e', '8:null', '9:e']);
    write(r, schema, "DELETE FROM users WHERE user_id = 'u'", T0, 200);
    expect(n()).toEqual([]);
    write(r, schema, "UPDATE users SET n = 1 WHERE user_id = 'u' AND timestamp = ?", T0, 201, [T0]);
    expect(n()).toEqual(['1:null']);
  });

  it('a row written by UPDATE disappears with its last cell; an INSERTed row stays (row marker)', () => {
    const r = new MemoryReplica();
    write(r, schema, "UPDATE users SET n = 1 WHERE user_id = 'u' AND timestamp = 1", T0, 1);
    write(r, schema, "INSERT INTO users (user_id, timestamp, n) VALUES ('u', 2, 2)", T0, 1);
    write(r, schema, "UPDATE users SET n = null WHERE user_id = 'u' AND timestamp IN (1, 2)", T0, 2);
    expect(query(r, schema, "SELECT * FROM users WHERE user_id = 'u'", T0).rows).toEqual([{ user_id: 'u', timestamp: '1970-01-01T00:00:00.002Z', event: null, n: null }]);
  });

  it('TTL cells and rows expire at their time (table default TTL and USING TTL)', () => {
    const s = schemaOf('CREATE TABLE t (k int, c int, v text, w text, PRIMARY KEY (k, c)) WITH default_time_to_live = 100');
    const r = new MemoryReplica();
    write(r, s, "INSERT INTO t (k, c, v) VALUES (1, 1, 'default ttl')", T0, 1);
    write(r, s, "INSERT INTO t (k, c, v) VALUES (1, 2, 'short') USING TTL 10", T0, 1);
    write(r, s, "UPDATE t USING TTL 0 SET w = 'forever' WHERE k = 1 AND c = 1", T0, 2);
    const at = (dtSec: number): unknown[] => query(r, s, 'SELECT c, v, w FROM t WHERE k = 1', T0 + dtSec * 1000).rows;
    expect(at(9)).toEqual([
      { c: 1, v: 'default ttl', w: 'forever' },
      { c: 2, v: 'short', w: null },
    ]);
    expect(at(10)).toEqual([{ c: 1, v: 'default ttl', w: 'forever' }]);
    expect(at(100)).toEqual([{ c: 1, v: null, w: 'forever' }]);
  });

  it('filters with ALLOW FILTERING on regular and clustering columns', () => {
    const r = new MemoryReplica();
    for (let i = 0; i < 6; i++) write(r, schema, "INSERT INTO users (user_id, timestamp, n) VALUES ('u', ?, ?)", T0, 1, [i, i % 3]);
    expect(query(r, schema, "SELECT timestamp FROM users WHERE user_id = 'u' AND n = 1 ALLOW FILTERING", T0).rows).toEqual([
      { timestamp: '1970-01-01T00:00:00.001Z' },
      { timestamp: '1970-01-01T00:00:00.004Z' },
    ]);
  });

  it('streams a 100k-row partition in pages without materializing it', () => {
    const s = schemaOf('CREATE TABLE wide (k int, c int, v int, PRIMARY KEY (k, c))');
    const r = new MemoryReplica();
    const p = plan(s, 'INSERT INTO wide (k, c, v) VALUES (1, ?, ?)', ctxAt(T0, 1, [0, 0])) as WritePlan;
    for (let i = 0; i < 100_000; i++) {
      const w = plan(s, 'INSERT INTO wide (k, c, v) VALUES (1, ?, ?)', ctxAt(T0, 1, [i, i])) as WritePlan;
      r.apply(w);
    }
    const sel = plan(s, 'SELECT * FROM wide WHERE k = 1', ctxAt(T0, 0)) as SelectPlan;
    const pages = { count: 0 };
    const rows = readPartitionPaged(r, p.partitions[0]!.partitionKey, sel, T0 / 1000, 1000, pages);
    const first: Row[] = [];
    for (const row of rows) {
      first.push(row);
      if (first.length === 10) break;
    }
    expect(pages.count).toBe(1); // ten rows need one shard page, not the partition
    let total = 10;
    let last = 9;
    for (const row of readPartitionPaged(r, p.partitions[0]!.partitionKey, sel, T0 / 1000, 1000, pages)) {
      if (row.clustering[0] === 0) total = 0;
      total++;
      expect(row.clustering[0]).toBe(total - 1);
      last = row.clustering[0] as number;
    }
    expect(total).toBe(100_000);
    expect(last).toBe(99_999);
    expect(pages.count).toBe(1 + 100);
  }, 60_000);
});

describe('replica page merge', () => {
  const schema = schemaOf('CREATE TABLE t (k int, c int, v int, w int, PRIMARY KEY (k, c))');
  const writes = [
    'INSERT INTO t (k, c, v, w) VALUES (1, ?, ?, ?)',
    'UPDATE t SET v = ? WHERE k = 1 AND c = ?',
    'DELETE FROM t WHERE k = 1 AND c = ?',
    'DELETE FROM t WHERE k = 1 AND c >= ? AND c < ?',
    'DELETE w FROM t WHERE k = 1 AND c = ?',
  ] as const;
  const opArb = fc.record({ kind: fc.nat(writes.length - 1), a: fc.nat(12), b: fc.nat(12), ts: fc.integer({ min: 1, max: 40 }), replicas: fc.subarray([0, 1, 2], { minLength: 1 }) });

  it('reconciles cell-wise across rounds, equals reading the fully merged data, and repairs exactly the stale replicas', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 30 }), fc.integer({ min: 1, max: 4 }), fc.boolean(), (ops, rowLimit, reverse) => {
        const replicas = [new MemoryReplica(), new MemoryReplica(), new MemoryReplica()];
        const union = new MemoryReplica();
        let pk: Uint8Array | null = null;
        for (const op of ops) {
          const params = op.kind === 0 ? [op.a, op.b, op.a] : op.kind === 1 ? [op.b, op.a] : op.kind === 3 ? [Math.min(op.a, op.b), Math.max(op.a, op.b) + 1] : [op.a];
          const w = plan(schema, writes[op.kind]!, ctxAt(T0, op.ts, params)) as WritePlan;
          pk = w.partitions[0]!.partitionKey;
          for (const i of op.replicas) replicas[i]!.apply(w);
          union.apply(w);
        }
        if (pk === null) return;
        const sel = plan(schema, `SELECT * FROM t WHERE k = 1${reverse ? ' ORDER BY c DESC' : ''}`, ctxAt(T0, 0)) as SelectPlan;
        const nowSec = T0 / 1000;
        // Expected: the union replica read in one page.
        const full = union.page(pk, sel, null, 1000, true);
        const expected = [...readRows(full.entries, { schema, nowSec, deletions: deletionMapOf(full.deletions ?? []) })];
        // Merged rounds across the three replicas, small pages.
        const got: Row[] = [];
        const repairs: StoredEntry[][] = [[], [], []];
        let after: Uint8Array | null = null;
        let deletions = null;
        for (let round = 0; round < 100; round++) {
          const pages = replicas.map((r) => r.page(pk!, sel, after, rowLimit, round === 0));
          const m = mergeSlicePages(pages, reverse, nowSec, 864000);
          if (round === 0) deletions = deletionMapOf(m.deletions!);
          m.repairs.forEach((list, i) => repairs[i]!.push(...list));
          got.push(...readRows(m.entries, { schema, nowSec, deletions: deletions! }));
          if (m.bound === null) break;
          after = m.bound;
        }
        const show = (rows: Row[]): unknown[] => rows.map((x) => [x.clustering, [...x.cells.entries()]]);
        expect(show(got)).toEqual(show(expected));
        // After applying the repairs every replica holds exactly the union.
        replicas.forEach((r, i) => {
          for (const e of repairs[i]!) r.put(pk!, e);
          const a = [...(r.partitions.values().next().value ?? new Map()).values()].map((e: StoredEntry) => Buffer.from(e.suffix).toString('hex') + ':' + Buffer.from(e.record).toString('hex')).sort();
          const b = [...(union.partitions.values().next().value ?? new Map()).values()].map((e: StoredEntry) => Buffer.from(e.suffix).toString('hex') + ':' + Buffer.from(e.record).toString('hex')).sort();
          expect(a).toEqual(b);
        });
      }),
      { numRuns: 300 },
    );
  });
});
