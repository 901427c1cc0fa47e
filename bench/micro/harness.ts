/**
 * Thin layer over tinybench shared by the micro-benchmark suites.
 *
 * Sub-microsecond operations (a ring lookup is ~100 ns) cannot be timed one call at a time: the
 * clock read around each call costs as much as the call. Such tasks therefore run a fixed inner
 * loop of `opsPerCall` operations per tinybench call and every figure is converted back to one
 * operation (ops/s, mean per op). The per-call latency (mean and p99) is kept as measured, so for a
 * batched task it is the latency of the whole batch, e.g. "100 writes submitted in one tick, until
 * the last ack".
 */
import { Bench, type Fn, type FnOptions } from 'tinybench';

export interface TaskSpec {
  name: string;
  /**
   * Declare asynchronous work with `async`: tinybench calls a plain function once up front to
   * find out whether it returns a promise, which matters for tasks with side effects.
   */
  fn: Fn;
  /** Operations one call performs (inner loop or batch size). Default 1. */
  opsPerCall?: number;
  /** Free-form note carried into the table/JSON (e.g. what one "op" is). */
  note?: string;
  hooks?: FnOptions;
}

export interface Row {
  suite: string;
  name: string;
  opsPerCall: number;
  /** Operations per second: opsPerCall / mean call time. */
  opsPerSec: number;
  /** Mean time of one operation, ns. */
  meanNsPerOp: number;
  /** Mean, median and p99 time of one call (= one batch / inner loop), ns. */
  callMeanNs: number;
  callP50Ns: number;
  callP99Ns: number;
  /** Relative margin of error of the call mean, percent. */
  rme: number;
  samples: number;
  note?: string;
}

export interface SuiteOptions {
  /** Minimum measuring time per task, ms (tinybench `time`). */
  timeMs: number;
  warmupMs: number;
  /** Minimum calls per task (tinybench `iterations`). */
  iterations: number;
  warmupIterations: number;
}

/** Defaults sized so the whole micro suite stays well under a minute on 2 cores. */
export const DEFAULT_OPTIONS: SuiteOptions = { timeMs: 300, warmupMs: 80, iterations: 20, warmupIterations: 5 };

/** Sink for results the optimizer must not discard (read once at the end of the run). */
export const sink = { n: 0 };

export async function runSuite(suite: string, tasks: TaskSpec[], opts: SuiteOptions): Promise<Row[]> {
  const bench = new Bench({
    name: suite,
    time: opts.timeMs,
    warmupTime: opts.warmupMs,
    iterations: opts.iterations,
    warmupIterations: opts.warmupIterations,
    throws: true,
  });
  const specs = new Map<string, TaskSpec>();
  for (const t of tasks) {
    if (specs.has(t.name)) throw new Error(`duplicate task name ${t.name}`);
    specs.set(t.name, t);
    bench.add(t.name, t.fn, t.hooks);
  }
  await bench.run();
  const rows: Row[] = [];
  for (const task of bench.tasks) {
    const spec = specs.get(task.name)!;
    const r = task.result;
    if (r === undefined || r.error !== undefined) {
      throw new Error(`${suite}/${task.name}: ${r?.error?.message ?? 'no result'}`, { cause: r?.error });
    }
    const ops = spec.opsPerCall ?? 1;
    const meanMs = r.latency.mean;
    const row: Row = {
      suite,
      name: task.name,
      opsPerCall: ops,
      opsPerSec: (ops * 1000) / meanMs,
      meanNsPerOp: (meanMs * 1e6) / ops,
      callMeanNs: meanMs * 1e6,
      callP50Ns: (r.latency.p50 ?? r.latency.mean) * 1e6,
      callP99Ns: (r.latency.p99 ?? r.latency.max) * 1e6,
      rme: r.latency.rme,
      samples: r.latency.samples.length,
    };
    if (spec.note !== undefined) row.note = spec.note;
    rows.push(row);
  }
  return rows;
}

export interface RatioSpec {
  /** What the ratio says, e.g. "SAB lookup vs plain arrays (4,096 tokens)". */
  label: string;
  /** Task names "suite/name". The ratio is ops/s of `a` divided by ops/s of `b`. */
  a: string;
  b: string;
}

export interface Ratio extends RatioSpec {
  ratio: number;
}

export function computeRatios(rows: Row[], specs: RatioSpec[]): Ratio[] {
  const byKey = new Map(rows.map((r) => [`${r.suite}/${r.name}`, r]));
  const out: Ratio[] = [];
  for (const s of specs) {
    const a = byKey.get(s.a);
    const b = byKey.get(s.b);
    if (a === undefined || b === undefined) continue; // suite not selected in this run
    out.push({ ...s, ratio: a.opsPerSec / b.opsPerSec });
  }
  return out;
}

export function fmtOps(x: number): string {
  if (x >= 1e6) return `${(x / 1e6).toFixed(2)}M`;
  if (x >= 1e3) return `${(x / 1e3).toFixed(1)}k`;
  return x.toFixed(0);
}

export function fmtNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(ns >= 100 ? 0 : 1)} ns`;
}
