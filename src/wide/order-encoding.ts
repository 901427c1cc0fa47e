/**
 * Order-preserving byte encodings of clustering values: for every type, unsigned lexicographic
 * order of the encoded bytes equals CQL's value order (Cassandra's comparators); a descending
 * column stores the complement of its ascending bytes. Components are self-delimiting (fixed
 * width, or escaped and terminated), so a composite clustering key is the concatenation of its
 * components and no full key is a prefix of another.
 *
 *   int        4 bytes BE, sign bit flipped          bigint, timestamp  8 bytes BE, sign bit flipped
 *   double     8 bytes IEEE BE: sign bit flipped when positive, all bits flipped when negative
 *              (so -Infinity < ... < -0 < +0 < ... < +Infinity, Java's Double.compare); NaN refused
 *   float      the same on 4 bytes                    boolean  00 / 01
 *   text, blob the bytes with 00 → 00 FF, then the terminator 00 00 (text compares as UTF-8 bytes)
 *   uuid       Cassandra's UUIDType order: version nibble first; v1 by timestamp (time_hi,
 *              time_mid, time_low), others by the rest of the high word; then the low word unsigned
 *   timeuuid   TimeUUIDType order: timestamp first, then the low word as signed bytes (each ^ 0x80)
 *
 * Range restrictions become byte ranges [start, end) over these keys (clusteringRanges); an
 * `end` of null means "to the end of the partition".
 *
 * Pure module: no I/O.
 */
import type { CqlType, Order } from '../cql/ast.js';
import { badRequest, invariant } from '../util/errors.js';
import type { CqlValue } from './values.js';
import { uuidFromBytes, uuidToBytes } from './uuid.js';

export interface ClusteringColumn {
  name: string;
  type: CqlType;
  order: Order;
}

/** Growable output buffer (clustering keys are short; a doubling array is plenty). */
export class ByteWriter {
  private buf = Buffer.allocUnsafe(64);
  private n = 0;

  private reserve(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }

  get length(): number {
    return this.n;
  }

  byte(b: number): void {
    this.reserve(1);
    this.buf[this.n++] = b;
  }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.n);
    this.n += b.length;
  }

  /** Complement the bytes written since `from` (a descending component). */
  complementFrom(from: number): void {
    for (let i = from; i < this.n; i++) this.buf[i] = ~this.buf[i]! & 0xff;
  }

  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.n));
  }
}

function uuidMsbOrder(b: Uint8Array, out: Uint8Array): void {
  const version = b[6]! >> 4;
  if (version === 1) {
    out[0] = b[6]!;
    out[1] = b[7]!;
    out[2] = b[4]!;
    out[3] = b[5]!;
    out[4] = b[0]!;
    out[5] = b[1]!;
    out[6] = b[2]!;
    out[7] = b[3]!;
  } else {
    // Version nibble first, then the high word without it (nibble-shifted).
    out[0] = (version << 4) | (b[0]! >> 4);
    for (let i = 1; i <= 5; i++) out[i] = ((b[i - 1]! & 0x0f) << 4) | (b[i]! >> 4);
    out[6] = ((b[5]! & 0x0f) << 4) | (b[6]! & 0x0f);
    out[7] = b[7]!;
  }
}

function uuidMsbUnorder(o: Uint8Array, b: Uint8Array): void {
  const version = o[0]! >> 4;
  if (version === 1) {
    b[0] = o[4]!;
    b[1] = o[5]!;
    b[2] = o[6]!;
    b[3] = o[7]!;
    b[4] = o[2]!;
    b[5] = o[3]!;
    b[6] = o[0]!;
    b[7] = o[1]!;
  } else {
    for (let i = 0; i <= 5; i++) b[i] = ((o[i]! & 0x0f) << 4) | (o[i + 1]! >> 4);
    b[6] = (version << 4) | (o[6]! & 0x0f);
    b[7] = o[7]!;
  }
}

