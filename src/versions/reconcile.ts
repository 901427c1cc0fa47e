/**
 * Conflict resolution between the version sets held by replicas (read path, write
 * path, read repair, anti-entropy, hinted handoff all funnel through `mergeVersions`).
 *
 * Two table modes:
 *  - 'vclock': dotted-version-vector-set semantics; concurrent writes survive as siblings
 *    and the client resolves them by writing back with the merged context.
 *  - 'lww': last write wins by timestamp; never more than one version.
 *
 * Outputs are canonical (siblings sorted by dot) so that equal sets compare and encode
 * equal, which read repair (`versionsEqual`) and Merkle digests depend on.
 *
 * Pure module: no I/O, safe to use from worker threads.
 */
import { Packr } from 'msgpackr';
import { MsgpackWriter } from '../util/msgpack-writer.js';
import { writeClock } from './record.js';
import { EMPTY_VCLOCK, vcMerge, vclockProblem, type VClock } from './vclock.js';
import { compareDots, hasSeen, isExpiredAt, type Version } from './version.js';

export type MergeMode = 'vclock' | 'lww';

/** Byte order; static Buffer.compare accepts plain Uint8Arrays and is a native memcmp. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return a === b ? 0 : Buffer.compare(a, b);
}

function clocksEqual(a: VClock, b: VClock): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x !== y && (x[0] !== y[0] || x[1] !== y[1])) return false;
  }
  return true;
}

function compareClocks(a: VClock, b: VClock): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareDots(a[i]!, b[i]!);
    if (c !== 0) return c;
  }
  return a.length - b.length;
}

/**
 * LWW total order (positive: a wins). Highest ts; on a tie a tombstone beats a value (a
 * delete racing a write at the same instant must not be undone by replica order), then
 * larger value bytes, then larger dot, then clock — every field participates so the
 * winner is the same whatever order replicas deliver versions in.
 */
function lwwCompare(a: Version, b: Version): number {
  if (a === b) return 0;
  if (a.ts !== b.ts) return a.ts - b.ts;
  if (a.tombstone !== b.tombstone) return a.tombstone ? 1 : -1;
  // An expiring value beats a live one written at the same instant (Cassandra, CASSANDRA-14592).
  const ta = a.ttl ?? 0;
  const tb = b.ttl ?? 0;
  if ((ta > 0) !== (tb > 0)) return ta > 0 ? 1 : -1;
  const v = compareBytes(a.value, b.value);
  if (v !== 0) return v;
  const d = compareDots(a.dot, b.dot);
  if (d !== 0) return d;
  return a.prior - b.prior || compareClocks(a.clock, b.clock) || ta - tb;
}

/**
 * Two versions with the same dot are the same write, so normally identical. They can
 * only differ if dot uniqueness was violated (a coordinator's wall clock went back
 * across a restart, see DotCounter). We do not throw there: that would make the key
 * permanently unreadable on every replica. Instead pick deterministically (LWW order)
 * so replicas still converge.
 */
function pickSameDot(a: Version, b: Version): Version {
  return lwwCompare(a, b) >= 0 ? a : b;
}

function byDot(a: Version, b: Version): number {
  return compareDots(a.dot, b.dot);
}

/** Keeps the newest first: ts descending, then dot descending for determinism. */
function newestFirst(a: Version, b: Version): number {
  return b.ts - a.ts || compareDots(b.dot, a.dot);
}

/**
 * DVV-set merge: union by dot, then drop every version x whose dot another version y
 * has seen (`hasSeen`: y's clock covers x's dot, where for y's own node only y.prior
 * counts). Result sorted by dot.
 *
 * Commutative, associative and idempotent as long as (1) no more than `maxSiblings`
 * versions survive, (2) clocks were not pruned and (3) contexts are honest (see the
 * caveat in version.ts). These all reduce to "seen" being transitive; a pruned clock,
 * for instance, can cover a newer dot but no longer an older one it transitively
 * superseded, so grouping can decide whether the old one resurfaces as a (spurious,
 * never lost) sibling.
 *
 * Past `maxSiblings` the oldest siblings by ts are dropped: a deliberate bound on
 * record size under pathological concurrent blind writes, which gives up pure
 * commutativity (and those writes) only past the bound.
 */
