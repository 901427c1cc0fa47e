/**
 * The byte form of the wide-column shard ops (cell-write, slice) and of a slice page, as they cross
 * between the router and a shard actor: each op carries ONE byte string instead of an object with
 * a Uint8Array per suffix and record. Structured clone copies every typed array into an
 * ArrayBuffer of its own, which made a 3-cell INSERT cost ~15 µs of postMessage against ~3 µs for
 * one buffer (measured on this machine; the key-value wire path, shard-wire.ts, avoids it the same way).
 *
 *   bytes(b)    = u32 BE length | b
 *   entries     = u32 count | count × (bytes(suffix) | bytes(record))
 *   cell-write  = table id (16) | bytes(partition key) | entries
 *   slice       = table id (16) | bytes(partition key) | u8 has-after | [bytes(after)] | u32 count | count × (bytes(start) | bytes(end))
 *
 * Decoded byte fields are views into the message (no copies).
 *
 * Pure module: no I/O, used on both threads.
 */
import type { StoredEntry } from '../wide/reader.js';
import type { SuffixRange } from '../wide/slice.js';
import { TABLE_ID_BYTES } from './keys.js';

/** Malformed bytes: both ends are this process, so a bug, answered `bad_request` rather than crashing the actor. */
export class WideWireError extends Error {}

class Writer {
  readonly buf: Uint8Array<ArrayBuffer>;
  private readonly view: DataView;
  private pos = 0;
  constructor(size: number) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  raw(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  u8(v: number): void {
    this.buf[this.pos++] = v;
  }
  u32(v: number): void {
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.raw(b);
  }
  done(): Uint8Array<ArrayBuffer> {
    if (this.pos !== this.buf.length) throw new WideWireError(`packed ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

class Reader {
  private readonly view: DataView;
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number): void {
    if (this.pos + n > this.buf.length) throw new WideWireError('truncated wide-column op');
  }
  fixed(n: number): Buffer {
    this.need(n);
    const b = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return b;
  }
  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  bytes(): Buffer {
    return this.fixed(this.u32());
  }
  end(): void {
    if (this.pos !== this.buf.length) throw new WideWireError('trailing bytes after a wide-column op');
  }
}

const entriesSize = (entries: readonly StoredEntry[]): number => entries.reduce((n, e) => n + 8 + e.suffix.length + e.record.length, 4);

function writeEntries(w: Writer, entries: readonly StoredEntry[]): void {
  w.u32(entries.length);
  for (const e of entries) {
    w.bytes(e.suffix);
    w.bytes(e.record);
  }
}

function readEntries(r: Reader): StoredEntry[] {
  const n = r.u32();
  const out: StoredEntry[] = [];
  for (let i = 0; i < n; i++) out.push({ suffix: r.bytes(), record: r.bytes() });
  return out;
}

function checkTable(table: Uint8Array): void {
  if (table.length !== TABLE_ID_BYTES) throw new WideWireError(`a table id has ${TABLE_ID_BYTES} bytes, got ${table.length}`);
}

export function packEntries(entries: readonly StoredEntry[]): Uint8Array<ArrayBuffer> {
  const w = new Writer(entriesSize(entries));
  writeEntries(w, entries);
  return w.done();
}

export function unpackEntries(b: Uint8Array): StoredEntry[] {
  const r = new Reader(b);
  const out = readEntries(r);
  r.end();
  return out;
}

export function packCellWrite(table: Uint8Array, partitionKey: Uint8Array, entries: readonly StoredEntry[]): Uint8Array<ArrayBuffer> {
  checkTable(table);
  const w = new Writer(TABLE_ID_BYTES + 4 + partitionKey.length + entriesSize(entries));
  w.raw(table);
  w.bytes(partitionKey);
  writeEntries(w, entries);
  return w.done();
}

export function unpackCellWrite(b: Uint8Array): { table: Buffer; partitionKey: Buffer; entries: StoredEntry[] } {
  const r = new Reader(b);
  const table = r.fixed(TABLE_ID_BYTES);
  const partitionKey = r.bytes();
  const entries = readEntries(r);
  r.end();
  return { table, partitionKey, entries };
}

export function packSlice(table: Uint8Array, partitionKey: Uint8Array, after: Uint8Array | null, ranges: readonly SuffixRange[]): Uint8Array<ArrayBuffer> {
  checkTable(table);
  const size = TABLE_ID_BYTES + 4 + partitionKey.length + 1 + (after === null ? 0 : 4 + after.length) + 4 + ranges.reduce((n, x) => n + 8 + x.start.length + x.end.length, 0);
  const w = new Writer(size);
  w.raw(table);
  w.bytes(partitionKey);
  w.u8(after === null ? 0 : 1);
  if (after !== null) w.bytes(after);
  w.u32(ranges.length);
  for (const x of ranges) {
    w.bytes(x.start);
    w.bytes(x.end);
  }
  return w.done();
}

export function unpackSlice(b: Uint8Array): { table: Buffer; partitionKey: Buffer; after: Buffer | null; ranges: SuffixRange[] } {
  const r = new Reader(b);
  const table = r.fixed(TABLE_ID_BYTES);
  const partitionKey = r.bytes();
  const after = r.u8() === 1 ? r.bytes() : null;
  const n = r.u32();
  const ranges: SuffixRange[] = [];
  for (let i = 0; i < n; i++) ranges.push({ start: r.bytes(), end: r.bytes() });
  r.end();
  return { table, partitionKey, after, ranges };
}
