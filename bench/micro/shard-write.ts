/**
 * The shard's RocksDB write pattern next to the raw baseline's, changing one thing at a time
 * (issue 12, fourth pass): why does a ringkv put cost more `_writeSync` than a raw one?
 *
 *   node dist/bench/micro/shard-write.js [--puts 200000] [--rounds 2] [--variants a,b,...]
 *
 * Every variant writes `--puts` fresh keys in 100-put WriteBatches with `_writeSync({sync:false})`
 * on the main thread (a shard's group commit, durability `periodic`) into a fresh RocksDB in a temp
 * dir, and reports per put: the time inside `_writeSync` (hrtime), the main thread's CPU (from
 * /proc: the writer's own work, put calls, key building, gets) and the process's CPU (adds RocksDB's
 * flush and compaction threads). Variants run alternated, `--rounds` times each.
 *
 *   raw           the raw baseline (src/bench/rocksdb-target.ts): one family opened with DB_OPTIONS
 *                 and SHARD_COLUMN_OPTIONS, `user<16 digits>` keys as utf8 strings, 100-byte values
 *   raw-zstd-wal  ... with the binding's default ZSTD WAL compression (what DB_OPTIONS turns off)
 *   node-cf       ... into `shard-0` of a database opened by openDatabase (5 families, one WAL)
 *   storage-key   ... with storage keys (token | table id | key | 00 00, 46 bytes) instead of the name
 *   record        ... with the record bytes (encodeRecord of one version around the value)
 *   read-first    ... with the 100-key `_getManySync` the shard does before every batch (the shard's pattern)
 *   sorted        ... with every batch put in key order (the order is free: a batch holds each key once);
 *                 measured: no cheaper inside _writeSync, and the sort costs ~1.5 µs per put
 *   one-writer    the shard's pattern from one worker thread (the writer's CPU from /proc/thread-self)
 *   two-writers   the shard's pattern from two worker threads at once, into shard-0 and shard-1
 *                 (a node with 2 shards), half the puts each; per put over both writers' puts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { DB_OPTIONS, openDatabase, SHARD_COLUMN_OPTIONS, shardColumn } from '../../src/storage/db.js';
import { newRocks, SyncWriteBatch, type ColumnHandle, type RocksDB } from '../../src/storage/rocks.js';
import { encodeStorageKey } from '../../src/storage/keys.js';
import { initHasher, tokenInto } from '../../src/ring/hash.js';
import { tableIdOf } from '../../src/router/tables.js';
import { encodeRecord, initVersions } from '../../src/versions/record.js';
import { newVersion } from '../../src/versions/version.js';
import { keyName, makeValue } from '../../src/bench/workloads.js';
import { seededRandom } from './fixtures.js';
import { mainThreadCpuMs, threadSelfCpuMs } from './thread-cpu.js';

let BATCH = 100;
const VALUE_BYTES = 100;
const TABLE_ID = Buffer.from(tableIdOf('bench'), 'hex');
const VARIANTS = ['raw', 'node-cf', 'storage-key', 'record', 'read-first', 'sorted', 'one-writer', 'two-writers', 'raw-zstd-wal'] as const;
type Variant = (typeof VARIANTS)[number];

interface Pattern {
  storageKey: boolean;
  record: boolean;
  readFirst: boolean;
  /** Put every batch's keys in key order (the skiplist's insert splice then carries over between puts). */
  sorted?: boolean;
}
const PATTERNS: Record<Exclude<Variant, 'raw' | 'raw-zstd-wal' | 'one-writer' | 'two-writers'>, Pattern> = {
  'node-cf': { storageKey: false, record: false, readFirst: false },
  'storage-key': { storageKey: true, record: false, readFirst: false },
  record: { storageKey: true, record: true, readFirst: false },
  'read-first': { storageKey: true, record: true, readFirst: true },
  sorted: { storageKey: true, record: true, readFirst: true, sorted: true },
};
const SHARD_PATTERN = PATTERNS['read-first'];

interface Measured {
  puts: number;
  writeSyncMs: number;
  threadCpuMs: number;
}

/** The key and value bytes of put `i` of writer `seed`, as the variant shapes them. */
function makeInputs(puts: number, seed: number, p: Pattern): { keys: Array<Buffer | string>; values: Buffer[] } {
  const rng = seededRandom(seed);
  const tok = new Uint32Array(2);
  const keys: Array<Buffer | string> = [];
  const values: Buffer[] = [];
  let counter = 1_000_000 + seed * 10_000_000;
  for (let i = 0; i < puts; i++) {
    const name = keyName(seed * 100_000_000 + i);
    if (p.storageKey) {
      const k = Buffer.from(name, 'latin1');
      tokenInto(k, tok);
      keys.push(encodeStorageKey(tok[0]!, tok[1]!, TABLE_ID, k));
    } else keys.push(name);
    const value = Buffer.from(makeValue(VALUE_BYTES, rng));
    if (p.record) {
      counter++;
      values.push(encodeRecord([newVersion({ node: 'node-1a2b3c4d', counter, context: [], ts: 1_780_000_000_000_000 + counter, tombstone: false, value, maxClockEntries: 64 })]));
    } else values.push(value);
  }
  return { keys, values };
}

