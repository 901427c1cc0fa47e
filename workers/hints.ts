/**
 * Hints actor: the only writer of the `hints` column family. Keys are `target \0 seq(8B BE)` so one
 * target's hints are contiguous and in arrival order; values are msgpack. Like the shard actors it
 * group-commits the writes of one event-loop turn into one WriteBatch.
 *
 * Every op is synchronous and bounded, so the mailbox never waits behind a long scan:
 * - `list` reads at most `limit` hints, starting at the target's low-water seq.
 * - `expire` reads at most `budget` hints per op. Hints of a target are in seq order, which is
 *   (nearly) createdAt order, so a target is scanned only from its first live hint up to the first
 *   unexpired one; a target whose first hint is known to be unexpired costs no I/O at all. (A
 *   coordinator stamps createdAt, so hints from two coordinators may interleave out of createdAt
 *   order by their clock skew; such a hint expires when the ones before it do, and replay drops
 *   any hint it finds expired.)
 * - Reads first commit this turn's pending writes, so they see everything before them in mailbox
 *   order, and a `delete` removes (and counts) only the seqs that still exist: counts stay exact
 *   when an expiry and a replay delete race for the same hint.
 *
 * The mailbox is its HintsApi (src/hints/protocol.ts), exposed with comlink on the control port in
 * workerData. Those guarantees hold because comlink delivers the calls in order on that one port
 * and invokes each method synchronously on arrival, and every method only enqueues its op (no
 * await before that): ops run one by one, in call order, inside the drain below, never interleaved.
 */
import { workerData } from 'node:worker_threads';
import { pack, unpack } from 'msgpackr';
import { expose } from 'comlink';
import { portEndpoint } from '../src/util/comlink-port.js';
import { newRocks, readRowsSync, SyncWriteBatch } from '../src/storage/rocks.js';
import { HINTS_CF } from '../src/storage/db.js';
import type { Hint, HintCounts, HintsApi, HintsWorkerData, StoredHint } from '../src/hints/protocol.js';

const data = workerData as HintsWorkerData;
const db = newRocks(data.handle);
await db.open();
const column = db.columns[HINTS_CF]!;
const writes = new SyncWriteBatch(db, column);
const sync = data.durability === 'sync';
/** Rows per iterator read inside one expiry scan. */
const EXPIRE_PAGE = 256;

function keyOf(target: string, seq: number): Buffer {
  const t = Buffer.from(target, 'utf8');
  const k = Buffer.allocUnsafe(t.length + 9);
  t.copy(k, 0);
  k[t.length] = 0;
  k.writeBigUInt64BE(BigInt(seq), t.length + 1);
  return k;
}

/** Exclusive upper bound of a target's key range. */
function endOf(target: string): Buffer {
  return Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([1])]);
}

function parseKey(k: Buffer): { target: string; seq: number } {
  const z = k.indexOf(0);
  if (z < 0 || k.length !== z + 9) throw new Error('invariant violated: malformed hint key');
  return { target: k.subarray(0, z).toString('utf8'), seq: Number(k.readBigUInt64BE(z + 1)) };
}

interface TargetState {
  /** Next seq to assign. */
  next: number;
  /** Exact number of stored hints. */
  count: number;
  /** Every seq below `low` is gone: scans start here (and skip RocksDB tombstones of replayed hints). */
  low: number;
  /** The first live hint, when known (unknown after it was deleted or at startup). */
  head: { seq: number; createdAt: number } | undefined;
}

const targets = new Map<string, TargetState>();

function stateOf(target: string): TargetState {
  let s = targets.get(target);
  if (!s) {
    s = { next: 0, count: 0, low: 0, head: undefined };
    targets.set(target, s);
  }
  return s;
}

// Per-target next seq, count and low-water mark, rebuilt by a key-only scan at startup (hints
// survive restarts).
{
  const it = db.iterator({ column, keys: true, values: false, keyEncoding: 'buffer' });
  try {
    for (;;) {
      const rows = await it.nextv(5000);
      if (rows.length === 0) break;
      for (const [k] of rows) {
        const { target, seq } = parseKey(k);
        const s = stateOf(target);
        if (s.count === 0) s.low = seq;
        s.next = Math.max(s.next, seq + 1);
        s.count++;
      }
    }
  } finally {
    await it.close();
  }
}

