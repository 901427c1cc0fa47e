/**
 * Human and machine reports of a run, optionally next to the storage-engine baseline, and
 * the pass/fail verdict an operator wires into a pipeline's exit code.
 */
import type { ProgressSnapshot, KindStats, RunResult } from './driver.js';
import type { LatencyPercentiles } from './histogram.js';
import type { OpKind } from './workloads.js';

const PCTS = ['p50', 'p90', 'p99', 'p999', 'max'] as const satisfies ReadonlyArray<keyof LatencyPercentiles>;
const PCT_LABEL: Record<keyof LatencyPercentiles, string> = {
  p50: 'p50',
  p90: 'p90',
  p99: 'p99',
  p999: 'p99.9',
  max: 'max',
};

/** A run as JSON: every field of the RunResult but its histogram encodings, and the baseline beside it. */
export type JsonReport = Omit<RunResult, 'histogram' | 'kindHistograms' | 'lagHistogram'> & {
  baseline?: {
    target: string;
    throughput: number;
    latencyMs: LatencyPercentiles;
    errors: number;
  };
  /** result / baseline; null where the baseline value is 0. */
  ratio?: {
    throughput: number | null;
    latencyMs: Record<keyof LatencyPercentiles, number | null>;
  };
};

const ratioOf = (a: number, b: number): number | null => (b === 0 ? null : a / b);

/** Plain-JSON report (the histogram encoding is left out; it's in RunResult for merging). */
export function toJsonReport(result: RunResult, baseline?: RunResult): JsonReport {
  const out: JsonReport = {
    target: result.target,
    workload: result.workload,
    mode: result.mode,
    batch: result.batch,
    operations: result.operations,
    durationSec: result.durationSec,
    throughput: result.throughput,
    latencyMs: { ...result.latencyMs },
    perKind: result.perKind,
    errors: result.errors,
    errorsByKind: { ...result.errorsByKind },
    peakInFlight: result.peakInFlight,
    stoppedBy: result.stoppedBy,
  };
  if (result.targetRate !== undefined) out.targetRate = result.targetRate;
  if (result.concurrency !== undefined) out.concurrency = result.concurrency;
  if (result.scheduleLagMs) out.scheduleLagMs = { ...result.scheduleLagMs };
  if (baseline) {
    out.baseline = {
      target: baseline.target,
      throughput: baseline.throughput,
      latencyMs: { ...baseline.latencyMs },
      errors: baseline.errors,
    };
    const lat = {} as Record<keyof LatencyPercentiles, number | null>;
    for (const p of PCTS) lat[p] = ratioOf(result.latencyMs[p], baseline.latencyMs[p]);
    out.ratio = { throughput: ratioOf(result.throughput, baseline.throughput), latencyMs: lat };
  }
  return out;
}

// --- text ----------------------------------------------------------------------------

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const fixed = (n: number, d: number): string =>
  n.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
/** Latency in ms with resolution that stays readable from µs to seconds. */
const ms = (n: number): string => (n >= 100 ? fixed(n, 1) : n >= 1 ? fixed(n, 2) : fixed(n, 3));
const ratioText = (r: number | null): string => (r === null ? 'n/a' : `${fixed(r, 2)}x`);

function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ').trimEnd());
}

function describeMode(r: RunResult): string {
  const batch = r.batch > 1 ? `, batch ${r.batch}` : '';
  return r.mode === 'open'
    ? `open loop at ${int(r.targetRate ?? 0)} ops/s offered${batch}`
    : `closed loop, concurrency ${r.concurrency ?? 0}${batch}`;
}

function errorsText(r: RunResult): string {
  const parts = Object.entries(r.errorsByKind).map(([k, n]) => `${k}=${int(n)}`);
  return parts.length ? parts.join(', ') : 'none';
}

/** A readable table of one run, with the baseline and ratio rows when given. */
export function formatReport(result: RunResult, baseline?: RunResult): string {
  const lines: string[] = [];
  lines.push(`workload ${result.workload} — ${describeMode(result)}`);
  const header = ['', 'ops/s', ...PCTS.map((p) => `${PCT_LABEL[p]} ms`), 'errors'];
  const row = (label: string, r: RunResult): string[] => [
    label,
    fixed(r.throughput, 1),
    ...PCTS.map((p) => ms(r.latencyMs[p])),
    int(r.errors),
  ];
  const rows = [header, row(result.target, result)];
  if (baseline) {
    rows.push(row(`${baseline.target} (baseline)`, baseline));
    const j = toJsonReport(result, baseline);
    const ratio = j.ratio as NonNullable<JsonReport['ratio']>;
    rows.push([
      `ratio (${result.target}/${baseline.target})`,
      ratioText(ratio.throughput),
      ...PCTS.map((p) => ratioText(ratio.latencyMs[p])),
      '',
    ]);
  }
  lines.push(...table(rows));
  lines.push('');
  const summary = [
    `${fixed(result.durationSec, 2)} s`,
    `${int(result.operations)} ops`,
    `peak in flight ${int(result.peakInFlight)}`,
    `stopped by ${result.stoppedBy}`,
  ];
  if (result.scheduleLagMs) summary.push(`client schedule lag p99 ${ms(result.scheduleLagMs.p99)} ms`);
  lines.push(summary.join(', '));

  const kindRows = [['op', 'ok', 'errors', ...PCTS.map((p) => `${PCT_LABEL[p]} ms`)]];
  for (const [kind, s] of Object.entries(result.perKind) as Array<[OpKind, KindStats]>) {
    kindRows.push([kind, int(s.count), int(s.errors), ...PCTS.map((p) => ms(s.latencyMs[p]))]);
  }
  if (kindRows.length > 1) lines.push(...table(kindRows).map((l) => `  ${l}`));
  lines.push(`errors: ${errorsText(result)}`);

  for (const w of warnings(result)) lines.push(`WARNING: ${w}`);
  return lines.join('\n');
}

