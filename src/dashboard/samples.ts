/**
 * This node's side of the dashboard's throughput charts: one sample of its coordinator request
 * histograms per wall-clock second, the last SAMPLE_SECONDS kept, served to whichever node draws a
 * dashboard (over the peer port: `dash-sample`).
 */
import type { RequestMetrics, OpTotals } from '../metrics/requests.js';
import { diffTotals, SampleRing, type SecondSample } from '../metrics/series.js';

/** Seconds of history each node keeps (the dashboard's charts span this). */
export const SAMPLE_SECONDS = 300;
/** How far past a second boundary the sample is taken (timers fire a little late anyway). */
const TICK_OFFSET_MS = 20;

export class LocalSamples {
  readonly ring = new SampleRing(SAMPLE_SECONDS);
  private prev: Record<string, OpTotals> | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly requests: RequestMetrics) {}

  start(): void {
    this.prev = this.requests.totalsByOp();
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    const now = Date.now();
    this.timer = setTimeout(() => this.tick(), 1000 - (now % 1000) + TICK_OFFSET_MS);
    this.timer.unref();
  }

  /**
   * Close the second that just ended. A tick delayed past a whole second (a blocked event loop)
   * books everything since the last one on the latest second: the totals stay exact, the spread
   * over time does not.
   */
  private tick(): void {
    const cur = this.requests.totalsByOp();
    const sec = Math.floor(Date.now() / 1000) - 1;
    this.ring.push(diffTotals(this.prev, cur, sec));
    this.prev = cur;
    this.schedule();
  }

  since(sec: number): SecondSample[] {
    return this.ring.since(sec);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