export function mergeVclockVersions(
  a: readonly Version[],
  b: readonly Version[],
  maxSiblings: number,
): Version[] {
  if (!Number.isInteger(maxSiblings) || maxSiblings < 1) {
    throw new Error(`mergeVclockVersions: maxSiblings must be a positive integer, got ${String(maxSiblings)}`);
  }
  const all: Version[] = a.length === 0 ? b.slice() : b.length === 0 ? a.slice() : a.concat(b);
  if (all.length > 1) all.sort(byDot);

  // Union by dot: after sorting, equal dots are adjacent. Compact in place.
  let n = 0;
  for (let i = 0; i < all.length; i++) {
    const v = all[i]!;
    const prev = n > 0 ? all[n - 1]! : undefined;
    if (prev !== undefined && compareDots(prev.dot, v.dot) === 0) {
      all[n - 1] = pickSameDot(prev, v);
    } else {
      all[n++] = v;
    }
  }
  all.length = n;

  // Drop superseded versions. O(n²·|clock|), but n is the sibling count (1–3 normally).
  let kept = n;
  if (n > 1) {
    // Decide against the full deduped set before compacting, so that being seen by a
    // version that is itself superseded still counts (it is transitively superseded).
    // A bitmask keeps the common case allocation-free; the array is for absurd n.
    let mask = 0;
    const big: boolean[] | null = n > 31 ? new Array<boolean>(n).fill(false) : null;
    for (let i = 0; i < n; i++) {
      const x = all[i]!;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        const y = all[j]!;
        // Each having seen the other is a causal cycle, impossible unless dots were
        // reused (see pickSameDot); keep both as siblings then instead of dropping both.
        if (hasSeen(y, x.dot) && !hasSeen(x, y.dot)) {
          if (big === null) mask |= 1 << i;
          else big[i] = true;
          break;
        }
      }
    }
    kept = 0;
    for (let i = 0; i < n; i++) {
      const dominated = big === null ? (mask & (1 << i)) !== 0 : big[i]!;
      if (!dominated) all[kept++] = all[i]!;
    }
    // Longer cycles could still eliminate everything; never turn a read into "no value".
    if (kept === 0) kept = n;
    else all.length = kept;
  }

  if (kept > maxSiblings) {
    all.sort(newestFirst);
    all.length = maxSiblings;
    all.sort(byDot);
  }
  return all;
}

/** LWW merge: a single winner (empty only if both sides are empty). */
export function mergeLwwVersions(a: readonly Version[], b: readonly Version[]): Version[] {
  let best: Version | undefined;
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    if (best === undefined || lwwCompare(v, best) > 0) best = v;
  }
  for (let i = 0; i < b.length; i++) {
    const v = b[i]!;
    if (best === undefined || lwwCompare(v, best) > 0) best = v;
  }
  return best === undefined ? [] : [best];
}

/** Entry point for every reconciliation; `maxSiblings` only matters in 'vclock' mode. */
export function mergeVersions(
  mode: MergeMode,
  a: readonly Version[],
  b: readonly Version[],
  maxSiblings: number,
): Version[] {
  switch (mode) {
    case 'vclock':
      return mergeVclockVersions(a, b, maxSiblings);
    case 'lww':
      return mergeLwwVersions(a, b);
    default: {
      const never: never = mode;
      throw new Error(`mergeVersions: unknown mode ${String(never)}`);
    }
  }
}

/** Deep equality of two versions (value bytes included: same dot should imply same bytes, but read repair must notice if it does not). */
export function versionEqual(x: Version, y: Version): boolean {
  return (
    x === y ||
    (x.dot[0] === y.dot[0] &&
      x.dot[1] === y.dot[1] &&
      x.prior === y.prior &&
      x.ts === y.ts &&
      x.tombstone === y.tombstone &&
      (x.ttl ?? 0) === (y.ttl ?? 0) &&
      x.value.length === y.value.length &&
      compareBytes(x.value, y.value) === 0 &&
      clocksEqual(x.clock, y.clock))
  );
}

function isSortedByDot(vs: readonly Version[]): boolean {
  for (let i = 1; i < vs.length; i++) if (compareDots(vs[i - 1]!.dot, vs[i]!.dot) > 0) return false;
  return true;
}

/**
 * Whether two replicas hold the same version set (false → the stale one gets read
 * repair). Order-insensitive; inputs from the merge functions are already canonical,
 * so the common path is a linear compare with no allocation.
 */
