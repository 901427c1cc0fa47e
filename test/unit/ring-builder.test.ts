import { beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { compareTokens, initHasher, tokenFromBigInt, tokenOf, tokenToBigInt, type Token } from '../../src/ring/hash.js';
import { buildRing, positionOf, type RingLayout, type RingMember } from '../../src/ring/builder.js';
import { allocateTokens, ownershipFractions, randomTokens } from '../../src/ring/tokens.js';

beforeAll(async () => {
  await initHasher();
});

/** Seeded PRNG (mulberry32) so allocation tests are reproducible. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TWO64 = 1n << 64n;

function member(id: string, tokens: Token[], extra: Partial<RingMember> = {}): RingMember {
  return { id, tokens, status: 'normal', ...extra };
}

/** Is token t inside the range owned by position pos, i.e. (tokens[pos-1], tokens[pos]] with wrap? */
function inRange(layout: RingLayout, pos: number, t: Token): boolean {
  const n = layout.tokens.length;
  if (n === 1) return true;
  const end = layout.tokens[pos]!;
  const prev = layout.tokens[(pos + n - 1) % n]!;
  if (pos === 0) return compareTokens(t, end) <= 0 || compareTokens(t, prev) > 0;
  return compareTokens(t, prev) > 0 && compareTokens(t, end) <= 0;
}

// ---- arbitraries ---------------------------------------------------------------------------------

const anyToken = fc.bigInt({ min: 0n, max: TWO64 - 1n }).map(tokenFromBigInt);
// A tiny pool of tokens so distinct members often collide on a token (exercises the duplicate rule).
const pooledToken = fc.constantFrom(0n, 1n, 2n ** 32n, 2n ** 63n, TWO64 - 1n).map(tokenFromBigInt);
const tokenArb = fc.oneof({ weight: 4, arbitrary: anyToken }, { weight: 1, arbitrary: pooledToken });
const statusArb = fc.constantFrom<RingMember['status']>('normal', 'normal', 'normal', 'leaving', 'joining', 'left');
const membersArb = (withRacks: boolean): fc.Arbitrary<RingMember[]> =>
  fc
    .uniqueArray(fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/), { minLength: 0, maxLength: 9 })
    .chain((ids) =>
      fc.tuple(
        ...ids.map((id) =>
          fc.record({
            id: fc.constant(id),
            tokens: fc.array(tokenArb, { minLength: 0, maxLength: 8 }),
            status: statusArb,
            rack: withRacks ? fc.constantFrom('r1', 'r2', 'r3') : fc.constant(undefined),
          }),
        ),
      ),
    )
    .map((ms) => ms.map((m) => (m.rack === undefined ? { id: m.id, tokens: m.tokens, status: m.status } : m)));

