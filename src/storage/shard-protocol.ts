/**
 * The typed message protocol between the router (main thread) and shard actors (worker threads).
 * Defined once; both sides import it. Data-path messages are batched: the router posts every op a
 * shard received in one turn of the event loop as one `ops` message, and the shard answers with one
 * `replies` message per group commit.
 */
import type { ConflictMode, Durability } from '../config/config.js';
import type { Version } from '../versions/index.js';

export interface ShardWorkerData {
  shard: number;
  handle: bigint;
  ringBuffer: SharedArrayBuffer;
  durability: Durability;
  /** Only shard 0 runs the periodic WAL fsync (one WAL for the whole process). */
  syncIntervalMs: number;
  maxSiblings: number;
  merkleDepth: number;
  gcGraceSeconds: number;
}

interface OpBase {
  id: number;
  /** Table id (xxh32-like of the name, identical on every node) and its conflict mode. */
  table: number;
  key: Uint8Array;
  hi: number;
  lo: number;
}

/** Merge `versions` into what is stored (vclock DVV-merge or LWW), then persist if anything changed. */
export interface WriteOp extends OpBase {
  op: 'write';
  mode: ConflictMode;
  versions: Version[];
  /** Reply with the merged versions now stored (the coordinating replica's step). */
  returnMerged?: boolean;
}

export interface ReadOp extends OpBase {
  op: 'read';
}

export type DataOp = WriteOp | ReadOp;

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
}

export type ShardResult =
  | { id: number; ok: true; versions: Version[] | null; changed?: boolean }
  | { id: number; ok: true; stats: ShardStats }
  | { id: number; ok: false; code: string; message: string };

export type RouterToShard = { t: 'ops'; ops: ShardOp[] } | { t: 'close' };

export type ShardToRouter =
  | { t: 'ready'; shard: number; keys: number }
  | { t: 'replies'; replies: ShardResult[] }
  | { t: 'closed' };