export function versionsEqual(a: readonly Version[], b: readonly Version[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  const sa = isSortedByDot(a) ? a : a.slice().sort(byDot);
  const sb = isSortedByDot(b) ? b : b.slice().sort(byDot);
  for (let i = 0; i < sa.length; i++) if (!versionEqual(sa[i]!, sb[i]!)) return false;
  return true;
}

/** Causal context to hand to the client: the merge of every sibling's clock. */
export function contextOf(versions: readonly Version[]): VClock {
  let c: VClock = EMPTY_VCLOCK;
  for (let i = 0; i < versions.length; i++) c = vcMerge(c, versions[i]!.clock);
  return c;
}

// Contexts are plain [node, counter] pairs; no records/structures so the bytes are
// self-describing and stable across processes.
const contextPackr = new Packr({
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  int64AsType: 'number',
});

/** Opaque, URL/header-safe token for a causal context ('' for the empty context). */
export function encodeContext(c: VClock): string {
  if (c.length === 0) return '';
  // The same bytes as contextPackr.pack(c), without the intermediate buffer (hot: every write's reply).
  const w = MsgpackWriter.shared.reset();
  writeClock(w, c);
  return w.takeBase64url();
}

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Parses a client-supplied context. Anything that is not exactly a valid clock throws
 * Error('malformed context') — it is user input, and a bogus clock could otherwise
 * supersede versions the client never saw.
 */
export function decodeContext(s: string): VClock {
  if (s === '') return EMPTY_VCLOCK;
  // Buffer.from(…, 'base64url') silently skips invalid characters, so check first.
  if (typeof s !== 'string' || !BASE64URL.test(s)) throw new Error('malformed context');
  let decoded: unknown;
  try {
    decoded = contextPackr.unpack(Buffer.from(s, 'base64url'));
  } catch (cause) {
    throw new Error('malformed context', { cause });
  }
  const problem = vclockProblem(decoded);
  if (problem !== null) throw new Error('malformed context', { cause: new Error(problem) });
  return decoded as VClock;
}

/** Non-tombstone versions whose TTL has not run out at `nowUs` (what a read returns as values/siblings). */
export function liveValues(versions: readonly Version[], nowUs: number): Version[] {
  return versions.filter((v) => !v.tombstone && !isExpiredAt(v, nowUs));
}

/**
 * The values a read shows: the live versions, with siblings whose value bytes are identical shown
 * once (the first of them, in version order). Only the presentation collapses: storage keeps
 * every version (their dots are distinct events, and dropping one on a replica would let
 * anti-entropy bring it back), and the read's context is still computed from all of them, so a
 * write with it supersedes every collapsed sibling. Two clients writing the same bytes without a
 * context (e.g. a retried blind put) thus read back one value, not `[v, v]`. Riak returns such
 * siblings unmerged and leaves it to client resolvers; here no information is lost by merging them,
 * since the context still covers both.
 */
export function readableValues(versions: readonly Version[], nowUs: number): Version[] {
  const out: Version[] = [];
  for (const v of versions) {
    if (v.tombstone || isExpiredAt(v, nowUs)) continue;
    if (out.some((o) => o.value.length === v.value.length && Buffer.compare(o.value, v.value) === 0)) continue;
    out.push(v);
  }
  return out;
}

/** True when no live version remains at `nowUs` (an absent key, only tombstones or expired values). */
export function isDeleted(versions: readonly Version[], nowUs: number): boolean {
  for (let i = 0; i < versions.length; i++) if (!versions[i]!.tombstone && !isExpiredAt(versions[i]!, nowUs)) return false;
  return true;
}

/**
 * Whether the record can be physically removed: every version is a tombstone or a value whose
 * TTL has run out, and the newest was written longer ago than the grace period (by which time
 * anti-entropy/hinted handoff should have spread the delete to every replica, so no stale
 * replica can resurrect the value; an expired value counts as a tombstone dated at its write,
 * as Cassandra's expired cells do). An empty set carries no information and is always purgeable.
 */
export function purgeableTombstones(versions: readonly Version[], nowUs: number, graceUs: number): boolean {
  let newest = -Infinity;
  for (let i = 0; i < versions.length; i++) {
    const v = versions[i]!;
    if (!v.tombstone && !isExpiredAt(v, nowUs)) return false;
    if (v.ts > newest) newest = v.ts;
  }
  return nowUs - newest > graceUs;
}
