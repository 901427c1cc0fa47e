/**
 * Partition slices in pages: the shard's side (cut a page of stored entries at a row boundary)
 * and the coordinator's side (merge N replicas' pages cell-wise, find stale replicas).
 *
 * Shard side: `readSlicePage(req, iterate)` walks the request's suffix ranges (a clustering IN
 * gives several) in iteration order through `iterate` — the shard passes a function opening a
 * synchronous RocksDB iterator over [prefix + start, prefix + end) — and stops at the first row
 * boundary past `rowLimit` rows or `byteLimit` bytes (always at least one whole row). Rows are
 * counted from the bytes alone (layout.rowKeyLength), dead rows included, so a page of
 * tombstones still advances. `next` is the page's last row key: the following page starts
 * strictly after it.
 *
 * Coordinator side: `mergeSlicePages` is the per-partition analogue of router/scan.ts's
 * mergeScanPages. A replica whose page is not done has examined rows only up to its `next`, so
 * the merge stops at the smallest such `next` (in iteration order) and the next round resumes
 * there. Each key's records reconcile by mergeWideRecords (the cell rule; a counter cell's states
 * join: counter-cell.ts); a replica whose record differs from
 * the reconciled one (or lacks it) gets the reconciled record as a repair, unless that record
 * is purgeable (streaming a purgeable tombstone would undo a purge and resurrect nothing).
 *
 * Pure module: no I/O.
 */
import { invariant } from '../util/errors.js';
import { isPurgeableWide, mergeWideRecords } from './counter-cell.js';
import { DELETIONS_REGION, rowKeyLength } from './layout.js';
import { compareBytes, prefixEnd } from './order-encoding.js';
import { MAX_RANGE_TOMBSTONES_PER_READ, tooManyRangeTombstones, type StoredEntry } from './reader.js';

/** A suffix range [start, end) of one partition. */
export interface SuffixRange {
  start: Uint8Array;
  end: Uint8Array;
}

export const SLICE_LIMITS = Object.freeze({
  /** Rows of one shard page (Cassandra's default page is 5,000 rows). */
  maxRowsPerPage: 5000,
  /** Suffix + record bytes of one shard page (one row may exceed it: a page holds at least one row). */
  maxPageBytes: 4 * 1024 * 1024,
});

export interface SliceRequest {
  /** Row-region suffix ranges, ascending and disjoint. */
  ranges: SuffixRange[];
  reverse: boolean;
  /** Resume strictly after this row key (iteration order); null: from the start. */
  after: Uint8Array | null;
  rowLimit: number;
  byteLimit: number;
  /** Also return the partition's deletions region (the first page of a partition read). */
  withDeletions: boolean;
}

export interface SlicePage {
  /** The deletions region (partition deletion, range tombstones) when asked for, else null. */
  deletions: StoredEntry[] | null;
  /** Row-region entries in iteration order. */
  entries: StoredEntry[];
  /** Last row key of the page when rows may follow; null when the slice is exhausted. */
  next: Uint8Array | null;
}

/** Opens an iterator over the stored entries with suffix in [start, end), ascending or descending. */
export type SliceIterate = (range: SuffixRange, reverse: boolean) => Iterable<StoredEntry>;

/** The request's ranges in iteration order, clipped to what lies strictly after the row `after`. */
export function rangesAfter(ranges: readonly SuffixRange[], after: Uint8Array | null, reverse: boolean): SuffixRange[] {
  const ordered = reverse ? ranges.slice().reverse() : ranges.slice();
  if (after === null) return ordered;
  const out: SuffixRange[] = [];
  if (!reverse) {
    const from = prefixEnd(after);
    invariant(from !== null, 'a row key has a successor');
    for (const r of ordered) {
      if (compareBytes(r.end, from) <= 0) continue;
      out.push(compareBytes(r.start, from) >= 0 ? r : { start: from, end: r.end });
    }
  } else {
    for (const r of ordered) {
      if (compareBytes(r.start, after) >= 0) continue;
      out.push(compareBytes(r.end, after) <= 0 ? r : { start: r.start, end: after });
    }
  }
  return out;
}

