/**
 * `leafIndex` (tree.ts) of one ring range, without BigInt: every write a shard commits patches the
 * tree of its token's range, and the BigInt arithmetic there (three conversions, five BigInt
 * operations and their allocations per call) was the largest part of the shard threads' Merkle
 * work under batched ingest (perf, issue 12 fourth pass).
 *
 * Same answer, bit for bit (replicas must agree on every leaf): the leaf of token t in (start, end]
 * is floor(o · 2^depth / w) with o = t − start − 1 and w = end − start (mod 2^64; w = 0 means the
 * whole ring, 2^64). A float quotient estimates it to within one (o and w are rounded to 53 bits,
 * the quotient is below 2^MAX_DEPTH = 2^20), and an exact comparison of q · w with o · 2^depth in
 * 32-bit limbs (every partial product below 2^53) corrects it. The property test compares it with leafIndex.
 *
 * Pure module: no I/O, safe to use from worker threads.
 */
import { assertDepth, assertHash64, type Hash64 } from './tree.js';

const TWO_32 = 2 ** 32;

/** The leaf of a token in the tree of one range (start, end] at one depth. */
export class RangeLeafIndex {
  private readonly startHi: number;
  private readonly startLo: number;
  /** Width (end − start mod 2^64, 0 read as 2^64) in 32-bit limbs: widthHi is 2^32 for the whole ring. */
  private readonly widthHi: number;
  private readonly widthLo: number;
  private readonly width: number;
  /** 2^depth: the number of leaves, and the scale of an offset's leaf. */
  private readonly leafCount: number;

  constructor(start: Hash64, end: Hash64, depth: number) {
    assertHash64(start, 'RangeLeafIndex start');
    assertHash64(end, 'RangeLeafIndex end');
    assertDepth(depth);
    this.startHi = start.hi;
    this.startLo = start.lo;
    let lo = end.lo - start.lo;
    let hi = end.hi - start.hi;
    if (lo < 0) {
      lo += TWO_32;
      hi -= 1;
    }
    if (hi < 0) hi += TWO_32;
    if (hi === 0 && lo === 0) hi = TWO_32; // start == end: the whole ring
    this.widthHi = hi;
    this.widthLo = lo;
    this.width = hi * TWO_32 + lo;
    this.leafCount = 2 ** depth;
  }

  /** The leaf of token (hi, lo): leafIndex(start, end, {hi, lo}, depth). Throws RangeError outside (start, end]. */
  leafOf(hi: number, lo: number): number {
    if (hi >>> 0 !== hi || lo >>> 0 !== lo) throw new RangeError(`leafIndex token: expected uint32 halves, got ${hi}, ${lo}`);
    // Offset o = token − start − 1 (mod 2^64), in limbs.
    let ol = lo - this.startLo - 1;
    let oh = hi - this.startHi;
    if (ol < 0) {
      ol += TWO_32;
      oh -= 1;
    }
    if (oh < 0) oh += TWO_32;
    if (oh > this.widthHi || (oh === this.widthHi && ol >= this.widthLo)) throw new RangeError('leafIndex: token outside range (start, end]');
    // o · 2^depth as three 32-bit limbs (a2, a1, a0); each product is below 2^52.
    // (`x >>> 0` is x mod 2^32 for an integer x below 2^53, and x − that is exactly divisible.)
    const t0 = ol * this.leafCount;
    const a0 = t0 >>> 0;
    const t1 = oh * this.leafCount + (t0 - a0) / TWO_32;
    const a1 = t1 >>> 0;
    const a2 = (t1 - a1) / TWO_32;
    let q = Math.floor(((oh * TWO_32 + ol) * this.leafCount) / this.width);
    if (q >= this.leafCount) q = this.leafCount - 1;
    // q · w ≤ o · 2^depth < (q + 1) · w.
    while (q > 0 && this.cmpProduct(q, a2, a1, a0) > 0) q--;
    while (q + 1 < this.leafCount && this.cmpProduct(q + 1, a2, a1, a0) <= 0) q++;
    return q;
  }

  /** Sign of q · width − (a2, a1, a0), exactly (q ≤ 2^20 and a limb < 2^32 or = 2^32, so each partial product is below 2^53). */
  private cmpProduct(q: number, a2: number, a1: number, a0: number): number {
    const u0 = q * this.widthLo;
    const m0 = u0 >>> 0;
    const u1 = q * this.widthHi + (u0 - m0) / TWO_32;
    const m1 = u1 >>> 0;
    const m2 = (u1 - m1) / TWO_32;
    if (m2 !== a2) return m2 < a2 ? -1 : 1;
    if (m1 !== a1) return m1 < a1 ? -1 : 1;
    if (m0 !== a0) return m0 < a0 ? -1 : 1;
    return 0;
  }
}
