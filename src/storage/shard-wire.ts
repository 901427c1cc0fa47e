/**
 * The data path between the router and a shard actor, as bytes: every read and write the router
 * submits to one shard in one event-loop turn goes out as ONE Uint8Array (its ArrayBuffer
 * transferred, not cloned), and the shard answers a group commit with one such buffer.
 *
 * Why not structured clone of op objects: a write op used to carry a `Version[]` (nested arrays
 * for the clock, a Uint8Array per value); cloning that cost ~4 µs per op on each side of the
 * message, allocated an ArrayBuffer per value on the receiving side, and was the largest single
 * cost on the router thread after GC (measured; see bench/README.md). Here a write carries its
 * versions as the canonical record bytes (`encodeRecord`, the format the shard stores), so:
 *  - the message is a flat byte string (one memcpy to hand over);
 *  - a write to an absent key whose record holds one version is stored as is: no decode, merge or
 *    re-encode in the shard (the insert path of ingestion);
 *  - a read answers with the stored bytes as they came from RocksDB (the router decodes them once).
 *
 * Layout (little-endian):
 *   request  = kind u8 (1 read, 2 write, 3 crdt apply) | flags u8 | id u32 | table id (16 bytes)
 *              | hi u32 | lo u32 | keyLen u32 | key | (apply with bit 3) suffixLen u32 | suffix
 *              | (write, apply) recordLen u32 | record
 *     flags: bit 0 lww table, bit 2 crdt table (neither: vclock), bit 1 reply with the merged
 *     record (returnMerged), bit 3 a suffix follows the key (a wide-column counter cell: the
 *     storage key is the partition's key ‖ suffix)
 *     a crdt apply's "record" is an encoded operation (src/storage/crdt-shard.ts); its reply is the
 *     key's new state (status 1)
 *   reply    = id u32 | status u8 | flags u8 | (status 1, 2) len u32 | bytes
 *     status 0: ok, no record (a read of an absent key, or a write without returnMerged)
 *     status 1: ok, bytes = a record; status 2: error, bytes = utf8 "code\n message";
 *     status 3: error with details, bytes = utf8 "code\n" + JSON { message, details }
 *     flags: bit 0 the write changed what is stored
 *
 * Control-plane ops (stats, Merkle, repair, sweep) stay typed objects (shard-protocol.ts): they
 * are rare and structured; only reads and writes are hot.
 *
 * Pure module: no I/O, used on both threads.
 */
import type { ConflictMode } from '../config/config.js';
import { TABLE_ID_BYTES } from './keys.js';

/** The modes a wire write merges with: a key-value table's versions, or a crdt table's states (cells go by `cell-write`). */
export type WireWriteMode = ConflictMode | 'crdt';

export const WIRE_READ = 1;
export const WIRE_WRITE = 2;
export const WIRE_CRDT_APPLY = 3;
const FLAG_LWW = 1;
const FLAG_RETURN_MERGED = 2;
const FLAG_CRDT = 4;
const FLAG_SUFFIX = 8;
const REPLY_CHANGED = 1;

const REQ_HEADER = 1 + 1 + 4 + TABLE_ID_BYTES + 4 + 4 + 4;
const REPLY_HEADER = 4 + 1 + 1;

export interface WireReadRequest {
  kind: typeof WIRE_READ;
  id: number;
  /** TABLE_ID_BYTES, a view into the message. */
  table: Uint8Array;
  hi: number;
  lo: number;
  key: Uint8Array;
}

export interface WireWriteRequest {
  kind: typeof WIRE_WRITE;
  id: number;
  /** TABLE_ID_BYTES, a view into the message. */
  table: Uint8Array;
  hi: number;
  lo: number;
  key: Uint8Array;
  mode: WireWriteMode;
  /** What to merge into what is stored: encodeRecord bytes of versions, or a CRDT state (mode crdt). */
  record: Uint8Array;
  returnMerged: boolean;
}

/** Apply a CRDT operation to the key's stored state at this (the coordinating) replica. */
export interface WireCrdtApplyRequest {
  kind: typeof WIRE_CRDT_APPLY;
  id: number;
  /** TABLE_ID_BYTES, a view into the message. */
  table: Uint8Array;
  hi: number;
  lo: number;
  key: Uint8Array;
  /** A wide-column counter cell's suffix inside partition `key` (src/wide/layout.ts), a view; absent for a crdt table's key. */
  suffix?: Uint8Array;
  /** The operation (encodeApplyRequest in src/storage/crdt-shard.ts), a view into the message. */
  request: Uint8Array;
}

export type WireRequest = WireReadRequest | WireWriteRequest | WireCrdtApplyRequest;

/** A shard's answer to one read or write. Byte fields are views into the reply message. */
export type WireReply =
  | { ok: true; record: Uint8Array | null; changed: boolean }
  | { ok: false; code: string; message: string; details?: Record<string, unknown> };

