/**
 * Shard worker: the thread of one shard actor, the sole owner of one RocksDB column family.
 * Everything that reads-modifies-writes a key (version merge, sibling pruning, tombstones, Merkle
 * update, tombstone purge) happens here, in mailbox order, so no locks.
 *
 * This file is the worker entry: it opens the column family, wires the parts over (db, ring) and
 * runs their scheduling. The group commit itself (one turn's ops in one multi-get and one
 * WriteBatch, the wire op application, the control switch) is `ShardActor`
 * (src/storage/shard-actor.ts); the Merkle trees and their rebuild scan are `ShardTrees`
 * (shard-trees.ts), the read-only repair queries `ShardQueries` (shard-queries.ts), the sweep
 * `SweepRun` (tombstone-sweep.ts), the cleanup `CleanupRun` (streaming/shard-cleanup.ts).
 *
 * Group commit: every message that arrives during one turn of the event loop is queued; a single
 * `setImmediate` drains the queue into `ShardActor.processOps`, and replies go back in one message
 * after the batch is written (fsynced first when durability is `sync`).
 *
 * Anti-entropy: one incremental Merkle tree per ring range this node stores (RingTable.localRanges),
 * over this shard's keys of it; the node's tree of a range is the XOR of its shards' trees.
 * A write that changes a record patches its tree in O(1) (old digest out, new digest in: the
 * actor's digest-change hook). Trees are rebuilt from a scan at startup and for ranges that are
 * new after a ring change, in chunks of SCAN_CHUNK keys per `setImmediate` turn so the mailbox
 * keeps draining. Each chunk is read synchronously through a fresh iterator, so a chunk sees every
 * write committed before it and no write can interleave with it; a write to a key the scan has
 * already passed patches the new tree, a write to a key not yet reached is left to the scan (which
 * will read the committed value). A tree being rebuilt answers repair requests with `ready: false`:
 * its hashes are incomplete.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { expose } from 'comlink';
import { portEndpoint } from '../src/util/comlink-port.js';
import { newRocks, SyncWriteBatch, type ColumnHandle } from '../src/storage/rocks.js';
import { shardColumn, META_CF } from '../src/storage/db.js';
import { CleanupRun } from '../src/streaming/shard-cleanup.js';
import { SweepRun, type SweepPorts } from '../src/storage/tombstone-sweep.js';
import { ShardTrees, type TreeScanPorts } from '../src/storage/shard-trees.js';
import { ShardActor } from '../src/storage/shard-actor.js';
import type { CleanupOp, DataOp, RouterToShard, ShardOp, ShardResult, ShardToRouter, ShardWorkerData, ShardControlApi, DataOpInput, ShardStats } from '../src/storage/shard-protocol.js';
import { decodeRequests, splitReplies, type WireRequest } from '../src/storage/shard-wire.js';
import { AdaptiveSpin, parkUntilData, readSeq } from '../src/storage/shard-channel.js';
import { SpscRing } from '../src/storage/spsc-ring.js';
import { RingTable } from '../src/ring/table.js';
import { initHasher } from '../src/ring/hash.js';
import { initMerkle } from '../src/merkle/index.js';
import { invariant } from '../src/util/errors.js';
import { hash64, initVersions } from '../src/versions/index.js';
import { isPurgeableRecord, isSweepCandidate } from '../src/storage/records.js';

const data_ = workerData as ShardWorkerData;
const port = parentPort!;

/** Keys hashed per turn by a tree rebuild or a tombstone sweep: ~ms of work, then the mailbox runs. */
const SCAN_CHUNK = 2000;
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
const metaBatch = new SyncWriteBatch(db, metaColumn);
const trees = new ShardTrees(data_.merkleDepth, ring);
/** Control ops waiting for the next drain (the data ops wait in the inbox). */
let queue: ShardOp[] = [];
const actor = new ShardActor(
  db,
  column,
  ring,
  trees,
  { ...data_, crdt: { actor: data_.crdtActor, limits: data_.crdtLimits } },
  {
    checkRing,
    digestChanged: (key, before, after) => trees.update(key, before, after),
    requestSweep,
    requestCleanup,
    queuedOps: () => queue.length,
  },
);
const keyCount = await actor.countKeys();

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
const replyWire = actor.replyWire;
let scheduled = false;
let closing = false;

// ---------------------------------------------------------------------------------------------
// Merkle trees (src/storage/shard-trees.ts): this actor's scheduling of rebuild scans

let scanScheduled = false;
const treeScanPorts: TreeScanPorts = { readChunk: (bounds, after, limit) => actor.readChunk(bounds, after, limit), digest: hash64 };

/** Adopt a newly published ring (see ShardTrees.checkRing); schedules the rebuild scan it needs. */
function checkRing(): void {
  if (trees.checkRing()) scheduleScan();
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
  if (ops.length > 0 || data.length > 0) sendReplies(actor.processOps(data, ops));
  if (closing) finishClose();
  else idle();
}

// ---------------------------------------------------------------------------------------------
// Tombstone sweep (src/storage/tombstone-sweep.ts): this actor's scheduling and ports.

let sweepRun: SweepRun | null = null;
/** On-demand requests that arrived during a run: they get the next full run (it may have passed their keys). */
let sweepNext: number[] | null = null;

function requestSweep(id?: number): void {
  if (sweepRun === null) {
    sweepRun = new SweepRun(id === undefined ? [] : [id], actor.deadIndex, SCAN_CHUNK);
    setImmediate(sweepStep);
    return;
  }
  if (id === undefined) return; // a periodic tick during a run: that run is enough
  (sweepNext ??= []).push(id);
}

const sweepPorts: SweepPorts = {
  readChunk: (after, limit) => actor.readChunk({}, after, limit),
  getMany: (keys) => actor.getMany(keys),
  isCandidate: isSweepCandidate,
  isPurgeable: (key, record, nowMs) => isPurgeableRecord(record, nowMs, actor.graceSecondsOf(key)),
  purge: (rows) => actor.purge(rows),
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
    sweepRun = new SweepRun(waiters, actor.deadIndex, SCAN_CHUNK);
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
  readChunk: (after: Buffer | null, limit: number): Buffer[] => actor.readChunk({}, after, limit),
  rank: (hi: number, lo: number): number => ring.replicaRank(hi, lo),
  remove: (rows: ReadonlyArray<readonly [Buffer, Buffer]>): void => actor.deleteStored(rows),
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