/** Commit this turn's pending writes so a read sees every op before it in mailbox order. */
function flush(): void {
  writes.commit(sync);
}

/** Up to `limit` (key, value) rows of `target` from seq `from` on, as a flat [k, v, k, v, …] array. */
function readRows(target: string, from: number, limit: number): Buffer[] {
  return readRowsSync(db, { column, gte: keyOf(target, from), lt: endOf(target) }, limit);
}

function list(target: string, limit: number): StoredHint[] {
  const s = targets.get(target);
  if (!s || s.count === 0) return [];
  flush();
  const rows = readRows(target, s.low, limit);
  const out: StoredHint[] = [];
  for (let i = 0; i + 1 < rows.length; i += 2) out.push({ ...(unpack(rows[i + 1]!) as Hint), seq: parseKey(rows[i]!).seq });
  const first = out[0];
  if (first) {
    s.low = first.seq;
    s.head = { seq: first.seq, createdAt: first.createdAt };
  }
  return out;
}

function remove(target: string, seqs: readonly number[]): number[] {
  const s = targets.get(target);
  if (!s || s.count === 0 || seqs.length === 0) return [];
  flush();
  const unique = [...new Set(seqs)].filter((q) => q >= s.low && q < s.next);
  const keys = unique.map((q) => keyOf(target, q));
  const found = keys.length > 0 ? db._getManySync(keys, { column }) : [];
  const removed: number[] = [];
  for (let i = 0; i < unique.length; i++) {
    if (found[i] === undefined) continue;
    writes.del(keys[i]!);
    removed.push(unique[i]!);
    s.count--;
    if (s.head?.seq === unique[i]) s.head = undefined;
  }
  if (s.count === 0) {
    s.low = s.next;
    s.head = undefined;
  }
  return removed;
}

let expireCursor = 0;

/**
 * Drop hints created before `olderThan`, reading at most `budget` hints. Targets are visited
 * round-robin from where the last op stopped, so one huge backlog can't starve the others.
 */
function expire(olderThan: number, budget: number): { removed: number; more: boolean; touched: Set<string> } {
  flush();
  const names = [...targets.keys()];
  const touched = new Set<string>();
  let removed = 0;
  let read = 0;
  let more = false;
  for (let v = 0; v < names.length; v++) {
    const idx = (expireCursor + v) % names.length;
    const target = names[idx]!;
    const s = targets.get(target)!;
    if (s.count === 0) continue;
    if (s.head && s.head.createdAt >= olderThan) continue; // first hint still fresh: no I/O
    let done = false;
    while (!done) {
      if (read >= budget) {
        more = true;
        expireCursor = idx; // resume with this target
        break;
      }
      const limit = Math.min(EXPIRE_PAGE, budget - read);
      const rows = readRows(target, s.low, limit);
      const n = rows.length / 2;
      read += Math.max(n, 1);
      for (let i = 0; i + 1 < rows.length; i += 2) {
        const seq = parseKey(rows[i]!).seq;
        const createdAt = (unpack(rows[i + 1]!) as Hint).createdAt;
        if (createdAt >= olderThan) {
          s.low = seq;
          s.head = { seq, createdAt };
          done = true;
          break;
        }
        writes.del(rows[i]!);
        s.count--;
        s.low = seq + 1;
        s.head = undefined;
        removed++;
        touched.add(target);
      }
      if (!done && n < limit) {
        // Read to the end of the target's range: nothing live is left.
        if (s.count !== 0) touched.add(target);
        s.low = s.next;
        s.count = 0;
        s.head = undefined;
        done = true;
      }
    }
    if (more) break;
  }
  if (!more) expireCursor = 0;
  flush();
  return { removed, more, touched };
}

function countsOf(names: Iterable<string>): Record<string, number> {
  const o: Record<string, number> = {};
  for (const t of names) o[t] = targets.get(t)?.count ?? 0;
  return o;
}

function allCounts(): Record<string, number> {
  const o: Record<string, number> = {};
  for (const [t, s] of targets) if (s.count > 0) o[t] = s.count;
  return o;
}

