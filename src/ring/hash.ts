/**
 * 64-bit ring tokens and the xxh64 helpers built on xxhash-wasm.
 *
 * A token is an unsigned 64-bit integer. On the hot path (every request hashes its key and looks it
 * up in the ring) we keep it as two unsigned 32-bit words instead of a BigInt: BigInts allocate and
 * their comparisons are slow, while two uint32 words compare with plain number ops and fit straight
 * into the Uint32Arrays of the shared ring table. BigInt conversions exist for cold paths only.
 */
import xxhash from 'xxhash-wasm';

/** An unsigned 64-bit token split into its high and low unsigned 32-bit words. */
export interface Token {
  hi: number;
  lo: number;
}

type XXHashAPI = Awaited<ReturnType<typeof xxhash>>;

let api: XXHashAPI | null = null;
let loading: Promise<void> | null = null;

/**
 * Load the wasm hasher. Each thread (main and every worker) has its own module instance, so each
 * must await this once before hashing; repeated or concurrent calls share one load.
 */
export async function initHasher(): Promise<void> {
  if (api !== null) return;
  if (loading === null) {
    loading = xxhash().then(
      (a) => {
        api = a;
      },
      (err: unknown) => {
        // Forget the failed attempt so a later call can retry instead of rethrowing forever.
        loading = null;
        throw err;
      },
    );
  }
  await loading;
}

function hasher(): XXHashAPI {
  if (api === null) {
    throw new Error('ring hash: xxhash-wasm is not loaded; await initHasher() in this thread before hashing');
  }
  return api;
}

/*
 * Splitting the BigInt digest: measured on Node 20 (10k ~25-byte keys), writing the digest into a
 * BigUint64Array and reading the two uint32 halves through an aliasing Uint32Array costs ~88 ns per
 * string key versus ~135-150 ns for `Number(b >> 32n)` / `Number(b & mask)` (which allocate two more
 * BigInts). For strings `h64` (encodes straight into wasm memory) beats `TextEncoder` + `h64Raw`
 * (~500-900 ns, it allocates the encoded copy). Byte keys use `h64Raw` (~81 ns).
 */
const scratch64 = new BigUint64Array(1);
const scratch32 = new Uint32Array(scratch64.buffer);
// Which uint32 half of the scratch BigUint64 is the high word depends on platform endianness.
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const HI = LITTLE_ENDIAN ? 1 : 0;
const LO = LITTLE_ENDIAN ? 0 : 1;

function digestInto(key: string | Uint8Array): void {
  const h = hasher();
  scratch64[0] = typeof key === 'string' ? h.h64(key) : h.h64Raw(key);
}

/** xxh64 (seed 0) of the key's UTF-8 bytes as a token. */
export function tokenOf(key: string | Uint8Array): Token {
  digestInto(key);
  return { hi: scratch32[HI]!, lo: scratch32[LO]! };
}

/** Same as tokenOf but writes [hi, lo] into out[0], out[1] so the hot path allocates no Token. */
export function tokenInto(key: string | Uint8Array, out: Uint32Array): void {
  digestInto(key);
  out[0] = scratch32[HI]!;
  out[1] = scratch32[LO]!;
}

/** Unsigned 64-bit order: -1, 0 or 1. */
export function compareTokens(a: Token, b: Token): number {
  if (a.hi !== b.hi) return a.hi < b.hi ? -1 : 1;
  if (a.lo !== b.lo) return a.lo < b.lo ? -1 : 1;
  return 0;
}

/**
 * Ring position owning token t among sorted `tokens`: the first i with tokens[i] >= t, or 0 when t
 * is past the last token (the range (last, first] wraps around zero). 0 for an empty ring.
 */
export function tokenPosition(tokens: readonly Token[], t: Token): number {
  let lo = 0;
  let hi = tokens.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareTokens(tokens[mid]!, t) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo === tokens.length ? 0 : lo;
}

function isWord(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/** Throws unless both words are unsigned 32-bit integers (guards the cold-path entry points). */
export function assertToken(t: Token, what = 'token'): void {
  if (t === null || typeof t !== 'object' || !isWord(t.hi) || !isWord(t.lo)) {
    throw new Error(`${what} must be { hi, lo } with unsigned 32-bit integer words, got ${JSON.stringify(t)}`);
  }
}

/** 16 lowercase hex chars, high word first (so string order equals token order). */
export function tokenToHex(t: Token): string {
  assertToken(t);
  return t.hi.toString(16).padStart(8, '0') + t.lo.toString(16).padStart(8, '0');
}

const HEX16 = /^[0-9a-fA-F]{16}$/;

/** Parses exactly 16 hex digits (either case); anything else (sign, 0x, spaces, length) throws. */
export function tokenFromHex(s: string): Token {
  if (typeof s !== 'string' || !HEX16.test(s)) {
    throw new Error(`token hex must be exactly 16 hex digits, got ${JSON.stringify(s)}`);
  }
  return { hi: parseInt(s.slice(0, 8), 16), lo: parseInt(s.slice(8), 16) };
}

const TWO64 = 1n << 64n;

export function tokenToBigInt(t: Token): bigint {
  assertToken(t);
  return (BigInt(t.hi) << 32n) | BigInt(t.lo);
}

export function tokenFromBigInt(b: bigint): Token {
  if (typeof b !== 'bigint' || b < 0n || b >= TWO64) {
    throw new Error(`token bigint must be in [0, 2^64), got ${String(b)}`);
  }
  return { hi: Number(b >> 32n), lo: Number(b & 0xffffffffn) };
}

/** xxh64 (seed 0) as 16 lowercase hex chars; strings are hashed as UTF-8. */
export function xxh64Hex(data: Uint8Array | string): string {
  const h = hasher();
  if (typeof data === 'string') return h.h64ToString(data);
  return h.h64Raw(data).toString(16).padStart(16, '0');
}

/** xxh64 (seed 0) of raw bytes as a { hi, lo } pair. */
export function xxh64Pair(data: Uint8Array): Token {
  return tokenOf(data);
}

/** An incremental xxh64 (seed 0) over several byte strings; `digestHex` is 16 lowercase hex chars. */
export function xxh64Incremental(): { update(data: Uint8Array): void; digestHex(): string } {
  const st = hasher().create64();
  return {
    update(data: Uint8Array): void {
      st.update(data);
    },
    digestHex: () => st.digest().toString(16).padStart(16, '0'),
  };
}
