/**
 * Batching on the client: calls made in the same tick coalesced into one batch, and a group's
 * items cut into frames that fit the server's limits. Both without sockets: the sender is a port.
 */
import type { BatchItem, BatchItemResult } from '../api/ipc-protocol.js';
import { validateTableName } from '../api/table-name.js';
import { RingkvError } from '../util/errors.js';
import { primaryEndpoint, routeCandidates, type Candidate, type RoutingView } from './routing.js';
import type { ClientBatchItem } from './types.js';
import { asClientError, GET_FIELDS, itemError, keyBytesLength, keyOf, PUT_FIELDS, valueOf, withOpts } from './wire.js';

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
          const err = asClientError(e);
          for (const x of q) x.resolve(itemError(err));
        },
      );
    }
  }
}

/** A batch's items that go to one endpoint first: their wire form, their indexes in the batch, where to send them. */
export interface BatchGroup {
  cands: Candidate[];
  idx: number[];
  wire: BatchItem[];
  readOnly: boolean;
}

/**
 * A batch's items checked and grouped by the endpoint each goes to first (by the routing policy
 * over `view`); an item that fails its checks gets its error in `results` and joins no group.
 * The whole candidate list (for failover) is built once per group, from its first key: any node
 * can coordinate any key.
 */
export function groupBatchItems(items: readonly ClientBatchItem[], view: RoutingView, results: BatchItemResult[]): Map<string, BatchGroup> {
  const groups = new Map<string, BatchGroup>();
  // Not routing by key (token-unaware, or no ring yet): every item has the same candidates.
  const keyless = !view.tokenAware || !view.ring || view.ring.size === 0;
  let keylessCands: Candidate[] | undefined;
  for (let i = 0; i < items.length; i++) {
    const it = items[i]!;
    try {
      const k = keyOf(it.key);
      let wire: Record<string, unknown>;
      if (it.op === 'put') wire = withOpts({ op: 'put', table: validateTableName(it.table), key: k, value: valueOf(it.value) }, it, PUT_FIELDS);
      else if (it.op === 'get') wire = withOpts({ op: 'get', table: validateTableName(it.table), key: k }, it, GET_FIELDS);
      else if (it.op === 'del') wire = withOpts({ op: 'del', table: validateTableName(it.table), key: k }, it, PUT_FIELDS);
      else throw new RingkvError('bad_request', `op must be put, get or del, got ${JSON.stringify((it as { op?: unknown }).op)}`, { field: 'op' });
      const primary = primaryEndpoint(view, k);
      let g = primary !== undefined ? groups.get(primary) : undefined;
      if (!g) {
        const cands = keyless ? (keylessCands ??= routeCandidates(view, undefined)) : routeCandidates(view, k);
        const gk = cands[0]?.ep ?? '';
        g = groups.get(gk);
        if (!g) groups.set(gk, (g = { cands, idx: [], wire: [], readOnly: true }));
      }
      g.idx.push(i);
      g.wire.push(wire as unknown as BatchItem);
      if (it.op !== 'get') g.readOnly = false;
    } catch (e) {
      results[i] = itemError(asClientError(e, 'bad_request'));
    }
  }
  return groups;
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