/** Writes the inputs in 100-put batches as the shard does (optionally reading every batch's keys first). */
function writeAll(db: RocksDB, column: ColumnHandle, inputs: { keys: Array<Buffer | string>; values: Buffer[] }, readFirst: boolean, sorted = false, cpuMs: () => number = mainThreadCpuMs): Measured {
  const batch = new SyncWriteBatch(db, column);
  const native = (batch as unknown as { native: { _writeSync(o: object): void; _clear(): void; _put(k: unknown, v: unknown, o: object): void } }).native;
  const opts = { column };
  let writeNs = 0n;
  const cpu0 = cpuMs();
  for (let i = 0; i < inputs.keys.length; i += BATCH) {
    const ks = inputs.keys.slice(i, i + BATCH);
    if (readFirst) db._getManySync(ks as Buffer[], { column });
    if (sorted) {
      const order = Array.from(ks.keys()).sort((a, b) => Buffer.compare(ks[a] as Buffer, ks[b] as Buffer));
      for (const j of order) native._put(ks[j], inputs.values[i + j], opts);
    } else for (let j = 0; j < ks.length; j++) native._put(ks[j], inputs.values[i + j], opts);
    const t0 = process.hrtime.bigint();
    native._writeSync({ sync: false });
    writeNs += process.hrtime.bigint() - t0;
    native._clear();
  }
  return { puts: inputs.keys.length, writeSyncMs: Number(writeNs) / 1e6, threadCpuMs: cpuMs() - cpu0 };
}

const requireCjs = createRequire(import.meta.url);

async function runVariant(variant: Variant, puts: number): Promise<{ m: Measured; processCpuMs: number; wallMs: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ringkv-shard-write-'));
  try {
    if (variant === 'raw' || variant === 'raw-zstd-wal') {
      const inputs = makeInputs(puts, 1, { storageKey: false, record: false, readFirst: false });
      const { RocksLevel } = requireCjs('@nxtedition/rocksdb') as { RocksLevel: new (dir: string) => RocksDB };
      const db = new RocksLevel(dir);
      await db.open({ ...DB_OPTIONS, ...SHARD_COLUMN_OPTIONS, ...(variant === 'raw-zstd-wal' ? { walCompression: true } : {}) });
      const column = db.columns['default']!;
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const m = writeAll(db, column, inputs, false);
      const wallMs = performance.now() - t0;
      const c = process.cpuUsage(c0);
      await db.close();
      return { m, processCpuMs: (c.user + c.system) / 1000, wallMs };
    }
    const odb = await openDatabase(dir, 2);
    if (variant === 'one-writer' || variant === 'two-writers') {
      const shards = variant === 'one-writer' ? [0] : [0, 1];
      const workers = shards.map((shard) => new Worker(new URL(import.meta.url), { workerData: { handle: odb.db.handle, shard, puts: Math.floor(puts / shards.length), batch: BATCH } }));
      const ready = workers.map((w) => new Promise<void>((res) => w.once('message', () => res())));
      await Promise.all(ready);
      const c0 = process.cpuUsage();
      const t0 = performance.now();
      const done = workers.map((w) => new Promise<Measured>((res) => w.once('message', (m: Measured) => res(m))));
      for (const w of workers) w.postMessage('go');
      const ms = await Promise.all(done);
      const wallMs = performance.now() - t0;
      const c = process.cpuUsage(c0);
      await Promise.all(workers.map((w) => w.terminate()));
      await odb.db.close();
      const m = ms.reduce((a, b) => ({ puts: a.puts + b.puts, writeSyncMs: a.writeSyncMs + b.writeSyncMs, threadCpuMs: a.threadCpuMs + b.threadCpuMs }));
      return { m, processCpuMs: (c.user + c.system) / 1000, wallMs };
    }
    const pattern = PATTERNS[variant];
    const inputs = makeInputs(puts, 1, pattern);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const m = writeAll(odb.db, odb.column(shardColumn(0)), inputs, pattern.readFirst, pattern.sorted === true);
    const wallMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    await odb.db.close();
    return { m, processCpuMs: (c.user + c.system) / 1000, wallMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A two-writers worker: opens the shared instance by handle, as a shard worker does. */
async function workerMain(): Promise<void> {
  const { handle, shard, puts, batch: batchSize } = workerData as { handle: bigint; shard: number; puts: number; batch: number };
  BATCH = batchSize;
  await initHasher();
  await initVersions();
  const db = newRocks(handle);
  await db.open();
  const column = db.columns[shardColumn(shard)]!;
  const inputs = makeInputs(puts, 2 + shard, SHARD_PATTERN);
  parentPort!.postMessage('ready');
  parentPort!.once('message', () => {
    parentPort!.postMessage(writeAll(db, column, inputs, true, false, threadSelfCpuMs) satisfies Measured);
  });
}

async function main(): Promise<void> {
  const arg = (name: string, dflt: string): string => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
  };
  const puts = Number(arg('puts', '200000'));
  const rounds = Number(arg('rounds', '2'));
  BATCH = Number(arg('batch', '100'));
  const variants = arg('variants', VARIANTS.join(',')).split(',') as Variant[];
  for (const v of variants) if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v} (have ${VARIANTS.join(', ')})`);
  if (!Number.isSafeInteger(puts) || puts < BATCH) throw new Error('--puts must be an integer >= 100');
  await initHasher();
  await initVersions();
  console.log(`${puts} puts per variant in batches of ${BATCH}, ${rounds} round(s); per put: µs inside _writeSync, writer thread CPU µs, process CPU µs, wall µs`);
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const { m, processCpuMs, wallMs } = await runVariant(v, puts);
      const us = (ms: number): string => ((ms * 1000) / m.puts).toFixed(2).padStart(6);
      console.log(`round ${r + 1} ${v.padEnd(12)} writeSync ${us(m.writeSyncMs)}  thread ${us(m.threadCpuMs)}  process ${us(processCpuMs)}  wall ${us(wallMs)}  load ${(await import('node:os')).loadavg()[0]!.toFixed(1)}`);
    }
  }
}

if (isMainThread) await main();
else await workerMain();
