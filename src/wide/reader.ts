/**
 * The pure partition reader: a stream of one partition's row-region entries (suffix, record)
 * in storage order (or reverse storage order), plus the partition's deletions, → live rows.
 *
 * It pulls entries lazily and holds one row at a time, so a 100k-row partition streams through
 * in whatever pages the caller feeds it (a generator over shard pages): nothing here
 * materializes the partition.
 *
 * Liveness is Cassandra's: a cell is live when it holds a value at `nowSec` (TTL not passed)
 * and is newer than every deletion covering it (partition deletion, range tombstones, row
 * deletion: `ts <= deletion.ts` is deleted). A row is returned when its marker or any of its
 * cells is live, so a row written by UPDATE (no marker) disappears with its last cell, and a
 * row written by INSERT stays while its marker lives, even with every column null.
 *
 * Pure module: no I/O.
 */
import type { CqlType } from '../cql/ast.js';
import { badRequest } from '../util/errors.js';
import { counterCellValue, isCounterCell } from './counter-cell.js';
import { cellKindOf, cellLocalDeletionTime, cellTimestamp, cellValue, deletionOf, maxDeletion, NO_DELETION, type DeletionTime } from './cell.js';
import { parseRangeTombstoneSuffix, parseRowSuffix, rowKeyLength, TAG_PARTITION_DELETION, TAG_RANGE_TOMBSTONE } from './layout.js';
import { compareBytes, decodeClustering, type ByteRange } from './order-encoding.js';
import type { WideTableSchema } from './schema.js';
import { deserializeValue, type CqlValue } from './values.js';

/** One stored key of a partition: its suffix (after the partition prefix) and its record. */
export interface StoredEntry {
  suffix: Uint8Array;
  record: Uint8Array;
}

/** Bound on the range tombstones one partition read applies (Cassandra fails reads past 100k tombstones). */
export const MAX_RANGE_TOMBSTONES_PER_READ = 100_000;

/** Cassandra's TombstoneOverwhelmingException, as a 400 that names the bound. */
export function tooManyRangeTombstones(): Error {
  return badRequest(`the partition holds more than ${MAX_RANGE_TOMBSTONES_PER_READ} range tombstones; the read was aborted (they are purged gc grace after their deletion)`);
}

/**
 * The deletions of one partition as a function of the clustering key: the partition deletion
 * and the maximum of the range tombstones covering the key, precomputed as disjoint segments
 * (a sweep over the bounds with a max-heap), so a lookup is one binary search.
 */
export class DeletionMap {
  private readonly bounds: Uint8Array[] = [];
  /** deletion of [bounds[i], bounds[i+1]) (the last segment extends to +∞); before bounds[0]: only the partition deletion. */
  private readonly segs: DeletionTime[] = [];

  constructor(
    readonly partition: DeletionTime,
    ranges: ReadonlyArray<{ range: ByteRange; deletion: DeletionTime }>,
  ) {
    if (ranges.length > MAX_RANGE_TOMBSTONES_PER_READ) throw tooManyRangeTombstones();
    if (ranges.length === 0) return;
    const points = new Map<string, Uint8Array>();
    for (const r of ranges) {
      points.set(Buffer.from(r.range.start).toString('hex'), r.range.start);
      if (r.range.end !== null) points.set(Buffer.from(r.range.end).toString('hex'), r.range.end);
    }
    const sorted = [...points.values()].sort(compareBytes);
    const byStart = ranges.slice().sort((a, b) => compareBytes(a.range.start, b.range.start));
    // Max-heap of active ranges by deletion; ended ranges are dropped lazily from the top.
    const heap: Array<{ range: ByteRange; deletion: DeletionTime }> = [];
    const better = (a: DeletionTime, b: DeletionTime): boolean => maxDeletion(a, b) === a && (a.ts !== b.ts || a.ldt !== b.ldt);
    const push = (x: (typeof heap)[number]): void => {
      heap.push(x);
      let i = heap.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!better(heap[i]!.deletion, heap[p]!.deletion)) break;
        [heap[i], heap[p]] = [heap[p]!, heap[i]!];
        i = p;
      }
    };
    const pop = (): void => {
      const last = heap.pop()!;
      if (heap.length === 0) return;
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && better(heap[l]!.deletion, heap[m]!.deletion)) m = l;
        if (r < heap.length && better(heap[r]!.deletion, heap[m]!.deletion)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    };
    let next = 0;
    for (const p of sorted) {
      while (next < byStart.length && compareBytes(byStart[next]!.range.start, p) <= 0) push(byStart[next++]!);
      while (heap.length > 0 && heap[0]!.range.end !== null && compareBytes(heap[0]!.range.end, p) <= 0) pop();
      this.bounds.push(p);
      this.segs.push(heap.length > 0 ? heap[0]!.deletion : NO_DELETION);
    }
  }

  /** The deletion covering a row with clustering key bytes `ck`. */
  at(ck: Uint8Array): DeletionTime {
    let lo = 0;
    let hi = this.bounds.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareBytes(this.bounds[mid]!, ck) <= 0) lo = mid + 1;
      else hi = mid;
    }
    return lo === 0 ? this.partition : maxDeletion(this.partition, this.segs[lo - 1]!);
  }
}