/** Shard side: one page of a slice (see the module comment). */
export function readSlicePage(req: SliceRequest, iterate: SliceIterate): SlicePage {
  invariant(req.rowLimit >= 1 && req.byteLimit >= 1, 'a slice page needs positive limits');
  // A peer may ask for more than this node serves in one page: clamp, never grow the page.
  const rowLimit = Math.min(req.rowLimit, SLICE_LIMITS.maxRowsPerPage);
  const byteLimit = Math.min(req.byteLimit, SLICE_LIMITS.maxPageBytes);
  let deletions: StoredEntry[] | null = null;
  if (req.withDeletions) {
    deletions = [];
    for (const e of iterate(DELETIONS_REGION, false)) {
      if (deletions.length > MAX_RANGE_TOMBSTONES_PER_READ) throw tooManyRangeTombstones();
      deletions.push(e);
    }
  }
  const entries: StoredEntry[] = [];
  let rows = 0;
  let bytes = 0;
  let lastKey: Uint8Array | null = null;
  for (const range of rangesAfter(req.ranges, req.after, req.reverse)) {
    for (const e of iterate(range, req.reverse)) {
      const klen = rowKeyLength(e.suffix);
      const key = e.suffix.subarray(0, klen);
      if (lastKey === null || compareBytes(lastKey, key) !== 0) {
        if (rows >= rowLimit || (rows > 0 && bytes >= byteLimit)) return { deletions, entries, next: lastKey };
        rows++;
        lastKey = Buffer.from(key);
      }
      entries.push(e);
      bytes += e.suffix.length + e.record.length;
    }
  }
  return { deletions, entries, next: null };
}

export interface MergedSlice {
  /** Reconciled deletions region (null when the pages did not carry it). */
  deletions: StoredEntry[] | null;
  /** Reconciled row entries up to `bound`, in iteration order. */
  entries: StoredEntry[];
  /** Resume after this row key; null: every replica finished the slice. */
  bound: Uint8Array | null;
  /** Per replica (index of its page): the reconciled entries it lacks, to write back (read repair). */
  repairs: StoredEntry[][];
}

function entryKeyHex(suffix: Uint8Array): string {
  return Buffer.from(suffix.buffer, suffix.byteOffset, suffix.byteLength).toString('hex');
}

function reconcile(
  lists: ReadonlyArray<readonly StoredEntry[]>,
  keep: (e: StoredEntry) => boolean,
  reverse: boolean,
  repairs: StoredEntry[][],
  nowSec: number,
  gcGraceSeconds: number,
): StoredEntry[] {
  const byKey = new Map<string, { suffix: Uint8Array; records: Array<Uint8Array | undefined> }>();
  lists.forEach((list, replica) => {
    for (const e of list) {
      if (!keep(e)) continue;
      const k = entryKeyHex(e.suffix);
      let slot = byKey.get(k);
      if (slot === undefined) {
        slot = { suffix: e.suffix, records: new Array<Uint8Array | undefined>(lists.length) };
        byKey.set(k, slot);
      }
      const prev = slot.records[replica];
      slot.records[replica] = prev === undefined ? e.record : mergeWideRecords(prev, e.record);
    }
  });
  const out: StoredEntry[] = [];
  for (const slot of byKey.values()) {
    let merged: Uint8Array | undefined;
    for (const r of slot.records) if (r !== undefined) merged = merged === undefined ? r : mergeWideRecords(merged, r);
    invariant(merged !== undefined, 'a merged key has a record');
    out.push({ suffix: slot.suffix, record: merged });
    if (isPurgeableWide(merged, nowSec, gcGraceSeconds)) continue;
    for (let i = 0; i < lists.length; i++) {
      const r = slot.records[i];
      if (r === undefined || compareBytes(r, merged) !== 0) repairs[i]!.push({ suffix: slot.suffix, record: merged });
    }
  }
  out.sort((a, b) => (reverse ? compareBytes(b.suffix, a.suffix) : compareBytes(a.suffix, b.suffix)));
  return out;
}

/** Coordinator side: merge one round of replica pages of one slice (see the module comment). */
export function mergeSlicePages(pages: readonly SlicePage[], reverse: boolean, nowSec: number, gcGraceSeconds: number): MergedSlice {
  const dir = (a: Uint8Array, b: Uint8Array): number => (reverse ? compareBytes(b, a) : compareBytes(a, b));
  let bound: Uint8Array | null = null;
  for (const p of pages) if (p.next !== null && (bound === null || dir(p.next, bound) < 0)) bound = p.next;
  const repairs: StoredEntry[][] = pages.map(() => []);
  const withDeletions = pages.every((p) => p.deletions !== null);
  const deletions = withDeletions ? reconcile(pages.map((p) => p.deletions!), () => true, false, repairs, nowSec, gcGraceSeconds) : null;
  const b = bound;
  const keep = b === null ? () => true : (e: StoredEntry) => dir(e.suffix.subarray(0, rowKeyLength(e.suffix)), b) <= 0;
  const entries = reconcile(pages.map((p) => p.entries), keep, reverse, repairs, nowSec, gcGraceSeconds);
  return { deletions, entries, bound, repairs };
}
