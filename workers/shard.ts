/**
 * Shard actor: the sole owner of one RocksDB column family. Everything that reads-modifies-writes a
 * key (version merge, sibling pruning, tombstones, Merkle update, tombstone purge) happens here, in
 * mailbox order, so no locks.
 *
 * Group commit: every message that arrives during one turn of the event loop is queued; a single
 * `setImmediate` drains the queue into one multi-get + one WriteBatch, and replies go back in one
 * message after the batch is written (fsynced first when durability is `sync`).
 *
 * Placement: this shard stores exactly the tokens whose placement shard is its own (a fixed function
 * of the token, src/storage/placement.ts) among those this node replicates; anything else routed
 * here by a stale view is refused with not_owner.
 *
 * Anti-entropy: one incremental Merkle tree per ring range this node stores (RingTable.localRanges),
 * over this shard's keys of it; the node's tree of a range is the XOR of its shards' trees.
 * A write that changes a record patches its tree in O(1) (old digest out, new digest in). Trees are
 * rebuilt from a scan at startup and for ranges that are new after a ring change, in chunks of
 * SCAN_CHUNK keys per `setImmediate` turn so the mailbox keeps draining. Each chunk is read
 * synchronously through a fresh iterator, so a chunk sees every write committed before it and no
 * write can interleave with it; a write to a key the scan has already passed patches the new tree,
 * a write to a key not yet reached is left to the scan (which will read the committed value). A
 * tree being rebuilt answers repair requests with `ready: false`: its hashes are incomplete.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { expose } from 'comlink';
import { portEndpoint } from '../src/util/comlink-port.js';
import { fsyncedCommitCount, newRocks, readRowsSync, SyncWriteBatch, type ColumnHandle } from '../src/storage/rocks.js';
import { shardColumn, META_CF } from '../src/storage/db.js';
import { encodeStorageKey, MIN_STORAGE_KEY_BYTES, TABLE_ID_BYTES, type KeyBounds } from '../src/storage/keys.js';
import { CleanupRun } from '../src/streaming/shard-cleanup.js';
import { DeadRecordIndex, SweepRun, type SweepPorts } from '../src/storage/tombstone-sweep.js';
import { ShardTrees, type TreeScanPorts } from '../src/storage/shard-trees.js';
import { OpError, ShardQueries } from '../src/storage/shard-queries.js';
import { localShardOf, shardOfToken } from '../src/storage/placement.js';
import {
  REPAIR_LIMITS,
  type CellWriteOp,
  type DataOp,
  type CleanupOp,
  type RepairResult,
  type RouterToShard,
  type ShardOp,
  type ShardResult,
  type ShardToRouter,
  type ShardWorkerData,
  type ShardControlApi,
  type DataOpInput,
  type ShardStats,
} from '../src/storage/shard-protocol.js';
import { decodeRequests, splitReplies, WIRE_CRDT_APPLY, WIRE_READ, WireReplyWriter, type WireRequest } from '../src/storage/shard-wire.js';
import { AdaptiveSpin, parkUntilData, readSeq } from '../src/storage/shard-channel.js';
import { SpscRing } from '../src/storage/spsc-ring.js';
import { applyCrdtRequest, type CrdtShardContext } from '../src/storage/crdt-shard.js';
import { RingTable } from '../src/ring/table.js';
import { initHasher } from '../src/ring/hash.js';
import { initMerkle, type Hash64 } from '../src/merkle/index.js';
import { invariant } from '../src/util/errors.js';
import { asBuffer } from '../src/util/bytes.js';
import {
  decodeRecord,
  encodeRecord,
  hash64,
  initVersions,
  isDead,
  isSingleVersionRecord,
  mergeVersions,
  versionsEqual,
  type Version,
} from '../src/versions/index.js';
import type { ConflictMode, TableMode } from '../src/config/config.js';
import { isPurgeableRecord, isSweepCandidate, mergeStoredRecords, validateRecord } from '../src/storage/records.js';
import { cellWriteKeys, slicePage, WideOpError } from '../src/storage/wide-shard.js';
import { RingkvError } from '../src/util/errors.js';

const data_ = workerData as ShardWorkerData;
const port = parentPort!;

/** Keys hashed per turn by a tree rebuild or a tombstone sweep: ~ms of work, then the mailbox runs. */
const SCAN_CHUNK = 2000;
/** Dead records one shard tracks for the sweep (~100 bytes each); more and sweeps scan everything. */
const MAX_DEAD_INDEX = 200_000;
/** How often an idle shard notices a new ring (busy shards check on every drain). */
const RING_CHECK_MS = 500;

