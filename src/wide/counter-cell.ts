/**
 * Counter columns of wide-column tables (CQL `counter`, `UPDATE t SET c = c + 1`): the record
 * stored under a counter cell's key is not a cell record (last-write-wins cannot add up concurrent
 * increments) but the state of the convergent counter of crdt tables (src/crdt/counter.ts, a
 * PN-counter with one entry per actor that coordinated an increment), in its canonical encoding,
 * first byte CRDT_STATE_FORMAT (0x20; a cell record's first byte is 0x10..0x1f).
 *
 * A wide-column key therefore holds one of two kinds of record, and every place that merges,
 * validates or reads a wide-column record goes through this module:
 *
 *   - two counter states merge by the counter's join (commutative, associative, idempotent);
 *   - two cell records by the cell rule (cell.ts mergeCellRecords, a total order);
 *   - a counter state and a cell record (which the planner never writes under one key: a counter
 *     table holds only counter columns, and it takes neither INSERT, DELETE nor TTL) merge to the
 *     counter state: cells rank below every counter state, so the merge stays a join (the ordinal
 *     sum of the two orders) and replicas still converge, whatever order stray input arrives in.
 *
 * A counter state is never purged and never dead (it has no tombstone), like a crdt table's state.
 *
 * Pure module: no I/O.
 */
import { CRDT_STATE_FORMAT, crdtValue, decodeCrdt, joinEncoded, peekStateType } from '../crdt/index.js';
import { cellKindOf, isPurgeable as isPurgeableCell, mergeCellRecords } from './cell.js';

/** Is this wide-column record a counter state (rather than a cell record)? */
export function isCounterCell(record: Uint8Array): boolean {
  return record.length > 0 && record[0] === CRDT_STATE_FORMAT;
}

/** Check that `record` is a well-formed wide-column record: a cell record, or a counter state; throws otherwise. */
export function checkWideRecord(record: Uint8Array): void {
  if (!isCounterCell(record)) {
    cellKindOf(record);
    return;
  }
  const s = decodeCrdt(record);
  if (s.type !== 'counter') throw new Error(`corrupt wide-column record: a ${s.type} state (only counter states are stored in wide-column tables)`);
}

/**
 * The merge of two records of one wide-column key (see the module comment): one of the two when
 * it covers the other (the same object), else the counters' join.
 */
export function mergeWideRecords(a: Uint8Array, b: Uint8Array): Uint8Array {
  const ca = isCounterCell(a);
  const cb = isCounterCell(b);
  if (ca && cb) {
    if (peekStateType(a) !== 'counter' || peekStateType(b) !== 'counter') throw new Error('corrupt wide-column record: a CRDT state that is not a counter');
    return joinEncoded(a, b);
  }
  if (ca !== cb) return ca ? a : b;
  return mergeCellRecords(a, b);
}

/** May the sweep drop this record at `nowSec`? Never a counter state; a cell by Cassandra's rule (cell.ts). */
export function isPurgeableWide(record: Uint8Array, nowSec: number, gcGraceSeconds: number): boolean {
  return !isCounterCell(record) && isPurgeableCell(record, nowSec, gcGraceSeconds);
}

/** The value of a counter cell (a CQL counter is a bigint). Throws on a state of another type. */
export function counterCellValue(record: Uint8Array): bigint {
  const s = decodeCrdt(record);
  if (s.type !== 'counter') throw new Error(`corrupt counter cell: a ${s.type} state`);
  return BigInt(crdtValue(s) as number);
}
