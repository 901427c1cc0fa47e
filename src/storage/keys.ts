/**
 * RocksDB key layout (storage format 2; see src/storage/migrate.ts for format 1):
 *
 *   token (8 bytes BE) | table id (16 bytes) | escaped partition key | 0x00 0x00 | clustering key (raw)
 *
 * The table id is the first 16 bytes of SHA-256 of the table name (src/router/tables.ts); format 1
 * had a 32-bit xxh64 id there, which two names could share (and then share storage).
 *
 * The token leads so that a ring range (what a node owns, what a Merkle tree covers,
 * what gets streamed on rebalance) is one or two contiguous key ranges. The table id
 * follows so each token's rows are grouped per table, then the partition key, then the
 * clustering key so a partition's rows are contiguous and in clustering order.
 *
 * Partition key escaping is FoundationDB-tuple style: every 0x00 byte becomes 0x00 0xFF.
 * DEVIATION from the one-byte 0x00 terminator of the original design: the terminator is
 * 0x00 0x00. With a single 0x00, a clustering key starting with 0xFF is
 * indistinguishable from an escaped 0x00 in the partition key — e.g. (pk "a", ck FF 00 X)
 * and (pk "a\0", ck X) both encode to 61 00 FF 00 X — so two different rows would
 * share one key. FDB avoids this only because the byte after its terminator is a type
 * code that is never 0xFF; our clustering key is raw and may well start with 0xFF (e.g.
 * descending/complemented encodings). After 0x00 the decoder now sees 0xFF (escaped
 * zero) or 0x00 (end), never anything else, and order is preserved because
 * 00 00 < 00 FF < any byte ≥ 01: a shorter partition key sorts first, as it should.
 *
 * Tokens are unsigned 64-bit, passed as (hi, lo) uint32 halves to avoid BigInt on the
 * hot path.
 *
 * Pure module: no I/O, safe to use from worker threads.
 */

export const TOKEN_BYTES = 8;
/** Width of a table id in storage keys, shard wire requests and peer messages. */
export const TABLE_ID_BYTES = 16;
const HEADER_BYTES = TOKEN_BYTES + TABLE_ID_BYTES;
const TERMINATOR_BYTES = 2;
/** The shortest storage key: token, table id, empty partition key, terminator. */
export const MIN_STORAGE_KEY_BYTES = HEADER_BYTES + TERMINATOR_BYTES;
const ESCAPE = 0xff;
const MAX_U32 = 0xffffffff;

function assertU32(x: number, what: string): void {
  if (!Number.isInteger(x) || x < 0 || x > MAX_U32) {
    throw new RangeError(`${what} must be a uint32, got ${String(x)}`);
  }
}

/** Big-endian 8-byte encoding of the token (hi, lo): the key prefix of that token. */
export function be8(hi: number, lo: number): Buffer {
  assertU32(hi, 'token hi');
  assertU32(lo, 'token lo');
  const b = Buffer.allocUnsafe(TOKEN_BYTES);
  b.writeUInt32BE(hi, 0);
  b.writeUInt32BE(lo, 4);
  return b;
}

function countZeros(b: Uint8Array): number {
  let z = 0;
  // indexOf is native; partition keys rarely contain 0x00, so this is usually one call.
  let i = b.indexOf(0);
  while (i !== -1) {
    z++;
    i = b.indexOf(0, i + 1);
  }
  return z;
}

/** Writes the escaped partition key + terminator at `pos`; returns the end offset. */
function writeEscaped(out: Buffer, pos: number, pk: Uint8Array, zeros: number): number {
  if (zeros === 0) {
    out.set(pk, pos);
    pos += pk.length;
  } else {
    for (let i = 0; i < pk.length; i++) {
      const byte = pk[i]!;
      out[pos++] = byte;
      if (byte === 0) out[pos++] = ESCAPE;
    }
  }
  out[pos++] = 0;
  out[pos++] = 0;
  return pos;
}

function assertTableId(id: Uint8Array): void {
  if (!(id instanceof Uint8Array) || id.length !== TABLE_ID_BYTES) {
    throw new RangeError(`table id must be ${TABLE_ID_BYTES} bytes, got ${id instanceof Uint8Array ? `${id.length} bytes` : typeof id}`);
  }
}

