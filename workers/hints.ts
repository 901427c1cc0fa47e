/**
 * Hints actor: the only writer of the `hints` column family. Keys are `target \0 seq(8B BE)` so one
 * target's hints are contiguous and in arrival order; values are msgpack. Like the shard actors it
 * group-commits every store that arrives in one event-loop turn into one WriteBatch.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pack, unpack } from 'msgpackr';
import { newRocks, SyncWriteBatch } from '../src/storage/rocks.js';
import { HINTS_CF } from '../src/storage/db.js';
import type { FromHints, Hint, HintsRequest, HintsResult, HintsWorkerData, StoredHint, ToHints } from '../src/hints/protocol.js';

const data = workerData as HintsWorkerData;
const port = parentPort!;
const db = newRocks(data.handle);
await db.open();
const column = db.columns[HINTS_CF]!;
const writes = new SyncWriteBatch(db, column);
const expireWrites = new SyncWriteBatch(db, column);

function keyOf(target: string, seq: number): Buffer {
  const t = Buffer.from(target, 'utf8');
  const k = Buffer.allocUnsafe(t.length + 9);
  t.copy(k, 0);
  k[t.length] = 0;
  k.writeBigUInt64BE(BigInt(seq), t.length + 1);
  return k;
}

function parseKey(k: Buffer): { target: string; seq: number } {
  const z = k.indexOf(0);
  if (z < 0 || k.length !== z + 9) throw new Error('invariant violated: malformed hint key');
  return { target: k.subarray(0, z).toString('utf8'), seq: Number(k.readBigUInt64BE(z + 1)) };
}

// Per-target next sequence and count, rebuilt by a scan at startup (hints survive restarts).
const nextSeq = new Map<string, number>();
const count = new Map<string, number>();
{
  const it = db.iterator({ column, keys: true, values: false, keyEncoding: 'buffer' });
  try {
    for (;;) {
      const rows = await it.nextv(5000);
      if (rows.length === 0) break;
      for (const [k] of rows) {
        const { target, seq } = parseKey(k);
        nextSeq.set(target, Math.max(nextSeq.get(target) ?? 0, seq + 1));
        count.set(target, (count.get(target) ?? 0) + 1);
      }
    }
  } finally {
    await it.close();
  }
}

function send(m: FromHints): void {
  port.postMessage(m);
}

async function list(target: string, limit: number): Promise<StoredHint[]> {
  const prefix = Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([0])]);
  const end = Buffer.concat([Buffer.from(target, 'utf8'), Buffer.from([1])]);
  const it = db.iterator({ column, gte: prefix, lt: end, limit, keyEncoding: 'buffer', valueEncoding: 'buffer' });
  const out: StoredHint[] = [];
  try {
    const rows = await it.nextv(limit);
    for (const [k, v] of rows) out.push({ ...(unpack(v) as Hint), seq: parseKey(k).seq });
  } finally {
    await it.close();
  }
  return out;
}

async function expire(olderThan: number): Promise<number> {
  const it = db.iterator({ column, keyEncoding: 'buffer', valueEncoding: 'buffer' });
  let removed = 0;
  try {
    for (;;) {
      const rows = await it.nextv(2000);
      if (rows.length === 0) break;
      for (const [k, v] of rows) {
        const h = unpack(v) as Hint;
        if (h.createdAt < olderThan) {
          expireWrites.del(k);
          const { target } = parseKey(k);
          count.set(target, (count.get(target) ?? 1) - 1);
          removed++;
        }
      }
      expireWrites.commit(data.durability === 'sync');
    }
  } finally {
    await it.close();
  }
  return removed;
}

function counts(): Record<string, number> {
  const o: Record<string, number> = {};
  for (const [t, c] of count) if (c > 0) o[t] = c;
  return o;
}

let queue: HintsRequest[] = [];
let scheduled = false;
let closing = false;

async function drain(): Promise<void> {
  const ops = queue;
  queue = [];
  const replies: HintsResult[] = [];
  for (const op of ops) {
    try {
      switch (op.op) {
        case 'store': {
          const t = op.hint.target;
          if ((count.get(t) ?? 0) >= data.maxHintsPerTarget) {
            replies.push({ id: op.id, ok: true, stored: false });
            break;
          }
          const seq = nextSeq.get(t) ?? 0;
          nextSeq.set(t, seq + 1);
          count.set(t, (count.get(t) ?? 0) + 1);
          writes.put(keyOf(t, seq), pack(op.hint));
          replies.push({ id: op.id, ok: true, stored: true });
          break;
        }
        case 'delete': {
          for (const s of op.seqs) writes.del(keyOf(op.target, s));
          count.set(op.target, Math.max(0, (count.get(op.target) ?? 0) - op.seqs.length));
          replies.push({ id: op.id, ok: true, removed: op.seqs.length });
          break;
        }
        case 'list':
          replies.push({ id: op.id, ok: true, hints: await list(op.target, op.limit) });
          break;
        case 'expire':
          replies.push({ id: op.id, ok: true, removed: await expire(op.olderThan) });
          break;
        case 'counts':
          replies.push({ id: op.id, ok: true, counts: counts() });
          break;
      }
    } catch (e) {
      replies.push({ id: op.id, ok: false, code: 'internal', message: (e as Error).message });
    }
  }
  // Acks only after the batch is in the WAL (fsynced first under `sync` durability).
  writes.commit(data.durability === 'sync');
  send({ t: 'replies', replies });
  scheduled = false;
  if (queue.length > 0) schedule();
  else if (closing) finish();
}

function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(() => void drain());
}

function finish(): void {
  send({ t: 'closed' });
  port.close();
}

port.on('message', (m: ToHints) => {
  if (m.t === 'ops') {
    for (const op of m.ops) queue.push(op);
    schedule();
  } else {
    closing = true;
    if (!scheduled) finish();
  }
});

send({ t: 'ready', counts: counts() });
