/**
 * The shard actor's own CPU per write, in process (issue 12, fourth pass): `ShardActor.processOps`
 * over a real RocksDB in a temp dir, fed the wire batches a router sends under batched ingest (fresh
 * keys, one single-version record each, 100-byte values), on the main thread, with the Merkle trees
 * of 16 ring ranges kept by the digest-change hook as the worker keeps them. No thread hop, socket
 * or generator: what is left is the shard's work per write (decode, ownership, key encoding,
 * multi-get, merge, WriteBatch, Merkle patch, dead-record note, reply), so a change to it resolves
 * on a shared machine where the node's per-thread CPU moves ±10% between runs.
 *
 *   node dist/bench/micro/shard-actor-path.js [--writes 240000] [--batch 300] [--rounds 3]
 *
 * To compare two builds, run this file of each build alternately (each prints main-thread CPU µs per
 * write; ~300 writes per group commit is what a node's shards saw under `ringkv bench --workload
 * ingest --batch 100 --concurrency 16`).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_CRDT_LIMITS } from '../../src/crdt/limits.js';
import { initMerkle } from '../../src/merkle/index.js';
import { initHasher, tokenInto } from '../../src/ring/hash.js';
import { openDatabase } from '../../src/storage/db.js';
import { ShardActor, type ShardActorPorts } from '../../src/storage/shard-actor.js';
import type { RangeRef } from '../../src/storage/shard-protocol.js';
import { ShardTrees } from '../../src/storage/shard-trees.js';
import { decodeRequests, WireRequestWriter, type WireRequest } from '../../src/storage/shard-wire.js';
import { shardOfToken } from '../../src/storage/placement.js';
import { encodeRecord, hash64, initVersions, newVersion } from '../../src/versions/index.js';
import { keyName } from '../../src/bench/workloads.js';
import { mainThreadCpuMs } from './thread-cpu.js';

const SHARDS = 2;
const DEPTH = 10;
const TABLE = Buffer.alloc(16, 7);

/** 16 ranges covering the ring, in position order (a one-node ring of 16 vnodes). */
function ringRanges(): RangeRef[] {
  const ends = Array.from({ length: 16 }, (_, i) => ({ hi: (i * 0x10000000 + 0x0123456) >>> 0, lo: (i * 977) >>> 0 }));
  return ends.map((e, i) => {
    const s = ends[(i + 15) % 16]!;
    return { pos: i, startHi: s.hi, startLo: s.lo, endHi: e.hi, endLo: e.lo };
  });
}

/** Wire batches of `writes` fresh-key writes that shard 0 of 2 owns, `batch` per message. */
function wireBatches(writes: number, batch: number, round: number): Uint8Array[] {
  const tok = new Uint32Array(2);
  const value = Buffer.alloc(100, 1);
  const out: Uint8Array[] = [];
  let w = new WireRequestWriter();
  let made = 0;
  for (let i = round * 100_000_000; made < writes; i++) {
    const key = Buffer.from(keyName(i), 'latin1');
    tokenInto(key, tok);
    if (shardOfToken(tok[0]!, SHARDS) !== 0) continue;
    const counter = 1000 + made;
    const record = encodeRecord([newVersion({ node: 'node-1a2b3c4d', counter, context: [], ts: 1_780_000_000_000_000 + counter, tombstone: false, value, maxClockEntries: 64 })]);
    w.write(made, TABLE, tok[0]!, tok[1]!, key, 'vclock', record, false);
    made++;
    if (w.count === batch) {
      out.push(w.take());
      w = new WireRequestWriter();
    }
  }
  if (w.count > 0) out.push(w.take());
  return out;
}

async function runOnce(writes: number, batch: number, round: number): Promise<{ cpuUsPerWrite: number; wallUsPerWrite: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ringkv-actor-path-'));
  const odb = await openDatabase(dir, SHARDS);
  try {
    const ranges = ringRanges();
    const ring = { version: 1, localRanges: () => ranges, isReplica: () => true };
    const trees = new ShardTrees(DEPTH, ring);
    const ports: ShardActorPorts = {
      checkRing: () => void trees.checkRing(),
      digestChanged: (key, before, after) => trees.update(key, before, after),
      requestSweep: () => undefined,
      requestCleanup: () => undefined,
      queuedOps: () => 0,
    };
    const actor = new ShardActor(odb.db, odb.column('shard-0'), ring, trees, { shard: 0, shards: SHARDS, durability: 'periodic', maxSiblings: 8, merkleDepth: DEPTH, gcGraceSeconds: 3600, crdt: { actor: 'n@0', limits: DEFAULT_CRDT_LIMITS } }, ports);
    trees.checkRing();
    while (trees.scanStep({ readChunk: (b, a, l) => actor.readChunk(b, a, l), digest: hash64 }, 1000));
    const batches = wireBatches(writes, batch, round);
    const cpu0 = mainThreadCpuMs();
    const t0 = performance.now();
    for (const wire of batches) {
      const data: WireRequest[] = [];
      for (const r of decodeRequests(wire)) data.push(r);
      actor.processOps(data, []);
      actor.replyWire.reset();
    }
    const wallMs = performance.now() - t0;
    const cpuMs = mainThreadCpuMs() - cpu0;
    if (actor.keyCount !== writes) throw new Error(`expected ${writes} keys stored, have ${actor.keyCount}`);
    return { cpuUsPerWrite: (cpuMs * 1000) / writes, wallUsPerWrite: (wallMs * 1000) / writes };
  } finally {
    await odb.db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const arg = (name: string, dflt: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    const v = i >= 0 ? Number(process.argv[i + 1]) : dflt;
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`);
    return v;
  };
  const writes = arg('writes', 240_000);
  const batch = arg('batch', 300);
  const rounds = arg('rounds', 3);
  await initHasher();
  await initVersions();
  await initMerkle();
  for (let r = 0; r < rounds; r++) {
    const m = await runOnce(writes, batch, r);
    console.log(`round ${r + 1}: ${writes} writes in batches of ${batch}: main-thread CPU ${m.cpuUsPerWrite.toFixed(2)} µs/write, wall ${m.wallUsPerWrite.toFixed(2)} µs/write`);
  }
}

await main();