function send(msg: ShardToRouter): void {
  port.postMessage(msg);
}

await initHasher();
await initVersions();
await initMerkle();
const db = newRocks(data_.handle);
await db.open();
const column: ColumnHandle = db.columns[shardColumn(data_.shard)]!;
const metaColumn: ColumnHandle = db.columns[META_CF]!;
if (!column) throw new Error(`shard ${data_.shard}: column family missing`);
const ring = RingTable.attach(data_.ringBuffer);
const writeBatch = new SyncWriteBatch(db, column);
const metaBatch = new SyncWriteBatch(db, metaColumn);
const depth = data_.merkleDepth;
const graceUs = data_.gcGraceSeconds * 1_000_000;
const crdtCtx: CrdtShardContext = { actor: data_.crdtActor, limits: data_.crdtLimits };
/** Wide-column tables with a gc grace of their own (storage id hex → seconds; `table-grace` ops keep it current). */
let tableGraces = new Map<string, number>();

/** The gc grace of the table a storage key belongs to. */
function graceSecondsOf(key: Buffer): number {
  if (tableGraces.size === 0) return data_.gcGraceSeconds;
  return tableGraces.get(key.toString('hex', 8, 8 + TABLE_ID_BYTES)) ?? data_.gcGraceSeconds;
}

/**
 * Does this shard store token (hi, lo) under the current ring: is it localShardOf's answer? (The
 * placement check first: it is free, the replica check is a binary search.)
 */
function ownsToken(hi: number, lo: number): boolean {
  return shardOfToken(hi, data_.shards) === data_.shard && localShardOf(ring, hi, lo, data_.shards) === data_.shard;
}

let keyCount = await countKeys();
let writes = 0;
let reads = 0;
let batches = 0;
let purgedTotal = 0;
let queue: ShardOp[] = [];
/** Records whose versions are all tombstones: what the sweep visits once a full scan filled it. */
const deadIndex = new DeadRecordIndex(MAX_DEAD_INDEX);
/**
 * Request messages not applied yet, by sequence number: from the ring (shard-channel.ts) or, when
 * one did not fit it, from the port. They are applied strictly in sequence (`nextSeq`), so the
 * mailbox order is the router's submission order whichever way each message travelled.
 */
const inbox = new Map<number, Uint8Array>();
let nextSeq = 0;
const requestRing = new SpscRing(data_.channel.requests);
const replyRing = new SpscRing(data_.channel.replies);
const spin = new AdaptiveSpin(data_.spinMicros);
/** Parked on the request ring (an Atomics.waitAsync is pending). */
let parked = false;
const replyWire = new WireReplyWriter();
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

/**
 * Up to `limit` (key, value) rows of `bounds` after `after` (exclusive), read synchronously through
 * a fresh iterator: the rows reflect every batch committed so far, and nothing can be written while
 * they are read (this thread is the only writer).
 */
function readChunk(bounds: KeyBounds, after: Buffer | null, limit: number): Buffer[] {
  return readRowsSync(db, { column, ...(after !== null ? { gt: after } : bounds.gte ? { gte: bounds.gte } : {}), ...(bounds.lt ? { lt: bounds.lt } : {}) }, limit);
}

// ---------------------------------------------------------------------------------------------
// Merkle trees (src/storage/shard-trees.ts): this actor's scheduling of rebuild scans

const trees = new ShardTrees(depth, ring);
let scanScheduled = false;
const treeScanPorts: TreeScanPorts = { readChunk, digest: hash64 };
const queries = new ShardQueries(data_.shard, depth, trees, { readChunk, getMany: (keys) => db._getManySync(keys, { column }), digest: hash64 });

/** Adopt a newly published ring (see ShardTrees.checkRing); schedules the rebuild scan it needs. */
function checkRing(): void {
  if (trees.checkRing()) scheduleScan();
}

/** Keep the trees equal to "digest of every stored record": called after each committed change. */
function treeUpdate(key: Buffer, oldDigest: Hash64 | null, newDigest: Hash64 | null): void {
  trees.update(key, oldDigest, newDigest);
}

