/**
 * The typed message protocol between the router (main thread) and shard actors (worker threads).
 * Defined once; both sides import it. Messages are batched: the router posts every op a shard
 * received in one turn of the event loop as one `ops` message, and the shard answers with one
 * `replies` message per group commit. Reads and writes travel as bytes (`wire`, see
 * shard-wire.ts); control-plane ops (stats, Merkle trees, repair, sweep) as the typed objects below.
 */
import type { Durability, TableMode } from '../config/config.js';


export interface ShardWorkerData {
  shard: number;
  /** The node's shard count: a worker stores exactly the tokens whose placement shard is its own (placement.ts). */
  shards: number;
  handle: bigint;
  ringBuffer: SharedArrayBuffer;
  durability: Durability;
  /** Only shard 0 runs the periodic WAL fsync (one WAL for the whole process). */
  syncIntervalMs: number;
  maxSiblings: number;
  merkleDepth: number;
  gcGraceSeconds: number;
  /** Period of the shard's own tombstone sweep (on-demand sweeps come as `sweep` ops). */
  tombstoneSweepIntervalMs: number;
}

/**
 * A ring range (start, end] as the shard knows it: by ring position and bounds. Both must match one
 * of the shard's Merkle trees, so a caller holding a different ring view gets `range_unknown`
 * instead of an answer about some other range.
 */
export interface RangeRef {
  pos: number;
  startHi: number;
  startLo: number;
  endHi: number;
  endLo: number;
}

/** Upper bounds on one anti-entropy op, so no message, reply or synchronous step is unbounded. */
export const REPAIR_LIMITS = Object.freeze({
  /** Entries in one leaf-keys page. */
  maxLeafKeysPage: 5000,
  /** Keys in one fetch-keys / repair-write op. */
  maxKeysPerOp: 1000,
  /** Record bytes in one fetch-keys or scan answer; the rest is left for the next call. */
  maxFetchBytes: 4 * 1024 * 1024,
  /** Rows in one scan page. */
  maxScanPage: 1000,
});

/** Root hash (and readiness) of every Merkle tree of the shard. */
export interface MerkleRootsOp {
  id: number;
  op: 'merkle-roots';
}

/** The leaf level of one range's tree, serialized (MerkleTree.serialize) for a local diff. */
export interface MerkleTreeOp {
  id: number;
  op: 'merkle-tree';
  range: RangeRef;
}

/** Hashes of some nodes of one level of a range's tree (answering a peer's diffTrees step). */
export interface MerkleNodesOp {
  id: number;
  op: 'merkle-nodes';
  range: RangeRef;
  level: number;
  indexes: number[];
}

/** Resume point of a leaf-keys listing: the key interval reached and the last key returned. */
export interface LeafCursor {
  interval: number;
  /** null: from the interval's start. */
  after: Uint8Array | null;
}

/** The (storage key, record digest) pairs of the keys in some leaves of a range, one page. */
export interface LeafKeysOp {
  id: number;
  op: 'leaf-keys';
  range: RangeRef;
  /** Strictly ascending leaf indexes. */
  leaves: number[];
  /** Only list keys of this table id (TABLE_ID_BYTES; trees cover every table, a `--table` repair streams one). */
  table?: Uint8Array | undefined;
  cursor?: LeafCursor | null | undefined;
  limit: number;
}

/** Stored records (encodeRecord bytes) of given storage keys. */
export interface FetchKeysOp {
  id: number;
  op: 'fetch-keys';
  keys: Uint8Array[];
}

/**
 * Merge records (either family, storage/records.ts) into given storage keys with their table's mode,
 * exactly like replica writes, in one batch: repair, and anything else that moves stored records.
 */
export interface RepairWriteOp {
  id: number;
  op: 'repair-write';
  entries: Array<{ key: Uint8Array; mode: TableMode; record: Uint8Array }>;
}

/**
 * A wide-column statement's mutation of one partition (token hi/lo): `body` is packCellWrite(table
 * id, partition key, entries) (wide-wire.ts); every entry is the storage key `partitionPrefix ‖
 * suffix`, merged with the cell rule, all in one WriteBatch.
 */
export interface CellWriteOp {
  id: number;
  op: 'cell-write';
  hi: number;
  lo: number;
  body: Uint8Array;
}

/**
 * One page of a wide-column partition slice (src/wide/slice.ts readSlicePage), read with one seek
 * per range; `body` is packSlice(table id, partition key, after, ranges).
 */
export interface SliceOp {
  id: number;
  op: 'slice';
  hi: number;
  lo: number;
  body: Uint8Array;
  reverse: boolean;
  rowLimit: number;
  byteLimit: number;
  withDeletions: boolean;
}

