import { Worker } from 'node:worker_threads';
import { RingkvError } from '../util/errors.js';
import type { DataOp, RouterToShard, ShardResult, ShardStats, ShardToRouter, ShardWorkerData } from './shard-protocol.js';

type DataOpInput = DataOp extends infer T ? (T extends DataOp ? Omit<T, 'id'> : never) : never;

interface Pending {
  resolve: (r: ShardResult) => void;
  reject: (e: Error) => void;
}

/**
 * The router's side of the shard actors: one worker per shard, a mailbox per worker. Ops submitted
 * in the same event-loop turn go out as one message (microtask flush), which is what lets the shard
 * group-commit them. Outstanding ops per shard are bounded: past `maxQueue` a submit fails at once
 * with `overloaded` instead of queueing without limit.
 */
export class ShardPool {
  private readonly workers: Worker[] = [];
  private readonly outbox: Array<Array<DataOp | { id: number; op: 'stats' }>> = [];
  private readonly pending: Array<Map<number, Pending>> = [];
  private flushScheduled = false;
  private nextId = 1;
  private closed = false;

  private constructor(private readonly maxQueue: number) {}

  static async start(opts: {
    shards: number;
    workerData: Omit<ShardWorkerData, 'shard'>;
    maxQueue: number;
    onExit?: (shard: number, code: number) => void;
  }): Promise<{ pool: ShardPool; keys: number[] }> {
    const pool = new ShardPool(opts.maxQueue);
    const url = new URL('../../workers/shard.js', import.meta.url);
    const ready: Array<Promise<number>> = [];
    for (let i = 0; i < opts.shards; i++) {
      const w = new Worker(url, { workerData: { ...opts.workerData, shard: i } satisfies ShardWorkerData });
      pool.workers.push(w);
      pool.outbox.push([]);
      pool.pending.push(new Map());
      ready.push(
        new Promise<number>((resolve, reject) => {
          const onMsg = (m: ShardToRouter): void => {
            if (m.t === 'ready') {
              w.off('error', reject);
              resolve(m.keys);
            }
          };
          w.on('message', onMsg);
          w.once('error', reject);
        }),
      );
      w.on('message', (m: ShardToRouter) => pool.onMessage(i, m));
      w.on('error', (e) => pool.failAll(i, e));
      w.on('exit', (code) => {
        pool.failAll(i, new Error(`shard ${i} exited with code ${code}`));
        if (!pool.closed) opts.onExit?.(i, code);
      });
    }
    const keys = await Promise.all(ready);
    return { pool, keys };
  }

  get size(): number {
    return this.workers.length;
  }

  queueDepth(shard: number): number {
    return this.pending[shard]!.size;
  }

  submit(shard: number, op: DataOpInput): Promise<ShardResult> {
    if (this.closed) return Promise.reject(new RingkvError('unavailable', 'node is shutting down'));
    const pend = this.pending[shard];
    if (!pend) return Promise.reject(new Error(`no shard ${shard}`));
    if (pend.size >= this.maxQueue) {
      return Promise.reject(new RingkvError('overloaded', `shard ${shard} has ${pend.size} operations queued (limit ${this.maxQueue}); retry later`));
    }
    const id = this.nextId++;
    const full = { ...op, id } as DataOp;
    return this.enqueue(shard, full);
  }

  stats(shard: number): Promise<ShardStats> {
    const id = this.nextId++;
    return this.enqueue(shard, { id, op: 'stats' }).then((r) => {
      if (r.ok && 'stats' in r) return r.stats;
      throw new Error(`shard ${shard}: bad stats reply`);
    });
  }

  private enqueue(shard: number, op: DataOp | { id: number; op: 'stats' }): Promise<ShardResult> {
    return new Promise<ShardResult>((resolve, reject) => {
      this.pending[shard]!.set(op.id, { resolve, reject });
      this.outbox[shard]!.push(op);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    for (let i = 0; i < this.workers.length; i++) {
      const ops = this.outbox[i]!;
      if (ops.length === 0) continue;
      this.outbox[i] = [];
      const msg: RouterToShard = { t: 'ops', ops };
      this.workers[i]!.postMessage(msg);
    }
  }

  private onMessage(shard: number, m: ShardToRouter): void {
    if (m.t !== 'replies') return;
    const pend = this.pending[shard]!;
    for (const r of m.replies) {
      const p = pend.get(r.id);
      if (!p) continue;
      pend.delete(r.id);
      p.resolve(r);
    }
  }

  private failAll(shard: number, e: Error): void {
    const pend = this.pending[shard]!;
    for (const p of pend.values()) p.reject(new RingkvError('unavailable', `shard ${shard} failed: ${e.message}`));
    pend.clear();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.flush();
    await Promise.all(
      this.workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => void w.terminate().then(() => resolve()), 5000);
            w.on('message', (m: ShardToRouter) => {
              if (m.t === 'closed') {
                clearTimeout(t);
                resolve();
              }
            });
            w.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            w.postMessage({ t: 'close' } satisfies RouterToShard);
          }),
      ),
    );
  }
}
