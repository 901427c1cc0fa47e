/**
 * The wide-column replica messages as they cross the peer port, shared by the wide-column replica
 * side (wide-replicas.ts), its coordinators and the hint replay. A leaf module: the hint service
 * builds a replayed partition write from it without importing the replica side.
 */
import { packCellWrite } from '../storage/wide-wire.js';
import type { StoredEntry } from '../wide/reader.js';
import type { SliceRequest } from '../wide/slice.js';

/** One partition's mutation as it crosses the peer port (and as a hint replays it). */
export interface WideWriteBody {
  table: string;
  /** The table's storage id (its incarnation's, wide-tables.ts). */
  tableId: Uint8Array;
  /** The serialized partition key: its token places the write. */
  key: Uint8Array;
  entries: StoredEntry[];
}

/** One counter cell's increment, asked of the replica that is to apply it (wide-counter.ts). */
export interface WideCounterBody {
  table: string;
  tableId: Uint8Array;
  /** The serialized partition key. */
  key: Uint8Array;
  /** The counter cell's suffix inside the partition (layout.ts cellSuffix). */
  suffix: Uint8Array;
  /** The increment (negative: a decrement), a safe integer. */
  delta: number;
}

/** One page of a partition slice, asked of a replica: the table, the partition, and the slice request. */
export interface WideSliceBody extends SliceRequest {
  table: string;
  tableId: Uint8Array;
  key: Uint8Array;
}

/**
 * The peer message of a partition mutation (a coordinator's write, a replayed hint): the table's
 * name and the packed cell-write (table id, partition key, entries; storage/wide-wire.ts), which
 * the receiving replica hands to its shard as it came. One bin instead of an array of small ones
 * keeps msgpack cheap on both ends.
 */
export function wideWriteMessage(b: WideWriteBody): { t: 'wide-write' } & Record<string, unknown> {
  return { t: 'wide-write', table: b.table, body: packCellWrite(b.tableId, b.key, b.entries) };
}
