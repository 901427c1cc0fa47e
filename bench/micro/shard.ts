/**
 * 4. Router -> shard round trip over a real RocksDB, next to raw @nxtedition/rocksdb in the same run.
 *
 * Setup mirrors src/node/node.ts: openDatabase in a temp dir, a RingTable with a one-node layout
 * published, a ShardPool whose worker opens the same RocksDB instance through its handle. Every
 * ringkv op does what the router does before submitting (tokenInto + ring.lookup for the replicas;
 * the pool picks the token's placement shard) and the shard does its full work (ownership check, key encoding, multi-get, version merge,
 * record encode, WriteBatch). Durability is `periodic` (the default): WAL written before the ack,
 * fsynced once a second.
 *
 * The raw baseline runs on the main thread against another column family of the same instance,
 * with the same synchronous binding calls the shard uses (`_writeSync`, `_getManySync`), the same
 * storage keys (tokenInto + encodeStorageKey) and the same 100-byte values (stored raw, not wrapped
 * in a version record).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DEFAULT_CONFIG, type NodeConfig } from '../../src/config/config.js';
import { initHasher, tokenInto } from '../../src/ring/hash.js';
import { allocateTokens } from '../../src/ring/tokens.js';
import { buildRing, type RingLayout } from '../../src/ring/builder.js';
import { Liveness, MAX_REPLICAS, RingTable } from '../../src/ring/table.js';
import { openDatabase, type OpenedDatabase } from '../../src/storage/db.js';
import { SyncWriteBatch } from '../../src/storage/rocks.js';
import { encodeStorageKey } from '../../src/storage/keys.js';
import { tableIdOf } from '../../src/router/tables.js';
import { ShardPool, shardRead, shardWrite } from '../../src/storage/shards.js';
import { decodeReplies, decodeRequests, WireReplyWriter, WireRequestWriter, type WireReply } from '../../src/storage/shard-wire.js';
import { encodeRecord, initVersions } from '../../src/versions/record.js';
import { newVersion, type Version } from '../../src/versions/version.js';
import { makeValue, seededRandom } from './fixtures.js';
import { runSuite, sink, type RatioSpec, type Row, type SuiteOptions } from './harness.js';

/** One shard: the round trip and the shard's own work, without two workers sharing two cores. */
const SHARDS = 1;
const BATCH = 100;
const READ_KEYS = 10_000;
const TABLE_ID = Buffer.from(tableIdOf('bench'), 'hex');

function check(r: WireReply): void {
  if (!r.ok) throw new Error(`shard op failed: ${r.code}: ${r.message}`);
}

/**
 * A one-node ring published in a RingTable and a real ShardPool over RocksDB in a temp dir, as
 * src/node/node.ts sets them up (shared by this suite and router-path.ts).
 */
export async function startOneNodeShards(
  cfg: NodeConfig,
  shards: number,
  prefix: string,
): Promise<{ dir: string; odb: OpenedDatabase; ring: RingTable; layout: RingLayout; pool: ShardPool }> {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  const odb = await openDatabase(dir, shards);
  const ring = RingTable.create();
  const tokens = allocateTokens([], 16, seededRandom(1));
  const layout = buildRing([{ id: 'bench-node', tokens, status: 'normal' }], { maxReplicas: 3 });
  ring.publish(layout, 0, () => Liveness.Up);
  // The node's defaults (periodic durability, 1 s WAL fsync). Built as a variable, not passed as a
  // literal, so worker settings added to the protocol later only need their config default here.
  const workerData = {
    handle: odb.db.handle,
    ringBuffer: ring.buffer,
    durability: cfg.durability,
    syncIntervalMs: cfg.syncIntervalMs,
    maxSiblings: cfg.maxSiblings,
    merkleDepth: cfg.merkleDepth,
    gcGraceSeconds: cfg.gcGraceSeconds,
    tombstoneSweepIntervalMs: cfg.tombstoneSweepIntervalMs,
    crdtActor: 'bench-node@0',
    crdtLimits: cfg.crdt,
  };
  const { pool } = await ShardPool.start({ shards, maxQueue: cfg.limits.maxShardQueue, workerData });
  return { dir, odb, ring, layout, pool };
}