function warnings(r: RunResult): string[] {
  const out: string[] = [];
  if (r.mode === 'closed' && r.workload !== 'load') {
    out.push('closed-loop latencies exclude queueing (coordinated omission); use an open-loop rate to state latency at an IOPS target');
  }
  if (r.scheduleLagMs && r.scheduleLagMs.p99 > Math.max(1, 0.1 * r.latencyMs.p99)) {
    out.push(`the load generator fell behind its timetable (lag p99 ${ms(r.scheduleLagMs.p99)} ms); latencies include that lateness, and the target may be capable of more`);
  }
  if (r.errorsByKind['client-overloaded']) {
    out.push(`${int(r.errorsByKind['client-overloaded'])} ops were never sent because too many were in flight: the target did not keep up with the offered rate`);
  }
  if (r.stoppedBy === 'stall') out.push('the run was aborted because the target stopped completing operations');
  return out;
}

/** One live progress line (for a TTY, overwrite it with '\r'). */
export function formatProgress(s: ProgressSnapshot): string {
  return (
    `[${fixed(s.elapsedSec, 0).padStart(4)} s] ${int(s.operations)} ops, ` +
    `${int(s.currentRate)} ops/s, p99 ${ms(s.p99Ms)} ms, in flight ${int(s.inFlight)}, errors ${int(s.errors)}`
  );
}

// --- verdict -------------------------------------------------------------------------

export interface TargetSpec {
  /** Required successful ops/s. */
  targetIops?: number;
  /** Required p99 latency bound, ms. */
  p99Ms?: number;
  /** Largest acceptable errors/operations. Default 0: an errored op is one whose latency we never saw. */
  maxErrorRate?: number;
  /**
   * Relative slack on targetIops. Default 0.01, because throughput is measured over the
   * whole run including the drain of the last in-flight ops, so an open-loop run that kept
   * up perfectly still lands a hair under its offered rate.
   */
  iopsTolerance?: number;
}

export interface Verdict {
  pass: boolean;
  /** Why it failed; empty when it passed. */
  reasons: string[];
}

/** Does the run show the deployment meets the targets? */
export function evaluateTargets(result: RunResult, targets: TargetSpec): Verdict {
  const reasons: string[] = [];
  const tol = targets.iopsTolerance ?? 0.01;
  if (targets.targetIops !== undefined) {
    const need = targets.targetIops * (1 - tol);
    if (result.throughput < need) {
      reasons.push(`throughput ${fixed(result.throughput, 1)} ops/s < target ${int(targets.targetIops)} ops/s`);
    }
    if (result.mode === 'open' && (result.targetRate ?? 0) < targets.targetIops) {
      reasons.push(`the run offered ${int(result.targetRate ?? 0)} ops/s, below the ${int(targets.targetIops)} ops/s target, so its latencies say nothing about that load`);
    }
  }
  if (targets.p99Ms !== undefined) {
    if (result.mode === 'closed') {
      reasons.push('p99 from a closed-loop run omits queueing delay (coordinated omission); measure it with an open-loop run at the target rate');
    }
    if (result.latencyMs.p99 > targets.p99Ms) {
      reasons.push(`p99 ${ms(result.latencyMs.p99)} ms > bound ${ms(targets.p99Ms)} ms`);
    }
    if (result.operations - result.errors === 0) reasons.push('no successful operations, so no latency was measured');
  }
  const maxErrorRate = targets.maxErrorRate ?? 0;
  const errorRate = result.operations > 0 ? result.errors / result.operations : 0;
  if (errorRate > maxErrorRate) {
    reasons.push(`error rate ${fixed(errorRate * 100, 3)}% (${int(result.errors)} ops: ${errorsText(result)}) > allowed ${fixed(maxErrorRate * 100, 3)}%`);
  }
  if (result.stoppedBy === 'stall') reasons.push('the run was aborted because the target stalled');
  if (result.operations === 0) reasons.push('the run performed no operations');
  return { pass: reasons.length === 0, reasons };
}
