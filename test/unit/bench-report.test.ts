import { describe, expect, it } from 'vitest';
import type { RunResult } from '../../src/bench/driver.js';
import { LatencyHistogram } from '../../src/bench/histogram.js';
import { evaluateTargets, formatProgress, formatReport, toJsonReport } from '../../src/bench/report.js';

function result(over: Partial<RunResult> = {}): RunResult {
  return {
    target: 'ringkv',
    workload: 'A',
    mode: 'open',
    targetRate: 10_000,
    batch: 1,
    throughput: 9_990,
    operations: 100_000,
    durationSec: 10.01,
    latencyMs: { p50: 0.8, p90: 1.5, p99: 4, p999: 9, max: 20 },
    perKind: {
      read: { count: 50_000, errors: 0, latencyMs: { p50: 0.7, p90: 1.4, p99: 3.9, p999: 8, max: 19 } },
      update: { count: 50_000, errors: 0, latencyMs: { p50: 0.9, p90: 1.6, p99: 4.1, p999: 9.5, max: 20 } },
    },
    errors: 0,
    errorsByKind: {},
    peakInFlight: 40,
    scheduleLagMs: { p50: 0.001, p90: 0.002, p99: 0.05, p999: 0.2, max: 0.5 },
    stoppedBy: 'duration',
    histogram: new LatencyHistogram().toBase64(),
    ...over,
  };
}

const baseline = result({
  target: 'rocksdb',
  throughput: 9_999,
  latencyMs: { p50: 0.02, p90: 0.05, p99: 0.5, p999: 2, max: 0 },
});

describe('toJsonReport', () => {
  it('carries throughput, latency percentiles and errors', () => {
    const j = toJsonReport(result());
    expect(j).toMatchObject({
      target: 'ringkv',
      workload: 'A',
      mode: 'open',
      targetRate: 10_000,
      throughput: 9_990,
      latencyMs: { p50: 0.8, p90: 1.5, p99: 4, p999: 9, max: 20 },
      errors: 0,
    });
    expect(j.baseline).toBeUndefined();
    expect(j.ratio).toBeUndefined();
    expect(j).not.toHaveProperty('histogram');
    expect(JSON.parse(JSON.stringify(j))).toEqual(j);
  });

  it('adds the baseline and result/baseline ratios (null where the baseline is 0)', () => {
    const j = toJsonReport(result(), baseline);
    expect(j.baseline).toEqual({
      target: 'rocksdb',
      throughput: 9_999,
      latencyMs: { p50: 0.02, p90: 0.05, p99: 0.5, p999: 2, max: 0 },
      errors: 0,
    });
    expect(j.ratio?.throughput).toBeCloseTo(9_990 / 9_999, 9);
    expect(j.ratio?.latencyMs.p50).toBeCloseTo(40, 9);
    expect(j.ratio?.latencyMs.p99).toBeCloseTo(8, 9);
    expect(j.ratio?.latencyMs.max).toBeNull();
  });
});

describe('formatReport', () => {
  it('renders the run, the baseline, ratios, per-kind rows and errors', () => {
    const text = formatReport(result({ errors: 3, errorsByKind: { timeout: 2, unavailable: 1 } }), baseline);
    expect(text).toContain('workload A — open loop at 10,000 ops/s offered');
    expect(text).toMatch(/^ringkv\s+9,990\.0\s+0\.800\s+1\.50\s+4\.00\s+9\.00\s+20\.00\s+3$/m);
    expect(text).toMatch(/^rocksdb \(baseline\)\s+9,999\.0/m);
    expect(text).toMatch(/^ratio \(ringkv\/rocksdb\)\s+1\.00x\s+40\.00x/m);
    expect(text).toMatch(/^\s+read\s+50,000\s+0\s+0\.700/m);
    expect(text).toContain('errors: timeout=2, unavailable=1');
    expect(text).not.toContain('WARNING');
  });

  it('warns about closed-loop latencies, a lagging client and refused ops', () => {
    const closed = formatReport(result({ mode: 'closed', targetRate: undefined, concurrency: 8, scheduleLagMs: undefined }));
    expect(closed).toContain('closed loop, concurrency 8');
    expect(closed).toMatch(/WARNING: closed-loop latencies exclude queueing/);
    const lagging = formatReport(
      result({
        scheduleLagMs: { p50: 1, p90: 3, p99: 5, p999: 6, max: 7 },
        errors: 10,
        errorsByKind: { 'client-overloaded': 10 },
      }),
    );
    expect(lagging).toMatch(/WARNING: the load generator fell behind/);
    expect(lagging).toMatch(/WARNING: 10 ops were never sent/);
  });

  it('formats a progress line', () => {
    expect(formatProgress({ elapsedSec: 3, operations: 30_000, errors: 0, inFlight: 12, currentRate: 10_000, p99Ms: 4.2 })).toBe(
      '[   3 s] 30,000 ops, 10,000 ops/s, p99 4.20 ms, in flight 12, errors 0',
    );
  });
});

