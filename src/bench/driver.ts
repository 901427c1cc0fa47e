/**
 * The load generator.
 *
 * Open loop (`rate`): op k is *scheduled* at start + k/rate whatever the target is doing, and
 * its latency is measured from that scheduled time. A target that stalls therefore shows the
 * stall in every op that should have been issued during it, i.e. the latency users would see,
 * instead of one slow op followed by a polite pause (coordinated omission).
 *
 * Closed loop (`concurrency`): C workers each issue the next op when the previous completes.
 * That measures capacity, not latency at a rate: its latencies hide queueing by construction.
 */
import { seededRng } from './distributions.js';
import { LatencyHistogram } from './histogram.js';
import type { BenchTarget, OpResult } from './target.js';
import { realClock, type Clock } from './clock.js';
import type { KindStats, LoadOptions, ProgressSnapshot, RunOptions, RunResult, StopReason } from './run-options.js';
import {
  OP_KINDS,
  OpGenerator,
  loadSource,
  makeValue,
  resolveWorkload,
  type Op,
  type OpKind,
  type OpSource,
} from './workloads.js';

export { realClock, VirtualClock, type Clock } from './clock.js';
export type { KindStats, LoadOptions, ProgressSnapshot, RunOptions, RunResult, StopReason } from './run-options.js';

// --- the run -------------------------------------------------------------------------

const DEFAULT_MAX_IN_FLIGHT = 10_000;
const MAX_CONCURRENCY = 100_000;
const MAX_BATCH = 100_000;
// A target that resolves synchronously (or a client that is behind schedule) would
// otherwise never give timers and I/O callbacks a turn.
const YIELD_EVERY = 64;
// Bounds the memory spent on distinct values; each op reuses one from the pool, since
// generating fresh random bytes per op would burn client CPU the target may need.
const VALUE_POOL_BYTES = 16 * 1024 * 1024;
const VALUE_POOL_MAX = 64;

interface Unit {
  ops: Op[];
  /** The target connection lane: the closed-loop worker's index, or the open loop's slot count. */
  lane: number;
  /** Latency origin: scheduled time (open loop) or issue time (closed loop). */
  startUs: number;
  settled: boolean;
}

interface KindAcc {
  ok: number;
  errors: number;
  hist: LatencyHistogram;
}

const isPut = (k: OpKind): boolean => k === 'insert' || k === 'update';

function positiveInt(v: number, name: string, max: number): number {
  if (!Number.isSafeInteger(v) || v < 1 || v > max) throw new RangeError(`${name} must be an integer in [1, ${max}], got ${v}`);
  return v;
}

interface Normalized {
  mode: 'open' | 'closed';
  rate: number;
  concurrency: number;
  opsLimit: number;
  durationUs: number;
  batch: number;
  maxInFlight: number;
  valueSize: number;
  seed: number;
  clock: Clock;
  progressIntervalUs: number;
  stallTimeoutUs: number;
  onProgress: ((s: ProgressSnapshot) => void) | undefined;
  signal: AbortSignal | undefined;
}

