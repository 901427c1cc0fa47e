import { beforeAll, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import xxhashInit from 'xxhash-wasm';
import {
  MerkleTree,
  diffTrees,
  entryHash,
  initMerkle,
  leafIndex,
  type Hash64,
} from '../../src/merkle/index.js';

let xxh64: (b: Uint8Array) => bigint;
let xxh64Seeded: (b: Uint8Array, seed: bigint) => bigint;

beforeAll(async () => {
  await initMerkle();
  await initMerkle(); // idempotent
  const api = await xxhashInit();
  xxh64 = (b) => api.h64Raw(b);
  xxh64Seeded = (b, seed) => api.h64Raw(b, seed);
});

const M64 = (1n << 64n) - 1n;
const big = (h: Hash64): bigint => (BigInt(h.hi) << 32n) | BigInt(h.lo);
const h64 = (x: bigint): Hash64 => ({ hi: Number((x >> 32n) & 0xffffffffn), lo: Number(x & 0xffffffffn) });
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface Range {
  start: Hash64;
  end: Hash64;
}

/** Place a key's token inside (start, end] deterministically (test-only partitioner). */
function tokenFor(key: Uint8Array, r: Range): Hash64 {
  let width = (big(r.end) - big(r.start)) & M64;
  if (width === 0n) width = 1n << 64n;
  return h64((big(r.start) + 1n + (xxh64(key) % width)) & M64);
}

interface Entry {
  key: Uint8Array;
  digest: Hash64;
}

function build(depth: number, r: Range, entries: Iterable<Entry>): MerkleTree {
  const t = new MerkleTree(depth);
  for (const e of entries) t.update(leafIndex(r.start, r.end, tokenFor(e.key, r), depth), e.key, null, e.digest);
  return t;
}

function allLevels(t: MerkleTree): number[][] {
  const out: number[][] = [];
  for (let l = 0; l <= t.depth; l++) out.push([...t.level(l)]);
  return out;
}

const remoteOf =
  (t: MerkleTree) =>
  async (level: number, idx: number[]): Promise<Hash64[]> =>
    t.nodes(level, idx);

const u32 = fc.nat({ max: 0xffffffff });
const hashArb: fc.Arbitrary<Hash64> = fc.record({ hi: u32, lo: u32 });
/** Ranges biased toward the interesting cases: whole ring, wrapping, tiny. */
const rangeArb: fc.Arbitrary<Range> = fc.oneof(
  hashArb.map((s) => ({ start: s, end: s })),
  fc.record({ start: hashArb, end: hashArb }),
  fc
    .tuple(hashArb, fc.bigInt({ min: 1n, max: 1000n }))
    .map(([s, w]) => ({ start: s, end: h64((big(s) + w) & M64) })),
);
const keyArb = fc.uint8Array({ minLength: 1, maxLength: 24 });
const keysArb = (min: number, max: number): fc.Arbitrary<Uint8Array[]> =>
  fc.uniqueArray(keyArb, { minLength: min, maxLength: max, selector: hex });

describe('leafIndex', () => {
  it('is in range, hits both ends, and equals floor(offset·2^d / width)', () => {
    fc.assert(
      fc.property(rangeArb, fc.bigInt({ min: 0n, max: M64 }), fc.integer({ min: 1, max: 20 }), (r, x, d) => {
        let width = (big(r.end) - big(r.start)) & M64;
        if (width === 0n) width = 1n << 64n;
        const off = x % width;
        const tok = h64((big(r.start) + 1n + off) & M64);
        const leaf = leafIndex(r.start, r.end, tok, d);
        expect(leaf).toBe(Number((off << BigInt(d)) / width));
        expect(leaf).toBeGreaterThanOrEqual(0);
        expect(leaf).toBeLessThan(2 ** d);
        expect(leafIndex(r.start, r.end, h64((big(r.start) + 1n) & M64), d)).toBe(0);
        expect(leafIndex(r.start, r.end, r.end, d)).toBe(Number(((width - 1n) << BigInt(d)) / width));
      }),
    );
  });

  it('is monotonic in ring order from start', () => {
    fc.assert(
      fc.property(rangeArb, fc.bigInt({ min: 0n, max: M64 }), fc.bigInt({ min: 0n, max: M64 }), (r, a, b) => {
        let width = (big(r.end) - big(r.start)) & M64;
        if (width === 0n) width = 1n << 64n;
        const [lo, hi] = [a % width, b % width].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
        const at = (o: bigint): number => leafIndex(r.start, r.end, h64((big(r.start) + 1n + o) & M64), 12);
        expect(at(lo!)).toBeLessThanOrEqual(at(hi!));
      }),
    );
  });

  it('splits the whole ring by top bits, and evenly-divisible ranges exactly', () => {
    const z = { hi: 0, lo: 0 };
    // Whole ring from 0: offset = token - 1, so token 0 is the very last position.
    expect(leafIndex(z, z, { hi: 0, lo: 1 }, 4)).toBe(0);
    expect(leafIndex(z, z, { hi: 0x10000000, lo: 0 }, 4)).toBe(0);
    expect(leafIndex(z, z, { hi: 0x10000000, lo: 1 }, 4)).toBe(1);
    expect(leafIndex(z, z, z, 4)).toBe(15);
    expect(leafIndex(z, z, { hi: 0xffffffff, lo: 0xffffffff }, 20)).toBe(2 ** 20 - 1);
    // (10, 10 + 1024] at depth 3: 128 tokens per leaf.
    const s = { hi: 0, lo: 10 };
    const e = { hi: 0, lo: 1034 };
    for (let j = 0; j < 8; j++) {
      expect(leafIndex(s, e, { hi: 0, lo: 11 + 128 * j }, 3)).toBe(j);
      expect(leafIndex(s, e, { hi: 0, lo: 10 + 128 * (j + 1) }, 3)).toBe(j);
    }
  });

  it('handles a range that wraps past 2^64-1', () => {
    const s = { hi: 0xffffffff, lo: 0xfffffff0 };
    const e = { hi: 0, lo: 0x10 }; // width 32
    expect(leafIndex(s, e, { hi: 0xffffffff, lo: 0xfffffff1 }, 1)).toBe(0);
    // Token 0 is offset 15 (last of the first half), token 1 is offset 16.
    expect(leafIndex(s, e, { hi: 0, lo: 0 }, 1)).toBe(0);
    expect(leafIndex(s, e, { hi: 0, lo: 1 }, 1)).toBe(1);
    expect(leafIndex(s, e, e, 1)).toBe(1);
  });

  it('rejects tokens outside the range and bad inputs', () => {
    const s = { hi: 0, lo: 10 };
    const e = { hi: 0, lo: 20 };
    expect(() => leafIndex(s, e, s, 4)).toThrow(RangeError); // start itself is excluded
    expect(() => leafIndex(s, e, { hi: 0, lo: 21 }, 4)).toThrow(RangeError);
    expect(() => leafIndex(s, e, { hi: 0, lo: 15 }, 0)).toThrow(RangeError);
    expect(() => leafIndex(s, e, { hi: 0, lo: 15 }, 21)).toThrow(RangeError);
    expect(() => leafIndex(s, e, { hi: -1, lo: 15 }, 4)).toThrow(RangeError);
    expect(() => leafIndex(s, e, { hi: 2 ** 32, lo: 15 }, 4)).toThrow(RangeError);
  });
});

describe('entryHash', () => {
  it('is pinned (hash changes would make replicas of different versions disagree)', () => {
    const e = entryHash(new TextEncoder().encode('k'), { hi: 1, lo: 2 });
    // Documented encoding: xxh64(seed 0) over 8-byte big-endian digest ++ key.
    expect(e).toEqual(h64(xxh64Seeded(Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 2, 0x6b), 0n)));
    expect(big(e).toString(16).padStart(16, '0')).toBe('8be791c3e9109e3f');
  });

  it('depends on both key and digest, and key length is unambiguous', () => {
    fc.assert(
      fc.property(keyArb, hashArb, hashArb, (k, d1, d2) => {
        fc.pre(d1.hi !== d2.hi || d1.lo !== d2.lo);
        expect(entryHash(k, d1)).not.toEqual(entryHash(k, d2));
        const longer = Uint8Array.of(...k, 0);
        expect(entryHash(k, d1)).not.toEqual(entryHash(longer, d1));
      }),
    );
  });

  it('handles long keys (scratch buffer growth) and subarray keys', () => {
    const long = new Uint8Array(10_000).fill(7);
    const a = entryHash(long, { hi: 0, lo: 1 });
    expect(entryHash(long.slice(), { hi: 0, lo: 1 })).toEqual(a);
    const backing = Uint8Array.of(9, 9, 1, 2, 3, 9);
    expect(entryHash(backing.subarray(2, 5), { hi: 3, lo: 4 })).toEqual(entryHash(Uint8Array.of(1, 2, 3), { hi: 3, lo: 4 }));
  });
});

