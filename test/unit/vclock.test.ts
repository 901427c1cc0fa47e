import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  vcCompare,
  vcCovers,
  vcDescends,
  vcGet,
  vcMerge,
  vcPrune,
  vcValidate,
  type VClock,
  type VClockEntry,
} from '../../src/versions/vclock.js';

const NODES = ['a', 'b', 'c', 'd', 'e'];

// Small counters and few nodes so equal/before/after/concurrent all occur often.
const clockArb: fc.Arbitrary<VClock> = fc
  .dictionary(fc.constantFrom(...NODES), fc.integer({ min: 1, max: 6 }), { maxKeys: NODES.length })
  .map((d) => Object.entries(d).sort(([x], [y]) => (x < y ? -1 : 1)) as VClockEntry[]);

/** Reference semantics: clocks as total functions node → counter. */
function asMap(c: VClock): (n: string) => number {
  const m = new Map(c);
  return (n) => m.get(n) ?? 0;
}

function refLe(a: VClock, b: VClock): boolean {
  const fa = asMap(a);
  const fb = asMap(b);
  return NODES.every((n) => fa(n) <= fb(n));
}

const mirror = { equal: 'equal', before: 'after', after: 'before', concurrent: 'concurrent' } as const;

describe('vcCompare / vcDescends', () => {
  it('agrees with the pointwise reference order', () => {
    fc.assert(
      fc.property(clockArb, clockArb, (a, b) => {
        const le = refLe(a, b);
        const ge = refLe(b, a);
        const expected = le && ge ? 'equal' : le ? 'before' : ge ? 'after' : 'concurrent';
        expect(vcCompare(a, b)).toBe(expected);
        expect(vcCompare(b, a)).toBe(mirror[expected]);
        expect(vcDescends(a, b)).toBe(ge);
      }),
    );
  });

  it('handles the empty clock', () => {
    expect(vcCompare([], [])).toBe('equal');
    expect(vcCompare([], [['a', 1]])).toBe('before');
    expect(vcDescends([['a', 1]], [])).toBe(true);
    expect(vcDescends([], [['a', 1]])).toBe(false);
  });
});

describe('vcMerge', () => {
  it('is the pointwise max, commutative, associative, idempotent', () => {
    fc.assert(
      fc.property(clockArb, clockArb, clockArb, (a, b, c) => {
        const m = vcMerge(a, b);
        expect(vcValidate(m)).toBe(m);
        const fa = asMap(a);
        const fb = asMap(b);
        for (const n of NODES) expect(vcGet(m, n)).toBe(Math.max(fa(n), fb(n)));
        expect(vcMerge(b, a)).toEqual(m);
        expect(vcMerge(vcMerge(a, b), c)).toEqual(vcMerge(a, vcMerge(b, c)));
        expect(vcMerge(a, a)).toEqual(a);
        expect(vcDescends(m, a) && vcDescends(m, b)).toBe(true);
      }),
    );
  });

  it('returns the descending input itself (no allocation on the common path)', () => {
    const big: VClock = [['a', 3], ['b', 2]];
    const small: VClock = [['a', 1]];
    expect(vcMerge(big, small)).toBe(big);
    expect(vcMerge(small, big)).toBe(big);
  });
});

describe('vcGet / vcCovers', () => {
  it('reads counters, 0 when absent', () => {
    const c: VClock = [['b', 4], ['d', 9]];
    expect(vcGet(c, 'a')).toBe(0);
    expect(vcGet(c, 'b')).toBe(4);
    expect(vcGet(c, 'c')).toBe(0);
    expect(vcGet(c, 'd')).toBe(9);
    expect(vcGet(c, 'z')).toBe(0);
    expect(vcCovers(c, 'd', 9)).toBe(true);
    expect(vcCovers(c, 'd', 10)).toBe(false);
    expect(vcCovers(c, 'a', 1)).toBe(false);
  });
});

describe('vcPrune', () => {
  it('keeps at most maxEntries, drops the smallest counters, never drops `keep`', () => {
    fc.assert(
      fc.property(clockArb, fc.integer({ min: 1, max: 6 }), fc.option(fc.constantFrom(...NODES)), (c, max, keepOpt) => {
        const keep = keepOpt ?? undefined;
        const p = vcPrune(c, max, keep);
        vcValidate(p);
        expect(p.length).toBe(Math.min(c.length, max));
        // A subset of the original entries.
        for (const e of p) expect(vcGet(c, e[0])).toBe(e[1]);
        if (keep !== undefined && vcGet(c, keep) > 0) expect(vcGet(p, keep)).toBe(vcGet(c, keep));
        // Every dropped entry is no newer than every kept entry (except the pinned one).
        const dropped = c.filter((e) => vcGet(p, e[0]) === 0);
        const keptCounters = p.filter((e) => e[0] !== keep).map((e) => e[1]);
        for (const d of dropped) for (const k of keptCounters) expect(d[1]).toBeLessThanOrEqual(k);
        // Pruning only ever covers less.
        expect(vcDescends(c, p)).toBe(true);
      }),
    );
  });

  it('is a no-op under the bound and rejects a non-positive bound', () => {
    const c: VClock = [['a', 1]];
    expect(vcPrune(c, 1)).toBe(c);
    expect(() => vcPrune(c, 0)).toThrow(/maxEntries/);
  });

  it('prunes the oldest, with node id as the deterministic tiebreak', () => {
    expect(vcPrune([['a', 5], ['b', 1], ['c', 1], ['d', 7]], 2)).toEqual([['a', 5], ['d', 7]]);
    expect(vcPrune([['a', 1], ['b', 1], ['c', 1]], 2)).toEqual([['b', 1], ['c', 1]]);
    expect(vcPrune([['a', 1], ['b', 9], ['c', 8]], 1, 'a')).toEqual([['a', 1]]);
  });
});

describe('vcValidate', () => {
  it('accepts every well-formed clock', () => {
    fc.assert(
      fc.property(clockArb, (c) => {
        expect(vcValidate(c)).toBe(c);
      }),
    );
  });

  it.each<[string, unknown]>([
    ['not an array', { a: 1 }],
    ['null', null],
    ['entry not a pair', [['a', 1, 2]]],
    ['entry not an array', ['a']],
    ['empty node id', [['', 1]]],
    ['numeric node id', [[1, 1]]],
    ['zero counter', [['a', 0]]],
    ['negative counter', [['a', -1]]],
    ['fractional counter', [['a', 1.5]]],
    ['unsafe counter', [['a', 2 ** 53]]],
    ['string counter', [['a', '1']]],
    ['unsorted', [['b', 1], ['a', 1]]],
    ['duplicate node', [['a', 1], ['a', 2]]],
  ])('rejects %s', (_name, bad) => {
    expect(() => vcValidate(bad)).toThrow(/invalid vector clock/);
  });
});
