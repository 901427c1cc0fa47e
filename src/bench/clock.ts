/**
 * Clocks for the load generator: the real one, and a virtual one that unit tests advance by hand
 * (open-loop schedules and stall detection tested without waiting).
 */
import { performance } from 'node:perf_hooks';
import { setImmediate as immediate, setTimeout as delay } from 'node:timers/promises';

export interface Clock {
  /** Monotonic time in microseconds. */
  now(): number;
  /**
   * Resolve at or after `tUs`. Must yield to the event loop (a macrotask turn) even when
   * `tUs` has passed, because the driver relies on it to let completions run while it is
   * catching up. Resolves early (never rejects) when `signal` aborts.
   */
  sleepUntil(tUs: number, signal?: AbortSignal): Promise<void>;
}

// Sleep with a timer, never by polling. Polling with setImmediate until the slot (what this did
// before) kept the generator's core 100% busy at any rate: at 5,000 ops/s the client burned ~1 s of
// CPU per second, on a 2-core machine that the node under test shares, and that stole time showed up
// as server latency. A timer wakes up to ~1 ms late; the ops whose slots passed meanwhile are issued
// together on wake-up, and since latency is measured from the scheduled slot, that lateness is
// charged to the measured latency (nothing is hidden; the schedule-lag histogram shows it apart).
export const realClock: Clock = {
  now: () => performance.now() * 1000,
  async sleepUntil(tUs: number, signal?: AbortSignal): Promise<void> {
    const remainingMs = (tUs - performance.now() * 1000) / 1000;
    if (remainingMs > 0 && !signal?.aborted) {
      try {
        await delay(remainingMs, undefined, { signal });
      } catch {
        // aborted: fall through and return promptly
      }
    }
    // Always a macrotask turn, so completions run even when the slot had already passed.
    await immediate();
  },
};

interface Waiter {
  at: number;
  seq: number;
  done: boolean;
  resolve: () => void;
}

/**
 * Deterministic simulated time for tests: time jumps to the earliest pending sleep, one
 * sleeper per macrotask, so all work caused by a wake-up (promise chains) finishes before
 * time moves on. Fake targets use `sleepUntil` to model service time and stalls.
 */
export class VirtualClock implements Clock {
  private t: number;
  private seq = 0;
  private readonly heap: Waiter[] = [];
  private pumpScheduled = false;

  constructor(startUs = 0) {
    this.t = startUs;
  }

  now(): number {
    return this.t;
  }

  /** Sleeps still pending (cancelled ones excluded). */
  get pending(): number {
    return this.heap.filter((w) => !w.done).length;
  }

  sleepUntil(tUs: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const onAbort = (): void => {
        if (w.done) return;
        w.done = true;
        resolve();
      };
      const w: Waiter = {
        at: Math.max(tUs, this.t),
        seq: this.seq++,
        done: false,
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.push(w);
      this.schedulePump();
    });
  }

  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    // Cancelled sleeps are dropped without moving time, or an aborted far-future sleep
    // would drag the clock forward.
    let w = this.pop();
    while (w && w.done) w = this.pop();
    if (!w) return;
    if (w.at > this.t) this.t = w.at;
    w.done = true;
    w.resolve();
    if (this.heap.length > 0) this.schedulePump();
  }

  private less(a: Waiter, b: Waiter): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(w: Waiter): void {
    const h = this.heap;
    h.push(w);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }

  private pop(): Waiter | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0];
    const last = h.pop() as Waiter;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l], h[m])) m = l;
        if (r < h.length && this.less(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
