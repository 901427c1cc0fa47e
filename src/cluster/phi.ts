/**
 * Phi-accrual failure detector (Hayashibara et al., "The φ Accrual Failure
 * Detector", 2004), following Akka's PhiAccrualFailureDetector.
 *
 * Instead of a binary up/down verdict the detector outputs a suspicion level
 * φ = -log10(P(a heartbeat arrives later than now)), where the inter-arrival
 * times are modelled as a normal distribution estimated over a sliding window.
 * φ = 1 means ~10% chance we are wrong to suspect, φ = 8 means ~1e-8.
 *
 * Pure state machine: callers pass `nowMs` (a monotonic clock reading) into
 * every call; nothing here reads the clock or schedules anything, so a whole
 * cluster can be simulated deterministically.
 */

export interface PhiOptions {
  /** φ at or above which a node is considered unavailable. */
  threshold: number;
  /** Number of inter-arrival samples kept per node (sliding window). */
  maxSampleSize: number;
  /**
   * Floor for the standard deviation. Perfectly regular heartbeats would give
   * σ → 0 and turn the smallest delay into a conviction; the floor keeps the
   * distribution wide enough to absorb scheduler/network noise.
   */
  minStdDevMs: number;
  /**
   * Added to the mean: a pause of this length (GC, network blip) is treated
   * as normal. It shifts the detection time by exactly this amount.
   */
  acceptableHeartbeatPauseMs: number;
  /**
   * Expected heartbeat interval used to seed the window on the first
   * heartbeat, before any real interval has been observed.
   */
  firstHeartbeatEstimateMs: number;
}

export const DEFAULT_PHI_OPTIONS: Readonly<PhiOptions> = Object.freeze({
  threshold: 8,
  maxSampleSize: 1000,
  minStdDevMs: 100,
  acceptableHeartbeatPauseMs: 0,
  firstHeartbeatEstimateMs: 1000,
});

/**
 * Fixed-capacity ring buffer of intervals with running sums, so mean and
 * variance are O(1) per heartbeat regardless of window size.
 */
class IntervalWindow {
  private readonly buf: Float64Array;
  private head = 0; // index of the oldest sample
  private count = 0;
  private sum = 0;
  private sumSq = 0;
  // Running sums drift when samples are subtracted out again (floating point
  // cancellation); recomputing them exactly once per full window turnover
  // bounds the drift at amortised O(1) cost.
  private evictionsSinceResum = 0;

  constructor(capacity: number) {
    this.buf = new Float64Array(capacity);
  }

  push(x: number): void {
    const cap = this.buf.length;
    if (this.count === cap) {
      const old = this.buf[this.head]!;
      this.sum -= old;
      this.sumSq -= old * old;
      this.buf[this.head] = x;
      this.head = (this.head + 1) % cap;
      this.sum += x;
      this.sumSq += x * x;
      if (++this.evictionsSinceResum >= cap) this.resum();
    } else {
      this.buf[(this.head + this.count) % cap] = x;
      this.count++;
      this.sum += x;
      this.sumSq += x * x;
    }
  }

  private resum(): void {
    let s = 0;
    let sq = 0;
    for (let i = 0; i < this.count; i++) {
      const v = this.buf[i]!;
      s += v;
      sq += v * v;
    }
    this.sum = s;
    this.sumSq = sq;
    this.evictionsSinceResum = 0;
  }

  get size(): number {
    return this.count;
  }

  mean(): number {
    return this.sum / this.count;
  }

  /** Population standard deviation, as in Akka. */
  stdDev(): number {
    const m = this.mean();
    // Clamp: cancellation can make the difference slightly negative.
    return Math.sqrt(Math.max(0, this.sumSq / this.count - m * m));
  }
}

interface NodeState {
  lastHeartbeatMs: number;
  readonly window: IntervalWindow;
}

/**
 * φ for a normal distribution with the given mean/σ after `elapsedMs` of
 * silence, using the logistic approximation of the normal CDF that Akka uses:
 *   1 - F(t) ≈ 1 / (1 + e^z),  z = y·(1.5976 + 0.070566·y²),  y = (t - µ)/σ
 * so φ = -log10(1/(1+e^z)) = softplus(z) / ln 10.
 *
 * Akka evaluates this as -log10(e/(1+e)) with e = exp(-z), which underflows
 * to φ = +Infinity once z exceeds ~745. The softplus form is algebraically
 * identical but stays finite and strictly increasing in `elapsedMs`, which
 * keeps comparisons meaningful for very long silences.
 */
export function phiOf(elapsedMs: number, meanMs: number, stdDevMs: number): number {
  if (!(stdDevMs > 0)) throw new RangeError(`phiOf: stdDevMs must be > 0, got ${stdDevMs}`);
  const y = (elapsedMs - meanMs) / stdDevMs;
  const z = y * (1.5976 + 0.070566 * y * y);
  const softplus = z > 0 ? z + Math.log1p(Math.exp(-z)) : Math.log1p(Math.exp(z));
  return softplus / Math.LN10;
}

function assertFiniteTime(name: string, nowMs: number): void {
  if (!Number.isFinite(nowMs)) throw new RangeError(`${name}: nowMs must be finite, got ${nowMs}`);
}

