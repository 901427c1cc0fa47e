import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LATENCY_BUCKETS_SECONDS, SlottedHistogram } from '../../src/metrics/histogram.js';
import { diffTotals, mergeSample, quantile, SampleMerger, SampleRing, toPoint, type SecondSample } from '../../src/metrics/series.js';
import { readiness } from '../../src/node/readiness.js';
import { memberStateCode } from '../../src/cluster/member-state.js';

const W = LATENCY_BUCKETS_SECONDS.length + 1;
const bucketsArb = fc.array(fc.nat(1000), { minLength: W, maxLength: W });
const sampleArb = (sec: number) =>
  fc.record({ count: fc.nat(1000), errors: fc.nat(10), sum: fc.double({ min: 0, max: 100, noNaN: true }), buckets: bucketsArb }).map((write): SecondSample => ({ sec, ops: { write } }));

describe('SlottedHistogram', () => {
  it('puts a value in the first bucket whose bound is >= it (Prometheus le)', () => {
    const h = new SlottedHistogram([1, 2, 5], 1);
    for (const v of [0, 1, 1.5, 2, 5, 6]) h.record(0, v);
    expect(h.bucketsOf(0)).toEqual([2, 2, 1, 1]);
    expect(h.row(0)).toEqual({ cumulative: [2, 4, 5, 6], sum: 15.5, count: 6 });
  });

  it('refuses bounds that are not increasing', () => {
    expect(() => new SlottedHistogram([1, 1], 1)).toThrow(/strictly increasing/);
  });
});

describe('quantile', () => {
  it('interpolates inside the bucket like histogram_quantile', () => {
    // 100 values: 50 in (0, 1], 50 in (1, 2]. The median is the top of the first bucket, p75 mid-second.
    expect(quantile([1, 2], [50, 50, 0], 0.5)).toBe(1);
    expect(quantile([1, 2], [50, 50, 0], 0.75)).toBe(1.5);
    expect(quantile([1, 2], [0, 0, 10], 0.99)).toBe(2);
    expect(quantile([1, 2], [0, 0, 0], 0.99)).toBeNull();
  });

  it('is monotone in q and stays within the bounds', () => {
    fc.assert(
      fc.property(bucketsArb, fc.double({ min: 0.01, max: 1, noNaN: true }), fc.double({ min: 0.01, max: 1, noNaN: true }), (b, q1, q2) => {
        const [lo, hi] = q1 <= q2 ? [q1, q2] : [q2, q1];
        const a = quantile(LATENCY_BUCKETS_SECONDS, b, lo);
        const c = quantile(LATENCY_BUCKETS_SECONDS, b, hi);
        if (b.every((x) => x === 0)) return a === null && c === null;
        return a !== null && c !== null && a <= c + 1e-12 && c <= LATENCY_BUCKETS_SECONDS[LATENCY_BUCKETS_SECONDS.length - 1]! && a >= 0;
      }),
    );
  });
});