function writeHeader(out: Buffer, tokenHi: number, tokenLo: number, tableId: Uint8Array): void {
  out.writeUInt32BE(tokenHi, 0);
  out.writeUInt32BE(tokenLo, 4);
  out.set(tableId, TOKEN_BYTES);
}

/**
 * Storage key of one row. Within a (token, table) the byte order of keys equals the
 * lexicographic order of (partitionKey, clustering).
 */
export function encodeStorageKey(
  tokenHi: number,
  tokenLo: number,
  tableId: Uint8Array,
  partitionKey: Uint8Array,
  clustering?: Uint8Array,
): Buffer {
  assertU32(tokenHi, 'token hi');
  assertU32(tokenLo, 'token lo');
  assertTableId(tableId);
  const zeros = countZeros(partitionKey);
  const ckLen = clustering === undefined ? 0 : clustering.length;
  const out = Buffer.allocUnsafe(HEADER_BYTES + partitionKey.length + zeros + TERMINATOR_BYTES + ckLen);
  writeHeader(out, tokenHi, tokenLo, tableId);
  const pos = writeEscaped(out, HEADER_BYTES, partitionKey, zeros);
  if (clustering !== undefined && ckLen > 0) out.set(clustering, pos);
  return out;
}

export interface DecodedStorageKey {
  tokenHi: number;
  tokenLo: number;
  /** A view into the decoded buffer. */
  tableId: Buffer;
  /** May share memory with the decoded buffer when no unescaping was needed. */
  partitionKey: Buffer;
  /** Always a view into the decoded buffer (it is stored raw). */
  clustering: Buffer;
}

/**
 * Inverse of encodeStorageKey; throws on anything encodeStorageKey cannot produce.
 * The returned buffers may alias `buf` (no copy on the iterator hot path): copy them
 * if `buf` is going to be reused.
 */
export function decodeStorageKey(buf: Uint8Array): DecodedStorageKey {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const { partitionKey, clustering } = decodeKeyBody(b, HEADER_BYTES);
  return { tokenHi: b.readUInt32BE(0), tokenLo: b.readUInt32BE(4), tableId: b.subarray(TOKEN_BYTES, HEADER_BYTES), partitionKey, clustering };
}

/**
 * The escaped partition key and the clustering key after a `headerBytes` header (storage format 1
 * had a 12-byte header: the migration decodes its keys with this too).
 */
export function decodeKeyBody(b: Buffer, headerBytes: number): { partitionKey: Buffer; clustering: Buffer } {
  if (b.length < headerBytes + TERMINATOR_BYTES) {
    throw new Error(`malformed storage key: ${b.length} bytes is shorter than the minimum`);
  }
  // Scan for the terminator, counting escapes so unescaping can size its output exactly.
  let zeros = 0;
  let i = b.indexOf(0, headerBytes);
  let end = -1; // index of the terminator's first byte
  while (i !== -1) {
    if (i + 1 >= b.length) throw new Error('malformed storage key: unterminated partition key');
    const next = b[i + 1]!;
    if (next === 0) {
      end = i;
      break;
    }
    if (next !== ESCAPE) {
      throw new Error(`malformed storage key: invalid escape 0x00 0x${next.toString(16).padStart(2, '0')} at ${i}`);
    }
    zeros++;
    i = b.indexOf(0, i + 2);
  }
  if (end === -1) throw new Error('malformed storage key: unterminated partition key');
  let partitionKey: Buffer;
  if (zeros === 0) {
    partitionKey = b.subarray(headerBytes, end);
  } else {
    partitionKey = Buffer.allocUnsafe(end - headerBytes - zeros);
    let o = 0;
    for (let k = headerBytes; k < end; k++) {
      const byte = b[k]!;
      partitionKey[o++] = byte;
      if (byte === 0) k++; // skip the 0xFF escape
    }
  }
  return { partitionKey, clustering: b.subarray(end + TERMINATOR_BYTES) };
}

