/**
 * `ringkv bench --threads K`: the generator's clients run in a piscina pool of K worker threads, so
 * the load generator is not the bottleneck of a run (issue 12). Each thread opens its own target
 * (its own connections), runs its share of the phase (the open-loop rate, the closed-loop workers,
 * the operation count, the load phase's key range and the connections are split across threads;
 * inserts go to per-thread key lanes), and returns its RunResult; the results are merged exactly
 * (HdrHistograms of every kind are added, not averaged).
 *
 * Why piscina and not hand-made workers: the pool's task API (a module's exported function run on
 * an idle thread, its result posted back, errors rethrown in the caller, threads torn down by
 * `destroy`) is the whole of what this needs; hand-written, it is a message protocol of its own.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { KindStats, LoadOptions, ProgressSnapshot, RunOptions, RunResult, StopReason } from './driver.js';
import { LatencyHistogram } from './histogram.js';
import type { OpKind, WorkloadName } from './workloads.js';
import { OP_KINDS } from './workloads.js';

/** What a thread connects to: serializable, so it crosses to the pool. */
export type ThreadTargetSpec =
  | { kind: 'ringkv'; socket?: string; hosts?: string[]; secret?: string; table: string; timeoutMs: number; connections: number; consistency?: string; w?: number; r?: number }
  | { kind: 'http'; url: string; table: string; timeoutMs: number; consistency?: string; w?: number; r?: number }
  | { kind: 'redis'; url: string; connections: number; timeoutMs: number }
  | { kind: 'noop' };

/** Serializable phase options (no clock, callbacks or signal: those are the thread's own). */
export type ThreadPhase =
  | { kind: 'load'; opts: Omit<LoadOptions, 'clock' | 'onProgress' | 'signal'> }
  | { kind: 'run'; opts: Omit<RunOptions, 'clock' | 'onProgress' | 'signal' | 'workload'> & { workload: WorkloadName } };

export interface ThreadTask {
  target: ThreadTargetSpec;
  phase: ThreadPhase;
  /** Progress snapshots go out on it; an 'abort' message coming in stops issuing. */
  port: MessagePort;
}

/** Share `i` of `total` split as evenly as possible over `k` parts (the first ones get the remainder). */
export function shareOf(total: number, k: number, i: number): number {
  const base = Math.floor(total / k);
  return base + (i < total - base * k ? 1 : 0);
}

/** The first index of share `i` (for key ranges). */
export function shareStart(total: number, k: number, i: number): number {
  let s = 0;
  for (let j = 0; j < i; j++) s += shareOf(total, k, j);
  return s;
}

function mergeHists(encoded: Array<string | undefined>): LatencyHistogram {
  const h = new LatencyHistogram();
  for (const e of encoded) if (e !== undefined) h.merge(LatencyHistogram.fromBase64(e));
  return h;
}

/**
 * One RunResult from the results of generators that ran side by side: counts add, throughput is
 * the successful ops over the longest duration, latencies come from the added histograms.
 */
