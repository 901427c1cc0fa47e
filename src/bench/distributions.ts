/**
 * Key choosers for the benchmark harness, modelled on YCSB's generators.
 *
 * Every chooser returns a record *index* (0-based); workloads turn indices into key names.
 * Randomness is always injected so a run is reproducible from its seed and two systems
 * under test (ringkv and the RocksDB baseline) can be driven with the identical op sequence.
 */

/** A source of uniform doubles in [0, 1). */
export type Rng = () => number;

export type DistributionName = 'uniform' | 'zipfian' | 'latest';

export interface KeyChooser {
  /** Next record index. */
  next(): number;
}

/** YCSB's default skew; 0.99 makes a handful of keys take a large share of traffic. */
export const ZIPFIAN_CONSTANT = 0.99;

/**
 * Seeded PRNG (sfc32, state expanded from the seed with splitmix32). Chosen over
 * Math.random for reproducibility and over mulberry32 for a period (~2^128) that a long
 * run cannot exhaust.
 */
export function seededRng(seed: number): Rng {
  let s = seed >>> 0;
  const splitmix = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix();
  let b = splitmix();
  let c = splitmix();
  let d = splitmix();
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(`${what} must be a positive safe integer, got ${n}`);
  }
}

/** Uniform over [0, n). */
export function uniform(n: number, rng: Rng): KeyChooser {
  checkCount(n, 'uniform: n');
  return { next: () => Math.floor(rng() * n) };
}

// Exact summation is O(n) Math.pow calls: fine for 1e5, ~seconds for 1e9. Beyond this
// cut-off the tail is summed with Euler–Maclaurin, whose error at this size is far below
// double precision, so large keyspaces don't stall the harness at start-up.
const ZETA_EXACT_TERMS = 100_000;

function zetaExact(from: number, to: number, theta: number): number {
  let sum = 0;
  for (let i = from; i <= to; i++) sum += 1 / Math.pow(i, theta);
  return sum;
}

/** Σ_{i=a+1}^{b} i^-θ by Euler–Maclaurin (a ≥ ZETA_EXACT_TERMS keeps the remainder negligible). */
function zetaTail(a: number, b: number, theta: number): number {
  const f = (x: number): number => Math.pow(x, -theta);
  const f1 = (x: number): number => -theta * Math.pow(x, -theta - 1);
  const f3 = (x: number): number => -theta * (theta + 1) * (theta + 2) * Math.pow(x, -theta - 3);
  const integral =
    theta === 1 ? Math.log(b / a) : (Math.pow(b, 1 - theta) - Math.pow(a, 1 - theta)) / (1 - theta);
  return integral + (f(b) - f(a)) / 2 + (f1(b) - f1(a)) / 12 - (f3(b) - f3(a)) / 720;
}

/** Generalised harmonic number ζ(n, θ) = Σ_{i=1}^{n} 1/i^θ. */
export function zeta(n: number, theta: number = ZIPFIAN_CONSTANT): number {
  if (n <= ZETA_EXACT_TERMS) return zetaExact(1, n, theta);
  return zetaExact(1, ZETA_EXACT_TERMS, theta) + zetaTail(ZETA_EXACT_TERMS, n, theta);
}

/**
 * YCSB's ZipfianGenerator (Gray et al., "Quickly Generating Billion-Record Synthetic
 * Databases"): rank 0 is the most popular. The item count may change between calls
 * (SkewedLatest needs that as inserts land); ζ(n) is then extended incrementally instead of
 * recomputed, as YCSB does, because the count grows by one per insert.
 */
export class ZipfianGenerator {
  readonly theta: number;
  private readonly alpha: number;
  private readonly zeta2: number;
  private n = 0;
  private zetan = 0;
  private eta = 0;

  constructor(
    n: number,
    private readonly rng: Rng,
    theta: number = ZIPFIAN_CONSTANT,
  ) {
    if (!(theta > 0 && theta < 1)) throw new RangeError(`zipfian: theta must be in (0, 1), got ${theta}`);
    this.theta = theta;
    this.alpha = 1 / (1 - theta);
    this.zeta2 = zeta(2, theta);
    this.resize(n);
  }

  get itemCount(): number {
    return this.n;
  }

  /** Probability of rank r under the exact Zipf law this generator approximates. */
  probabilityOfRank(r: number): number {
    return 1 / Math.pow(r + 1, this.theta) / this.zetan;
  }