export async function shardSuite(opts: SuiteOptions): Promise<Row[]> {
  const cfg = DEFAULT_CONFIG;
  await initHasher();
  await initVersions();
  const { dir, odb, ring, pool } = await startOneNodeShards(cfg, SHARDS, 'ringkv-bench-');

  const value = makeValue(100);
  // Each write carries its own version and value bytes, as real requests do. (Sharing one object
  // would flatter the messaging: a structured clone serializes a repeated object only once.)
  let counter = Date.now() * 1000;
  const versionsOf = (): Version[] => {
    const c = ++counter;
    return [newVersion({ node: 'bench-node', counter: c, context: [], ts: c, tombstone: false, value: value.slice(), maxClockEntries: cfg.maxClockEntries })];
  };
  const tok = new Uint32Array(2);
  const outNodes = new Uint16Array(MAX_REPLICAS);
  const rawColumn = odb.column('default');
  const rawBatch = new SyncWriteBatch(odb.db, rawColumn);
  const db = odb.db;

  // The router's part: hash and look up the preference list (the pool picks the token's shard).
  const route = (key: Buffer): void => {
    tokenInto(key, tok);
    if (ring.lookup(tok[0]!, tok[1]!, outNodes) === 0) throw new Error('empty ring');
  };
  // As the router does: the new version goes to the shard as its record bytes.
  const write = (key: Buffer): Promise<WireReply> => {
    route(key);
    return shardWrite(pool, TABLE_ID, 'vclock', key, tok[0]!, tok[1]!, encodeRecord(versionsOf()));
  };
  const read = (key: Buffer): Promise<WireReply> => {
    route(key);
    return shardRead(pool, TABLE_ID, key, tok[0]!, tok[1]!);
  };
  const rawKey = (key: Buffer): Buffer => {
    tokenInto(key, tok);
    return encodeStorageKey(tok[0]!, tok[1]!, TABLE_ID, key);
  };

  // Every write goes to a fresh key (insert path: get misses, one put), for ringkv and raw alike.
  let wseq = 0;
  const nextWriteKey = (): Buffer => Buffer.from(`bench-w-${wseq++}`, 'latin1');
  const readKeys = Array.from({ length: READ_KEYS }, (_, i) => Buffer.from(`bench-r-${i}`, 'latin1'));
  let rseq = 0;
  const nextReadKey = (): Buffer => readKeys[rseq++ % READ_KEYS]!;

  try {
    // Preload the keys the read tasks use, through the shard and raw.
    for (let i = 0; i < READ_KEYS; i += 500) {
      const chunk = readKeys.slice(i, i + 500);
      (await Promise.all(chunk.map(write))).forEach(check);
      for (const k of chunk) rawBatch.put(rawKey(k), value);
      rawBatch.commit(false);
    }
    const probe = await read(readKeys[0]!);
    check(probe);
    if (!probe.ok || probe.record === null) throw new Error('preloaded key not readable');

    // What crossing the thread boundary costs by itself, for batch-of-100 messages: the wire
    // encoding the pool uses (encode on the sender, decode on the receiver), next to the structured
    // clone of op objects carrying Version[] that it replaced (postMessage serializes on the
    // sender and deserializes on the receiver).
    const objectOps = {
      t: 'ops',
      ops: readKeys.slice(0, BATCH).map((key, id) => ({ id, op: 'write' as const, table: TABLE_ID, mode: 'vclock' as const, key, hi: 1, lo: 2, versions: versionsOf() })),
    };
    const objectReplies = { t: 'replies', replies: readKeys.slice(0, BATCH).map((_, id) => ({ id, ok: true as const, versions: versionsOf() })) };
    const records = readKeys.slice(0, BATCH).map(() => encodeRecord(versionsOf()));
    const reqWriter = new WireRequestWriter();
    const replyWriter = new WireReplyWriter();

    return await runSuite(
      'shard',
      [
        {
          name: 'wire: 100-write ops msg',
          opsPerCall: BATCH,
          note: 'router -> shard: WireRequestWriter (records encoded beforehand, as the clone row has its objects), take, decodeRequests',
          fn: () => {
            for (let i = 0; i < BATCH; i++) reqWriter.write(i, TABLE_ID, 1, 2, readKeys[i]!, 'vclock', records[i]!, false);
            sink.n ^= decodeRequests(reqWriter.take()).length;
          },
        },
        {
          name: 'wire: 100-read replies msg',
          opsPerCall: BATCH,
          note: 'shard -> router: stored record bytes per read, decodeReplies',
          fn: () => {
            for (let i = 0; i < BATCH; i++) replyWriter.ok(i, records[i]!, false);
            let n = 0;
            decodeReplies(replyWriter.take(), () => n++);
            sink.n ^= n;
          },
        },
        {
          name: 'structuredClone 100-write ops msg (objects)',
          opsPerCall: BATCH,
          note: 'what the wire replaced: op objects with Version[] (serialize + deserialize)',
          fn: () => structuredClone(objectOps),
        },
        {
          name: 'structuredClone 100-read replies msg (objects)',
          opsPerCall: BATCH,
          note: 'what the wire replaced: replies carrying Version[], one 100-byte version each',
          fn: () => structuredClone(objectReplies),
        },
        {
          name: 'ringkv write, 1 at a time',
          note: 'submit + await: route, postMessage, shard get+merge+encode+WriteBatch, reply',
          fn: async () => check(await write(nextWriteKey())),
        },
        {
          name: 'ringkv write, batch of 100',
          opsPerCall: BATCH,
          note: '100 submits in one tick -> one message, one group commit; latency = whole batch',
          fn: async () => {
            const ps = new Array<Promise<WireReply>>(BATCH);
            for (let i = 0; i < BATCH; i++) ps[i] = write(nextWriteKey());
            (await Promise.all(ps)).forEach(check);
          },
        },
        {
          name: 'raw rocksdb put, 1 at a time',
          note: 'main thread: 1-key WriteBatch, _writeSync (no fsync)',
          fn: () => {
            rawBatch.put(rawKey(nextWriteKey()), value.slice());
            rawBatch.commit(false);
          },
        },
        {
          name: 'raw rocksdb put, batch of 100',
          opsPerCall: BATCH,
          note: 'main thread: 100-key WriteBatch, _writeSync (no fsync)',
          fn: () => {
            for (let i = 0; i < BATCH; i++) rawBatch.put(rawKey(nextWriteKey()), value.slice());
            rawBatch.commit(false);
          },
        },
        {
          name: 'ringkv read, 1 at a time',
          note: `hits among ${READ_KEYS} preloaded keys; decodes the stored record`,
          fn: async () => check(await read(nextReadKey())),
        },
        {
          name: 'ringkv read, batch of 100',
          opsPerCall: BATCH,
          note: '100 reads in one tick -> one message, one multi-get',
          fn: async () => {
            const ps = new Array<Promise<WireReply>>(BATCH);
            for (let i = 0; i < BATCH; i++) ps[i] = read(nextReadKey());
            (await Promise.all(ps)).forEach(check);
          },
        },
        {
          name: 'raw rocksdb get, 1 at a time',
          note: 'main thread: _getManySync of 1 key',
          fn: () => {
            if (db._getManySync([rawKey(nextReadKey())], { column: rawColumn })[0] === undefined) throw new Error('raw miss');
          },
        },
        {
          name: 'raw rocksdb get, batch of 100',
          opsPerCall: BATCH,
          note: 'main thread: _getManySync of 100 keys',
          fn: () => {
            const ks = new Array<Buffer>(BATCH);
            for (let i = 0; i < BATCH; i++) ks[i] = rawKey(nextReadKey());
            if (db._getManySync(ks, { column: rawColumn })[BATCH - 1] === undefined) throw new Error('raw miss');
          },
        },
      ],
      opts,
    );
  } finally {
    await pool.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export const shardRatios: RatioSpec[] = [
  { label: 'router->shard write message: wire vs structured clone of objects', a: 'shard/wire: 100-write ops msg', b: 'shard/structuredClone 100-write ops msg (objects)' },
  { label: 'shard->router read replies: wire vs structured clone of objects', a: 'shard/wire: 100-read replies msg', b: 'shard/structuredClone 100-read replies msg (objects)' },
  { label: 'writes, batch of 100: ringkv shard vs raw RocksDB', a: 'shard/ringkv write, batch of 100', b: 'shard/raw rocksdb put, batch of 100' },
  { label: 'writes, 1 at a time: ringkv shard vs raw RocksDB', a: 'shard/ringkv write, 1 at a time', b: 'shard/raw rocksdb put, 1 at a time' },
  { label: 'reads, batch of 100: ringkv shard vs raw RocksDB', a: 'shard/ringkv read, batch of 100', b: 'shard/raw rocksdb get, batch of 100' },
  { label: 'reads, 1 at a time: ringkv shard vs raw RocksDB', a: 'shard/ringkv read, 1 at a time', b: 'shard/raw rocksdb get, 1 at a time' },
  { label: 'ringkv writes: batch of 100 vs 1 at a time', a: 'shard/ringkv write, batch of 100', b: 'shard/ringkv write, 1 at a time' },
  { label: 'ringkv reads: batch of 100 vs 1 at a time', a: 'shard/ringkv read, batch of 100', b: 'shard/ringkv read, 1 at a time' },
];
