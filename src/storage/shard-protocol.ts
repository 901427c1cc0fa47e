/**
 * The typed message protocol between the router (main thread) and shard actors (worker threads).
 * Defined once; both sides import it. Messages are batched: the router posts every op a shard
 * received in one turn of the event loop as one `ops` message, and the shard answers with one
 * `replies` message per group commit. Reads and writes travel as bytes (`wire`, see
 * shard-wire.ts); control-plane ops (stats, Merkle trees, repair, sweep) as the typed objects below.
 */
import type { ConflictMode, Durability, TableMode } from '../config/config.js';
import type { CrdtLimits } from '../crdt/limits.js';
import type { MessagePort } from 'node:worker_threads';
import type { ShardChannelBuffers } from './shard-channel.js';
import type { Version } from '../versions/index.js';

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
  /** The data channel's rings (shard-channel.ts). */
  channel: ShardChannelBuffers;
  /** Most microseconds the shard spins for the next request before parking (0: never spins). */
  spinMicros: number;
  /** The control plane's own port: ShardControlApi, exposed with comlink (transferred to the worker). */
  control: MessagePort;
  /** The actor id CRDT operations applied here are recorded under (node id + incarnation). */
  crdtActor: string;
  crdtLimits: CrdtLimits;
}

/** A token range (start, end] as uint32 words (start == end: the whole ring). */
export interface TokenRangeWords {
  startHi: number;
  startLo: number;
  endHi: number;
  endLo: number;
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
  /** Rows in one stream page of one shard (a streamed batch is bounded by bytes first). */
  maxStreamPage: 8192,
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
 * Merge records into given storage keys with their table's mode, exactly like replica writes (one
 * batch). Each entry carries versions decoded, or stored record bytes of either family
 * (storage/records.ts: repair, range streaming; the shard decodes them, which keeps that work off
 * the main thread); a record that does not decode as its mode says fails the whole op and nothing
 * is written. A `cell` record is merged by the cell rule: to the shard it is just a record.
 */
export interface RepairWriteOp {
  id: number;
  op: 'repair-write';
  entries: RepairWriteEntry[];
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

export type RepairWriteEntry = { key: Uint8Array; mode: ConflictMode; versions: Version[] } | { key: Uint8Array; mode: TableMode; record: Uint8Array };

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

/**
 * Range streaming's read side: the shard's rows of every table whose tokens lie in (start, end],
 * in storage-key order after `after`, at most `limit` rows and about `maxBytes`; `next` resumes it
 * (null: the range is done). Storage keys are the same on every node, so the cursor is too.
 */
export interface StreamPageOp extends TokenRangeWords {
  id: number;
  op: 'stream-page';
  after: Uint8Array | null;
  limit: number;
  maxBytes: number;
}

/**
 * Delete the records of ranges this node no longer replicates (`ringkv cleanup`): a key stays when
 * this node is among the first N replicas of its token for its table's N (`tables`, by table id in
 * hex; other tables use `defaultN`) or a pending replica of it. Runs in bounded chunks between
 * other mailbox work; answers when done.
 */
export interface CleanupOp {
  id: number;
  op: 'cleanup';
  tables: Array<{ id: string; n: number }>;
  defaultN: number;
}

export type RepairOp = ScanOp | MerkleRootsOp | MerkleTreeOp | MerkleNodesOp | LeafKeysOp | FetchKeysOp | RepairWriteOp | SweepOp | StreamPageOp | CleanupOp;

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
  /** Batches this shard's thread committed with the WAL fsynced (durability sync: every write batch; periodic: shard 0's interval sync). */
  walSyncs: number;
  queue: number;
  /** Merkle trees kept (one per local ring range, over this shard's keys) and how many are built (not mid-rebuild). */
  merkleRanges: number;
  merkleReady: number;
  /** Ring changes that started a tree rebuild (the first ring counts as one). */
  merkleRebuilds: number;
  tombstonesPurged: number;
}

export interface CleanupStats {
  scanned: number;
  removed: number;
  durationMs: number;
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
  /** `refused`: CRDT entries whose state is of another type than the stored one (left as they are). */
  | { kind: 'repair-write'; changed: number; notOwner: number; refused?: number }
  | { kind: 'sweep'; sweep: SweepStats }
  | { kind: 'cell-write'; changed: number }
  | { kind: 'slice'; page: PackedSlicePage }
  | { kind: 'table-grace' }
  | { kind: 'cleanup'; cleanup: CleanupStats }
  | { kind: 'stream-page'; rows: Array<{ key: Uint8Array; record: Uint8Array }>; next: Uint8Array | null }
  /** Storage keys and their stored records (encodeRecord bytes), tombstones included. */
  | { kind: 'scan'; rows: Array<{ key: Uint8Array; record: Uint8Array }>; next: Uint8Array | null };

export type ShardResult =
  | { id: number; ok: true; stats: ShardStats }
  | { id: number; ok: true; repair: RepairResult }
  | { id: number; ok: false; code: string; message: string };

/** A control op as a caller gives it: the shard numbers it (its mailbox bookkeeping). */
export type DataOpInput = DataOp extends infer T ? (T extends DataOp ? Omit<T, 'id'> : never) : never;

/**
 * The shard's control plane (issue 12): typed calls exposed with comlink on the worker's own
 * control MessagePort, so no request ids or pending maps are written by hand on either side. A
 * call puts its op into the actor's single mailbox queue, the same one the data ring's reads and
 * writes are drained into, so a repair write and a client write to the same key are merged one
 * after the other by the same actor (docs/architecture.md, "Control plane"). The hot data path
 * stays on the rings (shard-channel.ts).
 *
 * A new control op: add it to DataOp (with its answer to RepairResult) and handle it in the
 * shard's `control()` switch; callers use `ShardPool.submit(shard, op)`.
 */
export interface ShardControlApi {
  /** Run a control op in mailbox order; answered after the group commit of its turn (a sweep: when it finishes). */
  submit(op: DataOpInput): Promise<ShardResult>;
  stats(): Promise<ShardStats>;
}

/**
 * Data messages on the worker's own port (control traffic has its own port, above): `wire`, a
 * request message that did not fit the ring (shard-wire.ts, its ArrayBuffer transferred), with its
 * sequence number (the shard applies ring and port messages in one sequence).
 */
export type RouterToShard = { t: 'ops'; seq: number; wire: Uint8Array<ArrayBuffer> } | { t: 'close' };

export type ShardToRouter =
  | { t: 'ready'; shard: number; keys: number }
  /** Reply bytes that did not fit the reply ring. */
  | { t: 'replies'; wire: Uint8Array<ArrayBuffer> }
  | { t: 'closed' };