function scheduleScan(): void {
  if (scanScheduled || closing) return;
  scanScheduled = true;
  setImmediate(scanStep);
}

function scanStep(): void {
  scanScheduled = false;
  if (closing) return;
  checkRing();
  if (trees.scanStep(treeScanPorts, SCAN_CHUNK)) scheduleScan();
}

// ---------------------------------------------------------------------------------------------
// Mailbox

port.on('message', (msg: RouterToShard) => {
  if (msg.t === 'ops') {
    inbox.set(msg.seq, msg.wire);
    scheduleDrain();
  } else if (msg.t === 'close') {
    closing = true;
    if (syncTimer) clearInterval(syncTimer);
    clearInterval(ringTimer);
    clearInterval(sweepTimer);
    // Requests the router published before it asked us to close are still answered.
    if (scheduled || requestRing.hasData || inbox.size > 0 || queue.length > 0) scheduleDrain();
    else finishClose();
  }
});

function finishClose(): void {
  send({ t: 'closed' });
  data_.control.close();
  port.close();
}

function scheduleDrain(): void {
  if (!scheduled) {
    scheduled = true;
    setImmediate(drain);
  }
}

/** Woken by the router's push (or its nudge at close). */
function onWake(): void {
  parked = false;
  if (!scheduled) drain();
}

/** Copy every published request message out of the ring into the inbox. */
function pullRing(): void {
  requestRing.drain((m) => inbox.set(readSeq(m), m.slice(4)));
}

/** Nothing to do: spin briefly for the next message, else park until the router publishes one. */
function idle(): void {
  if (scheduled || parked || closing) return;
  if (spin.spin(requestRing)) return scheduleDrain();
  parked = true;
  if (!parkUntilData(requestRing, onWake)) {
    parked = false;
    scheduleDrain();
  }
}

/** Reply bytes go back by the reply ring, cut at reply boundaries; what does not fit goes by message. */
function sendReplies(replies: ShardResult[]): void {
  if (replyWire.count > 0) {
    for (const piece of splitReplies(replyWire.peek(), replyRing.maxMessageBytes)) {
      // A reply larger than the ring's message bound (a key's siblings of several MiB) goes by message.
      if (piece.length <= replyRing.maxMessageBytes && replyRing.push(piece)) continue;
      const copy = piece.slice();
      port.postMessage({ t: 'replies', wire: copy } satisfies ShardToRouter, [copy.buffer]);
    }
    replyWire.reset();
  }
  answerControl(replies);
}

// ---------------------------------------------------------------------------------------------
// Control plane (comlink, ShardControlApi): each call's op joins the one mailbox queue that the
// data ring drains into, and its promise is resolved with the op's answer after the group commit.

const controlWaiters = new Map<number, (r: ShardResult) => void>();
let nextControlId = 1;

function enqueueControl(op: ShardOp, resolve: (r: ShardResult) => void): void {
  controlWaiters.set(op.id, resolve);
  queue.push(op);
  scheduleDrain();
}

function answerControl(replies: ShardResult[]): void {
  for (const r of replies) {
    const w = controlWaiters.get(r.id);
    if (!w) continue;
    controlWaiters.delete(r.id);
    w(r);
  }
}

const controlApi: ShardControlApi = {
  submit: (op: DataOpInput) => new Promise<ShardResult>((resolve) => enqueueControl({ ...op, id: nextControlId++ } as DataOp, resolve)),
  stats: () =>
    new Promise<ShardStats>((resolve, reject) =>
      enqueueControl({ id: nextControlId++, op: 'stats' }, (r) => (r.ok && 'stats' in r ? resolve(r.stats) : reject(new Error(`shard ${data_.shard}: bad stats answer`)))),
    ),
};
expose(controlApi, portEndpoint(data_.control));

function drain(): void {
  scheduled = false;
  pullRing();
  const ops = queue;
  queue = [];
  const data: WireRequest[] = [];
  for (let w = inbox.get(nextSeq); w !== undefined; w = inbox.get(nextSeq)) {
    inbox.delete(nextSeq);
    nextSeq = (nextSeq + 1) >>> 0;
    for (const r of decodeRequests(w)) data.push(r);
  }
  if (ops.length > 0 || data.length > 0) sendReplies(processOps(data, ops));
  if (closing) finishClose();
  else idle();
}