/** Builds the DeletionMap from the partition's deletions-region entries (suffixes 01 and 02...). */
export function deletionMapOf(entries: Iterable<StoredEntry>): DeletionMap {
  let partition = NO_DELETION;
  const ranges: Array<{ range: ByteRange; deletion: DeletionTime }> = [];
  for (const e of entries) {
    const tag = e.suffix[0];
    if (tag === TAG_PARTITION_DELETION && e.suffix.length === 1) partition = maxDeletion(partition, deletionOf(e.record));
    else if (tag === TAG_RANGE_TOMBSTONE) ranges.push({ range: parseRangeTombstoneSuffix(e.suffix), deletion: deletionOf(e.record) });
    else throw new Error(`corrupt partition: unexpected entry with tag ${tag} in the deletions region`);
  }
  return new DeletionMap(partition, ranges);
}

/** A predicate of ALLOW FILTERING on a clustering or regular column. */
export interface RowFilter {
  column: string;
  kind: 'clustering' | 'regular';
  /** Clustering position (kind 'clustering'). */
  position: number;
  /** True when the row's value (null when absent) passes. */
  test(value: CqlValue | null): boolean;
}

export interface ReadOptions {
  schema: WideTableSchema;
  nowSec: number;
  deletions: DeletionMap;
  filters?: readonly RowFilter[];
}

export interface Row {
  /** Row key (tag + clustering key bytes): where a page resumes after this row. */
  rowKey: Uint8Array;
  clustering: CqlValue[];
  /** Live regular columns by name. */
  cells: Map<string, CqlValue>;
}

interface PendingRow {
  rowKey: Uint8Array;
  marker: Uint8Array | null;
  rowDeletion: DeletionTime;
  cells: Array<{ name: Uint8Array; record: Uint8Array }>;
}

/** Is the record live at `nowSec` and newer than `d`? */
function liveAfter(record: Uint8Array, d: DeletionTime, nowSec: number): boolean {
  // A counter cell's state has no timestamp: any deletion of its row hides it (Cassandra: a
  // deleted counter stays deleted). Counter tables take no DELETE here, so none exists yet.
  if (isCounterCell(record)) return d.ts === NO_DELETION.ts;
  const kind = cellKindOf(record);
  if (kind === 'tombstone') return false;
  if (kind === 'expiring' && nowSec >= cellLocalDeletionTime(record, kind)) return false;
  return cellTimestamp(record) > d.ts;
}

/** A counter cell's value; its state under a column of another type is corrupt (an error, not a guess). */
function counterValue(type: CqlType, column: string, record: Uint8Array): CqlValue {
  if (type !== 'counter') throw new Error(`corrupt cell: a counter state under column ${column} of type ${type}`);
  return counterCellValue(record);
}

function finishRow(p: PendingRow, o: ReadOptions, types: Map<string, CqlType>): Row | null {
  const ck = p.rowKey.subarray(1);
  const d = maxDeletion(o.deletions.at(ck), p.rowDeletion);
  let live = p.marker !== null && liveAfter(p.marker, d, o.nowSec);
  const cells = new Map<string, CqlValue>();
  for (const c of p.cells) {
    const name = Buffer.from(c.name).toString('utf8');
    const type = types.get(name);
    if (type === undefined) continue; // a column this schema does not know (yet): Cassandra skips it too
    if (!liveAfter(c.record, d, o.nowSec)) continue;
    cells.set(name, isCounterCell(c.record) ? counterValue(type, name, c.record) : deserializeValue(type, cellValue(c.record)));
    live = true;
  }
  if (!live) return null;
  const clustering = decodeClustering(o.schema.clustering, ck);
  if (o.filters !== undefined) {
    for (const f of o.filters) if (!f.test(f.kind === 'clustering' ? clustering[f.position]! : (cells.get(f.column) ?? null))) return null;
  }
  return { rowKey: p.rowKey, clustering, cells };
}

/**
 * Live rows of the entries (row region only, in storage order or its reverse), lazily: the
 * generator pulls entries only as rows are consumed.
 */
export function* readRows(entries: Iterable<StoredEntry>, o: ReadOptions): Generator<Row, void, undefined> {
  const types = new Map(o.schema.regular.map((c) => [c.name, c.type] as const));
  let cur: PendingRow | null = null;
  for (const e of entries) {
    const klen = rowKeyLength(e.suffix);
    if (cur === null || cur.rowKey.length !== klen || compareBytes(cur.rowKey, e.suffix.subarray(0, klen)) !== 0) {
      if (cur !== null) {
        const row = finishRow(cur, o, types);
        if (row !== null) yield row;
      }
      // A copy: the entries' buffers may be reused by their source once we move on.
      cur = { rowKey: Buffer.from(e.suffix.subarray(0, klen)), marker: null, rowDeletion: NO_DELETION, cells: [] };
    }
    const parsed = parseRowSuffix(e.suffix);
    if (parsed.kind === 'marker') cur.marker = e.record;
    else if (parsed.kind === 'rowDeletion') cur.rowDeletion = deletionOf(e.record);
    else cur.cells.push({ name: parsed.name!, record: e.record });
  }
  if (cur !== null) {
    const row = finishRow(cur, o, types);
    if (row !== null) yield row;
  }
}
