/**
 * Where each piece of a wide-column partition is stored: the storage-key *suffix* after the
 * partition's prefix (`token | table id | partition key | 00 00`, built by src/storage/keys.ts).
 *
 *   suffix                                   record (cell.ts)        what
 *   01                                       tombstone               partition deletion
 *   02 | esc(start) 00 00 | 00               tombstone               range tombstone [start, +∞)
 *   02 | esc(start) 00 00 | 01 | end         tombstone               range tombstone [start, end)
 *   10 | ck | 00                             live / expiring         row marker (INSERT)
 *   10 | ck | name | len                     any                     cell of column `name`
 *   10 | ck | FF                             tombstone               row deletion
 *
 * `ck` is the order-preserving clustering key (order-encoding.ts; empty without clustering
 * columns), `name` the column's UTF-8 name (1..64 bytes, no NUL) and `len` its length in one
 * byte; esc() doubles 0x00 as 00 FF. Range tombstone bounds are clustering-key bytes.
 *
 * Why this shape:
 *  - Deletions of wider scope sort first (01, 02 < 10): a reader going forward meets them
 *    before the rows, and one seek to [01, 10) fetches them all for a reverse read.
 *  - Full clustering keys are prefix-free, so a row's entries are contiguous and rows sort in
 *    clustering order; a clustering range is the suffix range [10|start, 10|end).
 *  - The trailing length byte lets anyone holding only the bytes (the shard) find where the
 *    row key ends (rowKeyLength) and so cut pages at row boundaries and count rows, with no
 *    schema. 0x00 (marker) and 0xFF (row deletion) cannot be name lengths.
 *  - Every entry, deletions included, is one key with one record merged by the same rule, so
 *    writes, read repair, hints, streaming and Merkle digests treat them all alike.
 *
 * Pure module: no I/O.
 */
import { badRequest, invariant } from '../util/errors.js';
import { compareBytes, prefixEnd, type ByteRange } from './order-encoding.js';

export const TAG_PARTITION_DELETION = 0x01;
export const TAG_RANGE_TOMBSTONE = 0x02;
export const TAG_ROW = 0x10;
const MARKER = 0x00;
const ROW_DELETION = 0xff;
/** Column names are at most this many UTF-8 bytes (the length byte; 0xFF is reserved). */
export const MAX_COLUMN_NAME_BYTES = 64;

export type RowEntryKind = 'marker' | 'cell' | 'rowDeletion';

export const PARTITION_DELETION_SUFFIX: Uint8Array = Uint8Array.of(TAG_PARTITION_DELETION);

function rowEntry(ck: Uint8Array, tail: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + ck.length + tail.length);
  out[0] = TAG_ROW;
  out.set(ck, 1);
  out.set(tail, 1 + ck.length);
  return out;
}

export function markerSuffix(ck: Uint8Array): Buffer {
  return rowEntry(ck, Uint8Array.of(MARKER));
}

export function rowDeletionSuffix(ck: Uint8Array): Buffer {
  return rowEntry(ck, Uint8Array.of(ROW_DELETION));
}

export function columnNameBytes(name: string): Buffer {
  const b = Buffer.from(name, 'utf8');
  if (b.length === 0 || b.length > MAX_COLUMN_NAME_BYTES || b.includes(0)) {
    throw badRequest(`column name must be 1-${MAX_COLUMN_NAME_BYTES} UTF-8 bytes without NUL: ${JSON.stringify(name)}`);
  }
  return b;
}

export function cellSuffix(ck: Uint8Array, name: string | Uint8Array): Buffer {
  const nb = typeof name === 'string' ? columnNameBytes(name) : name;
  const tail = Buffer.allocUnsafe(nb.length + 1);
  tail.set(nb, 0);
  tail[nb.length] = nb.length;
  return rowEntry(ck, tail);
}

/** Is this suffix in the row region (a marker, a cell or a row deletion)? */
export function isRowSuffix(suffix: Uint8Array): boolean {
  return suffix.length >= 2 && suffix[0] === TAG_ROW;
}

/**
 * Bytes of the row key (tag + clustering key) at the start of a row-region suffix: entries of
 * one row share exactly this prefix. Throws on a suffix no row entry has.
 */
