import { Worker } from 'node:worker_threads';
import type { ConflictMode } from '../config/config.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { mergeShardScanPages, type ShardScanPage } from './local-scan.js';
import { shardOfToken } from './placement.js';
import { REPAIR_LIMITS, type DataOp, type RouterToShard, type ScanOp, type ShardOp, type ShardResult, type ShardStats, type ShardToRouter, type ShardWorkerData } from './shard-protocol.js';
import { decodeReplies, WireRequestWriter, type WireReply } from './shard-wire.js';

type DataOpInput = DataOp extends infer T ? (T extends DataOp ? Omit<T, 'id'> : never) : never;

interface Pending {
  resolve: (r: ShardResult) => void;
  reject: (e: Error) => void;
}

/** Called once with a shard's answer to a read or write (record bytes are views: decode or copy). */
export type WireCallback = (reply: WireReply) => void;

/**
 * The router's side of the shard actors: one worker per shard, a mailbox per worker. A key's shard
 * is its token's placement shard (placement.ts): `write` and `read` pick it themselves, so no
 * caller can route a key to a shard that does not store it. Ops submitted
 * in the same event-loop turn go out as one message (microtask flush), which is what lets the shard
 * group-commit them. Reads and writes are encoded into the message's byte buffer as they are
 * submitted (shard-wire.ts) and answered through callbacks, not promises: this is the hot path.
 * Outstanding ops per shard are bounded: past `maxQueue` a submit fails with `overloaded` instead
 * of queueing without limit.
 */
export class ShardPool {
  private readonly workers: Worker[] = [];
  private readonly outbox: ShardOp[][] = [];
  private readonly wire: WireRequestWriter[] = [];
  private readonly pending: Array<Map<number, Pending>> = [];
  private readonly dataPending: Array<Map<number, WireCallback>> = [];
  private flushScheduled = false;
  private nextId = 1;
  /** Told the op count of every message posted to a shard (metrics: the router-side batch sizes). */
  onBatch: ((shard: number, ops: number) => void) | undefined;
  private closed = false;

  private constructor(private readonly maxQueue: number) {}

