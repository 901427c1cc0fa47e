import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { newRocks, type ColumnHandle, type RocksDB } from './rocks.js';

/** RocksDB's own family; ringkv keeps only the storage migration's staging and orphan rows there. */
export const DEFAULT_CF = 'default';
export const META_CF = 'meta';
export const HINTS_CF = 'hints';
export const shardColumn = (i: number): string => `shard-${i}`;

/**
 * Options of every shard family (and of the raw RocksDB bench baseline, so a ratio compares the
 * same engine settings). `point-lookup` adds a whole-key bloom filter to the memtable and a hash
 * index to data blocks: every write reads its key first (vector clocks and CRDT merges need what
 * is stored), and for a key that is not there (ingest) that read cost 2.56 µs per key with the
 * defaults and 0.59–0.68 µs with these, for 0.7–1.1 µs more per put; on keys that are there, gets
 * 4.7–5.3 → 4.3–4.8 µs (100-key multi-gets, 200–300k keys, alternated runs; issue 12 notes).
 * Iterators (scans, Merkle rebuilds, slices) are unaffected: no prefix extractor is set.
 */
export const SHARD_COLUMN_OPTIONS: Readonly<{ optimize: 'point-lookup' }> = Object.freeze({ optimize: 'point-lookup' });

/**
 * Database-wide options of the node's RocksDB instance (and of the raw RocksDB bench baselines, for
 * the same reason as SHARD_COLUMN_OPTIONS). The binding compresses the WAL with ZSTD by default;
 * that compression was ~7% of the shard threads' CPU under batched ingest (perf), 0.7 µs of a
 * shard's ~8 µs per write in process (bench: 7 alternated pairs) and 1.5–2.5 µs of a raw put's
 * 5–6 µs. Off, the WAL is written as is: the same bytes reach it before every ack, uncompressed, so
 * durability is unchanged; a WAL written compressed by an older build is still replayed (RocksDB
 * marks the compression in the log itself).
 */
export const DB_OPTIONS: Readonly<{ walCompression: false }> = Object.freeze({ walCompression: false });

export class StorageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StorageError';
  }
}

/**
 * Column families that already exist in a RocksDB directory, read from its latest OPTIONS file.
 * RocksDB refuses to open a database unless every existing family is named, and we must know the
 * shard count *before* opening to refuse a mismatched `--shards` without creating families.
 */
export function existingColumnFamilies(dbDir: string): string[] | null {
  if (!existsSync(path.join(dbDir, 'CURRENT'))) return null;
  const opts = readdirSync(dbDir)
    .filter((f) => /^OPTIONS-\d+$/.test(f))
    .sort((a, b) => Number(a.slice(8)) - Number(b.slice(8)));
  const latest = opts.at(-1);
  if (!latest) throw new StorageError(`${dbDir}: RocksDB directory without an OPTIONS file; refusing to guess its column families`);
  const text = readFileSync(path.join(dbDir, latest), 'utf8');
  return [...text.matchAll(/^\[CFOptions "([^"]+)"\]/gm)].map((m) => m[1]!);
}

export interface OpenedDatabase {
  db: RocksDB;
  dir: string;
  shards: number;
  column(name: string): ColumnHandle;
}

/**
 * Opens the node's single RocksDB instance (one WAL for all shards) with families
 * `default`, `meta`, `hints` and `shard-<i>`. The shard count is fixed per data directory.
 */
export async function openDatabase(dataDir: string, shards: number): Promise<OpenedDatabase> {
  const dir = path.join(dataDir, 'db');
  const existing = existingColumnFamilies(dir);
  if (existing) {
    const have = existing.filter((c) => c.startsWith('shard-')).length;
    if (have !== shards) {
      throw new StorageError(
        `data directory ${dataDir} was created with ${have} shards but --shards ${shards} was given; ` +
          `the shard count is fixed per data directory (start with --shards ${have}, or use a new directory)`,
      );
    }
  }
  const columns: Record<string, object> = { [DEFAULT_CF]: {}, [META_CF]: {}, [HINTS_CF]: {} };
  for (let i = 0; i < shards; i++) columns[shardColumn(i)] = { ...SHARD_COLUMN_OPTIONS };
  const db = newRocks(dir);
  await db.open({ ...DB_OPTIONS, createIfMissing: true, columns, infoLogLevel: 'warn' });
  const column = (name: string): ColumnHandle => {
    const c = db.columns[name];
    if (!c) throw new StorageError(`column family ${name} is not open`);
    return c;
  };
  return { db, dir, shards, column };
}
