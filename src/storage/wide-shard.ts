/**
 * The shard actor's side of the wide-column ops (shard-actor.ts calls these): the storage keys a
 * partition mutation merges into (`cell-write`), and one page of a partition slice (`slice`), read
 * through synchronous RocksDB iterators so a page is one seek per clustering range plus iteration
 * and never sees a write half-applied (the actor is the only writer of its column family).
 *
 * A partition's entries are the keys `partitionPrefix(token, table, partition key) ‖ suffix`
 * (src/wide/layout.ts); the page logic itself is the pure readSlicePage (src/wide/slice.ts).
 */
import { checkWideRecord } from '../wide/counter-cell.js';
import type { StoredEntry } from '../wide/reader.js';
import { readSlicePage, type SuffixRange } from '../wide/slice.js';
import { partitionPrefix } from './keys.js';
import type { ColumnHandle, RocksDB } from './rocks.js';
import type { CellWriteOp, PackedSlicePage, SliceOp } from './shard-protocol.js';
import { packEntries, unpackCellWrite, unpackSlice, WideWireError } from './wide-wire.js';

/** Most rows fetched from a RocksDB iterator per native call while a slice page is read. */
const SLICE_CHUNK_ROWS = 256;
/** Entries one cell-write may carry (a statement's rows are bounded by the planner; this bounds a peer's). */
export const MAX_CELL_WRITE_ENTRIES = 1_000_000;

/** A shard op whose input is not what a router sends: answered as `bad_request`. */
export class WideOpError extends Error {}

function checkOp(op: { hi: unknown; lo: unknown; body: unknown }): void {
  for (const v of [op.hi, op.lo]) if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new WideOpError('token words must be uint32');
  if (!(op.body instanceof Uint8Array)) throw new WideOpError('a wide-column op carries its body as bytes');
}

function unpacked<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof WideWireError) throw new WideOpError(e.message);
    throw e;
  }
}

/**
 * The (storage key, record) pairs of a cell-write, every record checked to be a cell record (or a
 * counter cell's state, wide/counter-cell.ts) first:
 * a partition's mutation is applied whole or not at all. Keys are fresh buffers (they are kept in
 * the batch); records are views into the op's body.
 */
export function cellWriteKeys(op: CellWriteOp): Array<{ key: Buffer; record: Buffer }> {
  checkOp(op);
  const { table, partitionKey, entries } = unpacked(() => unpackCellWrite(op.body));
  if (entries.length === 0 || entries.length > MAX_CELL_WRITE_ENTRIES) throw new WideOpError(`cell-write takes 1 to ${MAX_CELL_WRITE_ENTRIES} entries`);
  const prefix = partitionPrefix(op.hi, op.lo, table, partitionKey);
  return entries.map((e) => {
    if (e.suffix.length === 0) throw new WideOpError('a cell-write entry has an empty suffix');
    try {
      checkWideRecord(e.record);
    } catch (err) {
      throw new WideOpError((err as Error).message);
    }
    return { key: Buffer.concat([prefix, e.suffix]), record: e.record as Buffer };
  });
}

/**
 * Entries of [gte, lt) in key order (or reverse), lazily: the iterator is closed when the consumer
 * stops. The first native read fetches `firstChunk` entries (about what the page needs), later ones
 * twice as many each, up to SLICE_CHUNK_ROWS: a LIMIT 10 read does not read 256 entries.
 */
function* iterateRange(db: RocksDB, column: ColumnHandle, gte: Buffer, lt: Buffer, reverse: boolean, prefixLength: number, firstChunk: number): Generator<StoredEntry, void, undefined> {
  const it = db.iterator({ column, gte, lt, reverse, keys: true, values: true, keyEncoding: 'buffer', valueEncoding: 'buffer' });
  let chunk = Math.max(1, Math.min(firstChunk, SLICE_CHUNK_ROWS));
  try {
    for (;;) {
      const { rows, finished } = it._nextvSync(chunk, {});
      chunk = Math.min(chunk * 2, SLICE_CHUNK_ROWS);
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

/** One page of a partition slice (see SliceOp), from this shard's column family, its entries packed. */
export function slicePage(db: RocksDB, column: ColumnHandle, op: SliceOp): PackedSlicePage {
  checkOp(op);
  if (!Number.isInteger(op.rowLimit) || op.rowLimit < 1 || !Number.isInteger(op.byteLimit) || op.byteLimit < 1) throw new WideOpError('slice limits must be positive integers');
  const { table, partitionKey, after, ranges } = unpacked(() => unpackSlice(op.body));
  const prefix = partitionPrefix(op.hi, op.lo, table, partitionKey);
  // A row is a marker and a few cells: twice the row limit (plus one to see the page end) usually suffices.
  const firstChunk = 2 * op.rowLimit + 1;
  const iterate = (range: SuffixRange, reverse: boolean): Iterable<StoredEntry> =>
    iterateRange(db, column, Buffer.concat([prefix, range.start]), Buffer.concat([prefix, range.end]), reverse, prefix.length, firstChunk);
  const page = readSlicePage({ ranges, reverse: op.reverse === true, after, rowLimit: op.rowLimit, byteLimit: op.byteLimit, withDeletions: op.withDeletions === true }, iterate);
  return { deletions: page.deletions === null ? null : packEntries(page.deletions), entries: packEntries(page.entries), next: page.next };
}
