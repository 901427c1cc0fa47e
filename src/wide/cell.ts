/**
 * Cell records: the value stored under every wide-column storage key (a regular cell, a row
 * marker, a row / range / partition deletion), their binary codec, and how two records of one
 * key reconcile.
 *
 * Layout (big-endian):
 *
 *   0        header: format (high nibble, 1) | flags (low nibble: 1 = tombstone, 2 = expiring)
 *   1..8     write timestamp, µs since the epoch, signed 64-bit (a safe integer here)
 *   tombstone: 9..12  local deletion time, s (when the delete was issued; starts gc grace)
 *   expiring:  9..12  TTL, s;  13..16  local expiration time, s
 *   rest     value bytes (none for a tombstone)
 *
 * Everything a shard must decide without the schema is in fixed-offset header fields: the
 * merge of two records of one key (compareCellRecords), whether a record is dead at a given
 * time, and whether it may be purged (isPurgeable). The value bytes are opaque to it.
 *
 * Reconciliation is Cassandra's (Cells.reconcile / resolveRegular, 4.x): the higher timestamp
 * wins; on a tie an expiring-or-tombstone cell beats a live one (CASSANDRA-14592: the outcome
 * must not depend on when the reconciliation runs), a tombstone beats an expiring cell, then
 * the later local deletion/expiration time, then the larger value bytes. We add a last rule,
 * the larger TTL, so that the order is total: two records compare equal only when they are
 * byte-identical, which makes merge (the maximum) commutative, associative and idempotent.
 *
 * A deletion (row, range, partition) is a tombstone record; it shadows every cell of its
 * scope whose timestamp is ≤ its own (Cassandra's DeletionTime.deletes: the tie goes to the
 * delete).
 *
 * Pure module: no I/O.
 */
import { invariant } from '../util/errors.js';

export const CELL_FORMAT = 1;
const FLAG_TOMBSTONE = 1;
const FLAG_EXPIRING = 2;
const HEADER_BYTES = 9;

export type CellKind = 'live' | 'expiring' | 'tombstone';

export interface Cell {
  kind: CellKind;
  /** Write timestamp, µs. */
  ts: number;
  /** Tombstone: local deletion time (s). Expiring: local expiration time (s). Live: 0 (unused). */
  ldt: number;
  /** Expiring: the TTL (s); else 0. */
  ttl: number;
  /** Empty for tombstones. */
  value: Uint8Array;
}

const EMPTY = new Uint8Array(0);

function writeTs(b: Buffer, ts: number): void {
  invariant(Number.isSafeInteger(ts), `cell timestamp must be a safe integer, got ${ts}`);
  b.writeBigInt64BE(BigInt(ts), 1);
}

export function encodeCell(c: Cell): Buffer {
  switch (c.kind) {
    case 'live': {
      const b = Buffer.allocUnsafe(HEADER_BYTES + c.value.length);
      b[0] = CELL_FORMAT << 4;
      writeTs(b, c.ts);
      b.set(c.value, HEADER_BYTES);
      return b;
    }
    case 'tombstone': {
      invariant(c.value.length === 0, 'a tombstone has no value');
      const b = Buffer.allocUnsafe(HEADER_BYTES + 4);
      b[0] = (CELL_FORMAT << 4) | FLAG_TOMBSTONE;
      writeTs(b, c.ts);
      b.writeUInt32BE(c.ldt, HEADER_BYTES);
      return b;
    }
    case 'expiring': {
      invariant(c.ttl > 0, 'an expiring cell has a positive TTL');
      const b = Buffer.allocUnsafe(HEADER_BYTES + 8 + c.value.length);
      b[0] = (CELL_FORMAT << 4) | FLAG_EXPIRING;
      writeTs(b, c.ts);
      b.writeUInt32BE(c.ttl, HEADER_BYTES);
      b.writeUInt32BE(c.ldt, HEADER_BYTES + 4);
      b.set(c.value, HEADER_BYTES + 8);
      return b;
    }
  }
}