describe('MerkleTree', () => {
  it('empty tree has the all-zero root at every depth; add+remove returns to it', () => {
    for (const d of [1, 5, 20]) {
      const t = new MerkleTree(d);
      expect(t.rootHex()).toBe('0000000000000000');
      const key = Uint8Array.of(1, 2, 3);
      t.update(0, key, null, { hi: 5, lo: 6 });
      expect(t.rootHex()).not.toBe('0000000000000000');
      t.update(0, key, { hi: 5, lo: 6 }, null);
      expect(t.rootHex()).toBe('0000000000000000');
    }
  });

  /**
   * Independent, naive reference: leaves = XOR of entry hashes, every internal
   * node recomputed from scratch as the XOR of its two children.
   */
  function referenceRoot(depth: number, r: Range, entries: Entry[]): string {
    let level: bigint[] = new Array<bigint>(2 ** depth).fill(0n);
    for (const e of entries) {
      const leaf = leafIndex(r.start, r.end, tokenFor(e.key, r), depth);
      level[leaf] = level[leaf]! ^ big(entryHash(e.key, e.digest));
    }
    while (level.length > 1) {
      const up: bigint[] = [];
      for (let i = 0; i < level.length; i += 2) {
        up.push(level[i]! ^ level[i + 1]!);
      }
      level = up;
    }
    return level[0]!.toString(16).padStart(16, '0');
  }

  it('matches a naive reference implementation', () => {
    fc.assert(
      fc.property(rangeArb, fc.integer({ min: 1, max: 8 }), keysArb(0, 40), fc.nat(), (r, depth, keys, salt) => {
        const entries = keys.map((key, i) => ({ key, digest: { hi: salt >>> 0, lo: i } }));
        expect(build(depth, r, entries).rootHex()).toBe(referenceRoot(depth, r, entries));
      }),
    );
  });

  it('root is pinned for a small fixed tree', () => {
    const r = { start: { hi: 0, lo: 0 }, end: { hi: 0, lo: 0 } };
    const entries = Array.from({ length: 10 }, (_, i) => ({
      key: new TextEncoder().encode(`key-${i}`),
      digest: { hi: i, lo: i * 7 },
    }));
    const root = build(4, r, entries).rootHex();
    expect(root).toBe(referenceRoot(4, r, entries));
    // Changing this literal means trees from different builds no longer compare: bump the format.
    expect(root).toBe('cd020ae1c14b9044');
    // The root is the XOR of every entry hash (internal nodes are XORs: trees combine across shards).
    expect(root).toBe(entries.reduce((acc, e) => acc ^ big(entryHash(e.key, e.digest)), 0n).toString(16).padStart(16, '0'));
  });

  it('insertion order does not matter', () => {
    fc.assert(
      fc.property(
        rangeArb,
        fc.integer({ min: 1, max: 8 }),
        keysArb(0, 60).chain((keys) =>
          fc.tuple(
            fc.array(hashArb, { minLength: keys.length, maxLength: keys.length }),
            fc.shuffledSubarray(keys, { minLength: keys.length, maxLength: keys.length }),
          ).map(([ds, perm]) => ({ keys, ds, perm })),
        ),
        (r, depth, { keys, ds, perm }) => {
          const digestOf = new Map(keys.map((k, i) => [hex(k), ds[i]!] as const));
          const a = build(depth, r, keys.map((k) => ({ key: k, digest: digestOf.get(hex(k))! })));
          const b = build(depth, r, perm.map((k) => ({ key: k, digest: digestOf.get(hex(k))! })));
          expect(allLevels(a)).toEqual(allLevels(b));
        },
      ),
    );
  });

  it('incremental update(old, new) equals rebuilding from scratch, with reads interleaved', () => {
    fc.assert(
      fc.property(
        rangeArb,
        fc.integer({ min: 1, max: 8 }),
        keysArb(1, 12),
        fc.array(
          fc.record({
            k: fc.nat(),
            d: fc.option(fc.record({ hi: fc.nat({ max: 3 }), lo: fc.nat({ max: 3 }) }), { nil: null }),
            read: fc.option(fc.nat(), { nil: null }),
          }),
          { maxLength: 80 },
        ),
        (r, depth, keys, ops) => {
          const t = new MerkleTree(depth);
          const state = new Map<string, Entry>();
          for (const op of ops) {
            const key = keys[op.k % keys.length]!;
            const leaf = leafIndex(r.start, r.end, tokenFor(key, r), depth);
            const cur = state.get(hex(key))?.digest ?? null;
            t.update(leaf, key, cur, op.d);
            if (op.d === null) state.delete(hex(key));
            else state.set(hex(key), { key, digest: op.d });
            // Partial recomputation between writes must not leave stale clean nodes.
            if (op.read !== null) {
              const level = op.read % (depth + 1);
              t.nodes(level, [op.read % 2 ** level]);
            }
          }
          expect(allLevels(t)).toEqual(allLevels(build(depth, r, state.values())));
        },
      ),
    );
  });

  it('level() and nodes() agree; clear() empties', () => {
    const r = { start: { hi: 7, lo: 0 }, end: { hi: 7, lo: 0 } };
    const entries = Array.from({ length: 50 }, (_, i) => ({ key: Uint8Array.of(i, 1), digest: { hi: 0, lo: i } }));
    const t = build(6, r, entries);
    for (let l = 0; l <= 6; l++) {
      const lv = t.level(l);
      expect(lv.length).toBe(2 * 2 ** l);
      const idx = Array.from({ length: 2 ** l }, (_, i) => i);
      expect(t.nodes(l, idx).flatMap((h) => [h.hi, h.lo])).toEqual([...lv]);
    }
    expect(t.level(0)).toEqual(Uint32Array.of(t.root().hi, t.root().lo));
    // level() returns a copy
    t.level(6).fill(0);
    expect(t.rootHex()).not.toBe('0000000000000000');
    t.clear();
    expect(t.rootHex()).toBe('0000000000000000');
    expect([...t.level(6)].every((x) => x === 0)).toBe(true);
  });

  it('serialize/deserialize round-trips and rejects corrupt input', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), keysArb(0, 40), (depth, keys) => {
        const r = { start: { hi: 0, lo: 0 }, end: { hi: 0, lo: 0 } };
        const t = build(depth, r, keys.map((k, i) => ({ key: k, digest: { hi: i, lo: 1 } })));
        const b = t.serialize();
        expect(b.length).toBe(8 + 8 * 2 ** depth);
        const u = MerkleTree.deserialize(b);
        expect(u.depth).toBe(depth);
        expect(allLevels(u)).toEqual(allLevels(t));
        // Also from a view with a non-zero byteOffset.
        const padded = new Uint8Array(b.length + 3);
        padded.set(b, 3);
        expect(MerkleTree.deserialize(padded.subarray(3)).rootHex()).toBe(t.rootHex());
      }),
    );
    const good = new MerkleTree(3).serialize();
    const bad = (f: (b: Uint8Array) => Uint8Array): void => {
      expect(() => MerkleTree.deserialize(f(good.slice()))).toThrow(RangeError);
    };
    bad((b) => b.subarray(0, b.length - 1));
    bad((b) => ((b[0] = 0), b));
    bad((b) => ((b[4] = 1), b)); // format 1: hashed internal nodes, not comparable
    bad((b) => ((b[5] = 0), b));
    bad((b) => ((b[5] = 21), b));
    bad((b) => ((b[5] = 4), b)); // length no longer matches depth
    bad((b) => ((b[6] = 1), b));
    bad(() => new Uint8Array(3));
  });

  it('xorWith: trees of disjoint key sets over the same leaves combine into the tree of their union, at every level', () => {
    fc.assert(
      fc.property(rangeArb, fc.integer({ min: 1, max: 8 }), keysArb(0, 60), fc.integer({ min: 1, max: 5 }), (r, depth, keys, parts) => {
        const entries = keys.map((key, i) => ({ key, digest: { hi: i, lo: 7 * i } }));
        const whole = build(depth, r, entries);
        // Split the entries over `parts` trees (as a node's shards split its keys), then recombine.
        const trees = Array.from({ length: parts }, (_, p) => build(depth, r, entries.filter((_, i) => i % parts === p)));
        const combined = MerkleTree.deserialize(trees[0]!.serialize());
        for (const t of trees.slice(1)) combined.xorWith(t);
        expect(allLevels(combined)).toEqual(allLevels(whole));
        // Node hashes XOR across the parts too: what the repair service does with shard answers.
        for (let level = 0; level <= depth; level++) {
          const idx = Array.from({ length: 2 ** level }, (_, i) => i);
          const xored = trees.map((t) => t.nodes(level, idx)).reduce((acc, hs) => acc.map((h, i) => ({ hi: (h.hi ^ hs[i]!.hi) >>> 0, lo: (h.lo ^ hs[i]!.lo) >>> 0 })));
          expect(xored).toEqual(whole.nodes(level, idx));
        }
      }),
      { numRuns: 50 },
    );
    expect(() => new MerkleTree(3).xorWith(new MerkleTree(4))).toThrow(RangeError);
  });

  it('validates arguments', () => {
    expect(() => new MerkleTree(0)).toThrow(RangeError);
    expect(() => new MerkleTree(21)).toThrow(RangeError);
    expect(() => new MerkleTree(2.5)).toThrow(RangeError);
    const t = new MerkleTree(3);
    expect(() => t.xorLeaf(8, { hi: 0, lo: 0 })).toThrow(RangeError);
    expect(() => t.xorLeaf(-1, { hi: 0, lo: 0 })).toThrow(RangeError);
    expect(() => t.xorLeaf(0, { hi: 1.5, lo: 0 })).toThrow(RangeError);
    expect(() => t.level(4)).toThrow(RangeError);
    expect(() => t.nodes(2, [4])).toThrow(RangeError);
  });

  it('hashing before initMerkle() fails loudly', async () => {
    vi.resetModules();
    const fresh = await import('../../src/merkle/tree.js');
    expect(() => fresh.entryHash(Uint8Array.of(1), { hi: 0, lo: 0 })).toThrow(/initMerkle/);
    // Internal nodes need no hashing (XORs), so only entry hashing needs the module.
    const t = new fresh.MerkleTree(2);
    expect(() => t.update(1, Uint8Array.of(1), null, { hi: 1, lo: 1 })).toThrow(/initMerkle/);
    await fresh.initMerkle();
    t.update(1, Uint8Array.of(1), null, { hi: 1, lo: 1 });
    expect(t.rootHex()).toMatch(/^[0-9a-f]{16}$/);
  });

  // Its speed is measured by `npm run bench:micro -- merkle` (bench/micro/merkle.ts), not asserted here.
  it('depth 20 with 100k writes: the root does not depend on the order of the updates', () => {
    const leafOf = (i: number): number => (i * 2654435761) >>> 12;
    const keyOf = (i: number): Uint8Array => Uint8Array.of(i & 255, (i >> 8) & 255, i >> 16);
    const forward = new MerkleTree(20);
    const backward = new MerkleTree(20);
    for (let i = 0; i < 100_000; i++) forward.update(leafOf(i), keyOf(i), null, { hi: 0, lo: i });
    for (let i = 100_000 - 1; i >= 0; i--) backward.update(leafOf(i), keyOf(i), null, { hi: 0, lo: i });
    expect(forward.rootHex()).toBe(backward.rootHex());
    // Removing every entry again leaves the empty tree's root.
    for (let i = 0; i < 100_000; i++) backward.update(leafOf(i), keyOf(i), { hi: 0, lo: i }, null);
    expect(backward.rootHex()).toBe(new MerkleTree(20).rootHex());
  });
});

