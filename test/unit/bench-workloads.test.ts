import { describe, expect, it } from 'vitest';
import { seededRng } from '../../src/bench/distributions.js';
import {
  OpGenerator,
  WORKLOADS,
  keyName,
  loadSource,
  makeValue,
  type OpKind,
  type WorkloadName,
} from '../../src/bench/workloads.js';

const OPS = 100_000;
// Binomial sd at p = 0.5 over 100k ops is 0.0016; ±0.01 is > 6 sd.
const TOLERANCE = 0.01;

const expected: Record<WorkloadName, Partial<Record<OpKind, number>>> = {
  A: { read: 0.5, update: 0.5 },
  B: { read: 0.95, update: 0.05 },
  C: { read: 1 },
  D: { read: 0.95, insert: 0.05 },
  E: { scan: 0.95, insert: 0.05 },
  F: { read: 0.5, rmw: 0.5 },
  ingest: { insert: 1 },
};

describe('workload mixes', () => {
  for (const name of Object.keys(expected) as WorkloadName[]) {
    it(`workload ${name} matches its YCSB proportions over ${OPS} ops`, () => {
      const records = 1000;
      const gen = new OpGenerator(name, { records, seed: 11 });
      const counts: Record<string, number> = {};
      let scanTotal = 0;
      // Tallied rather than asserted per op: 100k expect() calls cost seconds.
      let violations = 0;
      for (const op of gen.take(OPS)) {
        counts[op.kind] = (counts[op.kind] ?? 0) + 1;
        if (op.kind === 'insert') {
          if (op.keyIndex < records) violations++;
          gen.acknowledge(op);
        } else if (op.keyIndex >= gen.knownRecords) {
          // Reads only address records that exist (loaded or acknowledged inserts).
          violations++;
        }
        if (op.kind === 'scan') {
          const len = op.scanLength ?? 0;
          if (len < 1 || len > 100) violations++;
          scanTotal += len;
        }
      }
      expect(violations).toBe(0);
      for (const kind of Object.keys(counts)) expect(expected[name]).toHaveProperty(kind);
      for (const [kind, p] of Object.entries(expected[name])) {
        expect(Math.abs((counts[kind] ?? 0) / OPS - p)).toBeLessThan(TOLERANCE);
      }
      if (counts.scan) expect(scanTotal / counts.scan).toBeGreaterThan(49.5);
      if (counts.scan) expect(scanTotal / counts.scan).toBeLessThan(51.5);
    });
  }

  it('ingest inserts new, consecutive key indices after the loaded records', () => {
    const gen = new OpGenerator('ingest', { records: 500, seed: 1 });
    const ops = [...gen.take(1000)];
    expect(ops.map((o) => o.keyIndex)).toEqual(Array.from({ length: 1000 }, (_, i) => 500 + i));
    expect(new Set(ops.map((o) => o.key)).size).toBe(1000);
  });

  it('D reads the newest acknowledged record most, and never one still in flight', () => {
    const gen = new OpGenerator('D', { records: 1000, seed: 3 });
    const inFlight: number[] = [];
    let reads = 0;
    let newest = 0;
    let violations = 0;
    for (const op of gen.take(20_000)) {
      if (op.kind === 'insert') {
        inFlight.push(op.keyIndex);
        // Acknowledge with a lag, as the driver would with inserts in flight.
        if (inFlight.length > 5) gen.acknowledge({ kind: 'insert', key: '', keyIndex: inFlight.shift() as number });
      } else {
        if (op.keyIndex >= gen.knownRecords) violations++;
        reads++;
        if (op.keyIndex === gen.knownRecords - 1) newest++;
      }
    }
    expect(violations).toBe(0);
    // SkewedLatest gives the newest record 1/ζ(n) of reads: ≈ 12% for n ≈ 1000–2000.
    expect(newest / reads).toBeGreaterThan(0.1);
    expect(newest / reads).toBeLessThan(0.14);
  });

  it('is reproducible from a seed', () => {
    const a = [...new OpGenerator('A', { records: 100, seed: 4 }).take(200)];
    const b = [...new OpGenerator('A', { records: 100, seed: 4 }).take(200)];
    expect(b).toEqual(a);
  });

  it('refuses to read from an empty keyspace or run an invalid mix', () => {
    expect(() => new OpGenerator('A', { records: 0 })).toThrow(RangeError);
    expect(() => new OpGenerator({ ...WORKLOADS.A, readProportion: 0.6 }, { records: 10 })).toThrow(RangeError);
    expect(() => new OpGenerator('ingest', { records: 0 })).not.toThrow();
  });

  it('honours a distribution override', () => {
    const gen = new OpGenerator('C', { records: 100, seed: 2, distribution: 'uniform' });
    const counts = new Map<number, number>();
    for (const op of gen.take(10_000)) counts.set(op.keyIndex, (counts.get(op.keyIndex) ?? 0) + 1);
    expect(Math.max(...counts.values())).toBeLessThan(200); // zipfian's hottest would take ~1/ζ(100) ≈ 19%
  });
});

describe('keyName / makeValue / loadSource', () => {
  it('keyName is YCSB-like, fixed width, unique and not in insertion order', () => {
    const names = Array.from({ length: 20_000 }, (_, i) => keyName(i));
    expect(new Set(names).size).toBe(names.length);
    expect(names.every((k) => /^user\d{16}$/.test(k))).toBe(true);
    expect(keyName(123)).toBe(keyName(123));
    const sorted = [...names].sort();
    expect(sorted).not.toEqual(names);
    expect(() => keyName(-1)).toThrow(RangeError);
    expect(() => keyName(2 ** 52)).toThrow(RangeError);
  });

  it('makeValue returns the requested number of seeded random bytes', () => {
    const v = makeValue(1001, seededRng(1));
    expect(v).toBeInstanceOf(Uint8Array);
    expect(v.length).toBe(1001);
    expect(makeValue(1001, seededRng(1))).toEqual(v);
    expect(new Set(v).size).toBeGreaterThan(200); // not a constant fill
    expect(makeValue(0, seededRng(1)).length).toBe(0);
  });

  it('loadSource inserts indices in order', () => {
    const src = loadSource(10);
    const ops = Array.from({ length: 3 }, () => src.next());
    expect(ops.map((o) => [o.kind, o.keyIndex, o.key])).toEqual([
      ['insert', 10, keyName(10)],
      ['insert', 11, keyName(11)],
      ['insert', 12, keyName(12)],
    ]);
  });
});
