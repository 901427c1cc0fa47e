/**
 * IPC reply shaping (pure; the connection handling is src/api/ipc-connection.ts): results as the wire
 * carries them, the byte estimates that keep every reply under the frame limit, a `get` whose
 * siblings do not fit in one frame, and the assembly of a batch reply.
 *
 * Batch replies (issue 10 item 15): when the results of a batch cannot all fit in one frame, which
 * gets are answered is decided in ITEM order, not completion order, so the gets that returned
 * their value are a prefix of the batch's gets: the first get that does not fit and every get
 * after it answer `too_large` (those not started yet are not run). A client re-reads from the
 * first cut get on. Puts and dels are never cut: they have run, and their result (a context) is
 * small. Results that complete out of order are held until everything before them is decided,
 * but never more than the reply budget of them: a held get whose place in the reply is already
 * certain to be past the budget is cut at once (see BatchAssembly.trim).
 */
import type { ReadResult, ScanResult } from '../router/router.js';
import { asBuffer } from '../util/bytes.js';
import { asRingkvError, invariant, type ErrorCode } from '../util/errors.js';
import type { BatchItemResult, GetOk, ItemError, ScanOk, ScanRowOk, TooLargeGetDetails, WriteOk } from './ipc-protocol.js';

// Per-result msgpack overhead beyond the value bytes (field names, consistency report incl. a clamp
// note, bin headers), deliberately generous: the exact check happens after encoding.
export const REPLY_OVERHEAD = 160;
/** Room left under the frame limit for the reply's envelope (id, ok, rv, ...). */
export const FRAME_HEADROOM = 1024;

/** Estimated reply bytes allowed under a frame limit. */
export function replyBudgetOf(maxFrameBytes: number): number {
  return maxFrameBytes - Math.min(FRAME_HEADROOM, maxFrameBytes >> 2);
}

export function errorFields(err: unknown): { code: ErrorCode; message: string; field?: string } {
  const e = asRingkvError(err);
  const field = e.details?.['field'];
  return typeof field === 'string' ? { code: e.code, message: e.message, field } : { code: e.code, message: e.message };
}

/** A key's live versions as replies carry them: `value` for one, `siblings` for more (bins untouched). */
export function putValues<T extends { value?: Buffer; siblings?: Buffer[] }>(out: T, values: ReadResult['values']): T {
  if (values.length === 1) out.value = asBuffer(values[0]!.value);
  else if (values.length > 1) out.siblings = values.map((v) => asBuffer(v.value));
  return out;
}

export function getOk(res: ReadResult): GetOk {
  return putValues<GetOk>({ found: res.values.length > 0, context: res.context, consistency: res.consistency }, res.values);
}

/** Rows as `get` answers a key: `value` for one live version, `siblings` for more; bins untouched. */
export function scanOk(res: ScanResult): ScanOk {
  const rows: ScanRowOk[] = res.rows.map((row) => putValues<ScanRowOk>({ key: asBuffer(row.key), context: row.context }, row.values));
  const out: ScanOk = { rows, truncated: res.truncated, endOfRing: res.endOfRing, consistency: res.consistency };
  if (res.pagingState !== undefined) out.pagingState = res.pagingState;
  return out;
}

type Estimable = { context?: string; message?: string; value?: Buffer; siblings?: Array<Buffer | null> };

export function estimateBytes(r: Estimable): number {
  let n = REPLY_OVERHEAD;
  if (r.context !== undefined) n += r.context.length;
  if (r.message !== undefined) n += r.message.length;
  if (r.value) n += r.value.length;
  if (r.siblings) for (const s of r.siblings) n += (s?.length ?? 0) + 5;
  return n;
}

/**
 * A `get` whose reply would not fit in a frame (issue 10 item 13): `too_large`, but with the
 * context (so a writer can still resolve the key: a put with it supersedes every sibling) and
 * the siblings that fit, in order, with nil in the place of each left out; `omitted` lists their
 * indexes and `sizes` every sibling's byte length.
 */
export function tooLargeGet(g: GetOk, budget: number, maxFrameBytes: number): ItemError & TooLargeGetDetails {
  const all = g.siblings ?? (g.value ? [g.value] : []);
  const base: ItemError = {
    ok: false,
    code: 'too_large',
    message: `the reply (${all.length === 1 ? 'one value' : `${all.length} siblings`}) exceeds the ${maxFrameBytes}-byte frame limit; the siblings left out are listed in omitted; a put with this context supersedes them all`,
  };
  let used = estimateBytes({ ...base, context: g.context }) + all.length * 10;
  const siblings: Array<Buffer | null> = [];
  const omitted: number[] = [];
  for (let i = 0; i < all.length; i++) {
    const s = all[i]!;
    if (used + s.length + 5 <= budget) {
      siblings.push(s);
      used += s.length + 5;
    } else {
      siblings.push(null);
      omitted.push(i);
    }
  }
  return { ...base, context: g.context, siblings, omitted, sizes: all.map((s) => s.length) };
}

type ItemKind = 'put' | 'get' | 'del' | 'invalid';

/** Sums over item indexes (a Fenwick tree): O(log n) updates and prefix sums. */
class IndexSums {
  private readonly t: Float64Array;
  constructor(n: number) {
    this.t = new Float64Array(n + 1);
  }
  add(i: number, d: number): void {
    for (let x = i + 1; x < this.t.length; x += x & -x) this.t[x]! += d;
  }
  /** Sum over indexes [0, i]. */
  prefix(i: number): number {
    let s = 0;
    for (let x = i + 1; x > 0; x -= x & -x) s += this.t[x]!;
    return s;
  }
}