/** A growable little-endian byte buffer; `take()` hands out an exact-size copy and starts over. */
class ByteWriter {
  private buf: Uint8Array<ArrayBuffer>;
  private view: DataView;
  private pos = 0;
  count = 0;

  constructor(initialBytes: number) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  protected reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  protected u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  protected u32(v: number): void {
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }

  /** Fixed-width bytes, no length prefix. */
  protected raw(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  protected bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  get byteLength(): number {
    return this.pos;
  }

  /** The bytes written since the last take/reset, as a view (valid until the next write). */
  peek(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }

  /** Start over (after `peek`'s bytes were copied elsewhere, e.g. into a ring). */
  reset(): void {
    this.pos = 0;
    this.count = 0;
    if (this.buf.length > MAX_RETAINED_BYTES) {
      this.buf = new Uint8Array(MAX_RETAINED_BYTES);
      this.view = new DataView(this.buf.buffer);
    }
  }

  /** The bytes written since the last take, in a fresh ArrayBuffer of exactly that size (transferable). */
  take(): Uint8Array<ArrayBuffer> {
    const out = this.buf.slice(0, this.pos);
    this.pos = 0;
    this.count = 0;
    // Don't keep a buffer grown by one huge value for the node's lifetime.
    if (this.buf.length > MAX_RETAINED_BYTES) {
      this.buf = new Uint8Array(MAX_RETAINED_BYTES);
      this.view = new DataView(this.buf.buffer);
    }
    return out;
  }
}

const MAX_RETAINED_BYTES = 1 << 20;

export class WireRequestWriter extends ByteWriter {
  constructor(initialBytes = 64 * 1024) {
    super(initialBytes);
  }

  read(id: number, table: Uint8Array, hi: number, lo: number, key: Uint8Array): void {
    this.reserve(REQ_HEADER + key.length);
    this.header(WIRE_READ, 0, id, table, hi, lo);
    this.bytes(key);
    this.count++;
  }

  write(id: number, table: Uint8Array, hi: number, lo: number, key: Uint8Array, mode: WireWriteMode, record: Uint8Array, returnMerged: boolean): void {
    this.reserve(REQ_HEADER + key.length + 4 + record.length);
    this.header(WIRE_WRITE, (mode === 'lww' ? FLAG_LWW : mode === 'crdt' ? FLAG_CRDT : 0) | (returnMerged ? FLAG_RETURN_MERGED : 0), id, table, hi, lo);
    this.bytes(key);
    this.bytes(record);
    this.count++;
  }

  crdtApply(id: number, table: Uint8Array, hi: number, lo: number, key: Uint8Array, request: Uint8Array, suffix?: Uint8Array): void {
    this.reserve(REQ_HEADER + key.length + 4 + (suffix === undefined ? 0 : 4 + suffix.length) + request.length);
    this.header(WIRE_CRDT_APPLY, FLAG_CRDT | (suffix === undefined ? 0 : FLAG_SUFFIX), id, table, hi, lo);
    this.bytes(key);
    if (suffix !== undefined) this.bytes(suffix);
    this.bytes(request);
    this.count++;
  }

  private header(kind: number, flags: number, id: number, table: Uint8Array, hi: number, lo: number): void {
    if (table.length !== TABLE_ID_BYTES) throw new WireError(`table id of ${table.length} bytes, expected ${TABLE_ID_BYTES}`);
    this.u8(kind);
    this.u8(flags);
    this.u32(id);
    this.raw(table);
    this.u32(hi);
    this.u32(lo);
  }
}

export class WireReplyWriter extends ByteWriter {
  constructor(initialBytes = 16 * 1024) {
    super(initialBytes);
  }

  ok(id: number, record: Uint8Array | null, changed: boolean): void {
    this.reserve(REPLY_HEADER + 4 + (record?.length ?? 0));
    this.u32(id);
    this.u8(record === null ? 0 : 1);
    this.u8(changed ? REPLY_CHANGED : 0);
    if (record !== null) this.bytes(record);
    this.count++;
  }

  error(id: number, code: string, message: string, details?: Record<string, unknown>): void {
    const text = Buffer.from(details === undefined ? `${code}\n${message}` : `${code}\n${JSON.stringify({ message, details })}`, 'utf8');
    this.reserve(REPLY_HEADER + 4 + text.length);
    this.u32(id);
    this.u8(details === undefined ? 2 : 3);
    this.u8(0);
    this.bytes(text);
    this.count++;
  }
}

class ByteReader {
  private readonly view: DataView;
  pos = 0;

