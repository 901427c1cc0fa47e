import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { leafIndex, RangeLeafIndex, type Hash64 } from '../../src/merkle/index.js';

const M64 = (1n << 64n) - 1n;
const big = (h: Hash64): bigint => (BigInt(h.hi) << 32n) | BigInt(h.lo);
const h64 = (x: bigint): Hash64 => ({ hi: Number((x >> 32n) & 0xffffffffn), lo: Number(x & 0xffffffffn) });

const u32 = fc.nat({ max: 0xffffffff });
const hashArb: fc.Arbitrary<Hash64> = fc.record({ hi: u32, lo: u32 });
/** Whole ring, any range, tiny ranges, and ranges one short of the whole ring. */
const rangeArb = fc.oneof(
  hashArb.map((s) => ({ start: s, end: s })),
  fc.record({ start: hashArb, end: hashArb }),
  fc.tuple(hashArb, fc.bigInt({ min: 1n, max: 1000n })).map(([s, w]) => ({ start: s, end: h64((big(s) + w) & M64) })),
  fc.tuple(hashArb, fc.bigInt({ min: 1n, max: 1000n })).map(([s, w]) => ({ start: s, end: h64((big(s) - w) & M64) })),
);
/** Offsets biased toward both ends of a range and toward leaf boundaries. */
const offsetArb = fc.oneof(fc.bigInt({ min: 0n, max: M64 }), fc.bigInt({ min: 0n, max: 2000n }), fc.bigInt({ min: M64 - 2000n, max: M64 }));

describe('RangeLeafIndex', () => {
  it('equals leafIndex for every token in the range, at every depth', () => {
    fc.assert(
      fc.property(rangeArb, offsetArb, fc.integer({ min: 1, max: 20 }), (r, x, d) => {
        let width = (big(r.end) - big(r.start)) & M64;
        if (width === 0n) width = 1n << 64n;
        const tok = h64((big(r.start) + 1n + (x % width)) & M64);
        const idx = new RangeLeafIndex(r.start, r.end, d);
        expect(idx.leafOf(tok.hi, tok.lo)).toBe(leafIndex(r.start, r.end, tok, d));
        expect(idx.leafOf(r.end.hi, r.end.lo)).toBe(leafIndex(r.start, r.end, r.end, d));
      }),
      { numRuns: 5000 },
    );
  });

  it('equals leafIndex on both sides of every leaf boundary', () => {
    fc.assert(
      fc.property(rangeArb, fc.integer({ min: 1, max: 20 }), fc.nat(), (r, d, k0) => {
        let width = (big(r.end) - big(r.start)) & M64;
        if (width === 0n) width = 1n << 64n;
        const idx = new RangeLeafIndex(r.start, r.end, d);
        const k = BigInt(k0 % 2 ** d);
        // The first offset of leaf k is ceil(k·w / 2^d); test it and its neighbours.
        const first = (k * width + (1n << BigInt(d)) - 1n) >> BigInt(d);
        for (const o of [first - 1n, first, first + 1n]) {
          if (o < 0n || o >= width) continue;
          const tok = h64((big(r.start) + 1n + o) & M64);
          expect(idx.leafOf(tok.hi, tok.lo)).toBe(leafIndex(r.start, r.end, tok, d));
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses a token outside the range, as leafIndex does', () => {
    fc.assert(
      fc.property(rangeArb, hashArb, fc.integer({ min: 1, max: 20 }), (r, tok, d) => {
        const idx = new RangeLeafIndex(r.start, r.end, d);
        let want: number | 'throws';
        try {
          want = leafIndex(r.start, r.end, tok, d);
        } catch (e) {
          expect(e).toBeInstanceOf(RangeError);
          want = 'throws';
        }
        if (want === 'throws') expect(() => idx.leafOf(tok.hi, tok.lo)).toThrow(RangeError);
        else expect(idx.leafOf(tok.hi, tok.lo)).toBe(want);
      }),
      { numRuns: 3000 },
    );
  });

  it('handles the edges: whole ring, start itself, a one-token range, bad input', () => {
    const z = { hi: 0, lo: 0 };
    const whole = new RangeLeafIndex(z, z, 4);
    expect(whole.leafOf(0, 1)).toBe(0);
    expect(whole.leafOf(0, 0)).toBe(15); // token 0 is the last position of a ring starting at 0
    expect(whole.leafOf(0xffffffff, 0xffffffff)).toBe(15);
    expect(whole.leafOf(0x10000000, 0)).toBe(0);
    expect(whole.leafOf(0x10000000, 1)).toBe(1);
    const one = new RangeLeafIndex({ hi: 5, lo: 0xffffffff }, { hi: 6, lo: 0 }, 20);
    expect(one.leafOf(6, 0)).toBe(0);
    expect(() => one.leafOf(5, 0xffffffff)).toThrow(RangeError); // start is outside (start, end]
    expect(() => one.leafOf(6, 1)).toThrow(RangeError);
    expect(() => new RangeLeafIndex(z, z, 0)).toThrow(RangeError);
    expect(() => new RangeLeafIndex(z, z, 21)).toThrow(RangeError);
    expect(() => new RangeLeafIndex({ hi: -1, lo: 0 }, z, 4)).toThrow(RangeError);
    expect(() => whole.leafOf(2 ** 32, 0)).toThrow(RangeError);
    expect(() => whole.leafOf(0, 1.5)).toThrow(RangeError);
  });
});
