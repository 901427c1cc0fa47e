import { Worker } from 'node:worker_threads';
import { detachedBytes } from '../util/bytes.js';
import { RingkvError } from '../util/errors.js';
import type { FromHints, Hint, HintsRequest, HintsResult, HintsWorkerData, StoredHint, ToHints } from './protocol.js';

type Req = HintsRequest extends infer T ? (T extends HintsRequest ? Omit<T, 'id'> : never) : never;

/** Main-thread side of the hints actor. Outstanding requests are bounded. */
export class HintStore {
  private readonly pending = new Map<number, { resolve: (r: HintsResult) => void; reject: (e: Error) => void }>();
  private outbox: HintsRequest[] = [];
  private flushScheduled = false;
  private nextId = 1;

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
        if (m.t === 'ready') resolve();
        else if (m.t === 'replies') store.onReplies(m.replies);
      });
    });
    w.on('error', (e) => store.failAll(e));
    w.on('exit', (code) => store.failAll(new Error(`hints worker exited (${code})`)));
    return store;
  }

  private call(op: Req): Promise<HintsResult> {
    if (this.pending.size >= this.maxPending) return Promise.reject(new RingkvError('overloaded', `hint store has ${this.pending.size} requests outstanding`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
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
    }).then((r) => {
      const res = r as HintsResult;
      if (!res.ok) throw new RingkvError('internal', res.message);
      return res;
    });
  }

  private onReplies(rs: HintsResult[]): void {
    for (const r of rs) {
      const p = this.pending.get(r.id);
      if (!p) continue;
      this.pending.delete(r.id);
      p.resolve(r);
    }
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  /** Durably store a hint; false when the per-target bound refused it. */
  async store(hint: Hint): Promise<boolean> {
    // The key and values are often views (of a socket chunk, of the Buffer pool): posting them would
    // clone whole backing buffers, so detach them first.
    const own: Hint = { ...hint, key: detachedBytes(hint.key), versions: hint.versions.map((v) => ({ ...v, value: detachedBytes(v.value) })) };
    const r = await this.call({ op: 'store', hint: own });
    return r.ok && r.stored === true;
  }

  async list(target: string, limit: number): Promise<StoredHint[]> {
    const r = await this.call({ op: 'list', target, limit });
    return (r.ok && r.hints) || [];
  }

  async delete(target: string, seqs: number[]): Promise<void> {
    if (seqs.length > 0) await this.call({ op: 'delete', target, seqs });
  }

  async expire(olderThan: number): Promise<number> {
    const r = await this.call({ op: 'expire', olderThan });
    return (r.ok && r.removed) || 0;
  }

  async counts(): Promise<Record<string, number>> {
    const r = await this.call({ op: 'counts' });
    return (r.ok && r.counts) || {};
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
