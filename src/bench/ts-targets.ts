/**
 * The two systems the time-series workload (`ringkv bench --workload ts`) runs against: ringkv's
 * wide-column table over the token-aware client (CQL with bind parameters, routed by partition
 * key), and RocksDB in this process doing the same seeks (the storage engine's own limit: one key
 * per row, `user \0 ts`, newest-first reads through a reverse iterator).
 */
import { createRequire } from 'node:module';
import { RingkvClient, type ConsistencyLevel } from '../client/index.js';
import { DB_OPTIONS, SHARD_COLUMN_OPTIONS } from '../storage/db.js';

/** One time-series store: rows (user, ts, event); the latest n rows of a user; a clustering range. */
export interface TsTarget {
  readonly name: string;
  insert(user: string, ts: number, event: string): Promise<void>;
  /** The latest `n` rows of `user` (newest first); resolves with the rows read. */
  latest(user: string, n: number): Promise<number>;
  /** Rows of `user` with from <= ts < to; resolves with the rows read. */
  range(user: string, from: number, to: number): Promise<number>;
  close(): Promise<void>;
}

export interface RingkvTsOptions {
  target: { socket: string } | { hosts: string[]; secret?: string };
  table: string;
  timeoutMs: number;
  consistency?: ConsistencyLevel;
}

export async function openRingkvTs(o: RingkvTsOptions): Promise<TsTarget> {
  const client = await RingkvClient.connect(o.target, { timeoutMs: o.timeoutMs + 1000 });
  const opts = { timeoutMs: o.timeoutMs, ...(o.consistency ? { consistency: o.consistency } : {}) };
  const readOpts = { timeoutMs: o.timeoutMs, ...(o.consistency && o.consistency !== 'ANY' ? { consistency: o.consistency } : {}) };
  // A fresh table per run: a dropped incarnation's rows are never read again.
  await client.query(`DROP TABLE IF EXISTS ${o.table}`);
  await client.query(`CREATE TABLE ${o.table} (user text, ts bigint, event text, PRIMARY KEY ((user), ts)) WITH CLUSTERING ORDER BY (ts DESC)`);
  const ins = `INSERT INTO ${o.table} (user, ts, event) VALUES (?, ?, ?)`;
  const latest = `SELECT ts, event FROM ${o.table} WHERE user = ? LIMIT ?`;
  const range = `SELECT ts, event FROM ${o.table} WHERE user = ? AND ts >= ? AND ts < ?`;
  return {
    name: 'ringkv',
    async insert(user, ts, event) {
      await client.query(ins, [user, ts, event], opts);
    },
    async latest(user, n) {
      return (await client.query(latest, [user, n], readOpts)).rows.length;
    },
    async range(user, from, to) {
      return (await client.query(range, [user, from, to], readOpts)).rows.length;
    },
    async close() {
      await client.close();
    },
  };
}

interface RocksIterator {
  nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
  close(): Promise<void>;
}
interface RocksBatch {
  put(key: Buffer, value: Buffer): void;
  write(): Promise<void>;
}
interface RocksDb {
  open(options?: object): Promise<void>;
  close(): Promise<void>;
  put(key: Buffer, value: Buffer): Promise<void>;
  batch(): RocksBatch;
  iterator(o: { gte: Buffer; lt: Buffer; reverse?: boolean; limit?: number }): RocksIterator;
}

function rowKey(user: string, ts: number): Buffer {
  const u = Buffer.from(user, 'utf8');
  const k = Buffer.allocUnsafe(u.length + 9);
  u.copy(k, 0);
  k[u.length] = 0;
  // Order-preserving: big-endian with the sign bit flipped (as the clustering encoding does).
  k.writeBigUInt64BE(BigInt.asUintN(64, BigInt(ts)) ^ (1n << 63n), u.length + 1);
  return k;
}

async function drain(it: RocksIterator, n: number): Promise<number> {
  try {
    let rows = 0;
    while (rows < n) {
      const chunk = await it.nextv(Math.min(1000, n - rows));
      if (chunk.length === 0) break;
      rows += chunk.length;
    }
    return rows;
  } finally {
    await it.close();
  }
}

/** RocksDB at `dir`, same process: one put per row, a reverse seek for the latest rows, a forward seek for a range. */
export async function openRocksTs(dir: string): Promise<TsTarget> {
  const { RocksLevel } = createRequire(import.meta.url)('@nxtedition/rocksdb') as { RocksLevel: new (dir: string, o: object) => RocksDb };
  const db = new RocksLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open({ ...DB_OPTIONS, ...SHARD_COLUMN_OPTIONS }); // the node's options, as in the key-value baseline
  const bounds = (user: string): { gte: Buffer; lt: Buffer } => {
    const u = Buffer.from(user, 'utf8');
    return { gte: Buffer.concat([u, Buffer.of(0)]), lt: Buffer.concat([u, Buffer.of(1)]) };
  };
  return {
    name: 'rocksdb',
    insert: (user, ts, event) => db.put(rowKey(user, ts), Buffer.from(event, 'utf8')),
    latest: (user, n) => drain(db.iterator({ ...bounds(user), reverse: true, limit: n }), n),
    range: (user, from, to) => drain(db.iterator({ gte: rowKey(user, from), lt: rowKey(user, to) }), Number.MAX_SAFE_INTEGER),
    close: () => db.close(),
  };
}
