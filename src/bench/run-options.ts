/**
 * The load generator's options and results (driver.ts runs them).
 */
import type { Clock } from './clock.js';
import type { DistributionName } from './distributions.js';
import type { LatencyPercentiles } from './histogram.js';
import type { OpKind, WorkloadName, WorkloadSpec } from './workloads.js';

export interface ProgressSnapshot {
  elapsedSec: number;
  /** Ops finished so far (ok + errors). */
  operations: number;
  errors: number;
  inFlight: number;
  /** Ops finished per second over the last progress interval. */
  currentRate: number;
  /** p99 of successful ops so far, ms. */
  p99Ms: number;
}

export interface RunOptions {
  workload: WorkloadName | WorkloadSpec;
  /** Records already loaded (keys 0..records-1); run-phase inserts continue from here. */
  records: number;
  /** Open loop: offered load in ops/s. Exactly one of `rate` / `concurrency`. */
  rate?: number;
  /** Closed loop: number of workers. */
  concurrency?: number;
  /** Stop after this many ops are issued. At least one of `operations` / `durationSec`. */
  operations?: number;
  /** Stop issuing after this long. */
  durationSec?: number;
  /** Group up to this many consecutive inserts/updates into one `put` call. Default 1. */
  batch?: number;
  /** Open loop: ops allowed in flight before new ones fail as 'client-overloaded'. Default 10 000. */
  maxInFlight?: number;
  /** Bytes per value. Default 1000 (YCSB's 10 fields × 100 bytes). */
  valueSize?: number;
  seed?: number;
  distribution?: DistributionName;
  clock?: Clock;
  onProgress?: (snapshot: ProgressSnapshot) => void;
  /** Default 1. */
  progressIntervalSec?: number;
  /**
   * Give up when ops are in flight but none has completed for this long; those ops count as
   * 'client-stall-timeout' errors. Keeps a hung target from hanging the harness. Default 30.
   */
  stallTimeoutSec?: number;
  /** Stop issuing early (e.g. on SIGINT); in-flight ops are still drained and reported. */
  signal?: AbortSignal;
  /** One of several generators running side by side (`--threads`): its own insert keys (workloads.ts). */
  insertLane?: { index: number; lanes: number };
}

export interface KindStats {
  /** Successful ops. */
  count: number;
  errors: number;
  latencyMs: LatencyPercentiles;
}

export type StopReason = 'operations' | 'duration' | 'signal' | 'stall';

export interface RunResult {
  target: string;
  workload: string;
  mode: 'open' | 'closed';
  /** Open loop: the offered rate, ops/s. */
  targetRate?: number;
  /** Closed loop: number of workers. */
  concurrency?: number;
  batch: number;
  /** Successful ops per second over the whole run (including draining the last in-flight ops). */
  throughput: number;
  /** Ops accounted for: successful + errors. */
  operations: number;
  durationSec: number;
  /** Latency of successful ops (errors are counted, not timed). Open loop: from scheduled time. */
  latencyMs: LatencyPercentiles;
  perKind: Partial<Record<OpKind, KindStats>>;
  errors: number;
  errorsByKind: Record<string, number>;
  /** Most ops simultaneously in flight. */
  peakInFlight: number;
  /**
   * Open loop only: how late the client itself issued ops versus the timetable. If this is
   * large the load generator (not the target) is the bottleneck and the run understates the
   * target; the lateness is still charged to latency, so nothing is hidden.
   */
  scheduleLagMs?: LatencyPercentiles;
  stoppedBy: StopReason;
  /** Compressed HdrHistogram (µs) of successful-op latency, to merge runs from several client processes. */
  histogram: string;
  /** The same per op kind, and (open loop) of the schedule lag: what `mergeRunResults` merges exactly. */
  kindHistograms: Partial<Record<OpKind, string>>;
  lagHistogram?: string;
}

export interface LoadOptions {
  records: number;
  /** Default 1000. */
  valueSize?: number;
  /** Default 100. */
  batch?: number;
  /** Default 4. */
  concurrency?: number;
  /** First index to insert. Default 0. */
  startIndex?: number;
  seed?: number;
  clock?: Clock;
  onProgress?: (snapshot: ProgressSnapshot) => void;
  stallTimeoutSec?: number;
  signal?: AbortSignal;
}
