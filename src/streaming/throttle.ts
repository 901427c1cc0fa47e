/**
 * Per-source stream throttle (`streamThroughputMiBs`): a token bucket over bytes. A batch is sent
 * whole once the bucket is out of debt and then charged in full, so the bucket can go negative by
 * one batch; the next send waits until the debt is paid back. Over any interval the bytes sent are
 * at most burst + rate x time + one batch. Pure: the caller passes the clock.
 */
import { invariant } from '../util/errors.js';

export class ByteThrottle {
  private tokens: number;
  private last: number;

  constructor(
    private readonly bytesPerSecond: number,
    private readonly burstBytes: number,
    nowMs: number,
  ) {
    invariant(bytesPerSecond > 0 && Number.isFinite(bytesPerSecond), 'a byte throttle needs a positive rate');
    invariant(burstBytes >= 1, 'a byte throttle needs a burst of at least one byte');
    this.tokens = burstBytes;
    this.last = nowMs;
  }

  private refill(nowMs: number): void {
    if (nowMs > this.last) this.tokens = Math.min(this.burstBytes, this.tokens + ((nowMs - this.last) * this.bytesPerSecond) / 1000);
    this.last = Math.max(this.last, nowMs);
  }

  /** Milliseconds to wait before the next batch may go: 0 while the bucket is not in debt. */
  waitMs(nowMs: number): number {
    this.refill(nowMs);
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.bytesPerSecond);
  }

  /** Charge `bytes` just sent. */
  consume(bytes: number, nowMs: number): void {
    invariant(bytes >= 0, 'a throttle charge is not negative');
    this.refill(nowMs);
    this.tokens -= bytes;
  }
}

/** Bytes per second of a `streamThroughputMiBs` setting. */
export function mibPerSecond(mibs: number): number {
  return mibs * 1024 * 1024;
}
