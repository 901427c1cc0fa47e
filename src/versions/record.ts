/**
 * On-disk / on-wire encoding of a key's version set, and its 64-bit digest for Merkle
 * trees.
 *
 * Layout: 1 format byte (RECORD_FORMAT) followed by one msgpack array of versions, each
 *   [dotIndex, dotCounter | nil, prior, ts, tombstone, value (bin), clock ([[node, counter], …])]
 * and, for a value written with a TTL, an eighth element: the TTL in seconds (> 0). Versions
 * without a TTL stay 7-tuples, so records written before TTLs existed decode unchanged and keep
 * their bytes (and Merkle digests).
 * The dot is stored as an index into its own clock (the clock must cover it anyway),
 * and the counter is nil when it equals that clock entry — always the case for versions
 * made by newVersion — which saves the node id and a float64 per version. Arrays rather
 * than maps, and no msgpackr records/structures, so the bytes depend only on the data.
 *
 * Encoding is canonical: versions are written in dot order, so replicas holding the
 * same set produce identical bytes and identical digests. The digest therefore also
 * depends on RECORD_FORMAT — during a rolling upgrade that changes the format, Merkle
 * trees of mixed-version replicas disagree (costing repair traffic, not correctness).
 *
 * Hashing uses xxhash-wasm, which needs an async WebAssembly instantiation:
 * `await initVersions()` once per thread (main and each shard worker) before calling
 * `recordDigest`; it throws otherwise rather than silently using a different hash.
 *
 * Pure module: no I/O, safe to use from worker threads.
 */
import { Packr } from 'msgpackr';
import xxhash, { type XXHashAPI } from 'xxhash-wasm';
import { MsgpackReader, NOT_READ } from '../util/msgpack-reader.js';
import { MsgpackWriter } from '../util/msgpack-writer.js';
import { vclockProblem, type VClock } from './vclock.js';
import { compareDots, MAX_TTL_SECONDS, type Dot, type Version } from './version.js';

/** Bump when the layout changes; decodeRecord rejects unknown formats. */
export const RECORD_FORMAT = 1;

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  // Decoded values must not alias the input: callers (RocksDB iterators, network
  // buffers) may reuse that memory after we return.
  copyBuffers: true,
});

function indexOfNode(clock: VClock, node: string): number {
  for (let i = 0; i < clock.length; i++) if (clock[i]![0] === node) return i;
  return -1;
}

function canonicalOrder(versions: readonly Version[]): readonly Version[] {
  for (let i = 1; i < versions.length; i++) {
    const c = compareDots(versions[i - 1]!.dot, versions[i]!.dot);
    if (c === 0) {
      throw new Error(`encodeRecord: duplicate dot ${versions[i]!.dot[0]}:${versions[i]!.dot[1]}`);
    }
    if (c > 0) return sortedChecked(versions);
  }
  return versions;
}

function sortedChecked(versions: readonly Version[]): Version[] {
  const s = versions.slice().sort((a, b) => compareDots(a.dot, b.dot));
  for (let i = 1; i < s.length; i++) {
    if (compareDots(s[i - 1]!.dot, s[i]!.dot) === 0) {
      throw new Error(`encodeRecord: duplicate dot ${s[i]!.dot[0]}:${s[i]!.dot[1]}`);
    }
  }
  return s;
}

