/**
 * The storage engine's own limit: the same workload straight against RocksDB in this
 * process, so a report can put ringkv next to what its engine does with no network,
 * replication or coordination in the way.
 */
import { createRequire } from 'node:module';
import { DB_OPTIONS, SHARD_COLUMN_OPTIONS } from '../storage/db.js';
import type { BenchTarget, OpResult, PutItem } from './target.js';

// @nxtedition/rocksdb is CommonJS without type declarations; describe just what we use
// rather than letting an implicit `any` leak into the harness.
interface RocksChainedBatch {
  put(key: string, value: Buffer): void;
  write(options?: { sync?: boolean }): Promise<void>;
}
interface RocksIterator {
  nextv(size: number): Promise<Array<[string, Buffer]>>;
  close(): Promise<void>;
}
interface RocksDb {
  open(options?: object): Promise<void>;
  close(): Promise<void>;
  batch(): RocksChainedBatch;
  getMany(keys: string[]): Promise<Array<Buffer | undefined>>;
  iterator(options: { gte: string; limit: number }): RocksIterator;
}
interface RocksModule {
  RocksLevel: new (location: string, options: { keyEncoding: 'utf8'; valueEncoding: 'buffer' }) => RocksDb;
}

const requireCjs = createRequire(import.meta.url);

export interface RocksBaselineOptions {
  /** fsync the WAL on every put call (one per batch). Default false, RocksDB's default. */
  sync?: boolean;
}

function errorKind(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? `rocksdb:${code}` : 'rocksdb-error';
}

/**
 * Open (creating if needed) a RocksDB at `dir` as a BenchTarget.
 *
 * Note the binding writes batches synchronously on the JS thread, so in open-loop runs a
 * slow (e.g. `sync: true`) write also delays the dispatch of the ops behind it. That cost is
 * real for an in-process engine and the driver charges it to latency, which is the honest
 * comparison.
 */
export async function openRocksBaseline(dir: string, opts: RocksBaselineOptions = {}): Promise<BenchTarget> {
  const { RocksLevel } = requireCjs('@nxtedition/rocksdb') as RocksModule;
  const db = new RocksLevel(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  // The node's database options and its shard families' options: the ratio compares ringkv's
  // work, not two engine configurations.
  await db.open({ ...DB_OPTIONS, ...SHARD_COLUMN_OPTIONS });
  const writeOptions = { sync: opts.sync === true };
  let closed = false;

  return {
    name: opts.sync ? 'rocksdb(sync)' : 'rocksdb',

    async put(items: ReadonlyArray<PutItem>): Promise<OpResult[]> {
      try {
        // One WriteBatch per call: that is what a batched ingest costs the engine.
        const batch = db.batch();
        for (const { key, value } of items) {
          batch.put(key, Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        }
        await batch.write(writeOptions);
        return items.map(() => null);
      } catch (err) {
        const kind = errorKind(err);
        return items.map(() => kind);
      }
    },

    async get(keys: readonly string[]): Promise<OpResult[]> {
      try {
        // Missing keys come back as undefined and are not errors.
        await db.getMany([...keys]);
        return keys.map(() => null);
      } catch (err) {
        const kind = errorKind(err);
        return keys.map(() => kind);
      }
    },

    async scan(startKey: string, count: number): Promise<OpResult> {
      const it = db.iterator({ gte: startKey, limit: count });
      try {
        await it.nextv(count);
        return null;
      } catch (err) {
        return errorKind(err);
      } finally {
        await it.close();
      }
    },

    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await db.close();
    },
  };
}