/**
 * One group commit: every read and write (`data`, from the wire) and control op of this turn. One
 * multi-get serves all of them; merges run in order; one WriteBatch persists every changed key;
 * wire replies go into `replyWire`, control replies are returned.
 */
function processOps(data: WireRequest[], ops: ShardOp[]): ShardResult[] {
  batches++;
  checkRing();
  const replies: Array<ShardResult | undefined> = new Array<ShardResult | undefined>(ops.length);
  // Encode every key once; one multi-get serves every read and every read-modify-write in the batch.
  const keys: Buffer[] = [];
  const slot = new Map<string, number>(); // storage key (latin1) -> index in keys
  const slotOf = (k: Buffer): number => {
    const s = k.toString('latin1');
    let idx = slot.get(s);
    if (idx === undefined) {
      idx = keys.length;
      keys.push(k);
      slot.set(s, idx);
    }
    return idx;
  };
  const dataSlot = new Int32Array(data.length).fill(-1);
  for (let i = 0; i < data.length; i++) {
    const d = data[i]!;
    if (ownsToken(d.hi, d.lo)) dataSlot[i] = slotOf(encodeStorageKey(d.hi, d.lo, d.table, d.key, d.kind === WIRE_CRDT_APPLY ? d.suffix : undefined));
  }
  const entrySlots: Array<Int32Array | undefined> = new Array<Int32Array | undefined>(ops.length);
  /** A cell-write's storage keys and records (the op's entries, validated), by op index. */
  const cellWrites: Array<Array<{ key: Buffer; record: Buffer }> | undefined> = new Array<Array<{ key: Buffer; record: Buffer }> | undefined>(ops.length);
  /** A repair-write's entries decoded, by op index: versions, or null for a cell record (checked, merged as bytes). */
  const entryVersions: Array<Array<Version[] | null> | undefined> = new Array<Array<Version[] | null> | undefined>(ops.length);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.op === 'cell-write') {
      const entries = cellWriteEntries(op);
      if (!Array.isArray(entries)) {
        replies[i] = { id: op.id, ok: false, ...entries };
        continue;
      }
      cellWrites[i] = entries;
      entrySlots[i] = Int32Array.from(entries, (e) => slotOf(e.key));
      continue;
    }
    if (op.op === 'repair-write') {
      if (!Array.isArray(op.entries) || op.entries.length > REPAIR_LIMITS.maxKeysPerOp) {
        replies[i] = { id: op.id, ok: false, code: 'bad_request', message: `repair-write takes at most ${REPAIR_LIMITS.maxKeysPerOp} entries` };
        continue;
      }
      // Entries that carry stored bytes (repair, range streaming) are decoded (or, cell records and
      // CRDT states, checked) here, all before any is applied: one that does not decode as its
      // mode says fails the op and nothing of it is written. (null: merged as bytes.)
      const decoded: Array<Version[] | null> = [];
      try {
        for (const entry of op.entries) {
          if (!('record' in entry)) decoded.push(entry.versions);
          else if (entry.mode === 'cell' || entry.mode === 'crdt') {
            validateRecord(entry.mode, entry.record);
            decoded.push(null);
          } else decoded.push(decodeRecord(entry.record));
        }
      } catch (e) {
        replies[i] = { id: op.id, ok: false, code: 'bad_request', message: `repair-write: an entry does not decode: ${(e as Error).message}` };
        continue;
      }
      entryVersions[i] = decoded;
      const slots = new Int32Array(op.entries.length).fill(-1);
      for (let e = 0; e < op.entries.length; e++) {
        const k = asBuffer(op.entries[e]!.key);
        // A repaired key this shard does not own under the current ring is refused like any write.
        if (k.length >= MIN_STORAGE_KEY_BYTES && ownsToken(k.readUInt32BE(0), k.readUInt32BE(4))) slots[e] = slotOf(k);
      }
      entrySlots[i] = slots;
    }
  }
  const raw = keys.length > 0 ? db._getManySync(keys, { column }) : [];
  // Stored state per key, decoded lazily: `stored[i]` is the record bytes that will be stored (or
  // are: raw[i]) and `current[i]` its versions once something needed them.
  const stored: Array<Buffer | undefined> = raw.slice();
  const current: Array<Version[] | null | undefined> = new Array<Version[] | null | undefined>(keys.length);
  const dirty = new Uint8Array(keys.length);
  const versionsAt = (idx: number): Version[] => {
    let v = current[idx];
    if (v === undefined) {
      const b = stored[idx];
      v = b === undefined ? null : decodeRecord(b);
      current[idx] = v;
    }
    return v ?? [];
  };
  /** Merge one record into key `idx` with its table's mode; true when what is stored changed. */
  const mergeRecord = (idx: number, mode: TableMode, record: Uint8Array): boolean => {
    if (mode === 'cell' || mode === 'crdt') return mergeBytes(idx, mode, record, stored, current, dirty);
    const before = versionsAt(idx);
    const merged = mergeVersions(mode, before, decodeRecord(record), data_.maxSiblings);
    if (versionsEqual(merged, before)) return false;
    current[idx] = merged;
    stored[idx] = undefined;
    dirty[idx] = 1;
    return true;
  };

  for (let i = 0; i < data.length; i++) applyWire(data[i]!, dataSlot[i]!, stored, current, versionsAt, dirty);
  for (let i = 0; i < ops.length; i++) {
    if (replies[i]) continue;
    const op = ops[i]!;
    if (op.op === 'repair-write') {
      const slots = entrySlots[i]!;
      let changed = 0;
      let notOwner = 0;
      let refused = 0;
      for (let e = 0; e < op.entries.length; e++) {
        const idx = slots[e]!;
        if (idx < 0) {
          notOwner++;
          continue;
        }
        writes++;
        const entry = op.entries[e]!;
        const versions = entryVersions[i]![e]!;
        if (versions === null) {
          try {
            if (mergeRecord(idx, entry.mode, (entry as { record: Uint8Array }).record)) changed++;
          } catch {
            refused++; // a CRDT state of another type than the stored one: neither overwritten nor merged
          }
          continue;
        }
        const before = versionsAt(idx);
        const merged = mergeVersions(entry.mode as ConflictMode, before, versions, data_.maxSiblings);
        if (!versionsEqual(merged, before)) {
          current[idx] = merged;
          stored[idx] = undefined;
          dirty[idx] = 1;
          changed++;
        }
      }
      replies[i] = { id: op.id, ok: true, repair: { kind: 'repair-write', changed, notOwner, ...(refused > 0 ? { refused } : {}) } };
    } else if (op.op === 'cell-write') {
      const slots = entrySlots[i]!;
      const entries = cellWrites[i]!;
      let changed = 0;
      for (let e = 0; e < entries.length; e++) {
        writes++;
        if (mergeRecord(slots[e]!, 'cell', entries[e]!.record)) changed++;
      }
      replies[i] = { id: op.id, ok: true, repair: { kind: 'cell-write', changed } };
    }
  }

  if (dirty.some((d) => d === 1)) {
    const fresh: Array<Hash64 | null> = new Array<Hash64 | null>(keys.length).fill(null);
    for (let i = 0; i < keys.length; i++) {
      if (dirty[i] !== 1) continue;
      const cur = current[i];
      const enc = stored[i] ?? encodeRecord(cur!);
      writeBatch.put(keys[i]!, enc);
      fresh[i] = hash64(enc);
      if (raw[i] === undefined) keyCount++;
      noteDead(keys[i]!, cur ? isDead(cur) : isSweepCandidate(enc));
    }
    writeBatch.commit(data_.durability === 'sync');
    // Only after the batch is durable in the WAL: the trees describe what is stored. The stored
    // bytes are canonical (encodeRecord), so hashing them equals recordDigest of the versions.
    for (let i = 0; i < keys.length; i++) {
      if (dirty[i] !== 1) continue;
      const before = raw[i];
      treeUpdate(keys[i]!, before === undefined ? null : hash64(before), fresh[i]!);
    }
  }

  // Control ops answer after the batch, so they see this turn's writes.
  for (let i = 0; i < ops.length; i++) {
    if (replies[i]) continue;
    const op = ops[i]!;
    if (op.op === 'repair-write' || op.op === 'cell-write') continue;
    if (op.op === 'stats') {
      replies[i] = {
        id: op.id,
        ok: true,
        stats: {
          shard: data_.shard,
          keys: keyCount,
          writes,
          reads,
          batches,
          walSyncs: fsyncedCommitCount(),
          queue: queue.length,
          merkleRanges: trees.all.length,
          merkleReady: trees.all.filter((t) => t.done).length,
          merkleRebuilds: trees.rebuilds,
          tombstonesPurged: purgedTotal,
        },
      };
      continue;
    }
    if (op.op === 'cleanup') {
      requestCleanup(op); // answered when the run finishes
      continue;
    }
    if (op.op === 'sweep') {
      requestSweep(op.id); // answered when the sweep finishes
      continue;
    }
    try {
      replies[i] = { id: op.id, ok: true, repair: control(op) };
    } catch (e) {
      if (!(e instanceof OpError)) throw e;
      replies[i] = { id: op.id, ok: false, code: e.code, message: e.message };
    }
  }
  return replies.filter((r): r is ShardResult => r !== undefined);
}