/** Encodes a version set canonically (in dot order, whatever the input order). */
export function encodeRecord(versions: readonly Version[]): Buffer {
  const ordered = canonicalOrder(versions);
  // Hand-written (src/util/msgpack-writer.ts writes msgpackr's bytes): no tuple per version and no
  // second copy; the record is the writer's output copied once into a buffer of its own.
  const w = MsgpackWriter.shared.reset();
  w.byte(RECORD_FORMAT);
  w.arrayHeader(ordered.length);
  for (let i = 0; i < ordered.length; i++) {
    const v = ordered[i]!;
    const idx = indexOfNode(v.clock, v.dot[0]);
    if (idx < 0 || v.clock[idx]![1] < v.dot[1]) {
      throw new Error(`encodeRecord: clock does not cover dot ${v.dot[0]}:${v.dot[1]}`);
    }
    if (v.tombstone && v.value.length !== 0) throw new Error('encodeRecord: tombstone with a value');
    if (!Number.isSafeInteger(v.prior) || v.prior < 0 || v.prior >= v.dot[1]) {
      throw new Error(`encodeRecord: prior must be an integer in [0, dot counter), got ${String(v.prior)}`);
    }
    const ttl = v.ttl ?? 0;
    if (ttl !== 0 && (v.tombstone || !Number.isSafeInteger(ttl) || ttl < 0 || ttl > MAX_TTL_SECONDS)) throw new Error(`encodeRecord: bad ttl ${String(ttl)}`);
    w.arrayHeader(ttl > 0 ? 8 : 7);
    w.number(idx);
    if (v.clock[idx]![1] === v.dot[1]) w.nil();
    else w.number(v.dot[1]);
    w.number(v.prior);
    w.number(v.ts);
    w.bool(v.tombstone);
    w.bin(v.value);
    writeClock(w, v.clock);
    if (ttl > 0) w.number(ttl);
  }
  return w.takeBuffer();
}

/** A clock as msgpack: [[node, counter], ...] (the encoding of contexts and of a record's clocks). */
export function writeClock(w: MsgpackWriter, clock: VClock): void {
  w.arrayHeader(clock.length);
  for (let j = 0; j < clock.length; j++) {
    const e = clock[j]!;
    w.arrayHeader(2);
    w.str(e[0]);
    w.number(e[1]);
  }
}

export function isSingleVersionRecord(buf: Uint8Array): boolean {
  return buf.length > 2 && buf[0] === RECORD_FORMAT && buf[1] === 0x91;
}

/** Bytes taken by the msgpack scalar (nil, bool, int, float) at `pos`, or -1 for anything else. */
function scalarLength(buf: Uint8Array, pos: number): number {
  if (pos >= buf.length) return -1;
  const b = buf[pos]!;
  if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) return 1;
  switch (b) {
    case 0xcc:
    case 0xd0:
      return 2;
    case 0xcd:
    case 0xd1:
      return 3;
    case 0xce:
    case 0xd2:
    case 0xca:
      return 5;
    case 0xcf:
    case 0xd3:
    case 0xcb:
      return 9;
    default:
      return -1;
  }
}

/**
 * True when every version of the record is a tombstone or expiring (a "dead" record: the only kind
 * the tombstone sweep may ever purge). A one-version record is answered from its bytes, without decoding:
 * the shard asks this for every write of a new key, on the ingest hot path. Anything else, or a
 * one-version record whose leading fields are not the scalars encodeRecord writes, is decoded.
 */
export function isDeadRecord(buf: Uint8Array): boolean {
  if (isSingleVersionRecord(buf) && buf[2] === 0x97) {
    // [dotIndex, dotCounter | nil, prior, ts, tombstone, ...]: skip four scalars to the flag.
    let pos = 3;
    for (let f = 0; f < 4 && pos > 0; f++) {
      const n = scalarLength(buf, pos);
      pos = n < 0 ? -1 : pos + n;
    }
    if (pos > 0 && pos < buf.length && (buf[pos] === 0xc2 || buf[pos] === 0xc3)) return buf[pos] === 0xc3;
  }
  return isDead(decodeRecord(buf));
}

/**
 * A version set that holds only tombstones and values with a TTL (and at least one): what the
 * tombstone sweep may purge once they are all past their grace period (purgeableTombstones).
 */
export function isDead(versions: readonly Version[]): boolean {
  return versions.length > 0 && versions.every((v) => v.tombstone || (v.ttl ?? 0) > 0);
}

function corrupt(msg: string, cause?: unknown): Error {
  return cause === undefined
    ? new Error(`corrupt record: ${msg}`)
    : new Error(`corrupt record: ${msg}`, { cause });
}

/**
 * Decodes and fully validates a record (disk corruption or a buggy peer must surface as
 * an error here, not as a malformed Version deep inside reconciliation).
 */