/** The table id of a storage key: a view of its bytes 8..24 (no copy). */
export function tableIdOfStorageKey(key: Uint8Array): Buffer {
  if (key.length < HEADER_BYTES) throw new RangeError(`storage key of ${key.length} bytes is too short`);
  return Buffer.from(key.buffer, key.byteOffset + TOKEN_BYTES, TABLE_ID_BYTES);
}

/** Does the storage key belong to table `id`? (No allocation: the scan filter runs it per key.) */
export function storageKeyHasTable(key: Uint8Array, id: Uint8Array): boolean {
  if (key.length < HEADER_BYTES || id.length !== TABLE_ID_BYTES) return false;
  for (let i = 0; i < TABLE_ID_BYTES; i++) if (key[TOKEN_BYTES + i] !== id[i]) return false;
  return true;
}

/**
 * The common prefix of every row of one partition; `[prefix, prefixUpperBound(prefix))`
 * holds exactly that partition's rows (the terminator keeps "ab" from matching "abc").
 */
export function partitionPrefix(tokenHi: number, tokenLo: number, tableId: Uint8Array, partitionKey: Uint8Array): Buffer {
  return encodeStorageKey(tokenHi, tokenLo, tableId, partitionKey);
}

/**
 * Iterator bounds `{ gte, lt }` covering exactly the keys that start with `prefix`
 * (`lt` omitted when the prefix is all 0xFF: nothing sorts after it but its own keys).
 */
export function prefixBounds(prefix: Uint8Array): KeyBounds {
  const gte = Buffer.from(prefix);
  let n = prefix.length;
  while (n > 0 && prefix[n - 1] === 0xff) n--;
  if (n === 0) return { gte };
  const lt = Buffer.from(prefix.subarray(0, n));
  lt[n - 1] = lt[n - 1]! + 1;
  return { gte, lt };
}

/** RocksDB iterator options subset; only `gte`/`lt` are ever set by this module. */
export interface KeyBounds {
  gt?: Buffer;
  gte?: Buffer;
  lt?: Buffer;
  lte?: Buffer;
}

/**
 * Iterator bounds for every key whose token lies in the ring range (start, end]
 * (exclusive start, inclusive end), in ascending key order: one interval, or two when
 * the range wraps past 2^64-1; start == end means the whole ring (one unbounded
 * interval).
 *
 * Token t's keys are all ≥ be8(t) and < be8(t+1), so (s, e] becomes
 * [be8(s+1), be8(e+1)). Note `gt: be8(s)` would be wrong: keys of token s are longer
 * than 8 bytes and so sort after be8(s). At the top of the ring the upper bound is
 * omitted (no 8-byte successor of 2^64-1); this assumes the keyspace iterated holds only
 * storage keys.
 */
export function tokenRangeBounds(startHi: number, startLo: number, endHi: number, endLo: number): KeyBounds[] {
  assertU32(startHi, 'start hi');
  assertU32(startLo, 'start lo');
  assertU32(endHi, 'end hi');
  assertU32(endLo, 'end lo');
  if (startHi === endHi && startLo === endLo) return [{}];
  const startIsMax = startHi === MAX_U32 && startLo === MAX_U32;
  const endIsMax = endHi === MAX_U32 && endLo === MAX_U32;
  const wraps = startHi > endHi || (startHi === endHi && startLo > endLo);
  // be8(t + 1) for t < 2^64-1: increment the 64-bit value with carry into hi.
  const succ = (hi: number, lo: number): Buffer => (lo === MAX_U32 ? be8(hi + 1, 0) : be8(hi, lo + 1));
  if (!wraps) {
    // start < end ≤ max, so start + 1 exists.
    const gte = succ(startHi, startLo);
    return endIsMax ? [{ gte }] : [{ gte, lt: succ(endHi, endLo) }];
  }
  // Wrapping: tokens [0, end] then (start, max]. end < start ≤ max, so end + 1 exists.
  const low: KeyBounds = { lt: succ(endHi, endLo) };
  if (startIsMax) return [low]; // (max, max] is empty
  return [low, { gte: succ(startHi, startLo) }];
}