/** A slice page with its entries packed (packEntries): one buffer each, not one per entry. */
export interface PackedSlicePage {
  deletions: Uint8Array | null;
  entries: Uint8Array;
  next: Uint8Array | null;
}

/** The gc grace of wide-column tables that set their own (storage id hex → seconds); the rest use gcGraceSeconds. */
export interface TableGraceOp {
  id: number;
  op: 'table-grace';
  graces: Array<[string, number]>;
}

/** Purge records whose versions are all tombstones older than gcGraceSeconds; answers when done. */
export interface SweepOp {
  id: number;
  op: 'sweep';
}

/**
 * Rows of one table whose tokens lie in the ring range (start, end] (start == end: the whole ring),
 * in storage-key order (token, then key), after the storage key `after` (null: from the start), at
 * most `limit` rows and about `maxBytes` (default REPAIR_LIMITS.maxFetchBytes; at least one row).
 * The scan examines a bounded number of keys per call; `next` resumes it (null: the range is done).
 * A shard holds only its own keys of any range: ShardPool.scan asks every shard and merges.
 */
export interface ScanOp {
  id: number;
  op: 'scan';
  /** TABLE_ID_BYTES. */
  table: Uint8Array;
  maxBytes?: number | undefined;
  startHi: number;
  startLo: number;
  endHi: number;
  endLo: number;
  after: Uint8Array | null;
  limit: number;
}

export type RepairOp = ScanOp | MerkleRootsOp | MerkleTreeOp | MerkleNodesOp | LeafKeysOp | FetchKeysOp | RepairWriteOp | SweepOp;

/** The wide-column ops (their shard side is src/storage/wide-shard.ts). */
export type WideOp = CellWriteOp | SliceOp | TableGraceOp;

/**
 * The control ops `ShardPool.submit` carries. They share the shard's mailbox and queue bound with
 * the wire reads and writes; a repair write and a client write to the same key are merged by the
 * same actor, one after the other, like any two writes.
 */
export type DataOp = RepairOp | WideOp;

export interface StatsOp {
  id: number;
  op: 'stats';
}

export type ShardOp = DataOp | StatsOp;

export interface ShardStats {
  shard: number;
  keys: number;
  writes: number;
  reads: number;
  batches: number;
  queue: number;
  /** Merkle trees kept (one per local ring range, over this shard's keys) and how many are built (not mid-rebuild). */
  merkleRanges: number;
  merkleReady: number;
  /** Ring changes that started a tree rebuild (the first ring counts as one). */
  merkleRebuilds: number;
  tombstonesPurged: number;
}

export interface RangeRoot extends RangeRef {
  hi: number;
  lo: number;
  /** False while the tree is being rebuilt from a scan: its hashes are incomplete. */
  ready: boolean;
}

export interface SweepStats {
  scanned: number;
  purged: number;
  durationMs: number;
  /** True: only the shard's dead-record index was examined; false: a full scan of the column family. */
  indexed: boolean;
}

/** Answers to RepairOp, tagged by `kind` (the op name). */
export type RepairResult =
  | { kind: 'merkle-roots'; depth: number; ringVersion: number; ranges: RangeRoot[] }
  | { kind: 'merkle-tree'; ready: boolean; leaves: Uint8Array }
  | { kind: 'merkle-nodes'; ready: boolean; hashes: number[] }
  | { kind: 'leaf-keys'; ready: boolean; entries: Array<{ key: Uint8Array; hi: number; lo: number }>; next: LeafCursor | null }
  /** `records[i]` answers `keys[i]` for i < answered (null: absent); the caller resends the rest. */
  | { kind: 'fetch-keys'; answered: number; records: Array<Uint8Array | null> }
  | { kind: 'repair-write'; changed: number; notOwner: number }
  | { kind: 'sweep'; sweep: SweepStats }
  | { kind: 'cell-write'; changed: number }
  | { kind: 'slice'; page: PackedSlicePage }
  | { kind: 'table-grace' }
  /** Storage keys and their stored records (encodeRecord bytes), tombstones included. */
  | { kind: 'scan'; rows: Array<{ key: Uint8Array; record: Uint8Array }>; next: Uint8Array | null };

export type ShardResult =
  | { id: number; ok: true; stats: ShardStats }
  | { id: number; ok: true; repair: RepairResult }
  | { id: number; ok: false; code: string; message: string };

/** `wire`: reads and writes (shard-wire.ts), its ArrayBuffer transferred; `ops`: control ops. */
export type RouterToShard = { t: 'ops'; wire: Uint8Array<ArrayBuffer> | null; ops: ShardOp[] } | { t: 'close' };

export type ShardToRouter =
  | { t: 'ready'; shard: number; keys: number }
  | { t: 'replies'; wire: Uint8Array<ArrayBuffer> | null; replies: ShardResult[] }
  | { t: 'closed' };