/** Writes one value's ascending order-preserving bytes. Throws bad_request for NaN. */
function writeAscending(w: ByteWriter, type: CqlType, v: CqlValue, column: string): void {
  switch (type) {
    case 'int': {
      const b = Buffer.allocUnsafe(4);
      b.writeInt32BE(v as number, 0);
      b[0] = b[0]! ^ 0x80;
      w.bytes(b);
      return;
    }
    case 'bigint':
    case 'timestamp': {
      const b = Buffer.allocUnsafe(8);
      b.writeBigInt64BE(typeof v === 'bigint' ? v : BigInt(v as number), 0);
      b[0] = b[0]! ^ 0x80;
      w.bytes(b);
      return;
    }
    case 'double':
    case 'float': {
      const n = v as number;
      if (Number.isNaN(n)) throw badRequest(`NaN is not allowed as a key value ("${column}" of type ${type})`, { column, type });
      const size = type === 'double' ? 8 : 4;
      const b = Buffer.allocUnsafe(size);
      if (size === 8) b.writeDoubleBE(n, 0);
      else b.writeFloatBE(n, 0);
      if (b[0]! & 0x80) for (let i = 0; i < size; i++) b[i] = ~b[i]! & 0xff;
      else b[0] = b[0]! ^ 0x80;
      w.bytes(b);
      return;
    }
    case 'boolean':
      w.byte(v ? 1 : 0);
      return;
    case 'text':
    case 'blob': {
      const raw = type === 'text' ? Buffer.from(v as string, 'utf8') : (v as Uint8Array);
      for (let i = 0; i < raw.length; i++) {
        const c = raw[i]!;
        w.byte(c);
        if (c === 0) w.byte(0xff);
      }
      w.byte(0);
      w.byte(0);
      return;
    }
    case 'uuid':
    case 'timeuuid': {
      const b = uuidToBytes(v as string);
      const o = new Uint8Array(16);
      uuidMsbOrder(b, o);
      if (type === 'timeuuid') {
        invariant(b[6]! >> 4 === 1, 'a timeuuid is a version 1 uuid');
        for (let i = 8; i < 16; i++) o[i] = b[i]! ^ 0x80;
      } else o.set(b.subarray(8), 8);
      w.bytes(o);
      return;
    }
    case 'counter':
      throw badRequest(`counter columns cannot be part of a primary key ("${column}")`, { column });
  }
}

/** Appends one component (ascending bytes, complemented for a descending column). */
export function writeComponent(w: ByteWriter, col: ClusteringColumn, v: CqlValue): void {
  const from = w.length;
  writeAscending(w, col.type, v, col.name);
  if (col.order === 'desc') w.complementFrom(from);
}

/** Encodes the first `values.length` clustering columns (a full key or a prefix). */
export function encodeClustering(cols: readonly ClusteringColumn[], values: readonly CqlValue[]): Buffer {
  invariant(values.length <= cols.length, 'more clustering values than clustering columns');
  const w = new ByteWriter();
  for (let i = 0; i < values.length; i++) writeComponent(w, cols[i]!, values[i]!);
  return w.finish();
}

/** Reads one component at `pos`; returns the value and the position after it. Throws on malformed bytes. */
export function readComponent(b: Uint8Array, pos: number, col: ClusteringColumn): { value: CqlValue; next: number } {
  const desc = col.order === 'desc';
  const at = (i: number): number => {
    if (i >= b.length) throw new Error(`corrupt clustering key: truncated ${col.type} component for "${col.name}"`);
    return desc ? ~b[i]! & 0xff : b[i]!;
  };
  const fixed = (size: number): Buffer => {
    const out = Buffer.allocUnsafe(size);
    for (let i = 0; i < size; i++) out[i] = at(pos + i);
    return out;
  };
  switch (col.type) {
    case 'int': {
      const x = fixed(4);
      x[0] = x[0]! ^ 0x80;
      return { value: x.readInt32BE(0), next: pos + 4 };
    }
    case 'bigint':
    case 'timestamp': {
      const x = fixed(8);
      x[0] = x[0]! ^ 0x80;
      const big = x.readBigInt64BE(0);
      return { value: col.type === 'bigint' ? big : Number(big), next: pos + 8 };
    }
    case 'double':
    case 'float': {
      const size = col.type === 'double' ? 8 : 4;
      const x = fixed(size);
      if (x[0]! & 0x80) x[0] = x[0]! ^ 0x80;
      else for (let i = 0; i < size; i++) x[i] = ~x[i]! & 0xff;
      return { value: size === 8 ? x.readDoubleBE(0) : x.readFloatBE(0), next: pos + size };
    }
    case 'boolean': {
      const c = at(pos);
      if (c > 1) throw new Error(`corrupt clustering key: boolean byte ${c} for "${col.name}"`);
      return { value: c === 1, next: pos + 1 };
    }
    case 'text':
    case 'blob': {
      const out: number[] = [];
      let i = pos;
      for (;;) {
        const c = at(i);
        if (c !== 0) {
          out.push(c);
          i++;
          continue;
        }
        const e = at(i + 1);
        if (e === 0) {
          i += 2;
          break;
        }
        if (e !== 0xff) throw new Error(`corrupt clustering key: bad escape 00 ${e.toString(16)} in "${col.name}"`);
        out.push(0);
        i += 2;
      }
      const raw = Buffer.from(out);
      return { value: col.type === 'text' ? raw.toString('utf8') : raw, next: i };
    }
    case 'uuid':
    case 'timeuuid': {
      const o = fixed(16);
      const u = new Uint8Array(16);
      uuidMsbUnorder(o, u);
      if (col.type === 'timeuuid') for (let i = 8; i < 16; i++) u[i] = o[i]! ^ 0x80;
      else u.set(o.subarray(8), 8);
      return { value: uuidFromBytes(u), next: pos + 16 };
    }
    case 'counter':
      throw new Error('corrupt clustering key: counter component');
  }
}

