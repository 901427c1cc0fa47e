import { Worker } from 'node:worker_threads';
import { detachedBytes } from '../util/bytes.js';
import { RingkvError } from '../util/errors.js';
import type { FromHints, Hint, HintsOk, HintsRequest, HintsResult, HintsWorkerData, StoredHint, ToHints } from './protocol.js';

type Req = HintsRequest extends infer T ? (T extends HintsRequest ? Omit<T, 'id'> : never) : never;

/**
 * Main-thread side of the hints actor. Outstanding requests are bounded. It keeps an exact copy of
 * the actor's per-target hint counts: every reply carries the counts of the targets its op touched,
 * and replies are applied synchronously in the actor's mailbox order.
 */
export class HintStore {
  private readonly pending = new Map<number, { resolve: (r: HintsResult) => void; reject: (e: Error) => void }>();
  private outbox: HintsRequest[] = [];
  private flushScheduled = false;
  private nextId = 1;
  private readonly counts = new Map<string, number>();
  /** Called (synchronously, in mailbox order) after the counts changed. */
  onCounts: (() => void) | undefined;

  private constructor(
    private readonly worker: Worker,
    private readonly maxPending: number,
  ) {}

  static async start(data: HintsWorkerData, maxPending = 100_000): Promise<HintStore> {
    const w = new Worker(new URL('../../workers/hints.js', import.meta.url), { workerData: data });
    const store = new HintStore(w, maxPending);
    await new Promise<void>((resolve, reject) => {
      w.once('error', reject);
      w.on('message', (m: FromHints) => {
        if (m.t === 'ready') {
          store.applyCounts(m.counts, true);
          resolve();
        } else if (m.t === 'replies') store.onReplies(m.replies);
      });
    });
    w.on('error', (e) => store.failAll(e));
    w.on('exit', (code) => store.failAll(new Error(`hints worker exited (${code})`)));
    return store;
  }

  private call(op: Req): Promise<HintsOk> {
    if (this.pending.size >= this.maxPending) return Promise.reject(new RingkvError('overloaded', `hint store has ${this.pending.size} requests outstanding`));
    const id = this.nextId++;
    return new Promise<HintsResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.outbox.push({ ...op, id } as HintsRequest);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => {
          this.flushScheduled = false;
          const ops = this.outbox;
          this.outbox = [];
          this.worker.postMessage({ t: 'ops', ops } satisfies ToHints);
        });
      }
    }).then((res) => {
      if (!res.ok) throw new RingkvError('internal', res.message);
      return res;
    });
  }

  private applyCounts(c: Record<string, number>, replace: boolean): void {
    if (replace) this.counts.clear();
    for (const [t, n] of Object.entries(c)) {
      if (n > 0) this.counts.set(t, n);
      else this.counts.delete(t);
    }
  }

  private onReplies(rs: HintsResult[]): void {
    let changed = false;
    for (const r of rs) {
      if (r.ok && r.counts) {
        this.applyCounts(r.counts, r.full === true);
        changed = true;
      }
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      p.resolve(r);
    }
    if (changed) this.onCounts?.();
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
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
    const r = await this.call({ op: 'store', hint: own });
    return r.stored === true;
  }

  /** Up to `limit` hints of `target`, first (lowest seq) first. */
  async list(target: string, limit: number): Promise<StoredHint[]> {
    const r = await this.call({ op: 'list', target, limit });
    return r.hints ?? [];
  }

  /** Delete these hints; resolves with the seqs that still existed (and were removed). */
  async delete(target: string, seqs: number[]): Promise<number[]> {
    if (seqs.length === 0) return [];
    const r = await this.call({ op: 'delete', target, seqs });
    return r.removedSeqs ?? [];
  }

  /** One bounded expiry step (see the `expire` op); `more` = call again. */
  async expire(olderThan: number, budget: number): Promise<{ removed: number; more: boolean }> {
    const r = await this.call({ op: 'expire', olderThan, budget });
    return { removed: r.removed ?? 0, more: r.more === true };
  }

  /** Re-read every count from the actor (the local copy is refreshed by the reply). */
  async refreshCounts(): Promise<Record<string, number>> {
    const r = await this.call({ op: 'counts' });
    return r.counts ?? {};
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => void this.worker.terminate().then(() => resolve()), 5000);
      this.worker.on('message', (m: FromHints) => {
        if (m.t === 'closed') {
          clearTimeout(t);
          resolve();
        }
      });
      this.worker.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      this.worker.postMessage({ t: 'close' } satisfies ToHints);
    });
  }
}