describe('per-second samples', () => {
  it('diffTotals gives the requests between two snapshots, leaving idle ops out', () => {
    const prev = { write: { count: 10, errors: 1, sum: 1, buckets: [5, 5] }, read: { count: 3, errors: 0, sum: 0.1, buckets: [3, 0] } };
    const cur = { write: { count: 15, errors: 1, sum: 1.5, buckets: [7, 8] }, read: { count: 3, errors: 0, sum: 0.1, buckets: [3, 0] } };
    expect(diffTotals(prev, cur, 100)).toEqual({ sec: 100, ops: { write: { count: 5, errors: 0, sum: 0.5, buckets: [2, 3] } } });
  });

  it('merging adds counts bucket by bucket, in any order', () => {
    fc.assert(
      fc.property(fc.array(sampleArb(7), { minLength: 1, maxLength: 6 }), (samples) => {
        const forward = samples.reduce((acc, s) => mergeSample(acc, s), { sec: 7, ops: {} } as SecondSample);
        const backward = [...samples].reverse().reduce((acc, s) => mergeSample(acc, s), { sec: 7, ops: {} } as SecondSample);
        const total = samples.reduce((a, s) => a + s.ops.write!.count, 0);
        return forward.ops.write!.count === total && JSON.stringify(forward.ops.write!.buckets) === JSON.stringify(backward.ops.write!.buckets);
      }),
    );
  });

  it('toPoint reports requests/s and p99 in ms', () => {
    const b = new Array<number>(W).fill(0);
    b[LATENCY_BUCKETS_SECONDS.indexOf(0.002)] = 100; // all in (1 ms, 2 ms]
    const p = toPoint({ sec: 5, ops: { read: { count: 100, errors: 2, sum: 0.15, buckets: b } } }, LATENCY_BUCKETS_SECONDS);
    expect(p.ops.read).toEqual({ rate: 100, errors: 2, p99Ms: 1.99 });
  });

  it('SampleRing keeps the last seconds in order and answers "since"', () => {
    const r = new SampleRing(3);
    for (const sec of [1, 2, 3, 4, 4, 2, 5]) r.push({ sec, ops: {} });
    expect(r.since(0).map((s) => s.sec)).toEqual([3, 4, 5]);
    expect(r.since(4).map((s) => s.sec)).toEqual([5]);
    expect(r.latest?.sec).toBe(5);
  });

  it('SampleMerger emits every second once, merged across nodes, and drops late samples', () => {
    const m = new SampleMerger(1, 99);
    m.add({ sec: 100, ops: { write: { count: 2, errors: 0, sum: 0, buckets: [2] } } });
    m.add({ sec: 100, ops: { write: { count: 3, errors: 0, sum: 0, buckets: [3] } } });
    m.add({ sec: 102, ops: { read: { count: 1, errors: 0, sum: 0, buckets: [1] } } });
    const out = m.finalize(102);
    expect(out.map((s) => s.sec)).toEqual([100, 101]);
    expect(out[0]!.ops.write!.count).toBe(5);
    expect(out[1]!.ops).toEqual({});
    m.add({ sec: 101, ops: { write: { count: 9, errors: 0, sum: 0, buckets: [9] } } });
    expect(m.dropped).toBe(1);
    expect(m.finalize(103).map((s) => s.sec)).toEqual([102]);
    expect(m.emittedUpTo).toBe(102);
  });

  it('SampleMerger stays bounded after a long gap or a clock jump', () => {
    const m = new SampleMerger(1, 0, 10);
    expect(m.finalize(1_000_000)).toHaveLength(10);
    for (let i = 0; i < 20; i++) m.add({ sec: 2_000_000 + i, ops: {} });
    expect(m.dropped).toBe(10);
  });
});

describe('readiness', () => {
  const ok = { shardsUp: 2, shards: 2, ringTokens: 48, selfInRing: true, status: 'normal', closing: false };

  it('is ready with shards up, a ring that includes this node, normal status', () => {
    expect(readiness(ok)).toEqual({ ready: true, checks: { shards: true, ring: true, status: true, running: true }, reasons: [] });
    expect(readiness({ ...ok, status: 'leaving' }).ready).toBe(true);
  });

  it.each([
    [{ status: 'joining' }, 'node status is joining'],
    [{ ringTokens: 0, selfInRing: false }, 'no ring known yet'],
    [{ selfInRing: false }, 'owns no tokens'],
    [{ shardsUp: 1 }, '1 of 2 shards up'],
    [{ closing: true }, 'shutting down'],
  ])('is not ready when %o', (patch, reason) => {
    const r = readiness({ ...ok, ...patch });
    expect(r.ready).toBe(false);
    expect(r.reasons.join('; ')).toContain(reason);
  });
});

describe('memberStateCode', () => {
  it('spells nodetool status codes', () => {
    expect(memberStateCode(true, 'normal')).toBe('UN');
    expect(memberStateCode(false, 'normal')).toBe('DN');
    expect(memberStateCode(true, 'joining')).toBe('UJ');
    expect(memberStateCode(true, 'leaving')).toBe('UL');
    expect(memberStateCode(false, 'left')).toBe('DX');
  });
});
