/**
 * Per-second request samples for the dashboard (pure: no clock, no I/O). Every node keeps its last
 * few minutes of one-second deltas of its coordinator histograms; a dashboard merges the nodes'
 * samples of the same wall-clock second (histograms add up exactly) and reads throughput and p99 off
 * the merged buckets, the way Prometheus' `histogram_quantile` does.
 */
import type { RequestOp } from '../router/router.js';
import type { OpTotals } from './requests.js';

/** One operation's requests within one second. */
export interface OpSample {
  count: number;
  errors: number;
  /** Seconds, summed over the requests. */
  sum: number;
  /** Non-cumulative counts per latency bucket, overflow last. */
  buckets: number[];
}

/** Everything one node (or, merged, the cluster) coordinated during wall-clock second `sec`. */
export interface SecondSample {
  /** Unix time in whole seconds: the sample covers [sec, sec + 1). */
  sec: number;
  ops: Partial<Record<RequestOp, OpSample>>;
}

/** What the browser draws for one second: requests/s, errors/s and p99 (ms, null without requests) per op. */
export interface SeriesPoint {
  sec: number;
  ops: Partial<Record<RequestOp, { rate: number; errors: number; p99Ms: number | null }>>;
}

/** The deltas between two cumulative snapshots (ops without requests are left out). */
export function diffTotals(prev: Readonly<Record<string, OpTotals>> | null, cur: Readonly<Record<string, OpTotals>>, sec: number): SecondSample {
  const ops: SecondSample['ops'] = {};
  for (const [op, c] of Object.entries(cur)) {
    const p = prev?.[op];
    const count = c.count - (p?.count ?? 0);
    const errors = c.errors - (p?.errors ?? 0);
    if (count <= 0 && errors <= 0) continue;
    ops[op as RequestOp] = { count, errors, sum: c.sum - (p?.sum ?? 0), buckets: c.buckets.map((b, i) => b - (p?.buckets[i] ?? 0)) };
  }
  return { sec, ops };
}

/** The sum of two samples of the same second (histograms with equal bounds add bucket by bucket). */
export function mergeSample(into: SecondSample, add: SecondSample): SecondSample {
  for (const [op, a] of Object.entries(add.ops) as Array<[RequestOp, OpSample]>) {
    const t = into.ops[op];
    if (!t) {
      into.ops[op] = { count: a.count, errors: a.errors, sum: a.sum, buckets: [...a.buckets] };
      continue;
    }
    t.count += a.count;
    t.errors += a.errors;
    t.sum += a.sum;
    for (let i = 0; i < a.buckets.length; i++) t.buckets[i] = (t.buckets[i] ?? 0) + a.buckets[i]!;
  }
  return into;
}

/**
 * The q-quantile of a histogram, interpolated linearly inside its bucket as Prometheus'
 * `histogram_quantile` does (the first bucket starts at 0; a rank in the overflow bucket answers the
 * highest bound). Null for an empty histogram.
 */
export function quantile(bounds: readonly number[], buckets: readonly number[], q: number): number | null {
  let total = 0;
  for (const b of buckets) total += b;
  if (total <= 0) return null;
  const rank = q * total;
  let acc = 0;
  for (let i = 0; i < buckets.length; i++) {
    const c = buckets[i]!;
    if (acc + c >= rank && c > 0) {
      if (i >= bounds.length) return bounds[bounds.length - 1] ?? null;
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const hi = bounds[i]!;
      return lo + ((hi - lo) * (rank - acc)) / c;
    }
    acc += c;
  }
  return bounds[bounds.length - 1] ?? null;
}

export function toPoint(s: SecondSample, boundsSeconds: readonly number[]): SeriesPoint {
  const ops: SeriesPoint['ops'] = {};
  for (const [op, o] of Object.entries(s.ops) as Array<[RequestOp, OpSample]>) {
    const p99 = quantile(boundsSeconds, o.buckets, 0.99);
    ops[op] = { rate: o.count, errors: o.errors, p99Ms: p99 === null ? null : Math.round(p99 * 1e6) / 1000 };
  }
  return { sec: s.sec, ops };
}

/** The last `capacity` seconds of one node's samples, oldest first. */
export class SampleRing {
  private readonly items: SecondSample[] = [];

  constructor(readonly capacity: number) {}

  push(s: SecondSample): void {
    const last = this.items[this.items.length - 1];
    if (last && s.sec <= last.sec) return; // a clock step back: keep the series ordered
    this.items.push(s);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }

  /** Samples after second `sec`, oldest first. */
  since(sec: number): SecondSample[] {
    let i = this.items.length;
    while (i > 0 && this.items[i - 1]!.sec > sec) i--;
    return this.items.slice(i);
  }

  get latest(): SecondSample | undefined {
    return this.items[this.items.length - 1];
  }
}

/**
 * Merges the samples several nodes report for the same seconds. A second is final `lagSeconds` after
 * it ended (nodes close their seconds on their own timers, and the answers travel); samples that
 * arrive for a second already final are dropped, and counted.
 */
export class SampleMerger {
  private readonly open = new Map<number, SecondSample>();
  private finalUpTo: number;
  /** Samples dropped: late for a final second, or past the bound on open seconds. */
  dropped = 0;

  constructor(
    private readonly lagSeconds: number,
    startSec: number,
    /** Seconds kept open at most (a node whose clock runs far ahead cannot grow the map). */
    private readonly maxOpenSeconds = 600,
  ) {
    this.finalUpTo = startSec;
  }

  /** The last second already emitted: ask nodes for samples after it. */
  get emittedUpTo(): number {
    return this.finalUpTo;
  }

  add(s: SecondSample): void {
    const cur = this.open.get(s.sec);
    if (s.sec <= this.finalUpTo || (!cur && this.open.size >= this.maxOpenSeconds)) {
      this.dropped++;
      return;
    }
    if (cur) mergeSample(cur, s);
    else this.open.set(s.sec, mergeSample({ sec: s.sec, ops: {} }, s));
  }

  /** Every second up to `nowSec - lagSeconds` (empty seconds included), oldest first. */
  finalize(nowSec: number): SecondSample[] {
    const upTo = nowSec - this.lagSeconds;
    const out: SecondSample[] = [];
    // After a long gap (or a clock jump) only the last maxOpenSeconds seconds are emitted.
    const from = Math.max(this.finalUpTo + 1, upTo - this.maxOpenSeconds + 1);
    for (const sec of this.open.keys()) if (sec < from) this.open.delete(sec);
    for (let sec = from; sec <= upTo; sec++) {
      out.push(this.open.get(sec) ?? { sec, ops: {} });
      this.open.delete(sec);
    }
    if (upTo > this.finalUpTo) this.finalUpTo = upTo;
    // Samples from the future (a node whose clock runs ahead) are kept until their second is final.
    return out;
  }
}
