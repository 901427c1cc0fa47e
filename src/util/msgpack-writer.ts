/**
 * A hand-written msgpack writer for the fixed shapes of the hot path (records, contexts, IPC reply
 * frames), issue 12: `Packr.pack` of an object or tuple per op was ~11% of the router's busy time
 * under batched ingest, plus the garbage of the tuples and reply objects it needed as input.
 *
 * The encodings are msgpackr's own choices (with `useRecords: false`), so what this writes is
 * byte-identical to `new Packr({useRecords: false}).pack(...)` of the same value; the record codec
 * relies on that (a record's bytes are hashed into Merkle trees, and replicas must agree):
 *   - an integer n with n >>> 0 === n: positive fixint, uint8, uint16, uint32;
 *   - an integer n with n >> 0 === n: negative fixint, int8, int16, int32;
 *   - any other number: float64;
 *   - str: fixstr, str8, str16, str32 by UTF-8 byte length; bin: bin8, bin16, bin32;
 *   - arrays and maps: fix, 16-bit, 32-bit headers.
 * test/unit/msgpack-writer.test.ts checks that equivalence property-wise.
 *
 * One writer per thread is enough (`MsgpackWriter.shared`): a value is written start to finish
 * and copied out (`takeBuffer`) before anything else uses the writer. Pure: no I/O.
 */

/** Initial scratch size; it doubles as needed (bounded by what callers write: a frame is bounded by maxFrameBytes). */
const INITIAL_SCRATCH_BYTES = 64 * 1024;

export class MsgpackWriter {
  private buf: Buffer = Buffer.allocUnsafe(INITIAL_SCRATCH_BYTES);
  private view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  /** Write position (bytes written since `reset`). */
  pos = 0;

  static readonly shared = new MsgpackWriter();