  static async start(opts: {
    shards: number;
    workerData: Omit<ShardWorkerData, 'shard' | 'shards'>;
    maxQueue: number;
    onExit?: (shard: number, code: number) => void;
  }): Promise<{ pool: ShardPool; keys: number[] }> {
    const pool = new ShardPool(opts.maxQueue);
    const url = new URL('../../workers/shard.js', import.meta.url);
    const ready: Array<Promise<number>> = [];
    for (let i = 0; i < opts.shards; i++) {
      const w = new Worker(url, { workerData: { ...opts.workerData, shard: i, shards: opts.shards } satisfies ShardWorkerData });
      pool.workers.push(w);
      pool.outbox.push([]);
      pool.wire.push(new WireRequestWriter());
      pool.pending.push(new Map());
      pool.dataPending.push(new Map());
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

  /** The local shard that stores token (hi, *). */
  shardOf(hi: number): number {
    return shardOfToken(hi, this.workers.length);
  }

  queueDepth(shard: number): number {
    return this.pending[shard]!.size + this.dataPending[shard]!.size;
  }

  /** Why a new op for `shard` cannot be queued now, or null. */
  private refusal(shard: number): RingkvError | null {
    if (this.closed) return new RingkvError('unavailable', 'node is shutting down');
    invariant(shard >= 0 && shard < this.workers.length, `no shard ${shard}`);
    const depth = this.queueDepth(shard);
    if (depth >= this.maxQueue) return new RingkvError('overloaded', `shard ${shard} has ${depth} operations queued (limit ${this.maxQueue}); retry later`);
    return null;
  }

  /**
   * Merge `record` (encodeRecord bytes) into what the key's shard stores under it; `cb` gets the
   * merged record when `returnMerged`. `table` is the table id (TABLE_ID_BYTES). A refusal
   * (overload, shutdown) is reported through `cb` too, from a microtask, so callers never see their
   * callback run inside this call.
   */
  write(table: Uint8Array, mode: ConflictMode, key: Uint8Array, hi: number, lo: number, record: Uint8Array, returnMerged: boolean, cb: WireCallback): void {
    const shard = shardOfToken(hi, this.workers.length);
    const no = this.refusal(shard);
    if (no) return refuse(no, cb);
    const id = this.nextId++;
    this.dataPending[shard]!.set(id, cb);
    this.wire[shard]!.write(id, table, hi, lo, key, mode, record, returnMerged);
    this.scheduleFlush();
  }

  /** Read the stored record of a key from its shard; `cb` gets it (null when absent). Refusals as for write. */
  read(table: Uint8Array, key: Uint8Array, hi: number, lo: number, cb: WireCallback): void {
    const shard = shardOfToken(hi, this.workers.length);
    const no = this.refusal(shard);
    if (no) return refuse(no, cb);
    const id = this.nextId++;
    this.dataPending[shard]!.set(id, cb);
    this.wire[shard]!.read(id, table, hi, lo, key);
    this.scheduleFlush();
  }

  /** Control ops (Merkle, repair, sweep): typed objects, answered by promise. */
  submit(shard: number, op: DataOpInput): Promise<ShardResult> {
    const no = this.refusal(shard);
    if (no) return Promise.reject(no);
    const id = this.nextId++;
    const full = { ...op, id } as DataOp;
    return this.enqueue(shard, full);
  }

  /**
   * One page of this node's rows of a scan segment: every shard's page after the same cursor,
   * merged in storage-key order (local-scan.ts). Each shard gets a 1/S share of the byte budget, so
   * the merged page stays within REPAIR_LIMITS.maxFetchBytes (plus at most one row per shard).
   */
  async scan(op: Omit<ScanOp, 'id' | 'op' | 'maxBytes'>): Promise<ShardScanPage> {
    const n = this.workers.length;
    const maxBytes = Math.max(1, Math.floor(REPAIR_LIMITS.maxFetchBytes / n));
    const pages = await Promise.all(
      Array.from({ length: n }, async (_, shard) => {
        const res = await this.submit(shard, { ...op, op: 'scan', maxBytes });
        if (!res.ok) throw new RingkvError(res.code as ErrorCode, `shard ${shard}: ${res.message}`);
        invariant('repair' in res && res.repair.kind === 'scan', `shard ${shard} answered a scan with something else`);
        return { rows: res.repair.rows, next: res.repair.next };
      }),
    );
    return mergeShardScanPages(pages, op.limit);
  }

  stats(shard: number): Promise<ShardStats> {
    const id = this.nextId++;
    return this.enqueue(shard, { id, op: 'stats' }).then((r) => {
      if (r.ok && 'stats' in r) return r.stats;
      throw new Error(`shard ${shard}: bad stats reply`);
    });
  }

  private enqueue(shard: number, op: ShardOp): Promise<ShardResult> {
    return new Promise<ShardResult>((resolve, reject) => {
      this.pending[shard]!.set(op.id, { resolve, reject });
      this.outbox[shard]!.push(op);
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flushBound);
    }
  }

  private readonly flushBound = (): void => this.flush();

  private flush(): void {
    this.flushScheduled = false;
    for (let i = 0; i < this.workers.length; i++) {
      const ops = this.outbox[i]!;
      const w = this.wire[i]!;
      if (ops.length === 0 && w.count === 0) continue;
      if (ops.length > 0) this.outbox[i] = [];
      this.onBatch?.(i, w.count + ops.length);
      const bytes = w.count > 0 ? w.take() : null;
      const msg: RouterToShard = { t: 'ops', wire: bytes, ops };
      this.workers[i]!.postMessage(msg, bytes ? [bytes.buffer] : []);
    }
  }

  private onMessage(shard: number, m: ShardToRouter): void {
    if (m.t !== 'replies') return;
    if (m.wire) {
      const dp = this.dataPending[shard]!;
      decodeReplies(m.wire, (id, reply) => {
        const cb = dp.get(id);
        invariant(cb !== undefined, `shard ${shard} answered unknown op ${id}`);
        dp.delete(id);
        cb(reply);
      });
    }
    const pend = this.pending[shard]!;
    for (const r of m.replies) {
      const p = pend.get(r.id);
      if (!p) continue;
      pend.delete(r.id);
      p.resolve(r);
    }
  }

  private failAll(shard: number, e: Error): void {
    const err = new RingkvError('unavailable', `shard ${shard} failed: ${e.message}`);
    const pend = this.pending[shard]!;
    for (const p of pend.values()) p.reject(err);
    pend.clear();
    const dp = this.dataPending[shard]!;
    const cbs = [...dp.values()];
    dp.clear();
    for (const cb of cbs) cb({ ok: false, code: err.code, message: err.message });
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

function refuse(err: RingkvError, cb: WireCallback): void {
  queueMicrotask(() => cb({ ok: false, code: err.code, message: err.message }));
}

/** Promise form of ShardPool.write / read for callers off the hot path (tests, benchmarks, tools). */
export function shardWrite(pool: ShardPool, table: Uint8Array, mode: ConflictMode, key: Uint8Array, hi: number, lo: number, record: Uint8Array, returnMerged = false): Promise<WireReply> {
  return new Promise((resolve) => pool.write(table, mode, key, hi, lo, record, returnMerged, resolve));
}

export function shardRead(pool: ShardPool, table: Uint8Array, key: Uint8Array, hi: number, lo: number): Promise<WireReply> {
  return new Promise((resolve) => pool.read(table, key, hi, lo, resolve));
}
