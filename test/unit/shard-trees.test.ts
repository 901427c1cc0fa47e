/**
 * A shard's Merkle trees without a worker or RocksDB: an in-memory sorted key space behind the
 * ports, a ring view whose ranges change. The invariant the actor relies on: whatever the
 * interleaving of committed writes, rebuild scan steps and ring changes, once the rebuilds finish
 * every tree equals a tree built from scratch over what is stored.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { initMerkle, type Hash64 } from '../../src/merkle/index.js';
import type { KeyBounds } from '../../src/storage/keys.js';
import type { RangeRef } from '../../src/storage/shard-protocol.js';
import { inRange, ShardTrees, type TreeRingView, type TreeScanPorts } from '../../src/storage/shard-trees.js';

const DEPTH = 4;

/** Ranges (prev, t] of sorted 32-bit tokens (hi word only), all stored locally; the first wraps. */
function rangesOf(tokensHi: number[]): RangeRef[] {
  const t = [...new Set(tokensHi)].sort((a, b) => a - b);
  return t.map((end, i) => {
    const start = t[(i - 1 + t.length) % t.length]!;
    return { pos: i, startHi: start, startLo: 0, endHi: end, endLo: 0 };
  });
}

class FakeRing implements TreeRingView {
  version = 1;
  constructor(public ranges: RangeRef[]) {}
  localRanges(): RangeRef[] {
    return this.ranges;
  }
}

const keyOf = (hi: number, lo: number, suffix: number): Buffer => {
  const b = Buffer.alloc(9);
  b.writeUInt32BE(hi, 0);
  b.writeUInt32BE(lo, 4);
  b[8] = suffix;
  return b;
};
const digest = (record: Buffer): Hash64 => ({ hi: record.readUInt32BE(0), lo: record.readUInt32BE(4) });

class FakeStore {
  readonly rows = new Map<string, Buffer>();
  ports(): TreeScanPorts {
    return {
      readChunk: (bounds: KeyBounds, after: Buffer | null, limit: number) => {
        const keys = [...this.rows.keys()]
          .map((k) => Buffer.from(k, 'hex'))
          .filter((k) => (bounds.gte === undefined || Buffer.compare(k, bounds.gte) >= 0) && (bounds.lt === undefined || Buffer.compare(k, bounds.lt) < 0))
          .filter((k) => after === null || Buffer.compare(k, after) > 0)
          .sort(Buffer.compare)
          .slice(0, limit);
        return keys.flatMap((k) => [k, this.rows.get(k.toString('hex'))!]);
      },
      digest,
    };
  }
}

function rebuildAll(trees: ShardTrees, store: FakeStore, chunk: number): void {
  for (let guard = 0; trees.scanStep(store.ports(), chunk); guard++) expect(guard).toBeLessThan(10_000);
}

type Step = { t: 'put'; hi: number; lo: number; suffix: number; value: number } | { t: 'del'; index: number } | { t: 'scan' } | { t: 'ring'; tokens: number[] };

const tokenArb = fc.integer({ min: 0, max: 0xffffffff });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('put' as const), hi: tokenArb, lo: tokenArb, suffix: fc.integer({ min: 0, max: 3 }), value: fc.integer({ min: 1, max: 0xffffffff }) }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('del' as const), index: fc.nat() }) },
  { weight: 3, arbitrary: fc.constant({ t: 'scan' as const }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('ring' as const), tokens: fc.array(tokenArb, { minLength: 1, maxLength: 5 }) }) },
);

describe('shard Merkle trees', () => {
  beforeAll(() => initMerkle());

  it('property: writes, deletes, scan steps and ring changes in any order end in the trees a fresh scan builds', () => {
    fc.assert(
      fc.property(fc.array(tokenArb, { minLength: 1, maxLength: 5 }), fc.array(stepArb, { maxLength: 80 }), fc.integer({ min: 1, max: 4 }), (initial, steps, chunk) => {
        const ring = new FakeRing(rangesOf(initial));
        const store = new FakeStore();
        const trees = new ShardTrees(DEPTH, ring);
        trees.checkRing();
        for (const s of steps) {
          if (s.t === 'put') {
            const key = keyOf(s.hi, s.lo, s.suffix);
            const record = Buffer.alloc(8);
            record.writeUInt32BE(s.value, 0);
            record.writeUInt32BE((s.value ^ 0x5a5a5a5a) >>> 0, 4);
            const old = store.rows.get(key.toString('hex'));
            store.rows.set(key.toString('hex'), record);
            trees.update(key, old ? digest(old) : null, digest(record));
          } else if (s.t === 'del') {
            const keys = [...store.rows.keys()];
            if (keys.length === 0) continue;
            const k = keys[s.index % keys.length]!;
            const old = store.rows.get(k)!;
            store.rows.delete(k);
            trees.update(Buffer.from(k, 'hex'), digest(old), null);
          } else if (s.t === 'scan') {
            trees.scanStep(store.ports(), chunk);
          } else {
            ring.ranges = rangesOf(s.tokens);
            ring.version++;
            trees.checkRing();
          }
        }
        rebuildAll(trees, store, chunk);
        const fresh = new ShardTrees(DEPTH, ring);
        fresh.checkRing();
        rebuildAll(fresh, store, 1_000);
        expect(trees.all.map((t) => [t.ref.pos, t.done, t.tree.root()])).toEqual(fresh.all.map((t) => [t.ref.pos, t.done, t.tree.root()]));
      }),
      { numRuns: 200 },
    );
  });

  it('keeps a tree across a ring change that leaves its bounds alone, and rebuilds only new bounds', () => {
    const ring = new FakeRing(rangesOf([100, 200]));
    const trees = new ShardTrees(DEPTH, ring);
    expect(trees.checkRing()).toBe(true);
    const store = new FakeStore();
    rebuildAll(trees, store, 10);
    const kept = trees.get(ring.ranges.find((r) => r.endHi === 200)!)!;
    expect(kept.done).toBe(true);
    expect(trees.checkRing()).toBe(false); // same version: nothing to do
    ring.ranges = rangesOf([100, 150, 200]); // (100, 200] splits: (100, 150] and (150, 200] are new
    ring.version++;
    expect(trees.checkRing()).toBe(true);
    expect(trees.rebuilds).toBe(2);
    expect(trees.get(ring.ranges.find((r) => r.endHi === 100)!)!.done).toBe(true); // (200, 100] kept
    expect(trees.all.filter((t) => !t.done).map((t) => t.ref.endHi)).toEqual([150, 200]);
    expect(trees.get(kept.ref)).toBeUndefined(); // its old bounds are gone
  });

  it('places a token in the range (start, end], wrapping, and finds its tree', () => {
    const ring = new FakeRing(rangesOf([100, 200]));
    const trees = new ShardTrees(DEPTH, ring);
    trees.checkRing();
    expect(trees.treeOf(150, 0)!.ref.endHi).toBe(200);
    expect(trees.treeOf(200, 0)!.ref.endHi).toBe(200);
    expect(trees.treeOf(200, 1)!.ref.endHi).toBe(100); // wraps
    expect(trees.treeOf(50, 0)!.ref.endHi).toBe(100);
    expect(inRange({ pos: 0, startHi: 7, startLo: 0, endHi: 7, endLo: 0 }, 1, 2)).toBe(true); // one token: the whole ring
  });
});