/**
 * One wire read or write against this turn's state. Writes merge into what is stored; a write of a
 * single version to an absent key stores the router's record bytes as they came (the merge of one
 * version into nothing is that version, and encodeRecord is canonical, so the bytes are identical).
 */
function applyWire(
  d: WireRequest,
  idx: number,
  stored: Array<Buffer | undefined>,
  current: Array<Version[] | null | undefined>,
  versionsAt: (idx: number) => Version[],
  dirty: Uint8Array,
): void {
  if (idx < 0) {
    replyWire.error(d.id, 'not_owner', `shard ${data_.shard} does not own this key's token on this node`);
    return;
  }
  if (d.kind === WIRE_READ) {
    reads++;
    const b = stored[idx];
    // Bytes of a key written earlier this turn, or as read from RocksDB: canonical either way.
    replyWire.ok(d.id, b ?? (current[idx] ? encodeRecord(current[idx]!) : null), false);
    return;
  }
  writes++;
  if (d.kind === WIRE_CRDT_APPLY || d.mode === 'crdt') return crdtWire(d, idx, stored, current, dirty);
  if (current[idx] === undefined && stored[idx] === undefined && isSingleVersionRecord(d.record)) {
    stored[idx] = Buffer.from(d.record); // a copy: the view's message buffer is not ours to keep
    current[idx] = undefined;
    dirty[idx] = 1;
    replyWire.ok(d.id, d.returnMerged ? d.record : null, true);
    return;
  }
  let incoming: Version[];
  try {
    incoming = decodeRecord(d.record);
  } catch (e) {
    replyWire.error(d.id, 'bad_request', (e as Error).message);
    return;
  }
  const before = versionsAt(idx);
  const merged = mergeVersions(d.mode, before, incoming, data_.maxSiblings);
  const changed = !versionsEqual(merged, before);
  if (changed) {
    current[idx] = merged;
    stored[idx] = undefined;
    dirty[idx] = 1;
  }
  replyWire.ok(d.id, d.returnMerged ? (stored[idx] ?? encodeRecord(current[idx] ?? merged)) : null, changed);
}

