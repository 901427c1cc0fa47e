import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deletionMapOf, readRows, ScanRowStream, type ScanEntry, type SelectPlan, type WritePlan } from '../../src/wide/index.js';
import { splitStatements } from '../../src/cql/index.js';
import { ctxAt, MemoryReplica, plan, schemaOf } from '../helpers/wide-store.js';

const SCHEMA = schemaOf('CREATE TABLE t (k int, c int, v text, PRIMARY KEY ((k), c))');
const T0 = Date.UTC(2024, 0, 1);
const NOW = Math.floor(T0 / 1000);

/** Every partition's stored entries in storage order (tokens are the partition index here). */
function storageOrder(r: MemoryReplica, keys: number[]): ScanEntry[] {
  const all: ScanEntry[] = [];
  keys.forEach((k, i) => {
    const pk = (plan(SCHEMA, 'SELECT * FROM t WHERE k = ?', ctxAt(T0, 0, [k])) as SelectPlan).partitions![0]!.partitionKey;
    const entries = [...(r.partitions.get(Buffer.from(pk).toString('hex'))?.values() ?? [])].sort((a, b) => Buffer.compare(a.suffix, b.suffix));
    for (const e of entries) all.push({ token: BigInt(i), partitionKey: pk, suffix: e.suffix, record: e.record });
  });
  return all;
}

/** What a partition read returns for each partition: the oracle. */
function oracle(r: MemoryReplica, keys: number[]): Array<{ k: number; c: number; v: string | null }> {
  const out: Array<{ k: number; c: number; v: string | null }> = [];
  for (const k of keys) {
    const pk = (plan(SCHEMA, 'SELECT * FROM t WHERE k = ?', ctxAt(T0, 0, [k])) as SelectPlan).partitions![0]!.partitionKey;
    const entries = [...(r.partitions.get(Buffer.from(pk).toString('hex'))?.values() ?? [])].sort((a, b) => Buffer.compare(a.suffix, b.suffix));
    const deletions = deletionMapOf(entries.filter((e) => e.suffix[0] !== 0x10));
    for (const row of readRows(entries.filter((e) => e.suffix[0] === 0x10), { schema: SCHEMA, nowSec: NOW, deletions })) {
      out.push({ k, c: row.clustering[0] as number, v: (row.cells.get('v') as string | undefined) ?? null });
    }
  }
  return out;
}

