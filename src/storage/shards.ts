import { Worker } from 'node:worker_threads';
import { WorkerApi } from '../util/worker-api.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { mergeShardScanPages, type ShardScanPage } from './local-scan.js';
import { shardOfToken } from './placement.js';
import {
  REPAIR_LIMITS,
  type DataOpInput,
  type RouterToShard,
  type ScanOp,
  type ShardControlApi,
  type ShardResult,
  type ShardStats,
  type ShardToRouter,
  type ShardWorkerData,
} from './shard-protocol.js';
import { DEFAULT_SPIN_MICROS, newShardChannel, parkUntilData, RING_FLUSH_BYTES } from './shard-channel.js';
import { decodeReplies, WireRequestWriter, type WireReply, type WireWriteMode } from './shard-wire.js';
import { SpscRing } from './spsc-ring.js';

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
  /** Per shard: its comlink control API, with the calls in flight (a shard that dies fails them). */
  private readonly controls: Array<WorkerApi<ShardControlApi>> = [];
  private readonly wire: WireRequestWriter[] = [];
  /** Per shard: the request ring (we produce), the reply ring (we consume), the next request message's sequence number. */
  private readonly reqRings: SpscRing[] = [];
  private readonly repRings: SpscRing[] = [];
  private readonly seq: number[] = [];
  private readonly seqScratch = new Uint8Array(4);
  private readonly seqView = new DataView(this.seqScratch.buffer);
  /** Request messages that went by postMessage (did not fit the ring), for the stats. */
  ringFallbacks = 0;
  private readonly dataPending: Array<Map<number, WireCallback>> = [];
  /** Per shard, made once: answer one decoded reply (its op's callback), and decode a reply-ring message. */
  private readonly answer: Array<(id: number, reply: WireReply) => void> = [];
  private readonly fromRing: Array<(msg: Uint8Array) => void> = [];
  private flushScheduled = false;
  private nextId = 1;
  /** Told the op count of every message posted to a shard (metrics: the router-side batch sizes). */
  onBatch: ((shard: number, ops: number) => void) | undefined;
  private closed = false;
  /** Set once every worker has closed: the reply rings are no longer polled. */
  private stopped = false;

  private constructor(private readonly maxQueue: number) {}

  static async start(opts: {
    shards: number;
    workerData: Omit<ShardWorkerData, 'shard' | 'shards' | 'channel' | 'spinMicros' | 'control'> & { spinMicros?: number };
    maxQueue: number;
    onExit?: (shard: number, code: number) => void;
  }): Promise<{ pool: ShardPool; keys: number[] }> {
    const pool = new ShardPool(opts.maxQueue);
    const url = new URL('../../workers/shard.js', import.meta.url);
    const ready: Array<Promise<number>> = [];
    for (let i = 0; i < opts.shards; i++) {
      const channel = newShardChannel();
      const control = WorkerApi.channel<ShardControlApi>();
      const wd: ShardWorkerData = { spinMicros: DEFAULT_SPIN_MICROS, ...opts.workerData, shard: i, shards: opts.shards, channel, control: control.workerPort };
      const w = new Worker(url, { workerData: wd, transferList: [control.workerPort] });
      pool.controls.push(control.api);
      pool.reqRings.push(new SpscRing(channel.requests));
      pool.repRings.push(new SpscRing(channel.replies));
      pool.seq.push(0);
      pool.workers.push(w);
      pool.wire.push(new WireRequestWriter());
      const dp = new Map<number, WireCallback>();
      pool.dataPending.push(dp);
      const answer = (id: number, reply: WireReply): void => {
        const cb = dp.get(id);
        if (cb === undefined) invariant(false, `shard ${i} answered unknown op ${id}`);
        dp.delete(id);
        cb(reply);
      };
      pool.answer.push(answer);
      // A reply-ring message is a view into the ring, reused once this returns: records are copied
      // out (replies without one, most of them, copy nothing).
      pool.fromRing.push((msg) => decodeReplies(msg, answer, true));
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
    for (let i = 0; i < opts.shards; i++) pool.pollReplies(i);
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
    return this.controls[shard]!.size + this.dataPending[shard]!.size;
  }

  /** Why a new op for `shard` cannot be queued now, or null. */
  private refusal(shard: number): RingkvError | null {
    if (this.closed) return new RingkvError('unavailable', 'node is shutting down');
    if (!(shard >= 0 && shard < this.workers.length)) invariant(false, `no shard ${shard}`);
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
  write(table: Uint8Array, mode: WireWriteMode, key: Uint8Array, hi: number, lo: number, record: Uint8Array, returnMerged: boolean, cb: WireCallback): void {
    const shard = shardOfToken(hi, this.workers.length);
    const id = this.enqueue(shard, cb);
    if (id < 0) return;
    this.wire[shard]!.write(id, table, hi, lo, key, mode, record, returnMerged);
    this.queued(shard);
  }

  /** A new wire request's id with `cb` registered for its reply, or -1 when the shard refuses it (then `cb` gets the refusal from a microtask). */
  private enqueue(shard: number, cb: WireCallback): number {
    const no = this.refusal(shard);
    if (no) {
      refuse(no, cb);
      return -1;
    }
    const id = this.nextId++;
    this.dataPending[shard]!.set(id, cb);
    return id;
  }

  /** A request was added to the shard's wire buffer: send the buffer now when it is large, else at the end of the turn. */
  private queued(shard: number): void {
    if (this.wire[shard]!.byteLength >= RING_FLUSH_BYTES) this.flushWire(shard);
    else this.scheduleFlush();
  }

  /**
   * Apply a CRDT operation (encodeApplyRequest bytes) to the key's stored state in its shard, in
   * mailbox order with every other op on the key; `cb` gets the new state bytes. Errors (400/409/413
   * from the operation, overload, not_owner) mean nothing was applied. Refusals as for write.
   * `suffix`: a wide-column counter cell inside partition `key` (its storage key is the partition's ‖ suffix).
   */
  crdtApply(table: Uint8Array, key: Uint8Array, hi: number, lo: number, request: Uint8Array, cb: WireCallback, suffix?: Uint8Array): void {
    const shard = shardOfToken(hi, this.workers.length);
    const id = this.enqueue(shard, cb);
    if (id < 0) return;
    this.wire[shard]!.crdtApply(id, table, hi, lo, key, request, suffix);
    this.queued(shard);
  }

  /** Read the stored record of a key from its shard; `cb` gets it (null when absent). Refusals as for write. */
  read(table: Uint8Array, key: Uint8Array, hi: number, lo: number, cb: WireCallback): void {
    const shard = shardOfToken(hi, this.workers.length);
    const id = this.enqueue(shard, cb);
    if (id < 0) return;
    this.wire[shard]!.read(id, table, hi, lo, key);
    this.queued(shard);
  }

  /** Control ops (Merkle, repair, sweep, scan pages): typed calls on the shard's comlink control API. */
  submit(shard: number, op: DataOpInput): Promise<ShardResult> {
    const no = this.refusal(shard);
    if (no) return Promise.reject(no);
    return this.controls[shard]!.call<ShardResult>((api) => api.submit(op));
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
    if (this.closed) return Promise.reject(new RingkvError('unavailable', 'node is shutting down'));
    return this.controls[shard]!.call((api) => api.stats());
  }

  /**
   * Flush once per event-loop turn (the check phase, right after every socket read of the poll
   * phase), not per microtask checkpoint: one ring push, and at most one wake of a parked shard,
   * carries every op the turn produced. Per microtask it was one push (and one futex wake) per
   * socket read: 26% of the router's busy time at 50 single-op connections (cpu profile).
   */
  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushBound);
    }
  }

  private readonly flushBound = (): void => this.flush();

  private flush(): void {
    this.flushScheduled = false;
    for (let i = 0; i < this.workers.length; i++) if (this.wire[i]!.count > 0) this.flushWire(i);
  }

  /**
   * Hand shard i the reads and writes encoded so far, as one request message with the next
   * sequence number: into its ring when it fits, else by postMessage (the shard's inbox puts both
   * back in sequence order, shard-channel.ts).
   */
  private flushWire(i: number): void {
    const w = this.wire[i]!;
    if (w.count === 0) return;
    const seq = this.seq[i]!;
    this.seq[i] = (seq + 1) >>> 0;
    this.onBatch?.(i, w.count);
    const bytes = w.peek();
    const ring = this.reqRings[i]!;
    this.seqView.setUint32(0, seq, true);
    if (bytes.length + 4 <= ring.maxMessageBytes && ring.push(this.seqScratch, bytes)) {
      w.reset();
      return;
    }
    this.ringFallbacks++;
    const copy = w.take();
    this.workers[i]!.postMessage({ t: 'ops', seq, wire: copy } satisfies RouterToShard, [copy.buffer]);
  }

  /**
   * Consume shard i's reply ring until it is empty, then park on it (Atomics.waitAsync: the event
   * loop keeps running) until the shard publishes again. Each message is decoded in place, its
   * callbacks run before its ring space is released; the records in it (views callers may hold a
   * little longer) are copied out, the rest is not (a copy of every message was ~1% of the router
   * under ingest, and a write's reply has no record).
   */
  private pollReplies(i: number): void {
    if (this.stopped) return;
    const ring = this.repRings[i]!;
    const fromRing = this.fromRing[i]!;
    for (;;) {
      try {
        ring.drain(fromRing);
      } catch (e) {
        // A callback's bug: surface it as before (an uncaught exception) without losing the channel.
        queueMicrotask(() => {
          throw e;
        });
      }
      if (this.stopped || parkUntilData(ring, () => this.pollReplies(i))) return;
    }
  }

  private onMessage(shard: number, m: ShardToRouter): void {
    if (m.t === 'replies') decodeReplies(m.wire, this.answer[shard]!, false);
  }

  private failAll(shard: number, e: Error): void {
    const err = new RingkvError('unavailable', `shard ${shard} failed: ${e.message}`);
    this.controls[shard]!.failAll(err);
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
        (w, i) =>
          new Promise<void>((resolve) => {
            const t = setTimeout(() => void w.terminate().then(() => resolve()), 5000);
            w.on('message', (m: ShardToRouter) => {
              if (m.t === 'closed') {
                clearTimeout(t);
                // Replies the shard published before it said so.
                this.repRings[i]!.drain(this.fromRing[i]!);
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
    this.stopped = true;
    for (const r of this.repRings) r.nudge();
    for (const c of this.controls) c.close();
  }
}

function refuse(err: RingkvError, cb: WireCallback): void {
  queueMicrotask(() => cb({ ok: false, code: err.code, message: err.message }));
}

/** Promise form of ShardPool.write / read for callers off the hot path (tests, benchmarks, tools). */
export function shardWrite(pool: ShardPool, table: Uint8Array, mode: WireWriteMode, key: Uint8Array, hi: number, lo: number, record: Uint8Array, returnMerged = false): Promise<WireReply> {
  return new Promise((resolve) => pool.write(table, mode, key, hi, lo, record, returnMerged, resolve));
}

export function shardRead(pool: ShardPool, table: Uint8Array, key: Uint8Array, hi: number, lo: number): Promise<WireReply> {
  return new Promise((resolve) => pool.read(table, key, hi, lo, resolve));
}