  reset(): this {
    this.pos = 0;
    return this;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  /** A copy of what was written since `reset` (safe to keep: it does not alias the scratch). */
  takeBuffer(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    return out;
  }

  /** The bytes written since `reset` as base64url (contexts). */
  takeBase64url(): string {
    return this.buf.toString('base64url', 0, this.pos);
  }

  /** Reserve `n` bytes (e.g. a frame header) to fill later with `setUint32At`. */
  skip(n: number): number {
    this.ensure(n);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  setUint32At(at: number, v: number): void {
    this.view.setUint32(at, v);
  }

  /** Start over with a frame: `prefixBytes` reserved for its big-endian length (src/net/frames.ts). */
  beginFrame(prefixBytes: number): this {
    this.reset().skip(prefixBytes);
    return this;
  }

  /** The frame written since `beginFrame(prefixBytes)`, its length prefix filled in (a copy). */
  takeFrame(prefixBytes: number): Buffer {
    this.setUint32At(0, this.pos - prefixBytes);
    return this.takeBuffer();
  }

  /** Bytes already in msgpack form (e.g. a constant map key from `encodedStr`). */
  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  nil(): void {
    this.byte(0xc0);
  }

  bool(b: boolean): void {
    this.byte(b ? 0xc3 : 0xc2);
  }

  number(n: number): void {
    this.ensure(9);
    const b = this.buf;
    if (n >>> 0 === n) {
      if (n < 0x80) b[this.pos++] = n;
      else if (n < 0x100) {
        b[this.pos++] = 0xcc;
        b[this.pos++] = n;
      } else if (n < 0x10000) {
        b[this.pos++] = 0xcd;
        this.view.setUint16(this.pos, n);
        this.pos += 2;
      } else {
        b[this.pos++] = 0xce;
        this.view.setUint32(this.pos, n);
        this.pos += 4;
      }
    } else if (n >> 0 === n) {
      if (n >= -0x20) b[this.pos++] = n & 0xff;
      else if (n >= -0x80) {
        b[this.pos++] = 0xd0;
        b[this.pos++] = n & 0xff;
      } else if (n >= -0x8000) {
        b[this.pos++] = 0xd1;
        this.view.setInt16(this.pos, n);
        this.pos += 2;
      } else {
        b[this.pos++] = 0xd2;
        this.view.setInt32(this.pos, n);
        this.pos += 4;
      }
    } else {
      b[this.pos++] = 0xcb;
      this.view.setFloat64(this.pos, n);
      this.pos += 8;
    }
  }

  str(s: string): void {
    const len = s.length;
    // ASCII fast path for short strings (keys, contexts, ids): one pass, no byteLength call.
    if (len < 32) {
      this.ensure(1 + len);
      const b = this.buf;
      const start = this.pos;
      let p = start + 1;
      let i = 0;
      for (; i < len; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) break;
        b[p++] = c;
      }
      if (i === len) {
        b[start] = 0xa0 | len;
        this.pos = p;
        return;
      }
    }
    const bytes = Buffer.byteLength(s, 'utf8');
    this.strHeader(bytes);
    this.ensure(bytes);
    this.buf.write(s, this.pos, bytes, 'utf8');
    this.pos += bytes;
  }

  private strHeader(n: number): void {
    this.ensure(5);
    const b = this.buf;
    if (n < 32) b[this.pos++] = 0xa0 | n;
    else if (n < 0x100) {
      b[this.pos++] = 0xd9;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = 0xda;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      b[this.pos++] = 0xdb;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
  }

  bin(u: Uint8Array): void {
    const n = u.length;
    this.ensure(5 + n);
    const b = this.buf;
    if (n < 0x100) {
      b[this.pos++] = 0xc4;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = 0xc5;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      b[this.pos++] = 0xc6;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
    b.set(u, this.pos);
    this.pos += n;
  }

  arrayHeader(n: number): void {
    this.ensure(5);
    const b = this.buf;
    if (n < 16) b[this.pos++] = 0x90 | n;
    else if (n < 0x10000) {
      b[this.pos++] = 0xdc;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      b[this.pos++] = 0xdd;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
  }

  mapHeader(n: number): void {
    this.ensure(5);
    const b = this.buf;
    if (n < 16) b[this.pos++] = 0x80 | n;
    else if (n < 0x10000) {
      b[this.pos++] = 0xde;
      this.view.setUint16(this.pos, n);
      this.pos += 2;
    } else {
      b[this.pos++] = 0xdf;
      this.view.setUint32(this.pos, n);
      this.pos += 4;
    }
  }

  /** A map's entries without its header: the keys of `o` whose value is defined, in order (`value` writes plain objects so). */
  fields(o: Record<string, unknown>): void {
    for (const k in o) {
      const x = o[k];
      if (x === undefined) continue;
      this.str(k);
      this.value(x);
    }
  }

  /**
   * A plain value of the reply vocabulary: null, boolean, number, string, bytes, arrays and plain
   * objects of those (keys whose value is undefined are left out, as JSON does). Anything else is
   * a bug of the caller and throws.
   */
  value(v: unknown): void {
    if (v === null) return this.nil();
    switch (typeof v) {
      case 'boolean':
        return this.bool(v);
      case 'number':
        return this.number(v);
      case 'string':
        return this.str(v);
      case 'object': {
        if (v instanceof Uint8Array) return this.bin(v);
        if (Array.isArray(v)) {
          this.arrayHeader(v.length);
          for (const x of v) this.value(x === undefined ? null : x);
          return;
        }
        const o = v as Record<string, unknown>;
        this.mapHeader(definedCount(o));
        this.fields(o);
        return;
      }
      default:
        throw new TypeError(`MsgpackWriter: cannot write a ${typeof v}`);
    }
  }
}

/** A str as msgpack bytes, for constant keys written with `raw` (no per-write UTF-8 pass). */
/** How many keys of `o` have a defined value (the map header `fields` needs). */
export function definedCount(o: Record<string, unknown>): number {
  let n = 0;
  for (const k in o) if (o[k] !== undefined) n++;
  return n;
}

export function encodedStr(s: string): Uint8Array {
  const w = new MsgpackWriter();
  w.str(s);
  return w.takeBuffer();
}