describe('evaluateTargets', () => {
  it('passes an open-loop run that met the rate and the p99 bound', () => {
    expect(evaluateTargets(result(), { targetIops: 10_000, p99Ms: 5 })).toEqual({ pass: true, reasons: [] });
  });

  it('fails on throughput below target (beyond the 1% drain tolerance)', () => {
    const v = evaluateTargets(result({ throughput: 9_800 }), { targetIops: 10_000 });
    expect(v.pass).toBe(false);
    expect(v.reasons.join('\n')).toMatch(/throughput 9,800\.0 ops\/s < target 10,000/);
    expect(evaluateTargets(result({ throughput: 9_800 }), { targetIops: 10_000, iopsTolerance: 0.05 }).pass).toBe(true);
  });

  it('fails on p99 above the bound', () => {
    const v = evaluateTargets(result(), { p99Ms: 3 });
    expect(v).toEqual({ pass: false, reasons: ['p99 4.00 ms > bound 3.00 ms'] });
  });

  it('fails when the run offered less than the IOPS target', () => {
    const v = evaluateTargets(result({ targetRate: 5_000, throughput: 12_000 }), { targetIops: 10_000, p99Ms: 5 });
    expect(v.pass).toBe(false);
    expect(v.reasons.join('\n')).toMatch(/offered 5,000 ops\/s/);
  });

  it('refuses closed-loop latency as evidence for a latency bound', () => {
    const closed = result({ mode: 'closed', targetRate: undefined, concurrency: 32, throughput: 20_000 });
    expect(evaluateTargets(closed, { targetIops: 10_000 }).pass).toBe(true);
    const v = evaluateTargets(closed, { targetIops: 10_000, p99Ms: 5 });
    expect(v.pass).toBe(false);
    expect(v.reasons.join('\n')).toMatch(/coordinated omission/);
  });

  it('fails on errors unless an error rate is allowed, and on stalled runs', () => {
    const flaky = result({ errors: 20, errorsByKind: { timeout: 20 } });
    const v = evaluateTargets(flaky, { targetIops: 10_000 });
    expect(v.pass).toBe(false);
    expect(v.reasons.join('\n')).toMatch(/error rate 0\.020% \(20 ops: timeout=20\)/);
    expect(evaluateTargets(flaky, { targetIops: 10_000, maxErrorRate: 0.001 }).pass).toBe(true);
    expect(evaluateTargets(result({ stoppedBy: 'stall' }), {}).pass).toBe(false);
  });
});

describe('LatencyHistogram', () => {
  it('reports ms percentiles from µs samples, merges, and round-trips its encoding', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (let i = 1; i <= 1000; i++) a.recordMicros(i * 100); // 0.1 .. 100 ms
    b.recordMicrosN(500_000, 10);
    expect(a.percentiles().p50).toBeCloseTo(50, 0);
    expect(a.percentiles().p99).toBeCloseTo(99, 0);
    a.merge(b);
    expect(a.count).toBe(1010);
    expect(a.percentiles().max).toBeCloseTo(500, 0);
    const c = LatencyHistogram.fromBase64(a.toBase64());
    expect(c.percentiles()).toEqual(a.percentiles());
    expect(new LatencyHistogram().percentiles()).toEqual({ p50: 0, p90: 0, p99: 0, p999: 0, max: 0 });
  });
});
