import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VirtualClock, loadPhase, runWorkload, type ProgressSnapshot } from '../../src/bench/driver.js';
import { LatencyHistogram } from '../../src/bench/histogram.js';
import { openRocksBaseline } from '../../src/bench/rocksdb-target.js';
import type { BenchTarget, OpResult, PutItem } from '../../src/bench/target.js';
import { keyName } from '../../src/bench/workloads.js';

/**
 * A single-server FIFO target on virtual time: each call takes `serviceUs` after the
 * previous one finishes, and call number `stallAt` (0-based) freezes the server for
 * `stallUs` first — a GC pause / compaction stall.
 */
function stallingTarget(clock: VirtualClock, opts: { serviceUs: number; stallAt?: number; stallUs?: number }) {
  let calls = 0;
  let busyUntil = 0;
  const putCalls: Array<{ at: number; size: number; keys: string[] }> = [];
  const serve = async (): Promise<void> => {
    const now = clock.now();
    if (calls++ === opts.stallAt) busyUntil = now + (opts.stallUs ?? 0);
    busyUntil = Math.max(now, busyUntil) + opts.serviceUs;
    await clock.sleepUntil(busyUntil);
  };
  const target: BenchTarget = {
    name: 'fake',
    async put(items: ReadonlyArray<PutItem>): Promise<OpResult[]> {
      putCalls.push({ at: clock.now(), size: items.length, keys: items.map((i) => i.key) });
      await serve();
      return items.map(() => null);
    },
    async get(keys: readonly string[]): Promise<OpResult[]> {
      await serve();
      return keys.map(() => null);
    },
    async scan(): Promise<OpResult> {
      await serve();
      return null;
    },
    async close(): Promise<void> {},
  };
  return { target, putCalls, calls: () => calls };
}

/** A target that serves every call in parallel after a fixed latency, tracking concurrency. */
function parallelTarget(clock: VirtualClock, latencyUs: number) {
  let inFlight = 0;
  let peak = 0;
  const call = async <T>(value: T): Promise<T> => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await clock.sleepUntil(clock.now() + latencyUs);
    inFlight--;
    return value;
  };
  const target: BenchTarget = {
    name: 'parallel',
    put: (items) => call(items.map(() => null)),
    get: (keys) => call(keys.map(() => null)),
    close: async () => {},
  };
  return { target, peak: () => peak };
}