function normalize(o: Omit<RunOptions, 'workload' | 'records'>): Normalized {
  const hasRate = o.rate !== undefined;
  const hasConc = o.concurrency !== undefined;
  if (hasRate === hasConc) throw new RangeError('give exactly one of rate (open loop) or concurrency (closed loop)');
  if (hasRate && !(Number.isFinite(o.rate) && (o.rate as number) > 0)) throw new RangeError(`rate must be > 0, got ${o.rate}`);
  if (o.operations === undefined && o.durationSec === undefined) {
    throw new RangeError('give operations and/or durationSec: a run must be bounded');
  }
  if (o.durationSec !== undefined && !(Number.isFinite(o.durationSec) && o.durationSec > 0)) {
    throw new RangeError(`durationSec must be finite and > 0, got ${o.durationSec}`);
  }
  const batch = positiveInt(o.batch ?? 1, 'batch', MAX_BATCH);
  const maxInFlight = positiveInt(o.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT, 'maxInFlight', Number.MAX_SAFE_INTEGER);
  if (maxInFlight < batch) throw new RangeError(`maxInFlight (${maxInFlight}) must be ≥ batch (${batch})`);
  const valueSize = o.valueSize ?? 1000;
  if (!Number.isSafeInteger(valueSize) || valueSize < 0) throw new RangeError(`valueSize must be an integer ≥ 0, got ${valueSize}`);
  const progressIntervalSec = o.progressIntervalSec ?? 1;
  const stallTimeoutSec = o.stallTimeoutSec ?? 30;
  if (!(progressIntervalSec > 0 && Number.isFinite(progressIntervalSec))) throw new RangeError('progressIntervalSec must be > 0');
  if (!(stallTimeoutSec > 0 && Number.isFinite(stallTimeoutSec))) throw new RangeError('stallTimeoutSec must be > 0');
  return {
    mode: hasRate ? 'open' : 'closed',
    rate: o.rate ?? 0,
    concurrency: hasConc ? positiveInt(o.concurrency as number, 'concurrency', MAX_CONCURRENCY) : 0,
    opsLimit: o.operations === undefined ? Infinity : positiveInt(o.operations, 'operations', Number.MAX_SAFE_INTEGER),
    durationUs: o.durationSec === undefined ? Infinity : o.durationSec * 1e6,
    batch,
    maxInFlight,
    valueSize,
    seed: o.seed ?? 1,
    clock: o.clock ?? realClock,
    progressIntervalUs: progressIntervalSec * 1e6,
    stallTimeoutUs: stallTimeoutSec * 1e6,
    onProgress: o.onProgress,
    signal: o.signal,
  };
}

const HARD_STOP = Symbol('hard-stop');

class Run {
  private readonly clock: Clock;
  private readonly total = new LatencyHistogram();
  private readonly lag = new LatencyHistogram();
  private readonly kinds = new Map<OpKind, KindAcc>();
  private readonly errorsByKind = new Map<string, number>();
  private readonly values: Uint8Array[];
  private valueIdx = 0;
  private stash: Op | null = null;

  private startUs = 0;
  private deadlineUs = Infinity;
  private claimed = 0;
  private done = 0;
  private errors = 0;
  private inFlightOps = 0;
  private peakInFlight = 0;
  private readonly inFlightUnits = new Set<Unit>();
  private lastCompletionUs = 0;
  private idleWaiters: Array<() => void> = [];

  private hardStopped = false;
  private resolveHardStop: () => void = () => {};
  private readonly hardStop = new Promise<typeof HARD_STOP>((resolve) => {
    this.resolveHardStop = () => resolve(HARD_STOP);
  });

  constructor(
    private readonly target: BenchTarget,
    private readonly source: OpSource,
    private readonly workloadName: string,
    private readonly o: Normalized,
  ) {
    this.clock = o.clock;
    const rng = seededRng((o.seed ^ 0x5bd1e995) >>> 0);
    const poolSize = Math.max(1, Math.min(VALUE_POOL_MAX, Math.floor(VALUE_POOL_BYTES / Math.max(1, o.valueSize))));
    this.values = Array.from({ length: poolSize }, () => makeValue(o.valueSize, rng));
  }

  async execute(): Promise<RunResult> {
    const o = this.o;
    this.startUs = this.clock.now();
    this.deadlineUs = this.startUs + o.durationUs;
    this.lastCompletionUs = this.startUs;
    const monitorStop = new AbortController();
    const monitor = this.monitor(monitorStop.signal);
    try {
      if (o.mode === 'open') {
        await this.openLoop();
        await Promise.race([this.idle(), this.hardStop]);
      } else {
        const workers = Array.from({ length: o.concurrency }, (_, i) => this.worker(i));
        await Promise.race([Promise.all(workers), this.hardStop]);
      }
    } finally {
      monitorStop.abort();
      await monitor;
    }
    return this.result(this.clock.now());
  }