describe('ScanRowStream', () => {
  it('yields the rows partition reads would, whatever the round boundaries (deletions included)', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), k: fc.integer({ min: 0, max: 3 }), c: fc.integer({ min: 0, max: 6 }), v: fc.string({ maxLength: 3 }) }),
      fc.record({ kind: fc.constant('deleteRow' as const), k: fc.integer({ min: 0, max: 3 }), c: fc.integer({ min: 0, max: 6 }) }),
      fc.record({ kind: fc.constant('deleteRange' as const), k: fc.integer({ min: 0, max: 3 }), lo: fc.integer({ min: 0, max: 6 }) }),
      fc.record({ kind: fc.constant('deleteCell' as const), k: fc.integer({ min: 0, max: 3 }), c: fc.integer({ min: 0, max: 6 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 30 }), fc.array(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 10 }), (ops, cuts) => {
        const r = new MemoryReplica();
        ops.forEach((o, i) => {
          const ts = i + 1;
          const cql =
            o.kind === 'insert'
              ? ['INSERT INTO t (k, c, v) VALUES (?, ?, ?)', [o.k, o.c, o.v]]
              : o.kind === 'deleteRow'
                ? ['DELETE FROM t WHERE k = ? AND c = ?', [o.k, o.c]]
                : o.kind === 'deleteRange'
                  ? ['DELETE FROM t WHERE k = ? AND c >= ? AND c < ?', [o.k, o.lo, o.lo + 2]]
                  : ['DELETE v FROM t WHERE k = ? AND c = ?', [o.k, o.c]];
          r.apply(plan(SCHEMA, cql[0] as string, ctxAt(T0, ts, cql[1] as unknown[])) as WritePlan);
        });
        const keys = [0, 1, 2, 3];
        const entries = storageOrder(r, keys);
        const stream = new ScanRowStream({ schema: SCHEMA, nowSec: NOW, ranges: [{ start: Uint8Array.of(0x10), end: Uint8Array.of(0x11) }], filters: [], partitionFilters: [] });
        const got: Array<{ k: number; c: number; v: string | null }> = [];
        let k = -1;
        let at = 0;
        let cut = 0;
        while (at <= entries.length) {
          const n = cuts[cut++ % cuts.length]!;
          const round = entries.slice(at, at + n);
          at += n;
          for (const ev of stream.push(round, at >= entries.length)) {
            if (ev.t === 'partition') k = ev.values[0] as number;
            else if (ev.row !== null) got.push({ k, c: ev.row.clustering[0] as number, v: (ev.row.cells.get('v') as string | undefined) ?? null });
          }
          if (at >= entries.length) break;
        }
        expect(got).toEqual(oracle(r, keys));
      }),
      { numRuns: 300 },
    );
  });

  it('skips the rest of a partition on request and applies partition-key filters', () => {
    const r = new MemoryReplica();
    for (const k of [0, 1]) for (let c = 0; c < 5; c++) r.apply(plan(SCHEMA, 'INSERT INTO t (k, c, v) VALUES (?, ?, ?)', ctxAt(T0, 1, [k, c, 'x'])) as WritePlan);
    const entries = storageOrder(r, [0, 1]);
    const stream = new ScanRowStream({
      schema: SCHEMA,
      nowSec: NOW,
      ranges: [{ start: Uint8Array.of(0x10), end: Uint8Array.of(0x11) }],
      filters: [],
      partitionFilters: [{ position: 0, test: (v) => v === 1 }],
    });
    const events = [...stream.push(entries, true)];
    expect(events.filter((e) => e.t === 'partition').map((e) => (e as { matches: boolean }).matches)).toEqual([false, true]);
    expect(events.filter((e) => e.t === 'row')).toHaveLength(5);
    const s2 = new ScanRowStream({ schema: SCHEMA, nowSec: NOW, ranges: [{ start: Uint8Array.of(0x10), end: Uint8Array.of(0x11) }], filters: [], partitionFilters: [] });
    let rows = 0;
    for (const ev of s2.push(entries, true)) {
      if (ev.t === 'row' && ++rows === 2) s2.skipPartition();
    }
    expect(rows).toBe(2 + 5);
  });
});

describe('splitStatements', () => {
  it('splits at ; outside strings, quoted identifiers, $$ strings and comments', () => {
    const r = splitStatements(`INSERT INTO t (a) VALUES ('x;''y'); SELECT "we;ird" FROM t -- a ; comment
; /* ; */ SELECT $$a;b$$ FROM t;
SELECT 1 FROM`);
    expect(r.statements).toEqual([`INSERT INTO t (a) VALUES ('x;''y')`, `SELECT "we;ird" FROM t -- a ; comment`, `/* ; */ SELECT $$a;b$$ FROM t`]);
    expect(r.rest).toBe('\nSELECT 1 FROM');
    expect(splitStatements(';; -- nothing\n;').statements).toEqual([]);
    expect(splitStatements("SELECT 'unterminated;").statements).toEqual([]);
  });
});



describe('isSelectStatement', () => {
  it('looks at the first word after whitespace and comments', async () => {
    const { isSelectStatement } = await import('../../src/cql/index.js');
    expect(isSelectStatement('  select * from t')).toBe(true);
    expect(isSelectStatement('-- a comment\n/* another */ SELECT 1 FROM t')).toBe(true);
    expect(isSelectStatement('INSERT INTO t (k) VALUES (1)')).toBe(false);
    expect(isSelectStatement('selected')).toBe(false);
  });
});
