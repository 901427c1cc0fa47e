/**
 * An IPC batch's fan-out (the connection runs it: src/api/ipc-connection.ts): a `batch` request
 * split into its items (each a key-value op to run on its own, or an error answered without
 * running), and the batch in progress, whose results are assembled in item order by its
 * BatchAssembly (src/api/ipc-replies.ts: the cut at the frame limit in item order) while their
 * estimated bytes are held on the connection's reply account until the batch's one frame goes out.
 * Pure but for the account it is handed: no socket, no router.
 */
import type { ReplyAccount } from '../net/reply-budget.js';
import { badRequest } from '../util/errors.js';
import type { BatchItemResult, GetOk, IpcLimits, ItemError, WriteOk } from './ipc-protocol.js';
import { BatchAssembly, errorFields } from './ipc-replies.js';
import { fieldName, isMsg, parseKvOp, parseTimeout, refuseForeignFields, type KvOp, type Msg, type ShapeProblem } from './ipc-request.js';

/** A batch's items as requested: an op to run, or the error that answers the item without running it. */
export type BatchItem = KvOp | ItemError;

/**
 * Split a batch request into its items. A problem with the batch itself (a foreign field, `items`
 * not an array or over `maxBatchItems`, a bad `timeoutMs`) throws bad_request for the whole
 * request; a problem with one item (`itemProblems`: the msgpack-level shape problems found under
 * `items[i]`, or its fields) fails only that item.
 */
export function parseBatchItems(m: Msg, itemProblems: ReadonlyMap<number, ShapeProblem>, limits: IpcLimits, maxBatchItems: number): BatchItem[] {
  refuseForeignFields(m, 'batch');
  const items = m['items'];
  if (!Array.isArray(items)) throw badRequest('items must be an array of {op: put|get|del, ...}', { field: 'items' });
  if (items.length > maxBatchItems) {
    throw badRequest(`a batch carries at most ${maxBatchItems} items, got ${items.length}; split it`, { field: 'items' });
  }
  const timeout = parseTimeout(m['timeoutMs']);
  return items.map((it: unknown, i): BatchItem => {
    try {
      const p = itemProblems.get(i);
      if (p) {
        const field = fieldName(p.path.slice(2)) || 'item';
        throw badRequest(`${field}: ${p.message}`, { field });
      }
      if (!isMsg(it)) throw badRequest('each batch item must be a map {op: put|get|del, ...}', { field: 'op' });
      return parseKvOp(it, limits, timeout, true);
    } catch (e) {
      return { ok: false, ...errorFields(e) };
    }
  });
}

/** Is this item an op to run (rather than an error already decided)? */
export function isRunnable(item: BatchItem): item is KvOp {
  return 'kind' in item;
}

/**
 * A batch in progress: its reply, assembled in item order (BatchAssembly), and its bytes on the
 * connection's reply account.
 */
export class BatchRun {
  readonly asm: BatchAssembly;
  /**
   * Estimated bytes of the results recorded so far (the decided prefix and those held out of
   * order), held on the account until the batch's frame is written.
   */
  held = 0;
  /** Bytes reserved on the account for its items in flight (kept by the connection). */
  reserved = 0;

  /**
   * Opens the batch `id` over its items and records the items already answered (their errors).
   * `complete` is then true when there is nothing to run.
   */
  constructor(id: number, items: readonly BatchItem[], replyBudget: number, maxFrameBytes: number, account: ReplyAccount) {
    this.asm = new BatchAssembly(
      id,
      items.map((p) => (isRunnable(p) ? p.kind : 'invalid')),
      replyBudget,
      maxFrameBytes,
    );
    items.forEach((p, i) => {
      if (!isRunnable(p)) this.asm.set(i, p);
    });
    this.syncHeld(account);
  }

  get complete(): boolean {
    return this.asm.complete;
  }

  /** Record item `index`'s result and hold the recorded results' bytes; true when it was the last. */
  record(index: number, r: BatchItemResult, account: ReplyAccount): boolean {
    const last = this.asm.set(index, r);
    this.syncHeld(account);
    return last;
  }

  /** The recorded results' bytes leave the account: they become the batch frame's (written next). */
  releaseHeld(account: ReplyAccount): void {
    account.release(this.held);
    this.held = 0;
  }

  /** Put the recorded results (the assembly's estimate, cuts included) on the account. */
  private syncHeld(account: ReplyAccount): void {
    const now = this.asm.resultBytes;
    if (now > this.held) account.hold(now - this.held);
    else account.release(this.held - now);
    this.held = now;
  }
}

/**
 * A batch item's `{ok: true, ...}` result, built field by field in the key order of the reply
 * (an object spread per item was a visible share of the router thread under batched ingest).
 */
export function okItem(v: WriteOk | GetOk): BatchItemResult {
  if (!('found' in v)) return { ok: true, context: v.context, consistency: v.consistency };
  const r: { ok: true } & GetOk = { ok: true, found: v.found, context: v.context, consistency: v.consistency };
  if (v.value !== undefined) r.value = v.value;
  if (v.siblings !== undefined) r.siblings = v.siblings;
  return r;
}