export function rowKeyLength(suffix: Uint8Array): number {
  invariant(isRowSuffix(suffix), 'not a row-region suffix');
  const last = suffix[suffix.length - 1]!;
  if (last === MARKER || last === ROW_DELETION) return suffix.length - 1;
  const n = suffix.length - 1 - last;
  if (last > MAX_COLUMN_NAME_BYTES || n < 1) throw new Error('corrupt row suffix: bad column name length');
  return n;
}

export interface ParsedRowSuffix {
  kind: RowEntryKind;
  /** The clustering key bytes (a view). */
  ck: Uint8Array;
  /** The column name bytes (cells only; a view). */
  name: Uint8Array | null;
}

export function parseRowSuffix(suffix: Uint8Array): ParsedRowSuffix {
  const end = rowKeyLength(suffix);
  const last = suffix[suffix.length - 1]!;
  const ck = suffix.subarray(1, end);
  if (last === MARKER) return { kind: 'marker', ck, name: null };
  if (last === ROW_DELETION) return { kind: 'rowDeletion', ck, name: null };
  return { kind: 'cell', ck, name: suffix.subarray(end, suffix.length - 1) };
}

/** The suffix range of the rows whose clustering keys lie in `r` (end null → the end of the row region). */
export function rowRegionBounds(r: ByteRange): { start: Buffer; end: Buffer } {
  const start = Buffer.concat([Uint8Array.of(TAG_ROW), r.start]);
  const end = r.end === null ? Buffer.of(TAG_ROW + 1) : Buffer.concat([Uint8Array.of(TAG_ROW), r.end]);
  return { start, end };
}

/** Suffix bounds of the partition's deletions (partition deletion and range tombstones). */
export const DELETIONS_REGION: Readonly<{ start: Uint8Array; end: Uint8Array }> = Object.freeze({
  start: Uint8Array.of(TAG_PARTITION_DELETION),
  end: Uint8Array.of(TAG_ROW),
});

/** Where a page resumes after the row with key `rowKey` (tag + ck): ascending start (inclusive) / descending end (exclusive). */
export function resumeAfterRow(rowKey: Uint8Array, reverse: boolean): { start?: Buffer; end?: Buffer } {
  if (reverse) return { end: Buffer.from(rowKey) };
  const e = prefixEnd(rowKey);
  invariant(e !== null, 'a row key starts with the row tag, so it has a successor');
  return { start: e };
}

export function rangeTombstoneSuffix(r: ByteRange): Buffer {
  const parts: number[] = [TAG_RANGE_TOMBSTONE];
  for (const c of r.start) {
    parts.push(c);
    if (c === 0) parts.push(0xff);
  }
  parts.push(0, 0);
  if (r.end === null) parts.push(0);
  else {
    parts.push(1);
    for (const c of r.end) parts.push(c);
  }
  return Buffer.from(parts);
}

export function parseRangeTombstoneSuffix(s: Uint8Array): ByteRange {
  if (s[0] !== TAG_RANGE_TOMBSTONE) throw new Error('corrupt range tombstone key: wrong tag');
  const start: number[] = [];
  let i = 1;
  for (;;) {
    if (i + 1 >= s.length) throw new Error('corrupt range tombstone key: unterminated start');
    const c = s[i]!;
    if (c !== 0) {
      start.push(c);
      i++;
      continue;
    }
    const e = s[i + 1]!;
    if (e === 0) {
      i += 2;
      break;
    }
    if (e !== 0xff) throw new Error('corrupt range tombstone key: bad escape');
    start.push(0);
    i += 2;
  }
  const kind = s[i];
  let r: ByteRange;
  if (kind === 0 && i + 1 === s.length) r = { start: Buffer.from(start), end: null };
  else if (kind === 1) r = { start: Buffer.from(start), end: Buffer.from(s.subarray(i + 1)) };
  else throw new Error('corrupt range tombstone key: bad end');
  if (r.end !== null && compareBytes(r.start, r.end) >= 0) throw new Error('corrupt range tombstone key: empty range');
  return r;
}
