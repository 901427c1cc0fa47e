import { createRequire } from 'node:module';

/**
 * A typed view of the parts of `@nxtedition/rocksdb` ringkv uses. The package is CommonJS without
 * type declarations; keeping the surface here (and small) means one place to check on upgrades.
 * Writes and point reads are the binding's synchronous calls: inside a shard actor a blocking call is
 * exactly what we want (mailbox order, no interleaving), and it avoids a thread-pool hop per batch.
 */
export type ColumnHandle = object & { readonly __column: unique symbol };

/**
 * Batch options must name buffer encodings: abstract-level's default is utf8, which would run our
 * binary values through a UTF-8 round trip and replace invalid bytes (found by a failing test).
 */
export interface BufferOpts {
  column: ColumnHandle;
  keyEncoding: 'buffer';
  valueEncoding: 'buffer';
}

export function bufferOpts(column: ColumnHandle): BufferOpts {
  return { column, keyEncoding: 'buffer', valueEncoding: 'buffer' };
}

/**
 * The binding's chained batch, by its underscore methods only. abstract-level's public `put`/`del`
 * re-encode every key, copy the options, and keep every op (key and value) in a JS array until the
 * batch is closed; a batch written with `_writeSync` is never closed, so that array and the batch
 * itself stayed attached to the db forever: every value ever written was pinned in memory (RSS grew
 * to 3.3 GB after 2M writes). `SyncWriteBatch` below is the only user.
 */
interface NativeChainedBatch {
  _put(key: Uint8Array, value: Uint8Array, opts: { column: ColumnHandle }): void;
  _del(key: Uint8Array, opts: { column: ColumnHandle }): void;
  _writeSync(opts: { sync?: boolean }): void;
  _clear(): void;
}

/** Batches committed with the WAL fsynced, by every SyncWriteBatch of this thread (a shard reports it in its stats). */
let fsyncedCommits = 0;
export function fsyncedCommitCount(): number {
  return fsyncedCommits;
}

/**
 * A WriteBatch for one column family that is written synchronously and reused: one native batch
 * per owner for its whole life, cleared after every commit. Not shared between threads. `putIn` /
 * `delIn` add ops on another family of the same instance: RocksDB writes one batch atomically
 * whatever families it touches (the storage migration relies on that).
 */
export class SyncWriteBatch {
  private readonly native: NativeChainedBatch;
  private readonly opts: { column: ColumnHandle };
  private count = 0;

  constructor(db: RocksDB, column: ColumnHandle) {
    this.native = db.batch() as unknown as NativeChainedBatch;
    this.opts = { column };
  }

  get length(): number {
    return this.count;
  }

  put(key: Uint8Array, value: Uint8Array): void {
    this.native._put(key, value, this.opts);
    this.count++;
  }

  del(key: Uint8Array): void {
    this.native._del(key, this.opts);
    this.count++;
  }

  putIn(column: ColumnHandle, key: Uint8Array, value: Uint8Array): void {
    this.native._put(key, value, { column });
    this.count++;
  }

  delIn(column: ColumnHandle, key: Uint8Array): void {
    this.native._del(key, { column });
    this.count++;
  }

  /** Write everything added since the last commit (WAL fsynced first when `sync`), then clear. */
  commit(sync: boolean): void {
    if (this.count === 0) return;
    try {
      this.native._writeSync({ sync });
      if (sync) fsyncedCommits++;
    } finally {
      this.native._clear();
      this.count = 0;
    }
  }
}

export interface IteratorOptions {
  column: ColumnHandle;
  gt?: Uint8Array;
  gte?: Uint8Array;
  lt?: Uint8Array;
  lte?: Uint8Array;
  limit?: number;
  keys?: boolean;
  values?: boolean;
  keyEncoding?: 'buffer';
  valueEncoding?: 'buffer';
  reverse?: boolean;
}

export interface RocksIterator {
  nextv(size: number): Promise<Array<[Buffer, Buffer]>>;
  _nextvSync(size: number, options: object): { rows: Array<Buffer | undefined>; finished: boolean };
  close(): Promise<void>;
}

export interface RocksDB {
  open(opts?: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
  readonly columns: Record<string, ColumnHandle>;
  readonly handle: bigint;
  readonly status: string;
  /** Only through SyncWriteBatch (see there why). */
  batch(): unknown;
  _getManySync(keys: Uint8Array[], opts: { column: ColumnHandle; fillCache?: boolean }): Array<Buffer | undefined>;
  getMany(keys: Uint8Array[], opts: { column: ColumnHandle; valueEncoding?: 'buffer' }): Promise<Array<Buffer | undefined>>;
  iterator(opts: IteratorOptions): RocksIterator;
  getProperty(name: string): string;
}

interface RocksModule {
  RocksLevel: new (locationOrHandle: string | bigint, options?: Record<string, unknown>) => RocksDB;
}

const require = createRequire(import.meta.url);
const rocks = require('@nxtedition/rocksdb') as RocksModule;

export function newRocks(locationOrHandle: string | bigint): RocksDB {
  return new rocks.RocksLevel(locationOrHandle);
}

/**
 * Up to `limit` (key, value) rows of a key range as a flat [k, v, k, v, …] array, read
 * synchronously through a fresh iterator: the rows reflect every batch committed so far. For the
 * actors (shards, hints), whose reads must not yield between a read and the writes it decides.
 */
export function readRowsSync(db: RocksDB, range: { column: ColumnHandle; gt?: Uint8Array; gte?: Uint8Array; lt?: Uint8Array }, limit: number): Buffer[] {
  const it = db.iterator({ ...range, limit, keys: true, values: true, keyEncoding: 'buffer', valueEncoding: 'buffer' });
  try {
    return it._nextvSync(limit, {}).rows as Buffer[];
  } finally {
    // close() releases the native iterator synchronously; its promise only reports the detach.
    void it.close().catch(() => undefined);
  }
}

/** The number of keys in a column family (a full key-only scan, in chunks of 10,000). */
export async function countKeys(db: RocksDB, column: ColumnHandle): Promise<number> {
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
