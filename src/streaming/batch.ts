/**
 * Streamed batches: the stored records of one piece of a token range, as they cross the peer port
 * (source -> driver -> target). A batch is bounded (STREAM_LIMITS) and checksummed: xxh64 over
 * every row's key and record with their lengths, computed where the rows were read and checked
 * where they are written, so a batch mangled anywhere between the two RocksDB instances is refused
 * rather than stored. Pure.
 */
import type { TableMode } from '../config/config.js';
import { xxh64Incremental } from '../ring/hash.js';
import { MIN_STORAGE_KEY_BYTES } from '../storage/keys.js';
import { RingkvError } from '../util/errors.js';

export const STREAM_LIMITS = Object.freeze({
  /** Key + record bytes of one streamed batch (one fetch from all of a task's sources, one apply). */
  streamBatchBytesMax: 1024 * 1024,
  /** Rows of one streamed batch. */
  streamBatchRowsMax: 16_384,
  /** Range tasks streamed at once by one driver. */
  streamTasksInFlightMax: 4,
  /** Table entries a batch may name (one per table id among its rows). */
  streamBatchTablesMax: 1024,
});

/** Sources of one task at most: the replicas of a range (MAX_REPLICAS). */
const MAX_SOURCES = 5;

/** A table's merge mode as a stream batch names it (`cell`: a wide-column table's cell records; `crdt`: a crdt table's states, joined like any record). */
export type ConflictModeName = TableMode;

export interface StreamRow {
  key: Uint8Array;
  record: Uint8Array;
}

/** A batch as it travels: rows flattened [key, record, key, record, ...] (fewer msgpack objects). */
export interface WireBatch {
  rows: Uint8Array[];
  /** Conflict mode of each table id (hex) among the rows, as the sending node knows it. */
  tables: Array<[string, ConflictModeName]>;
  checksum: string;
}

const lenBuf = new Uint8Array(4);
const lenView = new DataView(lenBuf.buffer);

/** xxh64 over (u32 length, bytes) of every key and record, in order. */
export function batchChecksum(rows: readonly StreamRow[]): string {
  const h = xxh64Incremental();
  for (const r of rows) {
    lenView.setUint32(0, r.key.length);
    h.update(lenBuf);
    h.update(r.key);
    lenView.setUint32(0, r.record.length);
    h.update(lenBuf);
    h.update(r.record);
  }
  return h.digestHex();
}

export function encodeBatch(rows: readonly StreamRow[], tables: Array<[string, ConflictModeName]>): WireBatch {
  const flat: Uint8Array[] = new Array<Uint8Array>(rows.length * 2);
  rows.forEach((r, i) => {
    flat[2 * i] = r.key;
    flat[2 * i + 1] = r.record;
  });
  return { rows: flat, tables, checksum: batchChecksum(rows) };
}

/**
 * Validate a batch from a peer and return its rows; throws bad_request (naming what is wrong) for a
 * malformed one and `conflict` for a checksum mismatch. Nothing is written from a refused batch.
 */
export function decodeBatch(x: unknown): { rows: StreamRow[]; tables: Map<string, ConflictModeName> } {
  if (typeof x !== 'object' || x === null) throw new RingkvError('bad_request', 'stream batch must be an object');
  const b = x as Partial<Record<keyof WireBatch, unknown>>;
  if (!Array.isArray(b.rows) || b.rows.length % 2 !== 0 || b.rows.length > 2 * STREAM_LIMITS.streamBatchRowsMax) {
    throw new RingkvError('bad_request', `stream batch rows must be [key, record] pairs, at most ${STREAM_LIMITS.streamBatchRowsMax}`);
  }
  const rows: StreamRow[] = [];
  let bytes = 0;
  for (let i = 0; i < b.rows.length; i += 2) {
    const key: unknown = b.rows[i];
    const record: unknown = b.rows[i + 1];
    if (!(key instanceof Uint8Array) || key.length < MIN_STORAGE_KEY_BYTES) throw new RingkvError('bad_request', `stream batch row ${i / 2}: key is not a storage key`);
    if (!(record instanceof Uint8Array) || record.length === 0) throw new RingkvError('bad_request', `stream batch row ${i / 2}: record is not bytes`);
    if (i > 0 && Buffer.compare(b.rows[i - 2] as Uint8Array, key) > 0) throw new RingkvError('bad_request', `stream batch row ${i / 2}: keys out of order`);
    bytes += key.length + record.length;
    rows.push({ key, record });
  }
  // Each source's page may end with one row past the bound (a large value is sent whole), so the
  // bound applies to the batch without its MAX_SOURCES largest rows.
  if (rows.length > MAX_SOURCES) {
    const largest = rows.map((r) => r.key.length + r.record.length).sort((p, q) => q - p);
    const overshoot = largest.slice(0, MAX_SOURCES).reduce((p, q) => p + q, 0);
    if (bytes - overshoot > STREAM_LIMITS.streamBatchBytesMax) throw new RingkvError('bad_request', `stream batch of ${bytes} bytes exceeds the bound of ${STREAM_LIMITS.streamBatchBytesMax}`);
  }
  if (!Array.isArray(b.tables) || b.tables.length > STREAM_LIMITS.streamBatchTablesMax) throw new RingkvError('bad_request', 'stream batch tables must be a list');
  const tables = new Map<string, ConflictModeName>();
  for (const t of b.tables as unknown[]) {
    if (!Array.isArray(t) || typeof t[0] !== 'string' || !/^[0-9a-f]{32}$/.test(t[0]) || (t[1] !== 'vclock' && t[1] !== 'lww' && t[1] !== 'crdt' && t[1] !== 'cell')) throw new RingkvError('bad_request', 'stream batch table entries are [id hex, vclock|lww|crdt|cell]');
    tables.set(t[0], t[1] as ConflictModeName);
  }
  if (typeof b.checksum !== 'string') throw new RingkvError('bad_request', 'stream batch without a checksum');
  const sum = batchChecksum(rows);
  if (sum !== b.checksum) throw new RingkvError('conflict', `stream batch checksum mismatch (${b.checksum} sent, ${sum} computed): refused, nothing written`);
  return { rows, tables };
}
