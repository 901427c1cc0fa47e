import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { isPurgeableRecord, isSweepCandidate, mergeStoredRecords, recordFamily, sameRecord, validateRecord } from '../../src/storage/records.js';
import { encodeRecord, initVersions, newVersion } from '../../src/versions/index.js';
import { compareCellRecords, tombstoneRecord, valueRecord } from '../../src/wide/cell.js';

const version = (counter: number, o: { ts?: number; tombstone?: boolean; ttl?: number } = {}): Uint8Array =>
  encodeRecord([
    newVersion({ node: 'n1', counter, context: [], ts: o.ts ?? counter, tombstone: o.tombstone ?? false, value: o.tombstone ? new Uint8Array(0) : Buffer.from(`v${counter}`), maxClockEntries: 8, ...(o.ttl ? { ttl: o.ttl } : {}) }),
  ]);

const cellArb = fc.oneof(
  fc.record({ ts: fc.integer({ min: -5, max: 5 }), v: fc.uint8Array({ maxLength: 3 }), ttl: fc.constantFrom(0, 5) }).map(({ ts, v, ttl }) => valueRecord(ts, v, ttl, 100)),
  fc.record({ ts: fc.integer({ min: -5, max: 5 }), ldt: fc.integer({ min: 0, max: 200 }) }).map(({ ts, ldt }) => tombstoneRecord(ts, ldt)),
);

describe('stored records of both families', () => {
  beforeAll(() => initVersions());

  it('tells the families apart by their first byte and validates by mode', () => {
    expect(recordFamily(version(1))).toBe('versions');
    expect(recordFamily(valueRecord(1, Buffer.from('x'), 0, 0))).toBe('cell');
    expect(() => recordFamily(Uint8Array.of(0x42))).toThrow(/corrupt record/);
    expect(() => validateRecord('cell', version(1))).toThrow();
    expect(() => validateRecord('lww', valueRecord(1, Buffer.from('x'), 0, 0))).toThrow();
  });

  it('cell merge: the winner of Cassandra\'s order, the stored object itself when nothing changes (commutative)', () => {
    fc.assert(
      fc.property(cellArb, cellArb, (a, b) => {
        const ab = mergeStoredRecords('cell', a, b, 16);
        const ba = mergeStoredRecords('cell', b, a, 16);
        expect(sameRecord(ab, ba)).toBe(true);
        expect(compareCellRecords(ab, a) >= 0 && compareCellRecords(ab, b) >= 0).toBe(true);
        if (compareCellRecords(a, b) >= 0) expect(ab).toBe(a);
      }),
    );
    const a = valueRecord(7, Buffer.from('x'), 0, 0);
    expect(mergeStoredRecords('cell', undefined, a, 16)).toBe(a);
  });

  it('version merge: lww keeps the newest, unchanged merges return the stored bytes', () => {
    const old = version(1, { ts: 10 });
    const newer = version(2, { ts: 20 });
    expect(sameRecord(mergeStoredRecords('lww', old, newer, 16), newer)).toBe(true);
    expect(mergeStoredRecords('lww', newer, old, 16)).toBe(newer);
  });

  it('the sweep candidates and what it may purge, per family', () => {
    expect(isSweepCandidate(version(1))).toBe(false);
    expect(isSweepCandidate(version(1, { tombstone: true }))).toBe(true);
    expect(isSweepCandidate(version(1, { ttl: 5 }))).toBe(true);
    expect(isSweepCandidate(valueRecord(1, Buffer.from('x'), 0, 0))).toBe(false);
    expect(isSweepCandidate(valueRecord(1, Buffer.from('x'), 5, 0))).toBe(true);
    expect(isSweepCandidate(tombstoneRecord(1, 0))).toBe(true);
    // Cells: a tombstone dated 100 s with grace 10 s may go after 110 s.
    expect(isPurgeableRecord(tombstoneRecord(1, 100), 110_000, 10)).toBe(false);
    expect(isPurgeableRecord(tombstoneRecord(1, 100), 111_000, 10)).toBe(true);
    // A version-set tombstone written at 1 s (1e6 µs) with grace 10 s.
    expect(isPurgeableRecord(version(5, { ts: 1_000_000, tombstone: true }), 11_500, 10)).toBe(true);
    expect(isPurgeableRecord(version(5, { ts: 1_000_000, tombstone: true }), 10_500, 10)).toBe(false);
    // An expiring value (ts 1 s, ttl 5 s): expired at 6 s, purgeable once its write is older than grace.
    expect(isPurgeableRecord(version(6, { ts: 1_000_000, ttl: 5 }), 5_500, 0)).toBe(false);
    expect(isPurgeableRecord(version(6, { ts: 1_000_000, ttl: 5 }), 6_500, 0)).toBe(true);
  });
});