/**
 * The mailbox: every HintsApi call becomes one entry, queued when its comlink message arrives (in
 * call order: one port, and the methods below enqueue synchronously). One drain per event-loop
 * turn runs every queued op in order, synchronously, so no op ever runs interleaved with another;
 * reads (`list`, `delete`, `expire`) first commit the writes queued before them (flush), and the
 * turn's writes are group-committed once before any answer of the turn is settled.
 */
interface QueuedOp {
  run: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

/** Bound on queued ops; the main thread bounds its calls in flight below it (HintStore), so this only catches a bug. */
const QUEUED_OPS_MAX = 1_000_000;
let queue: QueuedOp[] = [];
let scheduled = false;
let closing = false;
/** Numbers answers that carry counts, in mailbox order (HintCounts.serial). */
let serial = 0;

function enqueue<T>(run: () => T): Promise<T> {
  if (closing) return Promise.reject(new Error('hints actor is closing'));
  if (queue.length >= QUEUED_OPS_MAX) return Promise.reject(new Error(`hints actor has ${queue.length} ops queued (limit ${QUEUED_OPS_MAX})`));
  return new Promise<T>((resolve, reject) => {
    queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
    schedule();
  });
}

function counted<T extends object>(counts: Record<string, number>, rest: T, full?: true): HintCounts & T {
  return { ...rest, serial: ++serial, counts, ...(full ? { full } : {}) };
}

/** One turn's stores, each on its own: a hint that fails to encode fails alone and changes nothing. */
function store(hints: readonly Hint[]): HintCounts & { stored: Array<boolean | string> } {
  const stored: Array<boolean | string> = [];
  const touched = new Set<string>();
  for (const hint of hints) {
    let value: Buffer;
    try {
      value = pack(hint);
    } catch (e) {
      stored.push(`cannot encode the hint: ${(e as Error).message}`);
      continue;
    }
    const t = hint.target;
    const s = stateOf(t);
    touched.add(t);
    if (s.count >= data.maxHintsPerTarget) {
      stored.push(false);
      continue;
    }
    const seq = s.next++;
    if (s.count === 0) {
      s.low = seq;
      s.head = { seq, createdAt: hint.createdAt };
    }
    s.count++;
    writes.put(keyOf(t, seq), value);
    stored.push(true);
  }
  return counted(countsOf(touched), { stored });
}

const api: HintsApi = {
  store: (hints) => enqueue(() => store(hints)),
  list: (target, limit) => enqueue(() => list(target, limit)),
  delete: (target, seqs) =>
    enqueue(() => {
      const removedSeqs = remove(target, seqs);
      return counted(countsOf([target]), { removedSeqs });
    }),
  expire: (olderThan, budget) =>
    enqueue(() => {
      const r = expire(olderThan, Math.max(1, budget));
      return counted(countsOf(r.touched), { removed: r.removed, more: r.more });
    }),
  counts: () => enqueue(() => counted(allCounts(), {}, true)),
  close: () => {
    const answered = enqueue(() => undefined);
    closing = true;
    return answered;
  },
};

function drain(): void {
  const ops = queue;
  queue = [];
  const outcomes: Array<{ ok: true; value: unknown } | { ok: false; error: Error }> = [];
  for (const op of ops) {
    try {
      outcomes.push({ ok: true, value: op.run() });
    } catch (e) {
      outcomes.push({ ok: false, error: e instanceof Error ? e : new Error(String(e)) });
    }
  }
  // Answers only after the batch is in the WAL (fsynced first under `sync` durability), in queue order.
  writes.commit(sync);
  for (let i = 0; i < ops.length; i++) {
    const o = outcomes[i]!;
    if (o.ok) ops[i]!.resolve(o.value);
    else ops[i]!.reject(o.error);
  }
  scheduled = false;
  if (queue.length > 0) schedule();
  // Closed: every op before `close` is answered above; comlink posts those answers from
  // microtasks, which all run before this immediate closes the port (and the worker exits).
  else if (closing) setImmediate(() => data.control.close());
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(drain);
}

expose(api, portEndpoint(data.control));