  constructor(readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  u8(): number {
    if (this.pos + 1 > this.buf.length) throw new WireError('truncated');
    return this.buf[this.pos++]!;
  }

  u32(): number {
    if (this.pos + 4 > this.buf.length) throw new WireError('truncated');
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** A view (no copy) of the next `n` bytes. */
  fixed(n: number): Buffer {
    if (this.pos + n > this.buf.length) throw new WireError('truncated');
    const b = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return b;
  }

  /** A view (no copy) of the next length-prefixed byte string. */
  bytes(): Buffer {
    const n = this.u32();
    if (this.pos + n > this.buf.length) throw new WireError(`byte string of ${n} overruns the message`);
    const b = Buffer.from(this.buf.buffer, this.buf.byteOffset + this.pos, n);
    this.pos += n;
    return b;
  }
}

/** A malformed wire message: both ends are this process, so this is a bug, never bad input. */
export class WireError extends Error {
  constructor(message: string) {
    super(`shard wire: ${message}`);
  }
}

/** Decode a request message. Keys and records are views into `buf`. */
export function decodeRequests(buf: Uint8Array): WireRequest[] {
  const r = new ByteReader(buf);
  const out: WireRequest[] = [];
  while (!r.done) {
    const kind = r.u8();
    const flags = r.u8();
    const id = r.u32();
    const table = r.fixed(TABLE_ID_BYTES);
    const hi = r.u32();
    const lo = r.u32();
    const key = r.bytes();
    if (kind === WIRE_READ) out.push({ kind, id, table, hi, lo, key });
    else if (kind === WIRE_WRITE) {
      const record = r.bytes();
      const mode = flags & FLAG_CRDT ? 'crdt' : flags & FLAG_LWW ? 'lww' : 'vclock';
      out.push({ kind, id, table, hi, lo, key, mode, record, returnMerged: (flags & FLAG_RETURN_MERGED) !== 0 });
    } else if (kind === WIRE_CRDT_APPLY) {
      if (flags & FLAG_SUFFIX) {
        const suffix = r.bytes();
        out.push({ kind, id, table, hi, lo, key, suffix, request: r.bytes() });
      } else out.push({ kind, id, table, hi, lo, key, request: r.bytes() });
    }
    else throw new WireError(`unknown request kind ${kind}`);
  }
  return out;
}

/**
 * Cut a reply message into pieces of at most `maxBytes` at reply boundaries (a channel with a
 * message bound carries them one by one). A single reply larger than `maxBytes` is a piece alone.
 * Pieces are views into `buf`.
 */
export function splitReplies(buf: Uint8Array, maxBytes: number): Uint8Array[] {
  if (buf.length <= maxBytes) return [buf];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Uint8Array[] = [];
  let start = 0;
  let pos = 0;
  while (pos < buf.length) {
    if (pos + REPLY_HEADER > buf.length) throw new WireError('truncated reply');
    const status = buf[pos + 4]!;
    let end = pos + REPLY_HEADER;
    // Every status but 0 (ok, no record) carries a length-prefixed byte string.
    if (status === 1 || status === 2 || status === 3) {
      if (end + 4 > buf.length) throw new WireError('truncated reply');
      end += 4 + view.getUint32(end, true);
    }
    if (end > buf.length) throw new WireError('reply overruns the message');
    if (end - start > maxBytes && pos > start) {
      out.push(buf.subarray(start, pos));
      start = pos;
    }
    pos = end;
  }
  if (pos > start) out.push(buf.subarray(start, pos));
  return out;
}

/**
 * The answer to a write without returnMerged (or a read of an absent key): one shared, frozen
 * object per `changed`, not one per reply (the common reply under ingest; receivers only read it).
 */
const OK_CHANGED: WireReply = Object.freeze({ ok: true, record: null, changed: true });
const OK_UNCHANGED: WireReply = Object.freeze({ ok: true, record: null, changed: false });

/**
 * Decode a reply message, calling `each(id, reply)` in order. Records are views into `buf`, or
 * copies of their bytes with `copyRecords` (the router decodes straight from its reply ring, whose
 * bytes are reused once `each` returns). A reply without a record may be a shared frozen object.
 */
export function decodeReplies(buf: Uint8Array, each: (id: number, reply: WireReply) => void, copyRecords = false): void {
  const r = new ByteReader(buf);
  while (!r.done) {
    const id = r.u32();
    const status = r.u8();
    const flags = r.u8();
    if (status === 0) each(id, (flags & REPLY_CHANGED) !== 0 ? OK_CHANGED : OK_UNCHANGED);
    else if (status === 1) {
      const view = r.bytes();
      each(id, { ok: true, record: copyRecords ? Buffer.from(view) : view, changed: (flags & REPLY_CHANGED) !== 0 });
    }
    else if (status === 2) {
      const text = r.bytes().toString('utf8');
      const nl = text.indexOf('\n');
      each(id, { ok: false, code: nl < 0 ? 'internal' : text.slice(0, nl), message: nl < 0 ? text : text.slice(nl + 1) });
    } else if (status === 3) {
      const text = r.bytes().toString('utf8');
      const nl = text.indexOf('\n');
      const body = JSON.parse(text.slice(nl + 1)) as { message: string; details: Record<string, unknown> };
      each(id, { ok: false, code: text.slice(0, nl), message: body.message, details: body.details });
    } else throw new WireError(`unknown reply status ${status}`);
  }
}
