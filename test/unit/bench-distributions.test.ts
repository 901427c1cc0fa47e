import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  ZIPFIAN_CONSTANT,
  latest,
  makePermutation,
  seededRng,
  uniform,
  zeta,
  zipfian,
} from '../../src/bench/distributions.js';

const SAMPLES = 100_000;

function histogram(next: () => number, samples: number): Map<number, number> {
  const counts = new Map<number, number>();
  for (let i = 0; i < samples; i++) {
    const k = next();
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

describe('seededRng', () => {
  it('is reproducible from its seed and stays in [0, 1)', () => {
    const a = seededRng(7);
    const b = seededRng(7);
    const c = seededRng(8);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });
});

describe('uniform', () => {
  it('is flat (chi-square over 100 buckets)', () => {
    const n = 100;
    const counts = histogram(uniform(n, seededRng(1)).next, SAMPLES);
    const expected = SAMPLES / n;
    let chi2 = 0;
    for (let k = 0; k < n; k++) chi2 += ((counts.get(k) ?? 0) - expected) ** 2 / expected;
    // 99 degrees of freedom: mean 99, sd ≈ 14; 99.9th percentile ≈ 148.
    expect(chi2).toBeLessThan(148);
    expect([...counts.keys()].every((k) => k >= 0 && k < n)).toBe(true);
  });
});

describe('zeta', () => {
  it('matches the exact sum where Euler–Maclaurin takes over', () => {
    const n = 250_000;
    let exact = 0;
    for (let i = 1; i <= n; i++) exact += 1 / Math.pow(i, ZIPFIAN_CONSTANT);
    expect(Math.abs(zeta(n) - exact) / exact).toBeLessThan(1e-12);
  });
});

describe('zipfian (θ = 0.99)', () => {
  const n = 10_000;

  it('gives the most popular key its theoretical frequency 1/ζ(n) (≈ 9.8% at n = 10k)', () => {
    const z = zipfian(n, seededRng(42));
    const counts = histogram(z.next, SAMPLES);
    const hottest = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    const theory = 1 / zeta(n);
    expect(theory).toBeCloseTo(0.0978, 3);
    // The hottest key is rank 0, wherever scrambling put it.
    expect(hottest[0]).toBe(z.rankToIndex(0));
    // sd of the estimate ≈ sqrt(p(1-p)/N) ≈ 0.00094; allow 4 sd.
    expect(Math.abs(hottest[1] / SAMPLES - theory)).toBeLessThan(0.004);
  });

  it('sends about half of all requests to the top 1% of keys', () => {
    const z = zipfian(n, seededRng(43));
    const counts = histogram(z.next, SAMPLES);
    const sorted = [...counts.values()].sort((a, b) => b - a);
    const top1pct = sorted.slice(0, n / 100).reduce((s, c) => s + c, 0) / SAMPLES;
    // Exact Zipf(0.99, 10k): ζ(100)/ζ(10000) = 51.8%. Gray's closed-form generator (used by
    // YCSB too) slightly over-weights the middle ranks, measuring ≈ 53%.
    expect(zeta(n / 100) / zeta(n)).toBeCloseTo(0.518, 3);
    expect(top1pct).toBeGreaterThan(0.5);
    expect(top1pct).toBeLessThan(0.56);
  });

  it('spreads the hot keys over the keyspace instead of clustering them at low indices', () => {
    const z = zipfian(n, seededRng(44));
    const hot = Array.from({ length: 10 }, (_, r) => z.rankToIndex(r));
    expect(new Set(hot).size).toBe(10);
    expect(Math.max(...hot) - Math.min(...hot)).toBeGreaterThan(n / 2);
    // Unscrambled, rank = index.
    const plain = zipfian(n, seededRng(44), { scrambled: false });
    expect(plain.rankToIndex(3)).toBe(3);
  });

  it('scrambles with a bijection, so per-key frequencies are exactly the rank frequencies', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5000 }), (size) => {
        const perm = makePermutation(size);
        const seen = new Set<number>();
        for (let i = 0; i < size; i++) {
          const x = perm(i);
          if (x < 0 || x >= size) return false;
          seen.add(x);
        }
        return seen.size === size;
      }),
      { numRuns: 40, seed: 1 },
    );
  });

  it('is deterministic for a seed', () => {
    const a = zipfian(1000, seededRng(5));
    const b = zipfian(1000, seededRng(5));
    for (let i = 0; i < 1000; i++) expect(a.next()).toBe(b.next());
  });
});

describe('latest', () => {
  it('favours the newest records and follows inserts', () => {
    let count = 1000;
    const chooser = latest(() => count, seededRng(9));
    const counts = histogram(chooser.next, 20_000);
    expect([...counts.keys()].every((k) => k >= 0 && k < 1000)).toBe(true);
    const hottest = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
    expect(hottest).toBe(999);
    // Most of the mass is on recent records.
    let recent = 0;
    for (const [k, c] of counts) if (k >= 900) recent += c;
    expect(recent / 20_000).toBeGreaterThan(0.6);

    count = 1500;
    const after = histogram(chooser.next, 20_000);
    expect([...after.entries()].sort((a, b) => b[1] - a[1])[0][0]).toBe(1499);
    expect(Math.max(...after.keys())).toBeLessThan(1500);
  });
});