function shuffled<T>(xs: T[], rand: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

// ---- tokens.ts -----------------------------------------------------------------------------------

describe('token allocation', () => {
  it('first node: vnodes evenly spaced from a random offset', () => {
    const toks = allocateTokens([], 16, seeded(1)).map(tokenToBigInt);
    expect(toks).toHaveLength(16);
    const step = TWO64 / 16n;
    expect(toks[0]! < step).toBe(true);
    for (let i = 1; i < 16; i++) expect(toks[i]! - toks[i - 1]!).toBe(step);
    expect(allocateTokens([], 16, seeded(2))).not.toEqual(allocateTokens([], 16, seeded(1)));
  });

  it('later nodes: sorted, distinct from existing ones and each other; concurrent joiners differ', () => {
    const rand = seeded(7);
    const existing: Token[][] = [];
    for (let n = 0; n < 12; n++) {
      const toks = allocateTokens(existing, 16, rand);
      expect(toks).toHaveLength(16);
      for (let i = 1; i < toks.length; i++) expect(compareTokens(toks[i - 1]!, toks[i]!)).toBe(-1);
      const taken = new Set(existing.flat().map((t) => tokenToBigInt(t)));
      for (const t of toks) expect(taken.has(tokenToBigInt(t))).toBe(false);
      existing.push(toks);
    }
    // Two nodes joining from the same view with different randomness must not pick the same tokens.
    const a = new Set(allocateTokens(existing, 16, seeded(100)).map(tokenToBigInt));
    const b = allocateTokens(existing, 16, seeded(101)).map(tokenToBigInt);
    expect(b.filter((t) => a.has(t))).toEqual([]);
  });

  it('validates its arguments', () => {
    expect(() => allocateTokens([], 0)).toThrow(/vnodes/);
    expect(() => allocateTokens([[{ hi: -1, lo: 0 }]], 4)).toThrow(/unsigned/);
    expect(() => allocateTokens([], 4, () => 1)).toThrow(/\[0, 1\)/);
  });

  it('ownershipFractions sums to 1 and handles 0 and 1 tokens', () => {
    expect(ownershipFractions(buildRing([], { maxReplicas: 3 })).size).toBe(0);
    const one = ownershipFractions(buildRing([member('a', [tokenFromBigInt(5n)])], { maxReplicas: 3 }));
    expect([...one]).toEqual([['a', 1]]);
    const two = ownershipFractions(buildRing([member('a', [tokenFromBigInt(0n)]), member('b', [tokenFromBigInt(TWO64 / 4n)])], { maxReplicas: 3 }));
    expect(two.get('b')).toBe(0.25); // b owns (0, 2^62]
    expect(two.get('a')).toBe(0.75); // a owns (2^62, 2^64-1] and the wrap to 0
  });

  it('allocateTokens spreads ownership better than random tokens (16 vnodes, 3..10 nodes)', () => {
    const VNODES = 16;
    const SEEDS = 12;
    type Stats = { ratio: number; cv: number };
    const measure = (alloc: (existing: Token[][], rand: () => number) => Token[]): Stats[] => {
      const sums: Stats[] = [];
      for (let seed = 1; seed <= SEEDS; seed++) {
        const rand = seeded(seed * 7919);
        const existing: Token[][] = [];
        for (let n = 1; n <= 10; n++) {
          existing.push(alloc(existing, rand));
          if (n < 3) continue;
          const layout = buildRing(
            existing.map((t, i) => member(`n${i}`, t)),
            { maxReplicas: 3 },
          );
          const f = [...ownershipFractions(layout).values()];
          expect(f).toHaveLength(n);
          expect(Math.abs(f.reduce((x, y) => x + y, 0) - 1)).toBeLessThan(1e-9);
          const mean = 1 / n;
          const sd = Math.sqrt(f.reduce((s, x) => s + (x - mean) ** 2, 0) / n);
          const s = (sums[n] ??= { ratio: 0, cv: 0 });
          s.ratio += Math.max(...f) / Math.min(...f) / SEEDS;
          s.cv += sd / mean / SEEDS;
        }
      }
      return sums;
    };
    const alloc = measure((e, r) => allocateTokens(e, VNODES, r));
    const rnd = measure((_e, r) => randomTokens(VNODES, r));
    const rows: string[] = [];
    for (let n = 3; n <= 10; n++) {
      rows.push(
        `  ${String(n).padStart(2)} nodes: max/min alloc ${alloc[n]!.ratio.toFixed(3)} random ${rnd[n]!.ratio.toFixed(3)} | ` +
          `rel std-dev alloc ${(alloc[n]!.cv * 100).toFixed(1)}% random ${(rnd[n]!.cv * 100).toFixed(1)}%`,
      );
      expect(alloc[n]!.ratio).toBeLessThan(rnd[n]!.ratio);
      expect(alloc[n]!.cv).toBeLessThan(rnd[n]!.cv);
    }
    console.log(`ownership spread, ${VNODES} vnodes/node, mean over ${SEEDS} seeds:\n${rows.join('\n')}`);
  });
});

// ---- builder.ts ----------------------------------------------------------------------------------

describe('buildRing', () => {
  it('empty ring is a valid layout', () => {
    for (const members of [[], [member('j', [tokenFromBigInt(1n)], { status: 'joining' }), member('l', [tokenFromBigInt(2n)], { status: 'left' })]]) {
      const l = buildRing(members, { maxReplicas: 3 });
      expect(l.nodeIds).toEqual([]);
      expect(l.tokens).toEqual([]);
      expect(l.replicas).toBe(0);
      expect(l.pref.length).toBe(0);
      expect(positionOf(l, tokenOf('x'))).toBe(0);
    }
    // Joining/left members don't change the layout at all.
    expect(buildRing([member('j', [tokenFromBigInt(1n)], { status: 'joining' })], { maxReplicas: 3 }).digest).toBe(buildRing([], { maxReplicas: 3 }).digest);
  });

  it('only normal and leaving members own tokens; R = min(maxReplicas, owners)', () => {
    const l = buildRing(
      [
        member('c', [tokenFromBigInt(30n)], { status: 'leaving' }),
        member('a', [tokenFromBigInt(10n)]),
        member('b', [tokenFromBigInt(20n)], { status: 'joining' }),
      ],
      { maxReplicas: 3 },
    );
    expect(l.nodeIds).toEqual(['a', 'c']);
    expect(l.tokens.map(tokenToBigInt)).toEqual([10n, 30n]);
    expect([...l.owner]).toEqual([0, 1]);
    expect(l.replicas).toBe(2);
    expect([...l.pref]).toEqual([0, 1, 1, 0]);
  });

  it('a duplicate token is kept by the lower node id', () => {
    const t = tokenFromBigInt(42n);
    const l = buildRing([member('z', [t, tokenFromBigInt(7n)]), member('m', [t])], { maxReplicas: 2 });
    expect(l.nodeIds).toEqual(['m', 'z']);
    expect(l.tokens.map(tokenToBigInt)).toEqual([7n, 42n]);
    expect([...l.owner]).toEqual([1, 0]);
  });

  it('rejects bad input', () => {
    expect(() => buildRing([member('a', []), member('a', [])], { maxReplicas: 3 })).toThrow(/twice/);
    expect(() => buildRing([member('a', [{ hi: 1, lo: -2 }])], { maxReplicas: 3 })).toThrow(/unsigned/);
    expect(() => buildRing([], { maxReplicas: 0 })).toThrow(/maxReplicas/);
    expect(() => buildRing([{ ...member('a', []), status: 'gone' as never }], { maxReplicas: 3 })).toThrow(/status/);
  });

  it('racks: replicas take unused racks first, then fill (NetworkTopologyStrategy)', () => {
    // Clockwise order of owners: a1(r1) a2(r1) b1(r2) a3(r1) c1(r3)
    const ms = [
      member('a1', [tokenFromBigInt(10n)], { rack: 'r1' }),
      member('a2', [tokenFromBigInt(20n)], { rack: 'r1' }),
      member('b1', [tokenFromBigInt(30n)], { rack: 'r2' }),
      member('a3', [tokenFromBigInt(40n)], { rack: 'r1' }),
      member('c1', [tokenFromBigInt(50n)], { rack: 'r3' }),
    ];
    const l = buildRing(ms, { maxReplicas: 4 });
    const ids = (pos: number): string[] => [...l.pref.subarray(pos * 4, pos * 4 + 4)].map((i) => l.nodeIds[i]!);
    // From a1: a1, (skip a2), b1, (skip a3), c1 -> all racks used -> skipped a2 fills.
    expect(ids(0)).toEqual(['a1', 'b1', 'c1', 'a2']);
    // From b1: b1, a3, c1, then a1 (skipped), a2.
    expect(ids(2)).toEqual(['b1', 'a3', 'c1', 'a1']);
    // Without racks it is the plain clockwise walk.
    const plain = buildRing(ms.map(({ rack: _rack, ...m }) => m), { maxReplicas: 4 });
    expect([...plain.pref.subarray(0, 4)].map((i) => plain.nodeIds[i])).toEqual(['a1', 'a2', 'b1', 'a3']);
    expect(plain.digest).not.toBe(l.digest);
  });

  it('digest covers racks (shard counts are not part of the layout: placement is per node)', () => {
    const base = [member('a', [tokenFromBigInt(1n)]), member('b', [tokenFromBigInt(2n)])];
    const d = buildRing(base, { maxReplicas: 2 }).digest;
    expect(d).toMatch(/^[0-9a-f]{16}$/);
    expect(buildRing([base[0]!, { ...base[1]!, rack: 'x' }], { maxReplicas: 2 }).digest).not.toBe(d);
    expect(buildRing([base[0]!, { ...base[1]!, status: 'leaving' }], { maxReplicas: 2 }).digest).toBe(d);
  });

  it('property: independent of member order (layout and digest)', () => {
    fc.assert(
      fc.property(membersArb(true), fc.integer({ min: 1, max: 5 }), fc.integer(), (ms, maxReplicas, seed) => {
        const a = buildRing(ms, { maxReplicas });
        const b = buildRing(
          shuffled(ms, seeded(seed)).map((m) => ({ ...m, tokens: shuffled(m.tokens, seeded(seed + 1)) })),
          { maxReplicas },
        );
        expect(b).toEqual(a);
      }),
      { numRuns: 150 },
    );
  });

  it('property: pref lists, owners and key positions are consistent', () => {
    fc.assert(
      fc.property(membersArb(false).chain((ms) => fc.tuple(fc.constant(ms), fc.boolean())), fc.integer({ min: 1, max: 5 }), fc.array(anyToken, { maxLength: 20 }), ([ms0, racks], maxReplicas, keys) => {
        const ms = racks ? ms0.map((m, i) => ({ ...m, rack: `r${i % 3}` })) : ms0;
        const l = buildRing(ms, { maxReplicas });
        const n = l.tokens.length;
        const R = l.replicas;
        const owning = ms.filter((m) => m.status === 'normal' || m.status === 'leaving');
        const owners = new Set(l.owner);
        expect(R).toBe(Math.min(maxReplicas, owners.size));
        expect(l.nodeIds).toEqual(owning.map((m) => m.id).sort());
        for (let i = 0; i < n; i++) {
          if (i > 0) expect(compareTokens(l.tokens[i - 1]!, l.tokens[i]!)).toBe(-1);
          const list = [...l.pref.subarray(i * R, i * R + R)];
          expect(new Set(list).size).toBe(R);
          expect(list[0]).toBe(l.owner[i]);
          for (const node of list) expect(owners.has(node)).toBe(true);
          // The owner really holds that token.
          const holder = owning.find((m) => m.id === l.nodeIds[l.owner[i]!])!;
          expect(holder.tokens.some((t) => compareTokens(t, l.tokens[i]!) === 0)).toBe(true);
        }
        for (const t of [...keys, ...l.tokens]) {
          const pos = positionOf(l, t);
          if (n === 0) expect(pos).toBe(0);
          else expect(inRange(l, pos, t)).toBe(true);
        }
      }),
      { numRuns: 150 },
    );
  });

  it('positionOf: boundaries and wrap', () => {
    const l = buildRing([member('a', [tokenFromBigInt(100n)]), member('b', [tokenFromBigInt(200n)])], { maxReplicas: 1 });
    expect(positionOf(l, tokenFromBigInt(0n))).toBe(0);
    expect(positionOf(l, tokenFromBigInt(100n))).toBe(0);
    expect(positionOf(l, tokenFromBigInt(101n))).toBe(1);
    expect(positionOf(l, tokenFromBigInt(200n))).toBe(1);
    expect(positionOf(l, tokenFromBigInt(201n))).toBe(0);
    expect(positionOf(l, tokenFromBigInt(TWO64 - 1n))).toBe(0);
  });

  // Its speed is measured by `npm run bench:micro -- merkle` (bench/micro/merkle.ts), not asserted here.
  it('builds a full-size ring (256 nodes x 16 vnodes, R=5, racks) with rack-distinct replicas', () => {
    const rand = seeded(3);
    const existing: Token[][] = [];
    for (let i = 0; i < 256; i++) existing.push(randomTokens(16, rand));
    const ms = existing.map((t, i) => member(`node-${String(i).padStart(3, '0')}`, t, { rack: `r${i % 3}` }));
    const l = buildRing(ms, { maxReplicas: 5 });
    expect(l.tokens.length).toBe(4096);
    // With 3 racks, the first 3 replicas of every position are on 3 different racks.
    for (let i = 0; i < l.tokens.length; i++) {
      const racks = new Set([0, 1, 2].map((k) => ms.find((m) => m.id === l.nodeIds[l.pref[i * 5 + k]!])!.rack));
      if (racks.size !== 3) throw new Error(`position ${i}: replicas share a rack`);
    }
  });
});