export function mergeRunResults(parts: readonly RunResult[]): RunResult {
  if (parts.length === 0) throw new RangeError('mergeRunResults needs at least one result');
  if (parts.length === 1) return parts[0]!;
  const first = parts[0]!;
  const durationSec = Math.max(...parts.map((p) => p.durationSec));
  const total = mergeHists(parts.map((p) => p.histogram));
  const perKind: Partial<Record<OpKind, KindStats>> = {};
  const kindHistograms: Partial<Record<OpKind, string>> = {};
  for (const k of OP_KINDS) {
    const ps = parts.filter((p) => p.perKind[k] !== undefined);
    if (ps.length === 0) continue;
    const h = mergeHists(ps.map((p) => p.kindHistograms[k]));
    perKind[k] = { count: ps.reduce((s, p) => s + p.perKind[k]!.count, 0), errors: ps.reduce((s, p) => s + p.perKind[k]!.errors, 0), latencyMs: h.percentiles() };
    kindHistograms[k] = h.toBase64();
  }
  const errorsByKind: Record<string, number> = {};
  for (const p of parts) for (const [k, n] of Object.entries(p.errorsByKind)) errorsByKind[k] = (errorsByKind[k] ?? 0) + n;
  const order: StopReason[] = ['stall', 'signal', 'operations', 'duration'];
  const stoppedBy = order.find((r) => parts.some((p) => p.stoppedBy === r)) ?? first.stoppedBy;
  const ok = total.count;
  const out: RunResult = {
    target: first.target,
    workload: first.workload,
    mode: first.mode,
    batch: first.batch,
    throughput: durationSec > 0 ? ok / durationSec : 0,
    operations: parts.reduce((s, p) => s + p.operations, 0),
    durationSec,
    latencyMs: total.percentiles(),
    perKind,
    errors: parts.reduce((s, p) => s + p.errors, 0),
    errorsByKind,
    peakInFlight: parts.reduce((s, p) => s + p.peakInFlight, 0),
    stoppedBy,
    histogram: total.toBase64(),
    kindHistograms,
  };
  if (first.mode === 'open') {
    out.targetRate = parts.reduce((s, p) => s + (p.targetRate ?? 0), 0);
    const lag = mergeHists(parts.map((p) => p.lagHistogram));
    out.scheduleLagMs = lag.percentiles();
    out.lagHistogram = lag.toBase64();
  } else {
    out.concurrency = parts.reduce((s, p) => s + (p.concurrency ?? 0), 0);
  }
  return out;
}

/** A pool of K generator threads (workers/bench-client.ts), each running one task per phase. */
export class GeneratorPool {
  private readonly pool: Piscina<ThreadTask, RunResult>;

  constructor(readonly threads: number) {
    this.pool = new Piscina<ThreadTask, RunResult>({
      filename: new URL('../../workers/bench-client.js', import.meta.url).href,
      minThreads: threads,
      maxThreads: threads,
      // One task per thread at a time: a thread's generator is its whole event loop.
      concurrentTasksPerWorker: 1,
      idleTimeout: 60_000,
    });
  }

  /**
   * Run one phase on `n` threads: `taskOf(i)` builds thread i's share. Progress snapshots of all
   * threads are summed (rates and counts add; p99 is the largest thread's) and passed on once per
   * round of reports; `signal` stops every thread from issuing.
   */
  async run(n: number, taskOf: (i: number) => Omit<ThreadTask, 'port'>, onProgress?: (s: ProgressSnapshot) => void, signal?: AbortSignal): Promise<RunResult> {
    if (!(Number.isInteger(n) && n >= 1 && n <= this.threads)) throw new RangeError(`a phase runs on 1..${this.threads} threads, got ${n}`);
    const latest: Array<ProgressSnapshot | undefined> = new Array(n);
    const ports: MessagePort[] = [];
    const runs: Array<Promise<RunResult>> = [];
    const abort = (): void => {
      for (const p of ports) p.postMessage('abort');
    };
    signal?.addEventListener('abort', abort, { once: true });
    try {
      for (let i = 0; i < n; i++) {
        const { port1, port2 } = new MessageChannel();
        ports.push(port1);
        port1.on('message', (s: ProgressSnapshot) => {
          latest[i] = s;
          if (i !== 0 || !onProgress) return;
          const have = latest.filter((x): x is ProgressSnapshot => x !== undefined);
          onProgress({
            elapsedSec: s.elapsedSec,
            operations: have.reduce((a, x) => a + x.operations, 0),
            errors: have.reduce((a, x) => a + x.errors, 0),
            inFlight: have.reduce((a, x) => a + x.inFlight, 0),
            currentRate: have.reduce((a, x) => a + x.currentRate, 0),
            p99Ms: Math.max(...have.map((x) => x.p99Ms)),
          });
        });
        const task: ThreadTask = { ...taskOf(i), port: port2 };
        runs.push(this.pool.run(task, { transferList: [port2] }));
      }
      if (signal?.aborted) abort();
      return mergeRunResults(await Promise.all(runs));
    } finally {
      signal?.removeEventListener('abort', abort);
      for (const p of ports) p.close();
    }
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
