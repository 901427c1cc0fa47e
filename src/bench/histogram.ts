/**
 * Latency histogram: HdrHistogram recording integer microseconds at 3 significant digits
 * (so every reported percentile is within 0.1% of the true value), reported in milliseconds.
 */
import { build, decodeFromCompressedBase64, encodeIntoCompressedBase64, type Histogram } from 'hdr-histogram-js';

export interface LatencyPercentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

function newHdr(): Histogram {
  // The pure JS build: the WASM one needs an async init and explicit destroy(), which is a
  // leak waiting to happen in a harness that creates a histogram per op kind per run.
  return build({
    numberOfSignificantValueDigits: 3,
    useWebAssembly: false,
    lowestDiscernibleValue: 1,
    autoResize: true,
  });
}

export class LatencyHistogram {
  private hdr: Histogram;

  constructor(hdr?: Histogram) {
    this.hdr = hdr ?? newHdr();
  }

  /** Record one latency in microseconds. Sub-µs values count as 1 µs (the resolution floor). */
  recordMicros(us: number): void {
    this.hdr.recordValue(Math.max(1, Math.round(us)));
  }

  /** Record `count` ops that all saw the same latency (a batched call). */
  recordMicrosN(us: number, count: number): void {
    if (count > 0) this.hdr.recordValueWithCount(Math.max(1, Math.round(us)), count);
  }

  get count(): number {
    return this.hdr.totalCount;
  }

  meanMs(): number {
    return this.hdr.totalCount === 0 ? 0 : this.hdr.mean / 1000;
  }

  /** Percentiles in ms; all zero when nothing was recorded (check `count`). */
  percentiles(): LatencyPercentiles {
    if (this.hdr.totalCount === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0 };
    const at = (p: number): number => this.hdr.getValueAtPercentile(p) / 1000;
    // max via the 100th percentile (the top bucket's highest equivalent value) rather than the
    // exact maxValue: the exact value is lost on merge/decode, and mixing the two can print a
    // max below p99.9. The overstatement is bounded by the 0.1% resolution.
    return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max: at(100) };
  }

  /** Latency at an arbitrary percentile (0–100), ms; e.g. 99.99 for a tighter SLO. */
  valueAtPercentile(percentile: number): number {
    return this.hdr.totalCount === 0 ? 0 : this.hdr.getValueAtPercentile(percentile) / 1000;
  }

  /** Add `other`'s counts into this histogram (e.g. per-kind → total, or several clients). */
  merge(other: LatencyHistogram): void {
    this.hdr.add(other.hdr);
  }

  reset(): void {
    this.hdr.reset();
  }

  /** Compressed HdrHistogram V2 encoding, so histograms from several client processes can be merged exactly. */
  toBase64(): string {
    return encodeIntoCompressedBase64(this.hdr);
  }

  static fromBase64(encoded: string): LatencyHistogram {
    const h = new LatencyHistogram();
    h.hdr.add(decodeFromCompressedBase64(encoded));
    return h;
  }
}
