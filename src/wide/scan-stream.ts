/**
 * The rows of a token-range scan of a wide-column table, from the reconciled (key, record) entries
 * a scan walk delivers in storage order, round after round: entries are grouped into partitions
 * (each partition's deletions come first in storage order, then its rows in clustering order) and
 * into rows, and each complete row is decoded with the partition's deletions (readRows).
 *
 * A round of a scan may end inside a row: the row's entries are held until an entry of another
 * row (or the end of the segment) shows it complete. So at most one row and one partition's
 * deletions are held between rounds, whatever the partition's width.
 *
 * Pure module: no I/O.
 */
import type { CqlValue } from './values.js';
import { rowKeyLength, TAG_ROW } from './layout.js';
import { compareBytes } from './order-encoding.js';
import { deserializePartitionKey } from './partition-key.js';
import { deletionMapOf, MAX_RANGE_TOMBSTONES_PER_READ, readRows, tooManyRangeTombstones, type DeletionMap, type Row, type RowFilter, type StoredEntry } from './reader.js';
import type { WideTableSchema } from './schema.js';
import type { SuffixRange } from './slice.js';

/** One reconciled entry of a scan, its storage key already split. */
export interface ScanEntry {
  /** Ring token (unsigned). */
  token: bigint;
  partitionKey: Uint8Array;
  suffix: Uint8Array;
  record: Uint8Array;
}

export type ScanEvent =
  /** A new partition starts; `matches`: it passes the partition-key filters (else its rows are skipped). */
  | { t: 'partition'; token: bigint; partitionKey: Uint8Array; values: CqlValue[]; matches: boolean }
  /** A complete row of a matching partition: `row` is null when it is dead, outside the clustering slice, or filtered out. */
  | { t: 'row'; rowKey: Uint8Array; row: Row | null };

export interface ScanStreamOptions {
  schema: WideTableSchema;
  nowSec: number;
  /** The clustering slice (row-region suffix ranges). */
  ranges: readonly SuffixRange[];
  filters: readonly RowFilter[];
  partitionFilters: ReadonlyArray<{ position: number; test: (v: CqlValue) => boolean }>;
}

interface Current {
  token: bigint;
  partitionKey: Uint8Array;
  matches: boolean;
  deletionEntries: StoredEntry[];
  deletions: DeletionMap | null;
  row: StoredEntry[];
  rowKey: Uint8Array | null;
}

function samePartition(c: Current, e: ScanEntry): boolean {
  return c.token === e.token && compareBytes(c.partitionKey, e.partitionKey) === 0;
}

export class ScanRowStream {
  private cur: Current | null = null;

  constructor(private readonly o: ScanStreamOptions) {}

  private inSlice(rowKey: Uint8Array): boolean {
    for (const r of this.o.ranges) if (compareBytes(rowKey, r.start) >= 0 && compareBytes(rowKey, r.end) < 0) return true;
    return false;
  }

  private finishRow(c: Current): ScanEvent | null {
    if (c.rowKey === null) return null;
    const rowKey = c.rowKey;
    const entries = c.row;
    c.row = [];
    c.rowKey = null;
    if (!this.inSlice(rowKey)) return { t: 'row', rowKey, row: null };
    c.deletions ??= deletionMapOf(c.deletionEntries);
    let row: Row | null = null;
    for (const r of readRows(entries, { schema: this.o.schema, nowSec: this.o.nowSec, deletions: c.deletions, filters: this.o.filters })) row = r;
    return { t: 'row', rowKey, row };
  }

  /**
   * Events of one round's entries (ascending storage order). `segmentDone`: no entry follows in
   * this token segment, so the last row and partition are complete.
   */
  *push(entries: readonly ScanEntry[], segmentDone: boolean): Generator<ScanEvent, void, undefined> {
    for (const e of entries) {
      let c = this.cur;
      if (c === null || !samePartition(c, e)) {
        if (c !== null && c.matches) {
          const last = this.finishRow(c);
          if (last) yield last;
        }
        const values = deserializePartitionKey(this.o.schema.partitionKey, e.partitionKey);
        const matches = this.o.partitionFilters.every((f) => f.test(values[f.position]!));
        c = { token: e.token, partitionKey: Buffer.from(e.partitionKey), matches, deletionEntries: [], deletions: null, row: [], rowKey: null };
        this.cur = c;
        yield { t: 'partition', token: e.token, partitionKey: c.partitionKey, values, matches };
      }
      if (!c.matches) continue;
      if (e.suffix[0] !== TAG_ROW) {
        // The deletions region (partition deletion, range tombstones) precedes every row.
        if (c.deletionEntries.length >= MAX_RANGE_TOMBSTONES_PER_READ) throw tooManyRangeTombstones();
        c.deletionEntries.push({ suffix: e.suffix, record: e.record });
        continue;
      }
      const klen = rowKeyLength(e.suffix);
      const rowKey = e.suffix.subarray(0, klen);
      if (c.rowKey !== null && compareBytes(c.rowKey, rowKey) !== 0) {
        const ev = this.finishRow(c);
        if (ev) yield ev;
      }
      if (c.rowKey === null) c.rowKey = Buffer.from(rowKey);
      c.row.push({ suffix: e.suffix, record: e.record });
    }
    if (segmentDone && this.cur !== null) {
      const c = this.cur;
      this.cur = null;
      if (c.matches) {
        const ev = this.finishRow(c);
        if (ev) yield ev;
      }
    }
  }

  /** Drop the rest of the current partition (PER PARTITION LIMIT reached): its rows are no longer decoded. */
  skipPartition(): void {
    if (this.cur !== null) {
      this.cur.matches = false;
      this.cur.row = [];
      this.cur.rowKey = null;
    }
  }
}