/**
 * The bytes a key holds, as this turn left them (a key whose versions were decoded this turn holds a
 * version record: a cell or CRDT merge then refuses it as of the wrong family).
 */
function storedBytesAt(idx: number, stored: Array<Buffer | undefined>, current: Array<Version[] | null | undefined>): Uint8Array | undefined {
  const cur = current[idx];
  return stored[idx] ?? (cur ? encodeRecord(cur) : undefined);
}

/**
 * Merge a cell record or a CRDT state into what key `idx` stores, as bytes (storage/records.ts);
 * true when that changed it. Throws on bytes of another family or CRDT type than the stored ones.
 */
function mergeBytes(idx: number, mode: 'cell' | 'crdt', incoming: Uint8Array, stored: Array<Buffer | undefined>, current: Array<Version[] | null | undefined>, dirty: Uint8Array): boolean {
  const cur = storedBytesAt(idx, stored, current);
  const merged = mergeStoredRecords(mode, cur, incoming, data_.maxSiblings);
  if (merged === cur) return false;
  // A copy: the incoming bytes may be a view into a message buffer that is not ours to keep.
  stored[idx] = Buffer.from(merged);
  current[idx] = undefined;
  dirty[idx] = 1;
  return true;
}

/**
 * A CRDT operation applied at this (the coordinating) replica, or a replica write of a CRDT state
 * (src/storage/crdt-shard.ts). The apply answers with the new state, which the router replicates;
 * an operation that cannot apply answers its error (with details: precondition, limit) and
 * changes nothing.
 */