export function decodeRecord(buf: Uint8Array): Version[] {
  if (buf.length < 2) throw corrupt(`too short (${buf.length} bytes)`);
  if (buf[0] !== RECORD_FORMAT) throw corrupt(`unknown format byte ${buf[0]}`);
  // The record's msgpack body read by hand (what msgpackr would return, for the shapes encodeRecord
  // writes); anything else goes through msgpackr. Both then pass the same checks below.
  let body: unknown = readRecordBody(buf);
  if (body === null) {
    try {
      // subarray is a view, not a copy; msgpackr also rejects trailing bytes.
      body = packr.unpack(buf.subarray(1));
    } catch (cause) {
      throw corrupt('undecodable msgpack', cause);
    }
  }
  if (!Array.isArray(body)) throw corrupt('body is not an array');
  const out: Version[] = new Array<Version>(body.length);
  let prevDot: Dot | undefined;
  for (let i = 0; i < body.length; i++) {
    const e: unknown = body[i];
    if (!Array.isArray(e) || (e.length !== 7 && e.length !== 8)) throw corrupt(`version ${i} is not a 7- or 8-tuple`);
    const [idx, counterOrNil, prior, ts, tombstone, value, clock, ttl] = e as unknown[];
    const problem = vclockProblem(clock);
    if (problem !== null) throw corrupt(`version ${i}: ${problem}`);
    const c = clock as VClock;
    if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx >= c.length) {
      throw corrupt(`version ${i}: dot index out of range`);
    }
    const entry = c[idx]!;
    let dot: Dot;
    if (counterOrNil === null) {
      dot = entry; // share the tuple: immutable, saves an allocation per version
    } else if (
      typeof counterOrNil === 'number' &&
      Number.isSafeInteger(counterOrNil) &&
      counterOrNil > 0 &&
      counterOrNil <= entry[1]
    ) {
      dot = [entry[0], counterOrNil];
    } else {
      throw corrupt(`version ${i}: bad dot counter`);
    }
    if (typeof prior !== 'number' || !Number.isSafeInteger(prior) || prior < 0 || prior >= dot[1]) {
      throw corrupt(`version ${i}: bad prior`);
    }
    if (typeof ts !== 'number' || !Number.isSafeInteger(ts) || ts < 0) throw corrupt(`version ${i}: bad ts`);
    if (typeof tombstone !== 'boolean') throw corrupt(`version ${i}: bad tombstone flag`);
    if (!(value instanceof Uint8Array)) throw corrupt(`version ${i}: value is not binary`);
    if (tombstone && value.length !== 0) throw corrupt(`version ${i}: tombstone with a value`);
    if (e.length === 8 && (tombstone || typeof ttl !== 'number' || !Number.isSafeInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS)) {
      throw corrupt(`version ${i}: bad ttl`);
    }
    if (prevDot !== undefined && compareDots(prevDot, dot) >= 0) {
      throw corrupt(`version ${i}: versions not in strict dot order`);
    }
    prevDot = dot;
    out[i] = e.length === 8 ? { dot, clock: c, prior, ts, tombstone, value, ttl: ttl as number } : { dot, clock: c, prior, ts, tombstone, value };
  }
  return out;
}

/** The record body's value readers over the shared msgpack reader: one object per record, no closures. */
class RecordBodyReader extends MsgpackReader {
  /** An int, float64, nil, bool or bin (copied: the input may be reused memory); NOT_READ otherwise. */
  scalar(): unknown {
    const buf = this.b;
    const t = buf[this.pos++];
    if (t === undefined) return NOT_READ;
    if (t === 0xcb) {
      if (this.pos + 8 > buf.length) return NOT_READ;
      this.pos += 8;
      return this.view.getFloat64(this.pos - 8);
    }
    if (t >= 0xc4 && t <= 0xc6) {
      const n = this.binLength(t);
      if (n < 0) return NOT_READ;
      const b = Buffer.allocUnsafe(n);
      b.set(buf.subarray(this.pos, this.pos + n));
      this.pos += n;
      return b;
    }
    return this.basic(t);
  }