describe('open loop: no coordinated omission', () => {
  it('charges a 200 ms stall to every op scheduled during it, not just the one that hit it', async () => {
    const clock = new VirtualClock();
    const { target } = stallingTarget(clock, { serviceUs: 10, stallAt: 300, stallUs: 200_000 });
    const r = await runWorkload(target, { workload: 'C', records: 1000, rate: 1000, operations: 1000, clock });

    expect(r.mode).toBe('open');
    expect(r.operations).toBe(1000);
    expect(r.errors).toBe(0);
    expect(r.latencyMs.max).toBeGreaterThan(199);
    expect(r.latencyMs.max).toBeLessThan(202);
    // Ops scheduled at 300..~490 ms all waited for the stall to end at 500 ms: ~190 ops above
    // 10 ms with latencies spread linearly from 200 ms down, so p90 ≈ 100 ms and p99 ≈ 190 ms.
    expect(r.latencyMs.p99).toBeGreaterThan(185);
    expect(r.latencyMs.p90).toBeGreaterThan(90);
    expect(r.latencyMs.p90).toBeLessThan(110);
    expect(r.latencyMs.p50).toBeLessThan(0.1);
    const h = LatencyHistogram.fromBase64(r.histogram);
    expect(h.count).toBe(1000);
    expect(h.valueAtPercentile(79)).toBeLessThan(1); // fewer than ~21% slow…
    expect(h.valueAtPercentile(82)).toBeGreaterThan(10); // …but more than ~18%: ≈ 200 ops
    // The client itself kept to the timetable; the lateness is all the target's.
    expect(r.scheduleLagMs?.p99).toBeLessThan(0.01);
    expect(r.throughput).toBeGreaterThan(990);
    expect(r.throughput).toBeLessThanOrEqual(1000);
  });

  it('whereas a closed loop against the same stall reports a single slow op', async () => {
    const clock = new VirtualClock();
    const { target } = stallingTarget(clock, { serviceUs: 10, stallAt: 300, stallUs: 200_000 });
    const r = await runWorkload(target, { workload: 'C', records: 1000, concurrency: 1, operations: 1000, clock });
    expect(r.mode).toBe('closed');
    expect(r.latencyMs.max).toBeGreaterThan(199);
    expect(r.latencyMs.p99).toBeLessThan(0.1);
    expect(LatencyHistogram.fromBase64(r.histogram).valueAtPercentile(99.9)).toBeLessThan(0.1);
  });

  it('bounds ops in flight: beyond maxInFlight ops fail as client-overloaded instead of queueing', async () => {
    const clock = new VirtualClock();
    const { target } = stallingTarget(clock, { serviceUs: 10, stallAt: 100, stallUs: 1_000_000 });
    const r = await runWorkload(target, { workload: 'C', records: 100, rate: 1000, operations: 600, maxInFlight: 50, clock });
    expect(r.peakInFlight).toBe(50);
    // Stall from 100 ms; 50 slots fill by ~150 ms; every later op (to 600 ms) is refused.
    expect(r.errorsByKind['client-overloaded']).toBeGreaterThanOrEqual(448);
    expect(r.errorsByKind['client-overloaded']).toBeLessThanOrEqual(452);
    expect(r.operations).toBe(600);
    expect(r.operations - r.errors).toBe(r.perKind.read?.count);
  });

  it('stops at durationSec and keeps the offered rate', async () => {
    const clock = new VirtualClock();
    const { target } = stallingTarget(clock, { serviceUs: 100 });
    const r = await runWorkload(target, { workload: 'B', records: 100, rate: 2000, durationSec: 0.5, operations: 1e6, clock });
    expect(r.stoppedBy).toBe('duration');
    expect(r.operations).toBe(1000);
    expect(r.throughput).toBeGreaterThan(1990);
    expect(r.targetRate).toBe(2000);
  });

  it('batches inserts into put calls that each take `batch` timetable slots', async () => {
    const clock = new VirtualClock();
    const { target, putCalls } = stallingTarget(clock, { serviceUs: 50 });
    const r = await runWorkload(target, { workload: 'ingest', records: 0, rate: 1000, batch: 10, operations: 200, clock });
    expect(putCalls.length).toBe(20);
    expect(putCalls.every((c) => c.size === 10)).toBe(true);
    expect(putCalls.map((c) => c.at)).toEqual(Array.from({ length: 20 }, (_, i) => i * 10_000));
    expect(r.perKind.insert?.count).toBe(200);
    expect(r.latencyMs.max).toBeCloseTo(0.05, 3);
  });

  it('reports progress about once a second', async () => {
    const clock = new VirtualClock();
    const { target } = stallingTarget(clock, { serviceUs: 100 });
    const snaps: ProgressSnapshot[] = [];
    await runWorkload(target, {
      workload: 'A',
      records: 100,
      rate: 200,
      durationSec: 3.5,
      clock,
      onProgress: (s) => snaps.push(s),
    });
    expect(snaps.map((s) => s.elapsedSec)).toEqual([1, 2, 3]);
    for (const s of snaps) expect(s.currentRate).toBeCloseTo(200, -1);
    expect(snaps[2].operations).toBeGreaterThanOrEqual(599);
    expect(snaps[2].p99Ms).toBeCloseTo(0.1, 2);
    expect(clock.pending).toBe(0);
  });
});

