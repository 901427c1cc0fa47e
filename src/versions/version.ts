/**
 * A single written version of a key, identified by its *dot* (the coordinator node and
 * the counter it assigned to this write) and carrying the causal *clock* it was written
 * with (dotted version vectors). The dot, not the clock, is what another version has to
 * have seen to supersede this one; that is what keeps two context-less writes through
 * the same coordinator as siblings instead of one silently overwriting the other.
 *
 * Why `prior` exists: `clock` covers the dot (so it can be handed to clients as the
 * context that supersedes this version), which means clock[dot node] == dot counter and
 * hides how much of the dot node's history the writer had actually *seen*. Without that,
 * blind write #2 through node n (clock {n: c2}) would appear to have seen blind write #1
 * (dot (n, c1 < c2)) and silently replace it. `prior` is the dot node's entry of the
 * context the write was made with — the "(i, n, m)" entry of the DVV paper, with
 * m = dot counter and n = prior.
 *
 * Caveat inherited from version-vector contexts: a context entry [n, c] claims every
 * write of n up to c for this key. That is only true if any replica state holding (or
 * covering) dot (n, c) also holds or covers n's earlier live dots for the key, which the
 * coordinator guarantees by merging the new version into its own local copy and shipping
 * that merged set. Shipping the lone new version instead lets a client that read only
 * n's later write supersede an earlier concurrent one it never saw.
 *
 * Pure module: no I/O, safe to use from worker threads.
 */
import { vcGet, vcMerge, vcPrune, type VClock, type VClockEntry } from './vclock.js';

/** `[coordinator node id, counter]` — unique per write (see DotCounter). */
export type Dot = VClockEntry;

export interface Version {
  readonly dot: Dot;
  /** Causal history of this write including the dot; invariant: covers `dot`. */
  readonly clock: VClock;
  /**
   * Highest counter of the dot's node that this write's context had seen (0 = none);
   * invariant: 0 <= prior < dot counter. Decides whether this version supersedes other
   * versions from the same coordinator (see module comment).
   */
  readonly prior: number;
  /** Wall-clock microseconds at the coordinator; drives LWW and tombstone GC. */
  readonly ts: number;
  readonly tombstone: boolean;
  /** Empty for tombstones. */
  readonly value: Uint8Array;
  /**
   * Time to live in seconds (absent or 0: the value never expires). The value reads as absent from
   * `ts + ttl` seconds on (`isExpiredAt`), and the sweep purges it gc grace after that, as Cassandra
   * does with an expiring cell. Never set on a tombstone.
   */
  readonly ttl?: number;
}

/** Cassandra's ceiling on a TTL (20 years); ts + ttl stays a safe integer of microseconds. */
export const MAX_TTL_SECONDS = 630_720_000;

/** The version's expiry in µs (its ts plus its TTL), or Infinity when it has no TTL. */
export function expiresAtUs(v: Version): number {
  return v.ttl !== undefined && v.ttl > 0 ? v.ts + v.ttl * 1_000_000 : Infinity;
}

/** Has the version's TTL run out at `nowUs`? (A version without a TTL never expires.) */
export function isExpiredAt(v: Version, nowUs: number): boolean {
  return nowUs >= expiresAtUs(v);
}

export interface DotCounterOptions {
  /** Wall clock in milliseconds (default `Date.now`); injectable for tests. */
  now?: () => number;
  /** Never issue a counter ≤ this (e.g. a persisted high-water mark from before a restart). */
  floor?: number;
  /**
   * How far (µs) ahead of the wall clock a `next(floor)` floor may push the counter
   * (default 1 hour). Floors usually come from client-supplied contexts; without a cap
   * a forged context near 2^53 would push this node's counter to overflow and make
   * every later write fail.
   */
  maxFloorLeadUs?: number;
}

/**
 * Per-coordinator, strictly increasing dot counter: `max(now_ms * 1000, last + 1, floor + 1)`.
 *
 * Counters must be unique per node forever, including across restarts, because two
 * different writes with the same dot are treated as the same version (one is dropped).
 * Within a process strict monotonicity guarantees it. Across restarts we rely on the
 * wall clock: ASSUMPTION — when a node restarts, its wall clock reads later than the
 * last counter it issued before (i.e. the clock never steps back by more than the
 * downtime, and the node did not issue > 1000 writes/ms for long enough to run ahead of
 * real time by more than the downtime). If that cannot be trusted, seed `floor` from a
 * persisted high-water mark, and pass `vcGet(context, self)` as `next(floor)` so a
 * write always gets a counter above anything its context has seen from this node.
 *
 * Using a timestamp rather than 1,2,3… also makes counters ≈ time, which is what lets
 * `vcPrune` drop the oldest entries.
 */
export class DotCounter {
  private last: number;
  private readonly now: () => number;
  private readonly maxFloorLeadUs: number;

