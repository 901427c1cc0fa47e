import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  compareCellRecords,
  decodeCell,
  encodeCell,
  isLiveAt,
  isPurgeable,
  mergeCellRecords,
  MicrosClock,
  tombstoneRecord,
  valueRecord,
  type Cell,
} from '../../src/wide/index.js';

// Small domains so ties (equal timestamps, equal deletion times) are common.
const cellArb: fc.Arbitrary<Cell> = fc.oneof(
  fc.record({ kind: fc.constant('live' as const), ts: fc.integer({ min: -2, max: 3 }), ldt: fc.constant(0), ttl: fc.constant(0), value: fc.uint8Array({ maxLength: 2 }) }),
  fc.record({ kind: fc.constant('expiring' as const), ts: fc.integer({ min: -2, max: 3 }), ldt: fc.integer({ min: 0, max: 3 }), ttl: fc.integer({ min: 1, max: 3 }), value: fc.uint8Array({ maxLength: 2 }) }),
  fc.record({ kind: fc.constant('tombstone' as const), ts: fc.integer({ min: -2, max: 3 }), ldt: fc.integer({ min: 0, max: 3 }), ttl: fc.constant(0), value: fc.constant(new Uint8Array(0)) }),
);
const recordArb = cellArb.map(encodeCell);

const eq = (a: Uint8Array, b: Uint8Array): boolean => Buffer.compare(a, b) === 0;

describe('cell records', () => {
  it('round-trip through the codec', () => {
    fc.assert(
      fc.property(cellArb, fc.constantFrom(0, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER), (c, big) => {
        const back = decodeCell(encodeCell(c));
        expect({ ...back, value: [...back.value] }).toEqual({ ...c, value: [...c.value] });
        const wide = { ...c, ts: big };
        expect(decodeCell(encodeCell(wide)).ts).toBe(big);
      }),
    );
  });

  it('merge is commutative, associative and idempotent, and picks one of its inputs', () => {
    fc.assert(
      fc.property(recordArb, recordArb, recordArb, (a, b, c) => {
        expect(eq(mergeCellRecords(a, b), mergeCellRecords(b, a))).toBe(true);
        expect(eq(mergeCellRecords(mergeCellRecords(a, b), c), mergeCellRecords(a, mergeCellRecords(b, c)))).toBe(true);
        expect(eq(mergeCellRecords(a, a), a)).toBe(true);
        const m = mergeCellRecords(a, b);
        expect(m === a || m === b).toBe(true);
        // Total: only identical records compare equal.
        expect(compareCellRecords(a, b) === 0).toBe(eq(a, b));
      }),
      { numRuns: 2000 },
    );
  });

  it("follows Cassandra's tie rules: timestamp, then tombstone/expiring over live, tombstone over expiring, later deletion time, larger value", () => {
    const live = (ts: number, v: number[]): Uint8Array => encodeCell({ kind: 'live', ts, ldt: 0, ttl: 0, value: Uint8Array.from(v) });
    const exp = (ts: number, ldt: number, v: number[]): Uint8Array => encodeCell({ kind: 'expiring', ts, ldt, ttl: 10, value: Uint8Array.from(v) });
    const tomb = (ts: number, ldt: number): Uint8Array => encodeCell({ kind: 'tombstone', ts, ldt, ttl: 0, value: new Uint8Array(0) });
    expect(mergeCellRecords(live(2, [1]), tomb(1, 9))).toEqual(live(2, [1])); // newer write beats an older delete
    expect(mergeCellRecords(live(2, [9]), tomb(2, 0))).toEqual(tomb(2, 0)); // tie: the delete wins
    expect(mergeCellRecords(live(2, [9]), exp(2, 1, [0]))).toEqual(exp(2, 1, [0])); // tie: expiring beats live (CASSANDRA-14592)
    expect(mergeCellRecords(exp(2, 99, [9]), tomb(2, 0))).toEqual(tomb(2, 0)); // tie: tombstone beats expiring
    expect(mergeCellRecords(tomb(2, 5), tomb(2, 6))).toEqual(tomb(2, 6)); // later deletion time
    expect(mergeCellRecords(exp(2, 5, [9]), exp(2, 6, [1]))).toEqual(exp(2, 6, [1])); // later expiry before value
    expect(mergeCellRecords(live(2, [1, 2]), live(2, [1, 3]))).toEqual(live(2, [1, 3])); // larger value bytes
  });

  it('expire at their local expiration time and become purgeable gc grace after they were written', () => {
    const r = valueRecord(1, Uint8Array.of(1), 100, 1000); // written at 1000 s, TTL 100 → expires at 1100
    expect(isLiveAt(r, 1099)).toBe(true);
    expect(isLiveAt(r, 1100)).toBe(false);
    expect(isPurgeable(r, 1099, 0)).toBe(false); // not expired yet
    expect(isPurgeable(r, 1101, 50)).toBe(true); // written + grace (1050) passed and expired
    expect(isPurgeable(r, 1101, 200)).toBe(false); // written + grace = 1200
    const t = tombstoneRecord(1, 1000);
    expect(isLiveAt(t, 0)).toBe(false);
    expect(isPurgeable(t, 1011, 10)).toBe(true); // Cassandra: purgeable once ldt < now - gc grace
    expect(isPurgeable(t, 1010, 10)).toBe(false);
    expect(isPurgeable(valueRecord(1, Uint8Array.of(1), 0, 0), 1e9, 0)).toBe(false);
  });

  it('reject corrupt records', () => {
    expect(() => decodeCell(Uint8Array.of(0x10))).toThrow(/corrupt cell/);
    expect(() => decodeCell(Uint8Array.of(0x20, 0, 0, 0, 0, 0, 0, 0, 0))).toThrow(/unknown format/);
    expect(() => decodeCell(Uint8Array.of(0x11, 0, 0, 0, 0, 0, 0, 0, 0))).toThrow(/tombstone of the wrong size/);
    expect(() => decodeCell(Uint8Array.of(0x17, 0, 0, 0, 0, 0, 0, 0, 0))).toThrow(/flags/);
  });
});

describe('MicrosClock', () => {
  it('is strictly increasing even when the wall clock stalls or goes back', () => {
    let now = 1000;
    const c = new MicrosClock(() => now);
    const a = c.next();
    const b = c.next();
    now = 999;
    const d = c.next();
    expect(a).toBe(1_000_000);
    expect(b).toBe(1_000_001);
    expect(d).toBe(1_000_002);
  });
});