  /** A fixstr of ASCII (node ids in clocks); NOT_READ otherwise, consuming nothing. */
  asciiStr(): string | typeof NOT_READ {
    const buf = this.b;
    const t = buf[this.pos];
    if (t === undefined || t < 0xa0 || t > 0xbf) return NOT_READ;
    const n = t & 0x1f;
    const start = this.pos + 1;
    if (start + n > buf.length) return NOT_READ;
    let s = '';
    for (let i = start; i < start + n; i++) {
      const c = buf[i]!;
      if (c >= 0x80) return NOT_READ;
      s += String.fromCharCode(c);
    }
    this.pos = start + n;
    return s;
  }
}

/**
 * The record body (after the format byte) as msgpackr would decode it, for what encodeRecord
 * writes: an array of 7/8-tuples of ints, float64s, nil, bools, bins (copied: the input may be
 * reused memory) and clocks of [ASCII str, number] pairs. Null for anything else, including
 * trailing bytes: the caller then takes msgpackr's path. ~2-3x faster than msgpackr here, and the
 * reads and merges of every stored record go through it (issue 12).
 */
export function readRecordBody(buf: Uint8Array): unknown[] | null {
  const r = new RecordBodyReader(buf, 1);
  const end = buf.length;
  const count = r.arrayLength();
  if (count < 0) return null;
  const body = new Array<unknown>(count);
  for (let i = 0; i < count; i++) {
    const len = r.arrayLength();
    if (len !== 7 && len !== 8) return null;
    const tuple = new Array<unknown>(len);
    for (let j = 0; j < 6; j++) {
      const v = r.scalar();
      if (v === NOT_READ) return null;
      tuple[j] = v;
    }
    const entries = r.arrayLength();
    if (entries < 0) return null;
    const clock = new Array<unknown>(entries);
    for (let k = 0; k < entries; k++) {
      if (r.arrayLength() !== 2) return null;
      const node = r.asciiStr();
      if (node === NOT_READ) return null;
      const counter = r.scalar();
      if (counter === NOT_READ) return null;
      clock[k] = [node, counter];
    }
    tuple[6] = clock;
    if (len === 8) {
      const ttl = r.scalar();
      if (ttl === NOT_READ) return null;
      tuple[7] = ttl;
    }
    body[i] = tuple;
  }
  return r.pos === end ? body : null;
}

/** 64-bit digest as two uint32 halves: cheap to XOR/compare without BigInt. */
export interface Digest64 {
  hi: number;
  lo: number;
}

let hasher: XXHashAPI | null = null;
let initPromise: Promise<void> | null = null;

/**
 * Instantiates the xxhash WebAssembly module for this thread. Must be awaited once per
 * thread before `recordDigest`/`hash64`; concurrent and repeated calls are cheap no-ops.
 */
export function initVersions(): Promise<void> {
  if (initPromise === null) {
    initPromise = xxhash().then(
      (api) => {
        hasher = api;
      },
      (err: unknown) => {
        initPromise = null; // allow a retry instead of caching the failure
        throw err;
      },
    );
  }
  return initPromise;
}

const MASK32 = 0xffffffffn;

/** xxh64 (seed 0) of arbitrary bytes. Requires `await initVersions()`. */
export function hash64(bytes: Uint8Array): Digest64 {
  if (hasher === null) throw new Error('hash64: await initVersions() in this thread first');
  const h = hasher.h64Raw(bytes);
  return { hi: Number(h >> 32n), lo: Number(h & MASK32) };
}

/**
 * Digest of the canonical encoding: replicas with equal version sets (in any order)
 * get equal digests. Requires `await initVersions()`.
 */
export function recordDigest(versions: readonly Version[]): Digest64 {
  return hash64(encodeRecord(versions));
}

/** 16 lowercase hex chars, e.g. for logs or string-keyed maps. */
export function digestToHex(d: Digest64): string {
  return d.hi.toString(16).padStart(8, '0') + d.lo.toString(16).padStart(8, '0');
}
