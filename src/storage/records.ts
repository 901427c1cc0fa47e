/**
 * Stored records of either kind, as the machinery shared by every table sees them: the shard's
 * merge of an incoming record into a stored one, the tombstone sweep's questions (may this record
 * ever be purged, may it be purged now), and repair's equality. Two record families share the
 * storage, told apart by their first byte:
 *
 *   - version sets of key-value tables (src/versions/record.ts): byte 0 is RECORD_FORMAT (1);
 *   - states of convergent data types in crdt tables (src/crdt/codec.ts): byte 0 is
 *     CRDT_STATE_FORMAT (0x20), merged with the type's join (`joinEncoded`, which returns the
 *     stored bytes themselves when the incoming state adds nothing);
 *   - cell records of wide-column tables (src/wide/cell.ts): byte 0 is CELL_FORMAT << 4 | flags
 *     (0x10, 0x11, 0x12). A counter column's cell holds a counter state instead (family crdt by
 *     its byte, merged in mode `cell` by src/wide/counter-cell.ts: counter states join).
 *
 * Merging needs the table's mode (vclock and lww version sets look alike), so writes carry it; the
 * sweep and the dead-record index only need the bytes. Both encodings are canonical (equal
 * contents ⇔ equal bytes), so "did the merge change anything" and "do two replicas agree" are
 * byte comparisons, and a Merkle digest of the stored bytes covers cells and tombstones alike.
 *
 * Pure module: no I/O, safe in worker threads (version-set merges need `initVersions()` only for
 * digests, not here).
 */
import type { TableMode } from '../config/config.js';
import { CRDT_STATE_FORMAT, decodeCrdt, joinEncoded } from '../crdt/index.js';
import { CELL_FORMAT, cellKindOf, isPurgeable as isPurgeableCell } from '../wide/cell.js';
import { checkWideRecord, mergeWideRecords } from '../wide/counter-cell.js';
import { decodeRecord, encodeRecord, isDead, isDeadRecord, mergeVersions, purgeableTombstones, RECORD_FORMAT, versionsEqual } from '../versions/index.js';

export type RecordFamily = 'versions' | 'crdt' | 'cell';

/** Which codec wrote a stored record (from its first byte); throws on anything else. */
export function recordFamily(record: Uint8Array): RecordFamily {
  const b = record[0];
  if (b === RECORD_FORMAT) return 'versions';
  if (b === CRDT_STATE_FORMAT) return 'crdt';
  if (b !== undefined && b >> 4 === CELL_FORMAT) return 'cell';
  throw new Error(`corrupt record: unknown first byte ${b === undefined ? '(empty)' : `0x${b.toString(16)}`}`);
}

/** Check that `record` is a well-formed record of a table with `mode` (input from a peer or a client path). */
export function validateRecord(mode: TableMode, record: Uint8Array): void {
  if (mode === 'cell') checkWideRecord(record);
  else if (mode === 'crdt') decodeCrdt(record);
  else decodeRecord(record);
}

/** True when stored bytes are a CRDT state (never dead, never purged: CRDT keys have no deletes yet). */
export function isCrdtState(record: Uint8Array): boolean {
  return record.length > 0 && record[0] === CRDT_STATE_FORMAT;
}

/**
 * The record to store after merging `incoming` into `stored` (undefined: nothing stored yet).
 * Returns `stored` itself (the same object) when the merge changes nothing, so callers can tell a
 * no-op write by identity. Throws on a record that is not of the mode's family.
 */
export function mergeStoredRecords(mode: TableMode, stored: Uint8Array | undefined, incoming: Uint8Array, maxSiblings: number): Uint8Array {
  if (mode === 'cell') {
    checkWideRecord(incoming);
    if (stored === undefined) return incoming;
    const m = mergeWideRecords(stored, incoming);
    return m === stored || Buffer.compare(m, stored) === 0 ? stored : m;
  }
  if (mode === 'crdt') {
    if (stored === undefined) {
      decodeCrdt(incoming); // validated like any merge input: nothing undecodable is stored
      return incoming;
    }
    return joinEncoded(stored, incoming);
  }
  const inc = decodeRecord(incoming);
  if (stored === undefined) return encodeRecord(mergeVersions(mode, [], inc, maxSiblings));
  const before = decodeRecord(stored);
  const merged = mergeVersions(mode, before, inc, maxSiblings);
  return versionsEqual(merged, before) ? stored : encodeRecord(merged);
}

/**
 * May the sweep ever purge this record (a tombstone, or values that expire)? The shard's
 * dead-record index holds exactly the keys whose records answer true.
 */
export function isSweepCandidate(record: Uint8Array): boolean {
  const family = recordFamily(record);
  if (family === 'crdt') return false;
  if (family === 'cell') return cellKindOf(record) !== 'live';
  return isDeadRecord(record);
}

/**
 * May the sweep drop this record now? Version sets: every version is a tombstone or expired and
 * the newest is older than the grace period. Cells: Cassandra's rule (cell.ts isPurgeable).
 */
export function isPurgeableRecord(record: Uint8Array, nowMs: number, gcGraceSeconds: number): boolean {
  const family = recordFamily(record);
  if (family === 'crdt') return false;
  if (family === 'cell') return isPurgeableCell(record, Math.floor(nowMs / 1000), gcGraceSeconds);
  const versions = decodeRecord(record);
  return isDead(versions) && purgeableTombstones(versions, nowMs * 1000, gcGraceSeconds * 1_000_000);
}

/** Equal records (both encodings are canonical, so this is byte equality). */
export function sameRecord(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || (a.length === b.length && Buffer.compare(a, b) === 0);
}
