import { describe, expect, it } from 'vitest';
import { buildRing } from '../../src/ring/builder.js';
import { initHasher, tokenFromBigInt } from '../../src/ring/hash.js';
import { clockwiseFallbacks, isExpired, placeHints, ReplayThrottle } from '../../src/hints/policy.js';

describe('sloppy quorum placement', () => {
  it('gives each down replica its own healthy fallback, then falls back to the coordinator', () => {
    const up = (id: string): boolean => id !== 'n5';
    const p = placeHints(['n2', 'n3'], ['n4', 'n5'], up, 'sloppy', false);
    expect(p).toEqual([
      { target: 'n2', holder: 'n4', counts: true },
      { target: 'n3', holder: null, counts: false },
    ]);
  });

  it('under strict quorum only ANY counts hints', () => {
    expect(placeHints(['n2'], ['n4'], () => true, 'strict', false)[0]!.counts).toBe(false);
    expect(placeHints(['n2'], [], () => true, 'strict', true)[0]).toEqual({ target: 'n2', holder: null, counts: true });
  });

  it('walks the ring clockwise for distinct non-replica nodes', async () => {
    await initHasher();
    const t = (x: bigint) => tokenFromBigInt(x << 56n);
    const layout = buildRing(
      [
        { id: 'a', tokens: [t(1n)], shards: 1, status: 'normal' },
        { id: 'b', tokens: [t(2n)], shards: 1, status: 'normal' },
        { id: 'c', tokens: [t(3n)], shards: 1, status: 'normal' },
        { id: 'd', tokens: [t(4n)], shards: 1, status: 'normal' },
        { id: 'e', tokens: [t(5n)], shards: 1, status: 'normal' },
      ],
      { maxReplicas: 3 },
    );
    // Position 0 (owner a) has replicas a, b, c: the fallbacks are d then e.
    expect(clockwiseFallbacks(layout, 0, new Set(['a', 'b', 'c']), 5)).toEqual(['d', 'e']);
    expect(clockwiseFallbacks(layout, 3, new Set(['d', 'e', 'a']), 1)).toEqual(['b']);
  });
});

describe('replay throttle and expiry', () => {
  it('never lets more than rate × time + burst through', () => {
    const th = new ReplayThrottle(1000, 100, 0);
    let sent = th.take(1000, 0);
    expect(sent).toBe(100);
    for (let now = 1; now <= 1000; now++) sent += th.take(1000, now);
    expect(sent).toBeLessThanOrEqual(1100);
    expect(sent).toBeGreaterThanOrEqual(1090);
    expect(th.take(5, 1000)).toBe(0);
    expect(th.waitMs(1000)).toBeGreaterThan(0);
  });

  it('expires hints strictly older than the window', () => {
    expect(isExpired(0, 1000, 1000)).toBe(false);
    expect(isExpired(0, 1001, 1000)).toBe(true);
  });
});