function crdtWire(
  d: Exclude<WireRequest, { kind: typeof WIRE_READ }>,
  idx: number,
  stored: Array<Buffer | undefined>,
  current: Array<Version[] | null | undefined>,
  dirty: Uint8Array,
): void {
  try {
    if (d.kind === WIRE_CRDT_APPLY) {
      const next = Buffer.from(applyCrdtRequest(d.request, storedBytesAt(idx, stored, current), crdtCtx));
      stored[idx] = next;
      current[idx] = undefined;
      dirty[idx] = 1;
      replyWire.ok(d.id, next, true);
      return;
    }
    const changed = mergeBytes(idx, 'crdt', d.record, stored, current, dirty);
    replyWire.ok(d.id, d.returnMerged ? (stored[idx] ?? null) : null, changed);
  } catch (e) {
    if (e instanceof RingkvError) replyWire.error(d.id, e.code, e.message, e.details);
    else replyWire.error(d.id, 'bad_request', (e as Error).message);
  }
}


type ControlOp = Exclude<DataOp, { op: 'repair-write' } | { op: 'cell-write' } | { op: 'sweep' } | { op: 'cleanup' }>;

/** A cell-write's keys, or why it is refused (wrong shard for the token, malformed input). */
function cellWriteEntries(op: CellWriteOp): Array<{ key: Buffer; record: Buffer }> | { code: string; message: string } {
  if (Number.isInteger(op.hi) && Number.isInteger(op.lo) && !ownsToken(op.hi >>> 0, op.lo >>> 0)) {
    return { code: 'not_owner', message: `shard ${data_.shard} does not own this partition's token on this node` };
  }
  try {
    return cellWriteKeys(op);
  } catch (e) {
    if (e instanceof WideOpError) return { code: 'bad_request', message: e.message };
    throw e;
  }
}

