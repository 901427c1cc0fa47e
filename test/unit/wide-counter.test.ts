/**
 * Counter columns of wide-column tables (src/wide/counter-cell.ts): a counter cell's record is the
 * crdt counter's state, merged by its join wherever wide-column records merge (the shard's
 * cell-write, replica page merges and their read repairs, scans, anti-entropy), and read as the
 * column's bigint value.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CRDT_LIMITS, parseOp } from '../../src/crdt/index.js';
import { applyCrdtRequest, encodeApplyRequest } from '../../src/storage/crdt-shard.js';
import { isSweepCandidate, mergeStoredRecords, validateRecord } from '../../src/storage/records.js';
import { cellWriteKeys } from '../../src/storage/wide-shard.js';
import { packCellWrite } from '../../src/storage/wide-wire.js';
import { checkWideRecord, counterCellValue, isCounterCell, isPurgeableWide, mergeWideRecords } from '../../src/wide/counter-cell.js';
import { cellSuffix, deletionMapOf, encodeClustering, mergeSlicePages, readRows, tombstoneRecord, valueRecord, type SlicePage } from '../../src/wide/index.js';
import { schemaOf } from '../helpers/wide-store.js';

const inc = (n: number) => encodeApplyRequest('counter', parseOp('counter', { increment: n }));

/** A counter state after the given (actor, increment) steps, applied one after another as one replica would. */
function counterOf(ops: ReadonlyArray<[actor: string, n: number]>): Uint8Array {
  let s: Uint8Array | undefined;
  for (const [a, n] of ops) s = applyCrdtRequest(inc(n), s, { actor: a, limits: DEFAULT_CRDT_LIMITS });
  return s!;
}

const bytesEq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

describe('counter cells merge by the join, beside cell records', () => {
  // Counter states of three actors at several points, and cell records (live, expiring, tombstone).
  const states = [counterOf([['a@1', 1]]), counterOf([['a@1', 1], ['a@1', 4]]), counterOf([['b@1', -2]]), counterOf([['c@1', 7], ['b@1', 3]])];
  const cells = [valueRecord(10, Buffer.from([0, 0, 0, 0, 0, 0, 0, 5]), 0, 100), tombstoneRecord(11, 100), valueRecord(12, Buffer.from([1]), 60, 100)];
  const recordArb = fc.constantFrom(...states, ...cells);

  it('commutative, associative and idempotent over counter states and cell records alike', () => {
    fc.assert(
      fc.property(recordArb, recordArb, recordArb, (a, b, c) => {
        expect(bytesEq(mergeWideRecords(a, b), mergeWideRecords(b, a))).toBe(true);
        expect(bytesEq(mergeWideRecords(mergeWideRecords(a, b), c), mergeWideRecords(a, mergeWideRecords(b, c)))).toBe(true);
        expect(bytesEq(mergeWideRecords(a, a), a)).toBe(true);
      }),
    );
  });

  it('joins states into the exact sum; a cell record never overrides a counter state', () => {
    const j = states.reduce((x, y) => mergeWideRecords(x, y));
    // a@1: 5, b@1: -2 and +3 are one actor's totals (P 3, N 2) joined by max, c@1: 7.
    expect(counterCellValue(j)).toBe(5n - 2n + 3n + 7n - 0n);
    for (const c of cells) expect(mergeWideRecords(c, states[0]!)).toBe(states[0]);
    expect(isCounterCell(states[0]!)).toBe(true);
    expect(isCounterCell(cells[0]!)).toBe(false);
  });

  it('the shared record rules: mode cell stores the join, keeps the stored bytes when nothing is new, never sweeps a counter state', () => {
    const [s1, s2] = [states[1]!, states[2]!];
    const m = mergeStoredRecords('cell', s1, s2, 1);
    expect(counterCellValue(m)).toBe(3n);
    expect(mergeStoredRecords('cell', m, s1, 1)).toBe(m);
    expect(mergeStoredRecords('cell', undefined, s1, 1)).toBe(s1);
    expect(isSweepCandidate(m)).toBe(false);
    expect(isPurgeableWide(m, 2 ** 31, 0)).toBe(false);
    // Only counter states live in wide tables: a set's state is refused.
    const set = applyCrdtRequest(encodeApplyRequest('set', parseOp('set', { add: ['x'] })), undefined, { actor: 'a@1', limits: DEFAULT_CRDT_LIMITS });
    expect(() => checkWideRecord(set)).toThrow(/only counter states/);
    expect(() => validateRecord('cell', set)).toThrow(/only counter states/);
    expect(() => mergeStoredRecords('cell', undefined, set, 1)).toThrow();
    expect(() => validateRecord('cell', s1)).not.toThrow();
  });

  it("a shard's cell-write takes a counter state (a replica write of the coordinating replica's state, a hint, a repair)", () => {
    const table = Buffer.alloc(16, 7);
    const body = packCellWrite(table, Buffer.from('pk'), [{ suffix: Buffer.from([0x10, 0x61, 1]), record: states[0]! }]);
    expect(cellWriteKeys({ op: 'cell-write', id: 1, hi: 1, lo: 2, body } as never)).toHaveLength(1);
  });
});

describe('reading counter cells across replicas', () => {
  const schema = schemaOf('CREATE TABLE views (page text, day int, hits counter, PRIMARY KEY ((page), day))');
  const suffix = (day: number) => cellSuffix(encodeClustering(schema.clustering, [day]), 'hits');
  const page = (entries: Array<[number, Uint8Array]>): SlicePage => ({ deletions: [], entries: entries.map(([d, record]) => ({ suffix: suffix(d), record })), next: null });

  it("merged pages read each cell's joined value, and the replicas that lack the join get it as a repair", () => {
    const n1 = counterOf([['n1@x', 10]]);
    const n3 = counterOf([['n3@y', 300]]);
    const both = mergeWideRecords(n1, n3);
    const pages = [page([[1, n1], [2, counterOf([['n1@x', 1]])]]), page([[1, both]]), page([[1, n3]])];
    const m = mergeSlicePages(pages, false, 1000, 864000);
    const rows = [...readRows(m.entries, { schema, nowSec: 1000, deletions: deletionMapOf(m.deletions!) })];
    expect(rows.map((r) => [r.clustering, r.cells.get('hits')])).toEqual([
      [[1], 310n],
      [[2], 1n],
    ]);
    // Replica 0 lacks the join of day 1; replica 1 lacks day 2; replica 2 lacks both.
    expect(m.repairs.map((list) => list.length)).toEqual([1, 1, 2]);
    expect(counterCellValue(m.repairs[2]![0]!.record)).toBe(310n);
  });
});