describe('diffTrees', () => {
  /**
   * Base set plus exactly k differing keys: the first k keys are each either
   * added, removed, or re-versioned in the second set; the rest are identical.
   */
  const scenarioArb = fc.integer({ min: 0, max: 20 }).chain((k) =>
    fc.record({
      k: fc.constant(k),
      range: rangeArb,
      depth: fc.integer({ min: 1, max: 10 }),
      keys: keysArb(k, k + 60),
      seed: fc.array(fc.tuple(fc.boolean(), hashArb, hashArb, fc.boolean()), { minLength: k + 60, maxLength: k + 60 }),
    }),
  );

  it('finds exactly the leaves of the k differing keys (k = 0..20)', async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async ({ k, range, depth, keys, seed }) => {
        const a: Entry[] = [];
        const b: Entry[] = [];
        const expected = new Set<number>();
        keys.forEach((key, i) => {
          const [present, d1, d2raw, removeNotChange] = seed[i]!;
          // Guarantee d2 != d1 so "change" is really a difference.
          const d2 = d2raw.hi === d1.hi && d2raw.lo === d1.lo ? { hi: d1.hi, lo: (d1.lo + 1) >>> 0 } : d2raw;
          if (i < k) {
            expected.add(leafIndex(range.start, range.end, tokenFor(key, range), depth));
            if (!present) b.push({ key, digest: d2 }); // added
            else if (removeNotChange) a.push({ key, digest: d1 }); // removed
            else {
              a.push({ key, digest: d1 }); // re-versioned
              b.push({ key, digest: d2 });
            }
          } else if (present) {
            a.push({ key, digest: d1 });
            b.push({ key, digest: d1 });
          }
        });
        const ta = build(depth, range, a);
        const tb = build(depth, range, b);
        const want = [...expected].sort((x, y) => x - y);
        const ab = await diffTrees(ta, remoteOf(tb));
        const ba = await diffTrees(tb, remoteOf(ta));
        expect([...ab.leaves].sort((x, y) => x - y)).toEqual(want);
        expect([...ba.leaves].sort((x, y) => x - y)).toEqual(want);
        if (k === 0) expect(ab.hashesCompared).toBe(1);
        // Never more than 2 hashes per differing leaf per level (plus the root).
        expect(ab.hashesCompared).toBeLessThanOrEqual(1 + 2 * depth * Math.max(1, want.length));
      }),
      { numRuns: 150 },
    );
  });

  it('identical sets compare only the root', async () => {
    const r = { start: { hi: 1, lo: 2 }, end: { hi: 0x90000000, lo: 0 } };
    const entries = Array.from({ length: 200 }, (_, i) => ({ key: Uint8Array.of(i, i >> 8), digest: { hi: i, lo: 0 } }));
    const calls: number[] = [];
    const res = await diffTrees(build(10, r, entries), async (level, idx) => {
      calls.push(level);
      return build(10, r, [...entries].reverse()).nodes(level, idx);
    });
    expect(res).toEqual({ leaves: [], hashesCompared: 1 });
    expect(calls).toEqual([0]);
  });

  it('walks level by level, one remote call per level', async () => {
    const r = { start: { hi: 0, lo: 0 }, end: { hi: 0, lo: 0 } };
    const a = build(8, r, [{ key: Uint8Array.of(1), digest: { hi: 0, lo: 1 } }]);
    const b = new MerkleTree(8);
    const calls: [number, number][] = [];
    const res = await diffTrees(a, async (level, idx) => {
      calls.push([level, idx.length]);
      return b.nodes(level, idx);
    });
    expect(res.leaves).toHaveLength(1);
    expect(calls).toEqual([[0, 1], ...Array.from({ length: 8 }, (_, i) => [i + 1, 2] as [number, number])]);
    expect(res.hashesCompared).toBe(17);
  });

  it('rejects a remote that answers with the wrong shape', async () => {
    const a = build(3, { start: { hi: 0, lo: 0 }, end: { hi: 0, lo: 0 } }, [
      { key: Uint8Array.of(1), digest: { hi: 0, lo: 1 } },
    ]);
    await expect(diffTrees(a, async () => [])).rejects.toThrow(/remote returned 0 hashes/);
    await expect(diffTrees(a, async () => [{ hi: -1, lo: 0 }])).rejects.toThrow(RangeError);
  });
});