  private resize(n: number): void {
    checkCount(n, 'zipfian: n');
    if (n === this.n) return;
    if (n > this.n && this.n > 0 && n - this.n <= ZETA_EXACT_TERMS) {
      this.zetan += zetaExact(this.n + 1, n, this.theta);
    } else {
      this.zetan = zeta(n, this.theta);
    }
    this.n = n;
    this.eta = (1 - Math.pow(2 / n, 1 - this.theta)) / (1 - this.zeta2 / this.zetan);
  }

  /** A rank in [0, n); n defaults to the current item count. */
  next(n: number = this.n): number {
    if (n !== this.n) this.resize(n);
    if (this.n === 1) return 0;
    const u = this.rng();
    const uz = u * this.zetan;
    // Ranks 0 and 1 are drawn exactly; the closed form below approximates the rest.
    if (uz < 1) return 0;
    if (uz < 1 + Math.pow(0.5, this.theta)) return 1;
    const r = Math.floor(this.n * Math.pow(this.eta * u - this.eta + 1, this.alpha));
    return Math.min(r, this.n - 1);
  }
}

// --- bijective scrambling -------------------------------------------------------------

function fmix32(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

// Fixed round keys: the hot set must be the same in every run and for every target,
// otherwise ringkv and the baseline would be measured on different hot keys.
const FEISTEL_KEYS = [0x2545f491, 0x9e3779b9, 0x7f4a7c15, 0xd1b54a32] as const;

/**
 * Feistel permutation of [0, 2^(2·halfBits)). Balanced Feistel networks are bijections for
 * any round function, which is the point: no two indices collide.
 */
function feistel(x: number, halfBits: number): number {
  const size = 2 ** halfBits;
  const mask = size - 1;
  let left = Math.floor(x / size);
  let right = x % size;
  for (const k of FEISTEL_KEYS) {
    const f = fmix32((right ^ k) >>> 0) & mask;
    const nextRight = (left ^ f) & mask;
    left = right;
    right = nextRight;
  }
  return left * size + right;
}

/**
 * A fixed pseudo-random bijection of [0, n) (Feistel + cycle walking). Cycle walking always
 * terminates (x's cycle returns to x < n) and the domain is < 4n, so the expected number
 * of extra rounds is < 4.
 */
export function makePermutation(n: number): (i: number) => number {
  checkCount(n, 'permutation: n');
  if (n > 2 ** 52) throw new RangeError(`permutation: n must be ≤ 2^52, got ${n}`);
  let halfBits = 1;
  while (2 ** (2 * halfBits) < n) halfBits++;
  return (i: number): number => {
    let x = feistel(i, halfBits);
    while (x >= n) x = feistel(x, halfBits);
    return x;
  };
}

/** 52-bit Feistel permutation, exported for key naming (bijective, so key names never collide). */
export function scramble52(i: number): number {
  return feistel(i, 26);
}

/**
 * Zipfian over [0, n) whose popular ranks are spread over the keyspace.
 *
 * Like YCSB's ScrambledZipfianGenerator the hot keys are scattered (so they don't all land
 * on one range/partition), but where YCSB hashes a 10^10-item zipfian modulo n (which merges
 * ranks and changes the per-key frequencies), we apply a bijective permutation, so each key's
 * frequency is exactly the Zipf(θ, n) frequency of its rank and the skew is what the docs say.
 */
export function zipfian(
  n: number,
  rng: Rng,
  opts: { theta?: number; scrambled?: boolean } = {},
): KeyChooser & { readonly generator: ZipfianGenerator; rankToIndex(rank: number): number } {
  const generator = new ZipfianGenerator(n, rng, opts.theta ?? ZIPFIAN_CONSTANT);
  const perm = opts.scrambled === false ? (i: number) => i : makePermutation(n);
  return {
    generator,
    rankToIndex: perm,
    next: () => perm(generator.next()),
  };
}

/**
 * YCSB's SkewedLatestGenerator: zipfian over recency, so the newest record is the most
 * popular. `count()` is the number of records currently known to exist (the workload passes
 * its acknowledged-insert watermark so reads don't chase inserts still in flight).
 */
export function latest(count: () => number, rng: Rng, opts: { theta?: number } = {}): KeyChooser {
  const initial = Math.max(1, count());
  const generator = new ZipfianGenerator(initial, rng, opts.theta ?? ZIPFIAN_CONSTANT);
  return {
    next: () => {
      const c = Math.max(1, count());
      return c - 1 - generator.next(c);
    },
  };
}