function validateOptions(o: PhiOptions): void {
  if (!(o.threshold > 0) || !Number.isFinite(o.threshold)) {
    throw new RangeError(`phi: threshold must be a finite number > 0, got ${o.threshold}`);
  }
  if (!Number.isSafeInteger(o.maxSampleSize) || o.maxSampleSize < 1) {
    throw new RangeError(`phi: maxSampleSize must be an integer >= 1, got ${o.maxSampleSize}`);
  }
  if (!(o.minStdDevMs > 0) || !Number.isFinite(o.minStdDevMs)) {
    throw new RangeError(`phi: minStdDevMs must be a finite number > 0, got ${o.minStdDevMs}`);
  }
  if (!(o.acceptableHeartbeatPauseMs >= 0) || !Number.isFinite(o.acceptableHeartbeatPauseMs)) {
    throw new RangeError(
      `phi: acceptableHeartbeatPauseMs must be a finite number >= 0, got ${o.acceptableHeartbeatPauseMs}`,
    );
  }
  if (!(o.firstHeartbeatEstimateMs > 0) || !Number.isFinite(o.firstHeartbeatEstimateMs)) {
    throw new RangeError(
      `phi: firstHeartbeatEstimateMs must be a finite number > 0, got ${o.firstHeartbeatEstimateMs}`,
    );
  }
}

export class PhiAccrualDetector {
  readonly options: Readonly<PhiOptions>;
  private readonly nodes = new Map<string, NodeState>();

  constructor(opts: Partial<PhiOptions> = {}) {
    // Drop explicit `undefined`s so they don't clobber defaults.
    const given = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    const merged: PhiOptions = { ...DEFAULT_PHI_OPTIONS, ...given };
    validateOptions(merged);
    this.options = Object.freeze(merged);
  }

  /**
   * Record a heartbeat from `nodeId` at `nowMs`.
   *
   * The first heartbeat seeds the window with two synthetic samples
   * µ ± µ/4 (µ = firstHeartbeatEstimateMs), exactly as Akka does, so φ is
   * meaningful before a second heartbeat has arrived.
   *
   * An interval is only recorded if the node was still considered available
   * when the heartbeat arrived (also Akka's rule): the gap spanning an outage
   * is not representative of normal inter-arrival times and would inflate
   * µ and σ, making the *next* failure slower to detect.
   *
   * Throws if `nowMs` goes backwards for this node: a negative interval would
   * corrupt the statistics, and it means the caller is not passing a
   * monotonic clock.
   */
  heartbeat(nodeId: string, nowMs: number): void {
    assertFiniteTime('heartbeat', nowMs);
    const st = this.nodes.get(nodeId);
    if (st === undefined) {
      const window = new IntervalWindow(this.options.maxSampleSize);
      const mean = this.options.firstHeartbeatEstimateMs;
      const sd = mean / 4;
      window.push(mean - sd);
      window.push(mean + sd);
      this.nodes.set(nodeId, { lastHeartbeatMs: nowMs, window });
      return;
    }
    const interval = nowMs - st.lastHeartbeatMs;
    if (interval < 0) {
      throw new RangeError(
        `heartbeat(${nodeId}): time went backwards (${nowMs} < last ${st.lastHeartbeatMs})`,
      );
    }
    if (this.phiFor(st, nowMs) < this.options.threshold) st.window.push(interval);
    st.lastHeartbeatMs = nowMs;
  }

  /**
   * Current suspicion level for `nodeId`.
   *
   * Never-seen (or removed) nodes return 0: φ measures suspicion accrued
   * since the last heartbeat and there is none to accrue from. Such nodes are
   * nevertheless NOT available (see `isAvailable`), so callers must not read
   * "φ = 0" as "alive" — use `isAvailable` for decisions.
   *
   * If `nowMs` is earlier than the last heartbeat (e.g. the caller sampled the
   * clock once per tick and then processed a later-stamped heartbeat) the
   * elapsed time is clamped to 0 rather than throwing: a read cannot corrupt
   * state, and a crash in the failure detector would be worse than the
   * momentarily-optimistic answer.
   */
  phi(nodeId: string, nowMs: number): number {
    assertFiniteTime('phi', nowMs);
    const st = this.nodes.get(nodeId);
    return st === undefined ? 0 : this.phiFor(st, nowMs);
  }

  /**
   * True iff we have heard from the node and φ < threshold.
   *
   * Unknown nodes are unavailable (unlike Akka, which treats them as up):
   * in a Dynamo-style store routing to a replica we have never heard from
   * directly only produces timeouts, and Cassandra likewise only marks an
   * endpoint alive after direct contact.
   */
  isAvailable(nodeId: string, nowMs: number): boolean {
    assertFiniteTime('isAvailable', nowMs);
    const st = this.nodes.get(nodeId);
    return st !== undefined && this.phiFor(st, nowMs) < this.options.threshold;
  }

  /** Forget a node (e.g. it left the ring). Its next heartbeat reseeds it. */
  remove(nodeId: string): void {
    this.nodes.delete(nodeId);
  }

  /** Nodes we have received at least one heartbeat from, sorted for determinism. */
  knownNodes(): string[] {
    return [...this.nodes.keys()].sort();
  }

  private phiFor(st: NodeState, nowMs: number): number {
    const w = st.window;
    if (w.size === 0) throw new Error('phi: invariant violated: empty sample window');
    const elapsed = Math.max(0, nowMs - st.lastHeartbeatMs);
    const mean = w.mean() + this.options.acceptableHeartbeatPauseMs;
    const sd = Math.max(w.stdDev(), this.options.minStdDevMs);
    return phiOf(elapsed, mean, sd);
  }
}
