import { Worker } from 'node:worker_threads';
import type { Remote } from 'comlink';
import { detachedBytes } from '../util/bytes.js';
import { invariant, RingkvError } from '../util/errors.js';
import { WorkerApi } from '../util/worker-api.js';
import type { Hint, HintCounts, HintsApi, HintsWorkerData, StoredHint } from './protocol.js';

/** How long close() waits for the actor to answer and exit before terminating it. */
const CLOSE_TIMEOUT_MS = 5000;

/** Stores made in one turn, sent as one `store` call at its end (or before any other call). */
interface StoreBatch {
  hints: Hint[];
  waiters: Array<{ resolve: (stored: boolean) => void; reject: (e: Error) => void }>;
}

/**
 * Main-thread side of the hints actor: its HintsApi (comlink, on a dedicated channel), with the
 * requests outstanding bounded (`maxPendingCalls`) and failed with `unavailable` when the worker
 * dies. It keeps an exact copy of the actor's per-target hint counts: every answer that changes
 * them carries the counts of the targets its op touched and a serial in mailbox order, and answers
 * are applied in that order (asserted).
 *
 * Stores are batched: while a replica is down every write to its ranges stores a hint, and a
 * comlink call costs a postMessage, a Proxy and a random id of its own (one call per hint stored
 * 2-3x fewer hints per second than batched calls: docs/architecture.md). So stores are collected
 * into one call, sent from a microtask queued by the first of them: every store made before that
 * microtask runs (the rest of the synchronous code, and microtasks queued ahead of it) goes in
 * the same call; a store made later starts the next batch. Any other call sends the open batch
 * first, so the actor still sees every op in call order.
 */
