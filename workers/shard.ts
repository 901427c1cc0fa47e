/**
 * Shard actor: the sole owner of one RocksDB column family. Everything that reads-modifies-writes a
 * key (version merge, sibling pruning, tombstones) happens here, in mailbox order, so no locks.
 *
 * Group commit: every message that arrives during one turn of the event loop is queued; a single
 * `setImmediate` drains the queue into one multi-get + one WriteBatch, and replies go back in one
 * message after the batch is written (fsynced first when durability is `sync`).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { bufferOpts, newRocks, type ColumnHandle } from '../src/storage/rocks.js';
import { shardColumn, META_CF } from '../src/storage/db.js';
import { encodeStorageKey } from '../src/storage/keys.js';
import type { DataOp, RouterToShard, ShardOp, ShardResult, ShardToRouter, ShardWorkerData } from '../src/storage/shard-protocol.js';
import { RingTable } from '../src/ring/table.js';
import { initHasher } from '../src/ring/hash.js';
import { decodeRecord, encodeRecord, initVersions, mergeVersions, versionsEqual, type Version } from '../src/versions/index.js';

const data = workerData as ShardWorkerData;
const port = parentPort!;

function send(msg: ShardToRouter): void {
  port.postMessage(msg);
}

await initHasher();
await initVersions();
const db = newRocks(data.handle);
await db.open();
const column: ColumnHandle = db.columns[shardColumn(data.shard)]!;
const metaColumn: ColumnHandle = db.columns[META_CF]!;
if (!column) throw new Error(`shard ${data.shard}: column family missing`);
const ring = RingTable.attach(data.ringBuffer);
const putOpts = bufferOpts(column);
const metaPutOpts = bufferOpts(metaColumn);

let keyCount = await countKeys();
let writes = 0;
let reads = 0;
let batches = 0;
let queue: ShardOp[] = [];
let scheduled = false;
let closing = false;

async function countKeys(): Promise<number> {
  const it = db.iterator({ column, keys: true, values: false, keyEncoding: 'buffer' });
  let n = 0;
  try {
    for (;;) {
      const rows = await it.nextv(10_000);
      if (rows.length === 0) break;
      n += rows.length;
    }
  } finally {
    await it.close();
  }
  return n;
}

port.on('message', (msg: RouterToShard) => {
  if (msg.t === 'ops') {
    for (const op of msg.ops) queue.push(op);
    if (!scheduled) {
      scheduled = true;
      setImmediate(drain);
    }
  } else if (msg.t === 'close') {
    closing = true;
    if (syncTimer) clearInterval(syncTimer);
    if (!scheduled) finishClose();
  }
});

function finishClose(): void {
  send({ t: 'closed' });
  port.close();
}

function drain(): void {
  scheduled = false;
  const ops = queue;
  queue = [];
  if (ops.length > 0) {
    const replies = processOps(ops);
    send({ t: 'replies', replies });
  }
  if (closing) finishClose();
}

function processOps(ops: ShardOp[]): ShardResult[] {
  batches++;
  const replies: ShardResult[] = new Array(ops.length);
  // Encode every key once; one multi-get serves every read and every read-modify-write in the batch.
  const keys: Buffer[] = [];
  const slot = new Map<string, number>(); // storage key (latin1) -> index in keys
  const opSlot = new Int32Array(ops.length).fill(-1);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.op === 'stats') continue;
    if (!ring.ownsLocally(op.hi, op.lo, data.shard)) {
      replies[i] = { id: op.id, ok: false, code: 'not_owner', message: `shard ${data.shard} does not own this key's token on this node` };
      continue;
    }
    const k = encodeStorageKey(op.hi, op.lo, op.table, op.key);
    const s = k.toString('latin1');
    let idx = slot.get(s);
    if (idx === undefined) {
      idx = keys.length;
      keys.push(k);
      slot.set(s, idx);
    }
    opSlot[i] = idx;
  }
  const raw = keys.length > 0 ? db._getManySync(keys, { column }) : [];
  const current: Array<Version[] | null> = raw.map((b) => (b === undefined ? null : decodeRecord(b)));
  const dirty = new Uint8Array(keys.length);
  const existedBefore = current.map((v) => v !== null);

  for (let i = 0; i < ops.length; i++) {
    if (replies[i]) continue;
    const op = ops[i]!;
    if (op.op === 'stats') {
      replies[i] = { id: op.id, ok: true, stats: { shard: data.shard, keys: keyCount, writes, reads, batches, queue: queue.length } };
      continue;
    }
    const idx = opSlot[i]!;
    replies[i] = apply(op, idx, current, dirty);
  }

  let wrote = false;
  if (dirty.some((d) => d === 1)) {
    const batch = db.batch();
    for (let i = 0; i < keys.length; i++) {
      if (dirty[i] !== 1) continue;
      batch.put(keys[i]!, encodeRecord(current[i]!), putOpts);
      if (!existedBefore[i]) keyCount++;
    }
    batch._writeSync({ sync: data.durability === 'sync' });
    wrote = true;
  }
  void wrote;
  return replies;
}

function apply(op: DataOp, idx: number, current: Array<Version[] | null>, dirty: Uint8Array): ShardResult {
  if (op.op === 'read') {
    reads++;
    return { id: op.id, ok: true, versions: current[idx] ?? null };
  }
  writes++;
  const before = current[idx] ?? [];
  const merged = mergeVersions(op.mode, before, op.versions, data.maxSiblings);
  const changed = !versionsEqual(merged, before);
  if (changed) {
    current[idx] = merged;
    dirty[idx] = 1;
  }
  return { id: op.id, ok: true, versions: op.returnMerged ? (current[idx] ?? []) : null, changed };
}

// Periodic durability: the WAL is written before every ack; one fsync'ed write per interval makes
// everything before it durable (a sync write syncs the whole shared WAL). Only shard 0 does this.
let syncTimer: NodeJS.Timeout | undefined;
if (data.durability === 'periodic' && data.shard === 0) {
  const syncKey = Buffer.from('__wal_sync');
  syncTimer = setInterval(() => {
    const b = db.batch();
    b.put(syncKey, Buffer.from(String(Date.now())), metaPutOpts);
    b._writeSync({ sync: true });
  }, data.syncIntervalMs);
  syncTimer.unref();
}

send({ t: 'ready', shard: data.shard, keys: keyCount });