  private stopIssuing(): boolean {
    return (
      this.hardStopped ||
      this.claimed >= this.o.opsLimit ||
      this.o.signal?.aborted === true ||
      this.clock.now() >= this.deadlineUs
    );
  }

  private nextValue(): Uint8Array {
    const v = this.values[this.valueIdx];
    this.valueIdx = (this.valueIdx + 1) % this.values.length;
    return v;
  }

  /**
   * The next target call. With batch > 1, consecutive inserts/updates are grouped; a
   * non-put op drawn while filling a batch is kept for the next call so the op mix and
   * order are unchanged.
   */
  private nextUnit(remaining: number, startUs: number, lane: number): Unit {
    const first = this.stash ?? this.source.next();
    this.stash = null;
    const ops = [first];
    if (this.o.batch > 1 && isPut(first.kind)) {
      const max = Math.min(this.o.batch, remaining);
      while (ops.length < max) {
        const op = this.source.next();
        if (!isPut(op.kind)) {
          this.stash = op;
          break;
        }
        ops.push(op);
      }
    }
    return { ops, lane, startUs, settled: false };
  }

  private async openLoop(): Promise<void> {
    const intervalUs = 1e6 / this.o.rate;
    let slot = 0;
    let burst = 0;
    let lane = 0;
    for (;;) {
      const scheduled = this.startUs + slot * intervalUs;
      if (slot >= this.o.opsLimit || scheduled >= this.deadlineUs || this.hardStopped || this.o.signal?.aborted) break;
      if (this.clock.now() < scheduled) {
        await this.clock.sleepUntil(scheduled, this.o.signal);
        burst = 0;
        if (this.hardStopped || this.o.signal?.aborted) break;
      } else if (++burst >= YIELD_EVERY) {
        // Behind schedule: keep issuing (lateness is charged to latency) but let completions run.
        await this.clock.sleepUntil(this.clock.now());
        burst = 0;
      }
      // A batch occupies as many timetable slots as it has ops, so the offered op rate
      // stays `rate`; every op in it is timed from the batch's (first) slot.
      const unit = this.nextUnit(this.o.opsLimit - slot, scheduled, lane++);
      slot += unit.ops.length;
      this.claimed = slot;
      if (this.inFlightOps + unit.ops.length > this.o.maxInFlight) {
        // Dropping rather than queueing keeps memory bounded; counting them as errors keeps
        // the report honest about what wasn't offered.
        for (const op of unit.ops) {
          this.fail(op.kind, 'client-overloaded');
          this.source.acknowledge(op);
        }
        continue;
      }
      this.lag.recordMicros(this.clock.now() - scheduled);
      void this.dispatch(unit);
    }
  }

  private async worker(lane: number): Promise<void> {
    let burst = 0;
    while (!this.stopIssuing()) {
      const unit = this.nextUnit(this.o.opsLimit - this.claimed, this.clock.now(), lane);
      this.claimed += unit.ops.length;
      const r = await Promise.race([this.dispatch(unit), this.hardStop]);
      if (r === HARD_STOP) return;
      if (++burst >= YIELD_EVERY) {
        burst = 0;
        await this.clock.sleepUntil(this.clock.now());
      }
    }
  }

  private dispatch(unit: Unit): Promise<void> {
    this.inFlightOps += unit.ops.length;
    this.inFlightUnits.add(unit);
    if (this.inFlightOps > this.peakInFlight) this.peakInFlight = this.inFlightOps;
    return this.call(unit.ops, unit.lane).then((results) => this.settle(unit, results, this.clock.now()));
  }