export class HintStore {
  private readonly counts = new Map<string, number>();
  /** Serial of the last applied counts answer (HintCounts.serial). */
  private countsSerial = 0;
  private closing = false;
  /** Requests made and not yet answered (stores waiting in `batch` included). */
  private outstanding = 0;
  private batch: StoreBatch | undefined;
  /** Resolved when the worker has exited (for whatever reason). */
  private readonly exited: Promise<void>;
  /** Called (synchronously, in mailbox order) after the counts changed. */
  onCounts: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly api: WorkerApi<HintsApi>,
    private readonly maxPendingCalls: number,
  ) {
    this.exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
  }

  static async start(data: Omit<HintsWorkerData, 'control'>, maxPendingCalls = 100_000): Promise<HintStore> {
    const { api, workerPort } = WorkerApi.channel<HintsApi>();
    const w = new Worker(new URL('../../workers/hints.js', import.meta.url), { workerData: { ...data, control: workerPort } satisfies HintsWorkerData, transferList: [workerPort] });
    const store = new HintStore(w, api, maxPendingCalls);
    w.on('error', (e) => api.failAll(new RingkvError('unavailable', `hints actor failed: ${e.message}`)));
    w.on('exit', (code) => api.failAll(new RingkvError('unavailable', `hints actor exited (code ${code})`)));
    // Answered once the actor has opened the family and counted what it holds; rejected if it dies first.
    await store.refreshCounts();
    return store;
  }

  /** Why a new request cannot be made now, or null. */
  private refusal(): RingkvError | null {
    if (this.closing) return new RingkvError('unavailable', 'hint store is closing');
    if (this.outstanding >= this.maxPendingCalls) return new RingkvError('overloaded', `hint store has ${this.outstanding} requests outstanding (limit ${this.maxPendingCalls})`);
    return null;
  }

  /** One request on the actor's API (after the open store batch); an actor error becomes `internal`, its death `unavailable`. */
  private call<T>(fn: (api: Remote<HintsApi>) => Promise<T>): Promise<T> {
    const no = this.refusal();
    if (no) return Promise.reject(no);
    this.sendBatch();
    this.outstanding++;
    return this.send(fn, 1);
  }

  /**
   * Send one comlink call standing for `requests` outstanding requests (no longer outstanding
   * once it settles). Counts are applied here, in the first step after the answer arrives, the same for
   * every call: answers arrive in the actor's order (one port, in order), so they are applied in it.
   */
  private send<T>(fn: (api: Remote<HintsApi>) => Promise<T>, requests: number): Promise<T> {
    return this.api.call(fn).then(
      (r) => {
        this.outstanding -= requests;
        if (carriesCounts(r)) this.applyCounts(r);
        return r;
      },
      (e: Error) => {
        this.outstanding -= requests;
        throw e instanceof RingkvError ? e : new RingkvError('internal', `hints actor: ${e.message}`);
      },
    );
  }

  /** Send the stores batched so far as one call (from the microtask the first of them queued, or before another call). */
  private sendBatch(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = undefined;
    this.send((a) => a.store(b.hints), b.hints.length)
      .then((r) => {
        invariant(r.stored.length === b.waiters.length, `hints actor answered ${r.stored.length} of ${b.waiters.length} stores`);
        for (let i = 0; i < b.waiters.length; i++) {
          const stored = r.stored[i]!;
          if (typeof stored === 'string') b.waiters[i]!.reject(new RingkvError('internal', `hints actor: ${stored}`));
          else b.waiters[i]!.resolve(stored);
        }
      })
      .catch((e: Error) => {
        for (const w of b.waiters) w.reject(e); // (a waiter already answered stays answered)
      });
  }

  /** Serials arrive ascending (see send); a gap is fine (a failed op or a list carries none), going back is not. */
  private applyCounts(c: HintCounts): void {
    invariant(c.serial > this.countsSerial, `hint counts answer ${c.serial} arrived after ${this.countsSerial}`);
    this.countsSerial = c.serial;
    if (c.full) this.counts.clear();
    for (const [t, n] of Object.entries(c.counts)) {
      if (n > 0) this.counts.set(t, n);
      else this.counts.delete(t);
    }
    this.onCounts?.();
  }

  /** Hints stored on this node per target (exact as of the last reply). */
  pendingCounts(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }

  pendingFor(target: string): number {
    return this.counts.get(target) ?? 0;
  }

  /** Durably store a hint; false when the per-target bound refused it. */
  async store(hint: Hint): Promise<boolean> {
    // The key and values are often views (of a socket chunk, of the Buffer pool): posting them would
    // clone whole backing buffers, so detach them first.
    const own: Hint =
      hint.mode === 'cell'
        ? { ...hint, key: detachedBytes(hint.key), tableId: detachedBytes(hint.tableId), entries: hint.entries.map((e) => ({ suffix: detachedBytes(e.suffix), record: detachedBytes(e.record) })) }
        : hint.mode === 'crdt'
          ? { ...hint, key: detachedBytes(hint.key), state: detachedBytes(hint.state) }
          : { ...hint, key: detachedBytes(hint.key), versions: hint.versions.map((v) => ({ ...v, value: detachedBytes(v.value) })) };
    const no = this.refusal();
    if (no) throw no;
    this.outstanding++;
    let b = this.batch;
    if (!b) {
      b = this.batch = { hints: [], waiters: [] };
      queueMicrotask(() => this.sendBatch());
    }
    b.hints.push(own);
    return new Promise<boolean>((resolve, reject) => b.waiters.push({ resolve, reject }));
  }

  /** Up to `limit` hints of `target`, first (lowest seq) first. */
  async list(target: string, limit: number): Promise<StoredHint[]> {
    return this.call((a) => a.list(target, limit));
  }

  /** Delete these hints; resolves with the seqs that still existed (and were removed). */
  async delete(target: string, seqs: number[]): Promise<number[]> {
    if (seqs.length === 0) return [];
    return (await this.call((a) => a.delete(target, seqs))).removedSeqs;
  }

  /** One bounded expiry step (see the `expire` op); `more` = call again. */
  async expire(olderThan: number, budget: number): Promise<{ removed: number; more: boolean }> {
    const r = await this.call((a) => a.expire(olderThan, budget));
    return { removed: r.removed, more: r.more };
  }

  /** Re-read every count from the actor (the local copy is refreshed by the reply). */
  async refreshCounts(): Promise<Record<string, number>> {
    return (await this.call((a) => a.counts())).counts;
  }

  /**
   * Answered after every call made before it (the actor commits and answers them first); then the
   * actor exits. Calls made after close() fail with `unavailable`.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    const closed = this.call((a) => a.close()).catch(() => undefined);
    this.closing = true;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), CLOSE_TIMEOUT_MS)));
    try {
      if ((await Promise.race([closed.then(() => this.exited), timedOut])) === 'timeout') await this.worker.terminate();
    } finally {
      clearTimeout(timer);
      this.api.close();
    }
  }
}

function carriesCounts(r: unknown): r is HintCounts {
  return typeof r === 'object' && r !== null && typeof (r as Partial<HintCounts>).serial === 'number';
}
