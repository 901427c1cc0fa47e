/**
 * The shard actor's side of the wide-column ops (workers/shard.ts calls these): the storage keys a
 * partition mutation merges into (`cell-write`), and one page of a partition slice (`slice`), read
 * through synchronous RocksDB iterators so a page is one seek per clustering range plus iteration
 * and never sees a write half-applied (the actor is the only writer of its column family).
 *
 * A partition's entries are the keys `partitionPrefix(token, table, partition key) ‖ suffix`
 * (src/wide/layout.ts); the page logic itself is the pure readSlicePage (src/wide/slice.ts).
 */
import { cellKindOf } from '../wide/cell.js';
import type { StoredEntry } from '../wide/reader.js';
import { readSlicePage, type SlicePage, type SuffixRange } from '../wide/slice.js';
import { partitionPrefix, TABLE_ID_BYTES } from './keys.js';
import type { ColumnHandle, RocksDB } from './rocks.js';
import type { CellWriteOp, SliceOp } from './shard-protocol.js';

/** Rows fetched from a RocksDB iterator per native call while a slice page is read. */
const SLICE_CHUNK_ROWS = 256;
/** Entries one cell-write may carry (a statement's rows are bounded by the planner; this bounds a peer's). */
export const MAX_CELL_WRITE_ENTRIES = 1_000_000;

/** A shard op whose input is not what a router sends: answered as `bad_request`. */
export class WideOpError extends Error {}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function checkPartitionOp(op: { table: unknown; hi: unknown; lo: unknown; partitionKey: unknown }): void {
  if (!(op.table instanceof Uint8Array) || op.table.length !== TABLE_ID_BYTES) throw new WideOpError(`table must be a ${TABLE_ID_BYTES}-byte table id`);
  for (const v of [op.hi, op.lo]) if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new WideOpError('token words must be uint32');
  if (!(op.partitionKey instanceof Uint8Array)) throw new WideOpError('partitionKey must be bytes');
}

/**
 * The (storage key, record) pairs of a cell-write, every record checked to be a cell record first:
 * a partition's mutation is applied whole or not at all.
 */
export function cellWriteKeys(op: CellWriteOp): Array<{ key: Buffer; record: Buffer }> {
  checkPartitionOp(op);
  if (!Array.isArray(op.entries) || op.entries.length === 0 || op.entries.length > MAX_CELL_WRITE_ENTRIES) {
    throw new WideOpError(`cell-write takes 1 to ${MAX_CELL_WRITE_ENTRIES} entries`);
  }
  const prefix = partitionPrefix(op.hi, op.lo, op.table, op.partitionKey);
  return op.entries.map((e) => {
    if (!(e.suffix instanceof Uint8Array) || e.suffix.length === 0 || !(e.record instanceof Uint8Array)) throw new WideOpError('cell-write entries need suffix and record bytes');
    try {
      cellKindOf(e.record);
    } catch (err) {
      throw new WideOpError((err as Error).message);
    }
    return { key: Buffer.concat([prefix, e.suffix]), record: asBuffer(e.record) };
  });
}

/** Entries of [gte, lt) in key order (or reverse), lazily: the iterator is closed when the consumer stops. */
function* iterateRange(db: RocksDB, column: ColumnHandle, gte: Buffer, lt: Buffer, reverse: boolean, prefixLength: number): Generator<StoredEntry, void, undefined> {
  const it = db.iterator({ column, gte, lt, reverse, keys: true, values: true, keyEncoding: 'buffer', valueEncoding: 'buffer' });
  try {
    for (;;) {
      const { rows, finished } = it._nextvSync(SLICE_CHUNK_ROWS, {});
      for (let i = 0; i + 1 < rows.length; i += 2) {
        const key = rows[i]!;
        yield { suffix: key.subarray(prefixLength), record: rows[i + 1]! };
      }
      if (finished || rows.length === 0) return;
    }
  } finally {
    void it.close().catch(() => undefined);
  }
}

/** One page of a partition slice (see SliceOp), from this shard's column family. */
export function slicePage(db: RocksDB, column: ColumnHandle, op: SliceOp): SlicePage {
  checkPartitionOp(op);
  if (!Array.isArray(op.ranges)) throw new WideOpError('slice ranges must be an array');
  for (const r of op.ranges) if (!(r.start instanceof Uint8Array) || !(r.end instanceof Uint8Array)) throw new WideOpError('slice ranges need start and end bytes');
  if (!Number.isInteger(op.rowLimit) || op.rowLimit < 1 || !Number.isInteger(op.byteLimit) || op.byteLimit < 1) throw new WideOpError('slice limits must be positive integers');
  if (op.after !== null && !(op.after instanceof Uint8Array)) throw new WideOpError('slice cursor must be bytes or null');
  const prefix = partitionPrefix(op.hi, op.lo, op.table, op.partitionKey);
  const iterate = (range: SuffixRange, reverse: boolean): Iterable<StoredEntry> =>
    iterateRange(db, column, Buffer.concat([prefix, range.start]), Buffer.concat([prefix, range.end]), reverse, prefix.length);
  return readSlicePage(
    { ranges: op.ranges, reverse: op.reverse === true, after: op.after === null ? null : asBuffer(op.after), rowLimit: op.rowLimit, byteLimit: op.byteLimit, withDeletions: op.withDeletions === true },
    iterate,
  );
}
