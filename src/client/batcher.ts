/**
 * Batching on the client: calls made in the same tick coalesced into one batch, and a group's
 * items cut into frames that fit the server's limits. Both without sockets: the sender is a port.
 */
import type { BatchItem, BatchItemResult } from '../api/ipc-protocol.js';
import { RingkvError } from '../util/errors.js';
import type { ClientBatchItem } from './types.js';
import { itemError, keyBytesLength } from './wire.js';

/** Sends one batch; one result per item, in order (failures as error items). */
export type BatchSender = (items: ClientBatchItem[], timeoutMs: number | undefined) => Promise<BatchItemResult[]>;

/**
 * Single-key calls of one tick, per timeout, sent as one `batch` at the end of the tick (a
 * microtask): many concurrent callers share frames without any of them waiting on a timer.
 */
export class Coalescer {
  private waiting = new Map<number | undefined, Array<{ item: ClientBatchItem; resolve: (r: BatchItemResult) => void }>>();
  private scheduled = false;

  constructor(private readonly send: BatchSender) {}

  add(item: ClientBatchItem, timeoutMs: number | undefined): Promise<BatchItemResult> {
    return new Promise((resolve) => {
      let q = this.waiting.get(timeoutMs);
      if (!q) this.waiting.set(timeoutMs, (q = []));
      q.push({ item, resolve });
      if (!this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const all = this.waiting;
    this.waiting = new Map();
    for (const [timeoutMs, q] of all) {
      this.send(
        q.map((x) => x.item),
        timeoutMs,
      ).then(
        (rs) => q.forEach((x, i) => x.resolve(rs[i]!)),
        (e: unknown) => {
          const err = e instanceof RingkvError ? e : new RingkvError('internal', String(e));
          for (const x of q) x.resolve(itemError(err));
        },
      );
    }
  }
}

/** Estimated encoded bytes of one batch item (fixed overhead + key + value + context). */
export function itemBytesEstimate(w: BatchItem): number {
  return 64 + keyBytesLength(w.key) + (w.op === 'put' ? (w.value as Uint8Array).length : 0) + (('context' in w && w.context?.length) || 0);
}

/**
 * Cut `items` into consecutive frames of at most `maxItems` items and `maxBytes` estimated bytes
 * (an item larger than `maxBytes` goes alone). Returns [start, end) pairs covering every item once.
 */
export function splitFrames(items: readonly BatchItem[], maxItems: number, maxBytes: number): Array<[number, number]> {
  const frames: Array<[number, number]> = [];
  let start = 0;
  while (start < items.length) {
    let end = start;
    let bytes = 0;
    while (end < items.length && end - start < maxItems) {
      const sz = itemBytesEstimate(items[end]!);
      if (end > start && bytes + sz > maxBytes) break;
      bytes += sz;
      end++;
    }
    frames.push([start, end]);
    start = end;
  }
  return frames;
}