/**
 * One batch's reply, assembled as its items complete (see the top of this file). Items are
 * decided in order: `decided` items have their final result counted in `total`; a completed item
 * past them is held (its estimated size in `heldBytes` by index). `cutAt`: the first get known
 * to be cut; every get after it is cut too.
 */
export class BatchAssembly {
  readonly results: BatchItemResult[];
  private readonly kinds: ItemKind[];
  private readonly sizes: number[];
  private readonly done: boolean[];
  private pending: number;
  private decided = 0;
  private total = REPLY_OVERHEAD;
  private cutAt = Infinity;
  private readonly heldBytes: IndexSums;
  private readonly heldCount: IndexSums;
  /** Held gets that kept their value, ascending (from heldHead on). */
  private heldGets: number[] = [];
  private heldHead = 0;

  constructor(
    readonly id: number,
    kinds: ReadonlyArray<ItemKind>,
    private readonly budget: number,
    private readonly maxFrameBytes: number,
  ) {
    const n = kinds.length;
    this.kinds = [...kinds];
    this.results = new Array<BatchItemResult>(n);
    this.sizes = new Array<number>(n).fill(0);
    this.done = new Array<boolean>(n).fill(false);
    this.pending = n;
    this.heldBytes = new IndexSums(n);
    this.heldCount = new IndexSums(n);
  }

  get complete(): boolean {
    return this.pending === 0;
  }

  /** False for a get already known to be cut: answer it with `cutResult` without running it. */
  shouldRun(i: number): boolean {
    return !(this.kinds[i] === 'get' && i > this.cutAt);
  }

  cutResult(i: number, context?: string): ItemError & { context?: string } {
    const r: ItemError & { context?: string } = {
      ok: false,
      code: 'too_large',
      message: `the batch reply reached the ${this.maxFrameBytes}-byte frame limit by item ${Math.min(i, this.cutAt)}: that get and every later get of the batch are left out; read them with separate requests`,
    };
    if (context !== undefined) r.context = context;
    return r;
  }

  /** Record item i's result; true when it was the last one (the reply is `results`). */
  set(i: number, result: BatchItemResult): boolean {
    if (!(i >= 0 && i < this.kinds.length && !this.done[i])) invariant(false, `batch item ${i} answered twice or out of range`);
    let r = result;
    const keeps = this.kinds[i] === 'get' && r.ok;
    if (keeps && i > this.cutAt) r = this.cutResult(i, (r as GetOk).context);
    this.done[i] = true;
    this.pending--;
    this.results[i] = r;
    this.sizes[i] = estimateBytes(r as Estimable);
    this.heldBytes.add(i, this.sizes[i]!);
    this.heldCount.add(i, 1);
    if (keeps && r === result) this.holdGet(i);
    this.trim();
    this.advance();
    return this.pending === 0;
  }

  private holdGet(i: number): void {
    const a = this.heldGets;
    let k = a.length;
    while (k > this.heldHead && a[k - 1]! > i) k--;
    a.splice(k, 0, i);
  }

  /** The least the reply's bytes up to and including item g can be, whatever is still pending. */
  private lowerBoundThrough(g: number): number {
    const undoneBefore = g - this.decided - (g > 0 ? this.heldCount.prefix(g - 1) : 0);
    return this.total + this.heldBytes.prefix(g) + REPLY_OVERHEAD * undoneBefore;
  }

  /** Cut held gets whose place in the reply is certainly past the budget, last first. */
  private trim(): void {
    while (this.heldGets.length > this.heldHead) {
      const h = this.heldGets[this.heldGets.length - 1]!;
      if (this.lowerBoundThrough(h) <= this.budget) return;
      this.heldGets.pop();
      this.cut(h);
    }
  }

  private cut(i: number): void {
    this.cutAt = Math.min(this.cutAt, i);
    const r = this.cutResult(i, (this.results[i] as { context?: string }).context);
    const size = estimateBytes(r);
    if (i >= this.decided) this.heldBytes.add(i, size - this.sizes[i]!);
    this.results[i] = r;
    this.sizes[i] = size;
  }

  private advance(): void {
    while (this.decided < this.kinds.length && this.done[this.decided]) {
      const d = this.decided;
      if (this.heldGets[this.heldHead] === d) {
        this.heldHead++;
        if (this.total + this.sizes[d]! > this.budget) {
          // The first get that does not fit: it and every held get after it are cut.
          this.cut(d);
          while (this.heldGets.length > this.heldHead) this.cut(this.heldGets.pop()!);
        }
      }
      this.heldBytes.add(d, -this.sizes[d]!);
      this.heldCount.add(d, -1);
      this.total += this.sizes[d]!;
      this.decided++;
    }
    if (this.heldHead > 64 && this.heldHead * 2 > this.heldGets.length) {
      this.heldGets = this.heldGets.slice(this.heldHead);
      this.heldHead = 0;
    }
  }

  /**
   * Estimated bytes of every result recorded so far, the decided prefix and those held beyond it
   * (cuts included): what the batch keeps in memory until its reply is written.
   */
  get resultBytes(): number {
    return this.total - REPLY_OVERHEAD + this.heldEstimate();
  }

  /** Estimated bytes of the results held beyond the decided prefix (bounded by the budget for gets). */
  heldEstimate(): number {
    return this.kinds.length === 0 ? 0 : this.heldBytes.prefix(this.kinds.length - 1);
  }
}

export type { WriteOk };