function control(op: ControlOp): RepairResult {
  switch (op.op) {
    case 'merkle-roots':
      return {
        kind: 'merkle-roots',
        depth,
        ringVersion: trees.ringVersion,
        ranges: trees.all.map((t) => ({ ...t.ref, ...t.tree.root(), ready: t.done })),
      };
    case 'merkle-tree': {
      const rt = queries.treeFor(op.range);
      return { kind: 'merkle-tree', ready: rt.done, leaves: rt.tree.serialize() };
    }
    case 'merkle-nodes':
      return queries.merkleNodes(op);
    case 'leaf-keys':
      return queries.leafKeys(op);
    case 'fetch-keys':
      return queries.fetchKeys(op);
    case 'scan':
      return queries.scan(op);
    case 'stream-page':
      return queries.streamPage(op);
    case 'slice': {
      if (!ownsToken(op.hi >>> 0, op.lo >>> 0)) throw new OpError('not_owner', `shard ${data_.shard} does not own this partition's token on this node`);
      try {
        return { kind: 'slice', page: slicePage(db, column, op) };
      } catch (e) {
        if (e instanceof WideOpError) throw new OpError('bad_request', e.message);
        if (e instanceof RingkvError) throw new OpError(e.code, e.message);
        throw e;
      }
    }
    case 'table-grace':
      if (!Array.isArray(op.graces)) throw new OpError('bad_request', 'table-grace needs graces');
      tableGraces = new Map(op.graces.filter(([id, s]) => typeof id === 'string' && Number.isSafeInteger(s) && s >= 0));
      return { kind: 'table-grace' };
    default: {
      const never: never = op;
      throw new OpError('bad_request', `unknown shard op ${JSON.stringify((never as { op: unknown }).op)}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Tombstone sweep (src/storage/tombstone-sweep.ts): this actor's scheduling and ports.

let sweepRun: SweepRun | null = null;
/** On-demand requests that arrived during a run: they get the next full run (it may have passed their keys). */
let sweepNext: number[] | null = null;

function requestSweep(id?: number): void {
  if (sweepRun === null) {
    sweepRun = new SweepRun(id === undefined ? [] : [id], deadIndex, SCAN_CHUNK);
    setImmediate(sweepStep);
    return;
  }
  if (id === undefined) return; // a periodic tick during a run: that run is enough
  (sweepNext ??= []).push(id);
}

/** Keep the dead-record index current for a key whose stored record changed (or was read whole). */
function noteDead(key: Buffer, dead: boolean): void {
  deadIndex.note(key, dead);
}

/**
 * Delete these (key, stored record) rows in one batch (the sweep's purges, a cleanup's ranges):
 * out of the Merkle trees, the dead-record index and the key count once the batch is committed.
 */
function deleteStored(rows: ReadonlyArray<readonly [Buffer, Buffer]>): void {
  for (const [k] of rows) writeBatch.del(k);
  writeBatch.commit(data_.durability === 'sync');
  for (const [k, v] of rows) {
    treeUpdate(k, hash64(v), null);
    deadIndex.forget(k);
  }
  keyCount -= rows.length;
}

const sweepPorts: SweepPorts = {
  readChunk: (after, limit) => readChunk({}, after, limit),
  getMany: (keys) => db._getManySync(keys, { column }),
  isCandidate: isSweepCandidate,
  isPurgeable: (key, record, nowMs) => isPurgeableRecord(record, nowMs, graceSecondsOf(key)),
  purge(rows) {
    deleteStored(rows);
    purgedTotal += rows.length;
  },
  nowMs: () => Date.now(),
};

function sweepStep(): void {
  const run = sweepRun;
  invariant(run !== null, 'sweep step without a sweep run');
  if (closing) return;
  checkRing();
  if (run.step(sweepPorts)) {
    setImmediate(sweepStep);
    return;
  }
  const sweep = run.stats();
  if (run.waiters.length > 0) answerControl(run.waiters.map((id) => ({ id, ok: true as const, repair: { kind: 'sweep' as const, sweep } })));
  sweepRun = null;
  if (sweepNext !== null) {
    const waiters = sweepNext;
    sweepNext = null;
    sweepRun = new SweepRun(waiters, deadIndex, SCAN_CHUNK);
    setImmediate(sweepStep);
  }
}

// ---------------------------------------------------------------------------------------------
// Cleanup (src/streaming/shard-cleanup.ts): delete records of ranges this node gave up.

let cleanupRun: CleanupRun | null = null;

function requestCleanup(op: CleanupOp): void {
  if (cleanupRun !== null) {
    // One run at a time; a second request joins it (it will examine every key that is left).
    cleanupRun.waiters.push(op.id);
    return;
  }
  if (!Array.isArray(op.tables) || !Number.isInteger(op.defaultN) || op.defaultN < 1) {
    answerControl([{ id: op.id, ok: false, code: 'bad_request', message: 'cleanup needs tables and defaultN' }]);
    return;
  }
  cleanupRun = new CleanupRun(op);
  setImmediate(cleanupStep);
}

const cleanupPorts = {
  readChunk: (after: Buffer | null, limit: number): Buffer[] => readChunk({}, after, limit),
  rank: (hi: number, lo: number): number => ring.replicaRank(hi, lo),
  remove: deleteStored,
};

function cleanupStep(): void {
  const run = cleanupRun;
  invariant(run !== null, 'cleanup step without a cleanup run');
  if (closing) return;
  checkRing();
  if (run.step(cleanupPorts)) {
    setImmediate(cleanupStep);
    return;
  }
  cleanupRun = null;
  const cleanup = run.stats();
  answerControl(run.waiters.map((id) => ({ id, ok: true as const, repair: { kind: 'cleanup' as const, cleanup } })));
}

// ---------------------------------------------------------------------------------------------
// Timers

// Periodic durability: the WAL is written before every ack; one fsync'ed write per interval makes
// everything before it durable (a sync write syncs the whole shared WAL). Only shard 0 does this.
let syncTimer: NodeJS.Timeout | undefined;
if (data_.durability === 'periodic' && data_.shard === 0) {
  const syncKey = Buffer.from('__wal_sync');
  syncTimer = setInterval(() => {
    metaBatch.put(syncKey, Buffer.from(String(Date.now())));
    metaBatch.commit(true);
  }, data_.syncIntervalMs);
  syncTimer.unref();
}

const ringTimer = setInterval(checkRing, RING_CHECK_MS);
ringTimer.unref();
const sweepTimer = setInterval(() => requestSweep(), data_.tombstoneSweepIntervalMs);
sweepTimer.unref();

checkRing();
send({ t: 'ready', shard: data_.shard, keys: keyCount });
idle();
// The first sweep is the full scan that fills the dead-record index (chunked, in the background,
// like the tree rebuild): after it, periodic and on-demand sweeps visit only dead records.
requestSweep();
