import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { buildRing, type RingLayout, type RingMember } from '../../src/ring/builder.js';
import { initHasher, tokenFromBigInt } from '../../src/ring/hash.js';
import { clockwiseFallbacks, isExpired, placeHints, ReplayThrottle, replayRate, replayWindow, settledPrefix } from '../../src/hints/policy.js';

/** The ring's precomputed preference list of position `pos`, as node ids. */
function prefOf(layout: RingLayout, pos: number): string[] {
  return Array.from(layout.pref.subarray(pos * layout.replicas, (pos + 1) * layout.replicas), (i) => layout.nodeIds[i]!);
}

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
        { id: 'a', tokens: [t(1n)], status: 'normal' },
        { id: 'b', tokens: [t(2n)], status: 'normal' },
        { id: 'c', tokens: [t(3n)], status: 'normal' },
        { id: 'd', tokens: [t(4n)], status: 'normal' },
        { id: 'e', tokens: [t(5n)], status: 'normal' },
      ],
      { maxReplicas: 3 },
    );
    // Position 0 (owner a) has replicas a, b, c: the fallbacks are d then e.
    expect(clockwiseFallbacks(layout, 0, new Set(['a', 'b', 'c']), 5)).toEqual(['d', 'e']);
    expect(clockwiseFallbacks(layout, 3, new Set(['d', 'e', 'a']), 1)).toEqual(['b']);
  });

  // The ring precomputes up to 5 replicas per position (MAX_RING_REPLICAS) while a table uses N=3.
  // Excluding that whole list (audit bug 1) leaves no fallback at all on 4 and 5 nodes.
  it.each([4, 5])('on %i nodes with maxReplicas 5, every position has a non-replica fallback for N=3', async (k) => {
    await initHasher();
    const ids = ['n1', 'n2', 'n3', 'n4', 'n5'].slice(0, k);
    // 4 vnodes per node, interleaved irregularly.
    const members: RingMember[] = ids.map((id, i) => ({
      id,
      tokens: [0, 1, 2, 3].map((v) => tokenFromBigInt(BigInt(v * 97 + i * 13 + ((v * i) % 7)) << 52n)),
      status: 'normal',
    }));
    const layout = buildRing(members, { maxReplicas: 5 });
    expect(layout.replicas).toBe(k);
    let withFallback = 0;
    for (let pos = 0; pos < layout.tokens.length; pos++) {
      const pref = prefOf(layout, pos);
      const targets = pref.slice(0, 3);
      const fb = clockwiseFallbacks(layout, pos, new Set(targets), 2);
      // The fallbacks are exactly the rest of the extended preference list, in order.
      expect(fb).toEqual(pref.slice(3, 5));
      expect(fb.some((id) => targets.includes(id))).toBe(false);
      // One target down: its hint goes to the first fallback and counts toward W under sloppy.
      const place = placeHints([targets[1]!], fb, (id) => id !== targets[1], 'sloppy', false);
      expect(place).toEqual([{ target: targets[1], holder: pref[3], counts: true }]);
      // The pre-fix exclusion (the whole precomputed list) would find nothing here.
      expect(clockwiseFallbacks(layout, pos, new Set(pref), 2)).toEqual([]);
      withFallback++;
    }
    expect(withFallback).toBe(layout.tokens.length);
  });

  it('fallbacks are the preference list past N on any rack-less ring (property)', async () => {
    await initHasher();
    fc.assert(
      fc.property(
        fc.integer({ min: 4, max: 8 }),
        fc.uniqueArray(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 8 * 8, maxLength: 8 * 8 }),
        fc.integer({ min: 1, max: 8 }),
        (k, raw, vnodes) => {
          const members: RingMember[] = Array.from({ length: k }, (_, i) => ({
            id: `node${i + 1}`,
            tokens: raw.slice(i * vnodes, (i + 1) * vnodes).map(tokenFromBigInt),
            status: 'normal',
          }));
          const layout = buildRing(members, { maxReplicas: 5 });
          for (let pos = 0; pos < layout.tokens.length; pos++) {
            const pref = prefOf(layout, pos);
            const fb = clockwiseFallbacks(layout, pos, new Set(pref.slice(0, 3)), 2);
            expect(fb).toEqual(pref.slice(3, 5));
            expect(fb.length).toBe(Math.min(2, k - 3));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe('replay order rule', () => {
  it('deletes only the leading run of settled hints of a window', () => {
    expect(settledPrefix([])).toBe(0);
    expect(settledPrefix([true, true, true])).toBe(3);
    expect(settledPrefix([true, false, true])).toBe(1);
    expect(settledPrefix([false, true, true])).toBe(0);
  });

  it('never deletes a hint while an earlier one of the window failed (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { maxLength: 200 }), (settled) => {
        const k = settledPrefix(settled);
        expect(settled.slice(0, k).every(Boolean)).toBe(true);
        if (k < settled.length) expect(settled[k]).toBe(false);
      }),
    );
  });

  it('sizes the window to about 100 ms of the rate, within 1..100', () => {
    expect(replayWindow(5000)).toBe(100);
    expect(replayWindow(100)).toBe(10);
    expect(replayWindow(3)).toBe(1);
    expect(replayWindow(1_000_000)).toBe(100);
  });

  it('reports the pass rate in hints/s', () => {
    expect(replayRate(0, 1000, 1000)).toBe(0);
    expect(replayRate(500, 1000, 2000)).toBe(500);
    expect(replayRate(410, 0, 1000)).toBe(410);
    expect(replayRate(5, 1000, 1000)).toBe(5000); // a pass within one ms still reports a rate
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