describe('closed loop', () => {
  it('keeps exactly `concurrency` ops in flight', async () => {
    const clock = new VirtualClock();
    const t = parallelTarget(clock, 10_000);
    const r = await runWorkload(t.target, { workload: 'A', records: 100, concurrency: 8, operations: 800, clock });
    expect(t.peak()).toBe(8);
    expect(r.peakInFlight).toBe(8);
    expect(r.concurrency).toBe(8);
    expect(r.operations).toBe(800);
    // 100 rounds of 8 ops at 10 ms each: 1 s.
    expect(r.durationSec).toBeCloseTo(1, 6);
    expect(r.throughput).toBeCloseTo(800, 3);
    expect(r.latencyMs.p50).toBeCloseTo(10, 1);
  });

  it('batches and pipelines ingest: `batch` keys per put, `concurrency` puts in flight', async () => {
    const clock = new VirtualClock();
    const t = parallelTarget(clock, 1000);
    const seen: string[] = [];
    const target: BenchTarget = {
      ...t.target,
      put: (items) => {
        seen.push(...items.map((i) => i.key));
        return t.target.put(items);
      },
    };
    const r = await runWorkload(target, { workload: 'ingest', records: 50, concurrency: 4, batch: 25, operations: 1000, clock });
    expect(r.operations).toBe(1000);
    expect(r.perKind.insert?.count).toBe(1000);
    expect(t.peak()).toBe(4);
    expect(r.peakInFlight).toBe(100);
    expect(new Set(seen)).toEqual(new Set(Array.from({ length: 1000 }, (_, i) => keyName(50 + i))));
  });

  it('counts target error kinds and exceptions as errors, not latencies', async () => {
    const clock = new VirtualClock();
    let n = 0;
    const target: BenchTarget = {
      name: 'flaky',
      put: async (items) => items.map(() => null),
      get: async (keys) => {
        n++;
        if (n % 10 === 0) return keys.map(() => 'timeout');
        if (n % 25 === 0) throw new Error('boom');
        return keys.map(() => null);
      },
      close: async () => {},
    };
    const r = await runWorkload(target, { workload: 'C', records: 10, concurrency: 2, operations: 100, clock });
    expect(r.errorsByKind).toEqual({ exception: 2, timeout: 10 });
    expect(r.errors).toBe(12);
    expect(r.perKind.read).toMatchObject({ count: 88, errors: 12 });
  });

  it('gives up on a hung target after stallTimeoutSec and reports the stuck ops', async () => {
    const clock = new VirtualClock();
    const target: BenchTarget = {
      name: 'hung',
      put: () => new Promise<OpResult[]>(() => {}),
      get: () => new Promise<OpResult[]>(() => {}),
      close: async () => {},
    };
    const r = await runWorkload(target, { workload: 'A', records: 10, concurrency: 3, operations: 100, stallTimeoutSec: 2, clock });
    expect(r.stoppedBy).toBe('stall');
    expect(r.errorsByKind).toEqual({ 'client-stall-timeout': 3 });
    expect(r.durationSec).toBe(2);
  });

  it('runs read-modify-write as a read then a write, timed as one op', async () => {
    const clock = new VirtualClock();
    const { target, calls } = stallingTarget(clock, { serviceUs: 100 });
    const r = await runWorkload(target, { workload: { ...wF(), rmwProportion: 1, readProportion: 0 }, records: 10, concurrency: 1, operations: 50, clock });
    expect(calls()).toBe(100);
    expect(r.perKind.rmw?.count).toBe(50);
    expect(r.latencyMs.p50).toBeCloseTo(0.2, 2);
  });

  it('rejects ambiguous or unbounded runs and scans on targets without scan', async () => {
    const clock = new VirtualClock();
    const t = parallelTarget(clock, 10).target;
    await expect(runWorkload(t, { workload: 'A', records: 10, operations: 10 })).rejects.toThrow(/exactly one/);
    await expect(runWorkload(t, { workload: 'A', records: 10, rate: 10, concurrency: 1, operations: 10 })).rejects.toThrow(/exactly one/);
    await expect(runWorkload(t, { workload: 'A', records: 10, rate: 10 })).rejects.toThrow(/bounded/);
    await expect(runWorkload(t, { workload: 'E', records: 10, rate: 10, operations: 10 })).rejects.toThrow(/scan/);
  });
});

function wF() {
  return {
    name: 'rmw-only',
    description: 'test',
    readProportion: 0.5,
    updateProportion: 0,
    insertProportion: 0,
    scanProportion: 0,
    rmwProportion: 0.5,
    requestDistribution: 'uniform' as const,
    maxScanLength: 100,
  };
}

describe('RocksDB baseline', () => {
  it('round-trips a load phase and a short run of each kind in a temp dir', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ringkv-bench-'));
    const db = await openRocksBaseline(join(dir, 'db'));
    try {
      expect(await db.put([{ key: 'k1', value: new Uint8Array([1, 2, 3]) }, { key: 'k2', value: new Uint8Array(0) }])).toEqual([null, null]);
      expect(await db.get(['k1', 'k2', 'missing'])).toEqual([null, null, null]);
      expect(await db.scan?.('k', 10)).toBeNull();

      const load = await loadPhase(db, { records: 500, valueSize: 100, batch: 50, concurrency: 2 });
      expect(load.workload).toBe('load');
      expect(load.errors).toBe(0);
      expect(load.perKind.insert?.count).toBe(500);

      const a = await runWorkload(db, { workload: 'A', records: 500, concurrency: 4, operations: 400, valueSize: 100 });
      expect(a.errors).toBe(0);
      expect(a.operations).toBe(400);
      expect(a.target).toBe('rocksdb');

      const e = await runWorkload(db, { workload: 'E', records: 500, rate: 2000, operations: 100, valueSize: 100 });
      expect(e.errors).toBe(0);
      expect((e.perKind.scan?.count ?? 0) + (e.perKind.insert?.count ?? 0)).toBe(100);
      expect(e.durationSec).toBeLessThan(2);
    } finally {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
