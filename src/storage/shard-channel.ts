/**
 * The router <-> shard data channel (issue 12): per shard, one SPSC ring of request messages
 * (router -> shard) and one of reply messages (shard -> router), both in SharedArrayBuffers
 * (spsc-ring.ts). A message is what the router encoded for the shard in one flush (shard-wire.ts),
 * prefixed with a sequence number; replies carry op ids and need no order.
 *
 * Why: a `postMessage` per flush cost the router thread ~30% of its busy time under 50-connection
 * single-op load (it flushed once per microtask checkpoint, i.e. per socket read) and ~15% under
 * batched ingest (bench/README.md, "Where the time goes"). A ring push is a memcpy plus, only
 * when the other side is parked, one Atomics.notify; the receiving side wakes through
 * Atomics.waitAsync (its event loop keeps running: timers, the control port), drains everything
 * published, and parks again after a short adaptive spin.
 *
 * Bounded: each ring holds SHARD_RING_BYTES; a message that does not fit now, or ever (over the
 * ring's message bound: a huge value), goes by `postMessage` instead, carrying its sequence number,
 * and the shard applies request messages strictly in sequence order from both sources (its inbox),
 * so mailbox order is the router's submission order whichever way a message travelled. Queue depth
 * stays bounded by `limits.maxShardQueue` (outstanding ops per shard), as before.
 */
import { performance } from 'node:perf_hooks';
import { SpscRing } from './spsc-ring.js';

/** Data bytes per ring (one per direction per shard): 1 MiB, so messages up to ~512 KiB go by ring. */
export const SHARD_RING_BYTES = 1 << 20;
/** A flush larger than this is cut into several ring messages (at op boundaries). */
export const RING_FLUSH_BYTES = 128 * 1024;
/** Default upper bound of the shard's spin before parking (config `shardSpinMicros`; 0 disables spinning). */
export const DEFAULT_SPIN_MICROS = 0;

export interface ShardChannelBuffers {
  requests: SharedArrayBuffer;
  replies: SharedArrayBuffer;
}

export function newShardChannel(): ShardChannelBuffers {
  return { requests: SpscRing.create(SHARD_RING_BYTES).buffer, replies: SpscRing.create(SHARD_RING_BYTES).buffer };
}

type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync(a: Int32Array, index: number, value: number): WaitAsyncResult }).waitAsync;

/**
 * Park the consumer of `ring` until a producer publishes (or nudges): `onWake` runs once, from a
 * promise job, never inside this call. Returns false without parking when data is already there
 * (the caller drains at once).
 */
export function parkUntilData(ring: SpscRing, onWake: () => void): boolean {
  if (!ring.park()) return false;
  const [word, index] = ring.sleepWord();
  const r = waitAsync(word, index, 1);
  if (r.async) void r.value.then(onWake);
  else queueMicrotask(onWake); // the producer cleared the word between park and wait
  return true;
}

/**
 * A short spin before parking, adapted to what it catches: each spin that saw data doubles the
 * budget (up to `maxMicros`), each that did not halves it (down to a floor). On this VM a park
 * and wake costs 100-300 µs of latency plus a futex call on each side; a spin that catches the
 * next message saves both, but it burns a core the router may need (2 cores), so it stays short.
 */
export class AdaptiveSpin {
  private budgetMicros: number;
  private readonly floorMicros: number;
  hits = 0;
  misses = 0;

  constructor(private readonly maxMicros: number) {
    this.budgetMicros = maxMicros;
    this.floorMicros = Math.max(1, Math.floor(maxMicros / 16));
  }

  /** Spin until `ring` has data or the budget is spent; true when data came. */
  spin(ring: SpscRing): boolean {
    if (this.maxMicros <= 0) return false;
    const end = performance.now() + this.budgetMicros / 1000;
    do {
      if (ring.hasData) {
        this.hits++;
        this.budgetMicros = Math.min(this.maxMicros, this.budgetMicros * 2);
        return true;
      }
    } while (performance.now() < end);
    this.misses++;
    this.budgetMicros = Math.max(this.floorMicros, this.budgetMicros >> 1);
    return false;
  }
}

/** A request message as it sits in the ring: seq u32 LE, then the shard-wire bytes. */
export function seqHeader(seq: number): Uint8Array {
  const h = new Uint8Array(4);
  new DataView(h.buffer).setUint32(0, seq >>> 0, true);
  return h;
}

export function readSeq(msg: Uint8Array): number {
  return new DataView(msg.buffer, msg.byteOffset, 4).getUint32(0, true);
}
