/**
 * One page of a shard's rows in a token range, in storage-key order, resumable from the last key
 * examined: the loop behind the shard's `scan` op (one table, for range scans) and `stream-page`
 * op (every table, for range streaming). Pure: the caller supplies the synchronous chunk reader.
 */
import { storageKeyHasTable, tokenRangeBounds, type KeyBounds } from './keys.js';
import type { TokenRangeWords } from './shard-protocol.js';

/** Up to `limit` (key, value) rows of `bounds` after `after` (exclusive), flattened [k, v, k, v, ...]. */
export type ChunkReader = (bounds: KeyBounds, after: Buffer | null, limit: number) => Buffer[];

export interface RangePageRequest extends TokenRangeWords {
  /** Resume after this storage key (null: from the range's start). */
  after: Uint8Array | null;
  /** Rows at most (at least 1). */
  limit: number;
  /** Key + record bytes at most (the row that crosses it is included: at least one row). */
  maxBytes: number;
  /** Only rows of this table id; null: every table. */
  table: Uint8Array | null;
}

export interface RangePage {
  rows: Array<{ key: Uint8Array; record: Uint8Array }>;
  /** The last key examined (resume there), or null when the range is done. */
  next: Uint8Array | null;
}

/**
 * The rows of (start, end] after `after`. At most 4 x limit keys are examined per call (a table
 * filter may skip most of them), so one call stays bounded however sparse the table is.
 */
export function pageRange(read: ChunkReader, op: RangePageRequest): RangePage {
  const intervals = tokenRangeBounds(op.startHi, op.startLo, op.endHi, op.endLo);
  let after: Buffer | null = op.after ? Buffer.from(op.after) : null;
  // The interval the cursor is in: the first whose upper bound lies beyond it.
  let iv = 0;
  if (after) while (iv < intervals.length - 1 && intervals[iv]!.lt !== undefined && Buffer.compare(after, intervals[iv]!.lt!) >= 0) iv++;
  const rows: Array<{ key: Uint8Array; record: Uint8Array }> = [];
  const budget = 4 * op.limit;
  let seen = 0;
  let bytes = 0;
  /** The last key examined: where the next page resumes (it finds its interval from the key). */
  let last: Buffer | null = after;
  while (rows.length < op.limit && seen < budget && bytes < op.maxBytes) {
    const want = Math.min(op.limit - rows.length, budget - seen);
    const chunk = read(intervals[iv]!, after, want);
    for (let j = 0; j < chunk.length; j += 2) {
      const key = chunk[j]!;
      seen++;
      after = last = key;
      if (op.table !== null && !storageKeyHasTable(key, op.table)) continue;
      rows.push({ key, record: chunk[j + 1]! });
      bytes += key.length + chunk[j + 1]!.length;
      if (bytes >= op.maxBytes) break;
    }
    if (bytes >= op.maxBytes) break;
    if (chunk.length / 2 < want) {
      // This interval is done; the next starts at its own lower bound (keys between intervals
      // are outside the range), so the cursor within it starts over.
      if (++iv >= intervals.length) return { rows, next: null };
      after = null;
    }
  }
  return { rows, next: last };
}