  constructor(opts: DotCounterOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.maxFloorLeadUs = opts.maxFloorLeadUs ?? 3_600_000_000;
    const floor = opts.floor ?? 0;
    assertCounterLike(floor, 'DotCounter floor', true);
    this.last = floor;
  }

  /**
   * Next dot counter; strictly greater than every previous result and than `floor`.
   * Pass `vcGet(context, self)` as `floor` so a write always gets a dot its context has
   * not seen (newVersion requires it). Throws a RangeError when `floor` is implausibly
   * far ahead of both this counter and the wall clock (forged or corrupt context).
   */
  next(floor = 0): number {
    const wall = Math.floor(this.now() * 1000);
    let c = this.last + 1;
    if (wall > c) c = wall;
    if (floor >= c) {
      if (floor - wall > this.maxFloorLeadUs) {
        throw new RangeError(
          `DotCounter: context counter ${floor} is ${floor - wall}µs ahead of the wall clock (limit ${this.maxFloorLeadUs})`,
        );
      }
      c = floor + 1;
    }
    if (!Number.isSafeInteger(c)) {
      // Past 2^53 counters stop being exact and uniqueness would silently break.
      throw new Error(`DotCounter overflow: ${c} is not a safe integer (floor=${floor})`);
    }
    this.last = c;
    return c;
  }

  /** Raises the floor after seeing a counter issued by this node elsewhere (e.g. on disk). */
  observe(counter: number): void {
    if (counter > this.last) this.last = counter;
  }

  /** Highest counter issued or observed so far (persist it to seed `floor` on restart). */
  get highWater(): number {
    return this.last;
  }
}

export interface NewVersionOptions {
  node: string;
  counter: number;
  /** Causal context the client read (merge of the clocks it saw); empty for blind writes. */
  context: VClock;
  ts: number;
  tombstone: boolean;
  value: Uint8Array;
  maxClockEntries: number;
  /** Seconds until the value expires (0 or absent: never). Not allowed on a tombstone. */
  ttl?: number;
}

/**
 * Builds the version for a write coordinated by `node`:
 * clock = prune(merge(context, [[node, counter]])), never pruning the dot's own entry.
 *
 * Throws if `counter` is not above the context's entry for `node`: such a dot would be
 * covered by the very versions this write claims to supersede, so merging would drop
 * both — a lost write. Callers get a safe counter from `DotCounter.next(vcGet(context, node))`.
 */
export function newVersion(opts: NewVersionOptions): Version {
  const { node, counter, context, ts, tombstone, value, maxClockEntries } = opts;
  if (typeof node !== 'string' || node.length === 0) {
    throw new Error('newVersion: node id must be a non-empty string');
  }
  assertCounterLike(counter, 'newVersion: counter', false);
  if (!Number.isSafeInteger(ts) || ts < 0) {
    throw new Error(`newVersion: ts must be a non-negative safe integer (µs), got ${String(ts)}`);
  }
  if (tombstone && value.length !== 0) {
    throw new Error('newVersion: a tombstone must carry an empty value');
  }
  const ttl = opts.ttl ?? 0;
  if (!Number.isSafeInteger(ttl) || ttl < 0 || ttl > MAX_TTL_SECONDS) throw new Error(`newVersion: ttl must be an integer in [0, ${MAX_TTL_SECONDS}], got ${String(ttl)}`);
  if (tombstone && ttl > 0) throw new Error('newVersion: a tombstone has no ttl');
  const seen = vcGet(context, node);
  if (counter <= seen) {
    throw new Error(
      `newVersion: counter ${counter} for ${node} is not above the context's ${seen}; ` +
        'use DotCounter.next(vcGet(context, node))',
    );
  }
  const dot: Dot = [node, counter];
  // Since counter > context[node], the merged clock holds exactly this dot tuple (shared,
  // not copied), which lets the record codec store the dot as an index into the clock.
  const clock = vcPrune(vcMerge(context, [dot]), maxClockEntries, node);
  return ttl > 0 ? { dot, clock, prior: seen, ts, tombstone, value, ttl } : { dot, clock, prior: seen, ts, tombstone, value };
}

function assertCounterLike(x: number, what: string, allowZero: boolean): void {
  if (!Number.isSafeInteger(x) || x < (allowZero ? 0 : 1)) {
    throw new Error(`${what} must be a ${allowZero ? 'non-negative' : 'positive'} safe integer, got ${String(x)}`);
  }
}

/**
 * Whether `y`'s causal past (its context, excluding its own dot) includes `dot`, i.e.
 * `y` supersedes the version with that dot. For the dot's own node only `prior`
 * counts: the clock entry there is y's own dot, not something it saw.
 */
export function hasSeen(y: Version, dot: Dot): boolean {
  const node = dot[0];
  return node === y.dot[0] ? y.prior >= dot[1] : vcGet(y.clock, node) >= dot[1];
}

/** Total order on dots: node id, then counter. This is the canonical sibling order. */
export function compareDots(a: Dot, b: Dot): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] - b[1];
}