function view(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** The kind of a record, checking its header and size; throws on anything encodeCell cannot produce. */
export function cellKindOf(b: Uint8Array): CellKind {
  if (b.length < HEADER_BYTES) throw new Error(`corrupt cell: ${b.length} bytes`);
  const h = b[0]!;
  if (h >> 4 !== CELL_FORMAT) throw new Error(`corrupt cell: unknown format ${h >> 4}`);
  const flags = h & 0x0f;
  if (flags === 0) return 'live';
  if (flags === FLAG_TOMBSTONE) {
    if (b.length !== HEADER_BYTES + 4) throw new Error('corrupt cell: tombstone of the wrong size');
    return 'tombstone';
  }
  if (flags === FLAG_EXPIRING) {
    if (b.length < HEADER_BYTES + 8) throw new Error('corrupt cell: truncated expiring cell');
    return 'expiring';
  }
  throw new Error(`corrupt cell: flags ${flags}`);
}

export function cellTimestamp(b: Uint8Array): number {
  const ts = view(b).readBigInt64BE(1);
  const n = Number(ts);
  if (!Number.isSafeInteger(n)) throw new Error('corrupt cell: timestamp out of range');
  return n;
}

/** Local deletion (tombstone) or expiration (expiring) time in seconds; 0 for a live cell. */
export function cellLocalDeletionTime(b: Uint8Array, kind: CellKind = cellKindOf(b)): number {
  if (kind === 'tombstone') return view(b).readUInt32BE(HEADER_BYTES);
  if (kind === 'expiring') return view(b).readUInt32BE(HEADER_BYTES + 4);
  return 0;
}

function cellTtl(b: Uint8Array, kind: CellKind): number {
  return kind === 'expiring' ? view(b).readUInt32BE(HEADER_BYTES) : 0;
}

function valueOffset(kind: CellKind): number {
  return kind === 'expiring' ? HEADER_BYTES + 8 : kind === 'tombstone' ? HEADER_BYTES + 4 : HEADER_BYTES;
}

/** The value bytes (a view into the record). */
export function cellValue(b: Uint8Array, kind: CellKind = cellKindOf(b)): Uint8Array {
  return b.subarray(valueOffset(kind));
}

export function decodeCell(b: Uint8Array): Cell {
  const kind = cellKindOf(b);
  return { kind, ts: cellTimestamp(b), ldt: cellLocalDeletionTime(b, kind), ttl: cellTtl(b, kind), value: kind === 'tombstone' ? EMPTY : cellValue(b, kind) };
}

const RANK: Record<CellKind, number> = { live: 0, expiring: 1, tombstone: 2 };

/**
 * Reconciliation order of two records of one key (positive: a wins), from their bytes. Total:
 * 0 only for identical records.
 */
export function compareCellRecords(a: Uint8Array, b: Uint8Array): number {
  if (a === b) return 0;
  const ta = cellTimestamp(a);
  const tb = cellTimestamp(b);
  if (ta !== tb) return ta > tb ? 1 : -1;
  const ka = cellKindOf(a);
  const kb = cellKindOf(b);
  if (ka !== kb) return RANK[ka] - RANK[kb];
  if (ka !== 'live') {
    const la = cellLocalDeletionTime(a, ka);
    const lb = cellLocalDeletionTime(b, kb);
    if (la !== lb) return la > lb ? 1 : -1;
  }
  const v = Buffer.compare(cellValue(a, ka), cellValue(b, kb));
  if (v !== 0) return v;
  const tta = cellTtl(a, ka);
  const ttb = cellTtl(b, kb);
  return tta === ttb ? 0 : tta > ttb ? 1 : -1;
}

/** The reconciled record of two records of one key: one of the two, never a new one. */
export function mergeCellRecords(a: Uint8Array, b: Uint8Array): Uint8Array {
  return compareCellRecords(a, b) >= 0 ? a : b;
}

/** Does the record hold a value at `nowSec`? (live, or expiring and not yet expired) */
export function isLiveAt(b: Uint8Array, nowSec: number): boolean {
  const kind = cellKindOf(b);
  if (kind === 'live') return true;
  if (kind === 'expiring') return nowSec < cellLocalDeletionTime(b, kind);
  return false;
}

/**
 * May a shard drop this record at `nowSec`? A tombstone once gc grace has passed since its
 * deletion time; an expired cell once gc grace has passed since it was written (as Cassandra:
 * an expired cell is a tombstone dated at its write, expiry − TTL, since every replica that
 * has it has the TTL too). Live cells never.
 */
export function isPurgeable(b: Uint8Array, nowSec: number, gcGraceSeconds: number): boolean {
  const kind = cellKindOf(b);
  if (kind === 'live') return false;
  const ldt = cellLocalDeletionTime(b, kind);
  if (kind === 'tombstone') return ldt + gcGraceSeconds < nowSec;
  return nowSec >= ldt && ldt - cellTtl(b, kind) + gcGraceSeconds < nowSec;
}

/** A deletion (row, range or partition): everything of its scope written at or before `ts` is deleted. */
export interface DeletionTime {
  ts: number;
  ldt: number;
}

export const NO_DELETION: DeletionTime = Object.freeze({ ts: Number.MIN_SAFE_INTEGER, ldt: 0 });

export function deletionOf(record: Uint8Array): DeletionTime {
  const kind = cellKindOf(record);
  if (kind !== 'tombstone') throw new Error('corrupt deletion: not a tombstone record');
  return { ts: cellTimestamp(record), ldt: cellLocalDeletionTime(record, kind) };
}

export function maxDeletion(a: DeletionTime, b: DeletionTime): DeletionTime {
  if (a.ts !== b.ts) return a.ts > b.ts ? a : b;
  return a.ldt >= b.ldt ? a : b;
}

/** Does the deletion shadow a cell written at `ts`? */
export function deletes(d: DeletionTime, ts: number): boolean {
  return ts <= d.ts;
}

/** A tombstone record for a deletion issued at `nowSec` with write timestamp `ts`. */
export function tombstoneRecord(ts: number, nowSec: number): Buffer {
  return encodeCell({ kind: 'tombstone', ts, ldt: nowSec, ttl: 0, value: EMPTY });
}

/** A live or expiring record (ttl 0 = no expiry). */
export function valueRecord(ts: number, value: Uint8Array, ttlSeconds: number, nowSec: number): Buffer {
  return ttlSeconds > 0
    ? encodeCell({ kind: 'expiring', ts, ldt: nowSec + ttlSeconds, ttl: ttlSeconds, value })
    : encodeCell({ kind: 'live', ts, ldt: 0, ttl: 0, value });
}

/**
 * A coordinator's write timestamps in µs, strictly increasing (Cassandra's
 * ClientState.getTimestamp): two writes in one millisecond still order as issued.
 */
export class MicrosClock {
  private last = 0;
  constructor(private readonly nowMs: () => number = Date.now) {}
  next(): number {
    const t = Math.max(Math.floor(this.nowMs() * 1000), this.last + 1);
    this.last = t;
    return t;
  }
}
