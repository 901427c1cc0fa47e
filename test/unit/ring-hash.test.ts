import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  compareTokens,
  initHasher,
  tokenFromBigInt,
  tokenFromHex,
  tokenInto,
  tokenOf,
  tokenToBigInt,
  tokenToHex,
  xxh64Hex,
  xxh64Pair,
  type Token,
} from '../../src/ring/hash.js';

const u64 = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
// Mix in boundary values: full-range random words rarely hit equal hi words or 0 / 2^32-1.
const word = fc.oneof(fc.constantFrom(0, 1, 0x7fffffff, 0x80000000, 0xffffffff), fc.bigInt({ min: 0n, max: 0xffffffffn }).map(Number));
const token: fc.Arbitrary<Token> = fc.record({ hi: word, lo: word });
// Any code points incl. lone surrogates (encoded as U+FFFD by both paths). Built by hand because
// fc.string({ unit: 'binary' }) spends ~0.7 s building its Unicode tables on first use.
const codePoint = fc.oneof(fc.integer({ min: 0, max: 0x7f }), fc.integer({ min: 0x80, max: 0x10ffff }));
const anyString = fc.array(codePoint, { maxLength: 48 }).map((cps) => String.fromCodePoint(...cps));

describe('ring hash', () => {
  // Must run first in this file: the module is fresh per test file.
  it('throws a clear error when used before initHasher()', () => {
    expect(() => tokenOf('k')).toThrow(/initHasher/);
    expect(() => xxh64Hex('k')).toThrow(/initHasher/);
  });

  it('initHasher is idempotent and concurrent-safe', async () => {
    await Promise.all([initHasher(), initHasher()]);
    await initHasher();
    expect(tokenOf('k')).toEqual(tokenOf('k'));
  });

  it('matches the published xxh64 (seed 0) vectors', () => {
    expect(xxh64Hex('')).toBe('ef46db3751d8e999');
    expect(xxh64Hex('abc')).toBe('44bc2cf5ad770999');
    expect(tokenToHex(tokenOf(''))).toBe('ef46db3751d8e999');
    expect(tokenToHex(tokenOf(new TextEncoder().encode('abc')))).toBe('44bc2cf5ad770999');
  });

  it('string keys hash their UTF-8 bytes; tokenInto and xxh64Pair agree with tokenOf', () => {
    const enc = new TextEncoder();
    const out = new Uint32Array(2);
    fc.assert(
      fc.property(anyString, (s) => {
        const t = tokenOf(s);
        const bytes = enc.encode(s);
        const b = tokenOf(bytes);
        const p = xxh64Pair(bytes);
        tokenInto(s, out);
        const fromString = [out[0], out[1]];
        tokenInto(bytes, out);
        return (
          b.hi === t.hi && b.lo === t.lo && p.hi === t.hi && p.lo === t.lo &&
          fromString[0] === t.hi && fromString[1] === t.lo && out[0] === t.hi && out[1] === t.lo &&
          tokenToHex(t) === xxh64Hex(s) && xxh64Hex(bytes) === xxh64Hex(s)
        );
      }),
      { numRuns: 200 },
    );
  });

  it('compareTokens is unsigned 64-bit order', () => {
    fc.assert(
      fc.property(token, token, (a, b) => {
        const x = tokenToBigInt(a);
        const y = tokenToBigInt(b);
        expect(compareTokens(a, b)).toBe(x < y ? -1 : x > y ? 1 : 0);
      }),
      { numRuns: 500 },
    );
  });

  it('hex and bigint round-trip and preserve order', () => {
    fc.assert(
      fc.property(u64, (b) => {
        const t = tokenFromBigInt(b);
        expect(t.hi >>> 0).toBe(t.hi);
        expect(t.lo >>> 0).toBe(t.lo);
        expect(tokenToBigInt(t)).toBe(b);
        const hex = tokenToHex(t);
        expect(hex).toMatch(/^[0-9a-f]{16}$/);
        expect(hex).toBe(b.toString(16).padStart(16, '0'));
        expect(tokenFromHex(hex)).toEqual(t);
        expect(tokenFromHex(hex.toUpperCase())).toEqual(t);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects malformed hex and out-of-range values', () => {
    for (const bad of ['', '0', '0123456789abcde', '0123456789abcdef0', '0x23456789abcdef', '0123456789abcdeg', ' 123456789abcdef', '-123456789abcdef']) {
      expect(() => tokenFromHex(bad), bad).toThrow(/16 hex digits/);
    }
    expect(() => tokenFromBigInt(-1n)).toThrow(/\[0, 2\^64\)/);
    expect(() => tokenFromBigInt(1n << 64n)).toThrow(/\[0, 2\^64\)/);
    expect(() => tokenToHex({ hi: -1, lo: 0 })).toThrow(/uint|unsigned/);
    expect(() => tokenToBigInt({ hi: 0, lo: 2 ** 32 })).toThrow(/unsigned/);
    expect(() => tokenToBigInt({ hi: 0.5, lo: 0 })).toThrow(/unsigned/);
  });
});