/** Decodes a full clustering key; throws unless the bytes hold exactly one value per column. */
export function decodeClustering(cols: readonly ClusteringColumn[], b: Uint8Array): CqlValue[] {
  const out: CqlValue[] = new Array<CqlValue>(cols.length);
  let pos = 0;
  for (let i = 0; i < cols.length; i++) {
    const r = readComponent(b, pos, cols[i]!);
    out[i] = r.value;
    pos = r.next;
  }
  if (pos !== b.length) throw new Error(`corrupt clustering key: ${b.length - pos} trailing bytes`);
  return out;
}

/**
 * The smallest byte string greater than every string that starts with `p`, or null when there
 * is none (p empty or all 0xFF: the bound is the end of the keyspace).
 */
export function prefixEnd(p: Uint8Array): Buffer | null {
  let n = p.length;
  while (n > 0 && p[n - 1] === 0xff) n--;
  if (n === 0) return null;
  const out = Buffer.from(p.subarray(0, n));
  out[n - 1] = out[n - 1]! + 1;
  return out;
}

/** [start, end) over clustering key bytes; end null = unbounded. */
export interface ByteRange {
  start: Buffer;
  end: Buffer | null;
}

export interface ValueBound {
  value: CqlValue;
  inclusive: boolean;
}

/** What a query restricts on the clustering columns, in column order. */
export interface ClusteringRestriction {
  /** Values of the leading columns restricted by `=` (each a list: `IN` gives several). */
  eq: CqlValue[][];
  /** A range on the column after the `eq` prefix (slice), if any. */
  range?: { column: number; lower?: ValueBound; upper?: ValueBound };
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

/** start < end (null end = +∞). */
function nonEmpty(r: ByteRange): boolean {
  return r.end === null || compareBytes(r.start, r.end) < 0;
}

/** Limit on the ranges one restriction may expand to (the cartesian product of IN lists). */
export const MAX_CLUSTERING_RANGES = 1000;

/**
 * Byte ranges, in ascending byte order, covering exactly the clustering keys a restriction
 * selects. `eq` lists are expanded as a cartesian product (IN on several columns), bounded by
 * MAX_CLUSTERING_RANGES; duplicates are removed. A range on a descending column swaps which
 * bound is the byte start.
 */
export function clusteringRanges(cols: readonly ClusteringColumn[], r: ClusteringRestriction): ByteRange[] {
  let prefixes: Buffer[] = [Buffer.alloc(0)];
  for (let i = 0; i < r.eq.length; i++) {
    const col = cols[i]!;
    const vals = r.eq[i]!;
    if (prefixes.length * vals.length > MAX_CLUSTERING_RANGES) {
      throw badRequest(`the IN restrictions select more than ${MAX_CLUSTERING_RANGES} clustering combinations`);
    }
    const next: Buffer[] = [];
    for (const p of prefixes) {
      for (const v of vals) {
        const w = new ByteWriter();
        w.bytes(p);
        writeComponent(w, col, v);
        next.push(w.finish());
      }
    }
    prefixes = next;
  }
  prefixes.sort(compareBytes);
  prefixes = prefixes.filter((p, i) => i === 0 || compareBytes(prefixes[i - 1]!, p) !== 0);
  const out: ByteRange[] = [];
  for (const p of prefixes) {
    const rng = r.range;
    if (rng === undefined) {
      out.push({ start: p, end: prefixEnd(p) });
      continue;
    }
    const col = cols[rng.column]!;
    invariant(rng.column === r.eq.length, 'a clustering range follows the = prefix');
    const at = (v: CqlValue): Buffer => {
      const w = new ByteWriter();
      w.bytes(p);
      writeComponent(w, col, v);
      return w.finish();
    };
    // In byte order, a descending column's lower value bound is the upper byte bound.
    const [lo, hi] = col.order === 'asc' ? [rng.lower, rng.upper] : [rng.upper, rng.lower];
    let start: Buffer = p;
    let end: Buffer | null = prefixEnd(p);
    if (lo !== undefined) {
      const k = at(lo.value);
      start = lo.inclusive ? k : (prefixEnd(k) ?? k);
      if (!lo.inclusive && prefixEnd(k) === null) continue; // nothing sorts after an all-FF key
    }
    if (hi !== undefined) {
      const k = at(hi.value);
      end = hi.inclusive ? prefixEnd(k) : k;
    }
    const range: ByteRange = { start, end };
    if (nonEmpty(range)) out.push(range);
  }
  return out;
}

/** Does the range hold the key? */
export function rangeContains(r: ByteRange, key: Uint8Array): boolean {
  return compareBytes(key, r.start) >= 0 && (r.end === null || compareBytes(key, r.end) < 0);
}