  /** Performs the target call(s) for one unit. Never rejects: failures become error kinds. */
  private async call(ops: Op[], lane: number): Promise<OpResult[]> {
    const t = this.target;
    const first = ops[0];
    try {
      switch (first.kind) {
        case 'read':
          return checked(await t.get([first.key], lane), 1);
        case 'scan': {
          if (!t.scan) return ['unsupported'];
          const r: unknown = await t.scan(first.key, first.scanLength ?? 1);
          return checked([r], 1);
        }
        case 'rmw': {
          // Timed as one op, read through write, as YCSB reports READ-MODIFY-WRITE.
          const [g] = checked(await t.get([first.key], lane), 1);
          if (g !== null) return [g];
          return checked(await t.put([{ key: first.key, value: this.nextValue() }], lane), 1);
        }
        default:
          return checked(await t.put(ops.map((op) => ({ key: op.key, value: this.nextValue() })), lane), ops.length);
      }
    } catch {
      return ops.map(() => 'exception');
    }
  }

  private settle(unit: Unit, results: OpResult[], endUs: number): void {
    // A unit already written off by the stall watchdog must not be counted twice.
    if (unit.settled) return;
    unit.settled = true;
    this.inFlightUnits.delete(unit);
    this.inFlightOps -= unit.ops.length;
    this.lastCompletionUs = endUs;
    const latencyUs = endUs - unit.startUs;
    for (let i = 0; i < unit.ops.length; i++) {
      const op = unit.ops[i];
      const r = results[i];
      if (r === null) {
        const acc = this.kind(op.kind);
        acc.ok++;
        acc.hist.recordMicros(latencyUs);
        this.total.recordMicros(latencyUs);
        this.done++;
      } else {
        this.fail(op.kind, r);
      }
      this.source.acknowledge(op);
    }
    if (this.inFlightOps === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private kind(k: OpKind): KindAcc {
    let acc = this.kinds.get(k);
    if (!acc) {
      acc = { ok: 0, errors: 0, hist: new LatencyHistogram() };
      this.kinds.set(k, acc);
    }
    return acc;
  }

  private fail(k: OpKind, errorKind: string): void {
    this.kind(k).errors++;
    this.errors++;
    this.done++;
    this.errorsByKind.set(errorKind, (this.errorsByKind.get(errorKind) ?? 0) + 1);
  }

  private idle(): Promise<void> {
    if (this.inFlightOps === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private writeOffInFlight(errorKind: string): void {
    for (const unit of this.inFlightUnits) {
      unit.settled = true;
      for (const op of unit.ops) {
        this.fail(op.kind, errorKind);
        this.source.acknowledge(op);
      }
    }
    this.inFlightUnits.clear();
    this.inFlightOps = 0;
  }

  /** Progress lines and the stall watchdog, on the run's clock so tests can simulate both. */
  private async monitor(signal: AbortSignal): Promise<void> {
    const interval = this.o.progressIntervalUs;
    let next = this.startUs + interval;
    let lastDone = 0;
    let lastT = this.startUs;
    while (!signal.aborted) {
      await this.clock.sleepUntil(next, signal);
      if (signal.aborted) return;
      const now = this.clock.now();
      if (this.inFlightOps > 0 && now - this.lastCompletionUs >= this.o.stallTimeoutUs) {
        this.hardStopped = true;
        this.writeOffInFlight('client-stall-timeout');
        this.resolveHardStop();
        return;
      }
      if (this.o.onProgress) {
        const dt = (now - lastT) / 1e6;
        this.o.onProgress({
          elapsedSec: (now - this.startUs) / 1e6,
          operations: this.done,
          errors: this.errors,
          inFlight: this.inFlightOps,
          currentRate: dt > 0 ? (this.done - lastDone) / dt : 0,
          p99Ms: this.total.percentiles().p99,
        });
      }
      lastDone = this.done;
      lastT = now;
      next += interval;
      // After a long event-loop block don't fire a burst of catch-up ticks.
      if (next <= now) next = now + interval;
    }
  }

  private result(endUs: number): RunResult {
    let durationSec = Math.max(0, (endUs - this.startUs) / 1e6);
    // N ops on the timetable occupy N intervals (the last one starts at (N-1)/rate), so
    // without this a perfect run would report slightly more than the offered rate.
    if (this.o.mode === 'open') durationSec = Math.max(durationSec, this.claimed / this.o.rate);
    const ok = this.total.count;
    const perKind: Partial<Record<OpKind, KindStats>> = {};
    const kindHistograms: Partial<Record<OpKind, string>> = {};
    for (const k of OP_KINDS) {
      const acc = this.kinds.get(k);
      if (acc) {
        perKind[k] = { count: acc.ok, errors: acc.errors, latencyMs: acc.hist.percentiles() };
        kindHistograms[k] = acc.hist.toBase64();
      }
    }
    const errorsByKind: Record<string, number> = {};
    for (const [k, n] of [...this.errorsByKind].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) errorsByKind[k] = n;
    const stoppedBy: StopReason = this.hardStopped
      ? 'stall'
      : this.o.signal?.aborted
        ? 'signal'
        : this.claimed >= this.o.opsLimit
          ? 'operations'
          : 'duration';
    const res: RunResult = {
      target: this.target.name,
      workload: this.workloadName,
      mode: this.o.mode,
      batch: this.o.batch,
      throughput: durationSec > 0 ? ok / durationSec : 0,
      operations: ok + this.errors,
      durationSec,
      latencyMs: this.total.percentiles(),
      perKind,
      errors: this.errors,
      errorsByKind,
      peakInFlight: this.peakInFlight,
      stoppedBy,
      histogram: this.total.toBase64(),
      kindHistograms,
    };
    if (this.o.mode === 'open') {
      res.targetRate = this.o.rate;
      res.scheduleLagMs = this.lag.percentiles();
      res.lagHistogram = this.lag.toBase64();
    } else {
      res.concurrency = this.o.concurrency;
    }
    return res;
  }
}

function checked(r: unknown, n: number): OpResult[] {
  if (!Array.isArray(r) || r.length !== n) return new Array<OpResult>(n).fill('bad-response');
  return r.map((x: unknown) => (x === null ? null : typeof x === 'string' ? x : 'bad-response'));
}

/** Run the run phase of a workload against `target`. */
export async function runWorkload(target: BenchTarget, opts: RunOptions): Promise<RunResult> {
  const spec = resolveWorkload(opts.workload);
  const n = normalize(opts);
  if (spec.scanProportion > 0 && !target.scan) {
    throw new Error(`target '${target.name}' does not implement scan, which workload ${spec.name} needs`);
  }
  // Size the zipfian keyspace for the inserts this run can do (YCSB's insert-count fudge of 2×).
  const maxOps = Math.min(n.opsLimit, n.mode === 'open' ? (n.rate * n.durationUs) / 1e6 : Infinity);
  const expectedInserts = Number.isFinite(maxOps) ? Math.ceil(maxOps * spec.insertProportion * 2) : undefined;
  const gen = new OpGenerator(spec, {
    records: opts.records,
    seed: n.seed,
    distribution: opts.distribution,
    expectedInserts,
    ...(opts.insertLane ? { insertLane: opts.insertLane } : {}),
  });
  return new Run(target, gen, spec.name, n).execute();
}

/** The load phase: insert keys startIndex..startIndex+records-1 in order, batched and pipelined. */
export async function loadPhase(target: BenchTarget, opts: LoadOptions): Promise<RunResult> {
  const records = positiveInt(opts.records, 'records', 2 ** 52);
  const n = normalize({
    concurrency: opts.concurrency ?? 4,
    operations: records,
    batch: opts.batch ?? 100,
    valueSize: opts.valueSize,
    seed: opts.seed,
    clock: opts.clock,
    onProgress: opts.onProgress,
    stallTimeoutSec: opts.stallTimeoutSec,
    signal: opts.signal,
  });
  return new Run(target, loadSource(opts.startIndex ?? 0), 'load', n).execute();
}
