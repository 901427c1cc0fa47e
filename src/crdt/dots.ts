/**
 * Dots, dot sets and the causal context they live in: the building blocks of the set, flag and
 * map types (Almeida, Shoker, Baquero, "Delta State Replicated Data Types", 2018 — the "causal
 * CRDT" construction that riak_dt_orswot and riak_dt_map are instances of).
 *
 * A dot `[actor, n]` names the n-th operation coordinated by `actor`. A state is a *store* of dots
 * (with payloads) plus a *clock*, the version vector of every dot the state has seen. A dot the
 * clock covers but the store lacks was removed. Clocks can be plain version vectors (no "dot
 * cloud") because states travel whole: an actor mints dot n on a state that has seen its dots
 * 1..n-1, so every state's knowledge of one actor's dots is a prefix.
 *
 * That argument needs each actor id to be used by one state history only (one node, one data
 * directory incarnation): see docs/crdt.md "Actors".
 *
 * Stores are built from *dot functions*: lists of entries `[actor, counter, ...payload]` sorted by
 * dot, duplicate-free, immutable (a dot set is a dot function without payload). Functions may
 * return an input unchanged instead of a copy.
 *
 * Pure module: no I/O.
 */
import type { Dot } from '../versions/version.js';
import { vcGet, type VClock, type VClockEntry } from '../versions/vclock.js';
import { checkActor, type CrdtLimits } from './limits.js';

export type { Dot };
export type Dots = readonly Dot[];

export const NO_DOTS: Dots = Object.freeze([]) as Dots;

/** True when `clock` has seen `dot`. */
export function covers(clock: VClock, dot: Dot): boolean {
  return vcGet(clock, dot[0]) >= dot[1];
}

// ---- dot functions: entries `[actor, counter, ...payload]`, one payload per dot ----

/** An entry of a dot function: its dot's actor and counter, then its payload. */
export type DotEntry = readonly [actor: string, counter: number, ...payload: unknown[]];

function compareEntryDots(a: DotEntry, b: DotEntry): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] - b[1];
}

function entryCovered(clock: VClock, e: DotEntry): boolean {
  return vcGet(clock, e[0]) >= e[1];
}

/**
 * Join of two dot functions (entries sorted by dot): as joinDots, keyed by the entry's dot. Two
 * entries with one dot carry one payload (a dot is minted once), so the first side's is kept.
 */
export function joinDotFun<E extends DotEntry>(s1: readonly E[], c1: VClock, s2: readonly E[], c2: VClock): readonly E[] {
  if (s1 === s2) return s1;
  const out: E[] = [];
  let i = 0;
  let j = 0;
  let all1 = true; // out so far is exactly s1
  let all2 = true;
  while (i < s1.length || j < s2.length) {
    const cmp = i === s1.length ? 1 : j === s2.length ? -1 : compareEntryDots(s1[i]!, s2[j]!);
    if (cmp === 0) {
      out.push(s1[i]!);
      i++;
      j++;
    } else if (cmp < 0) {
      if (!entryCovered(c2, s1[i]!)) {
        out.push(s1[i]!);
        all2 = false;
      }
      i++;
    } else {
      if (!entryCovered(c1, s2[j]!)) {
        out.push(s2[j]!);
        all1 = false;
      }
      j++;
    }
  }
  if (all1 && out.length === s1.length) return s1;
  if (all2 && out.length === s2.length) return s2;
  return out;
}

/** Entries whose dot the clock has not seen. */
export function uncoveredEntries<E extends DotEntry>(s: readonly E[], clock: VClock): readonly E[] {
  let i = 0;
  while (i < s.length && !entryCovered(clock, s[i]!)) i++;
  if (i === s.length) return s;
  const out: E[] = s.slice(0, i);
  for (i++; i < s.length; i++) if (!entryCovered(clock, s[i]!)) out.push(s[i]!);
  return out;
}

export function anyEntryCovered(s: readonly DotEntry[], clock: VClock): boolean {
  for (let i = 0; i < s.length; i++) if (entryCovered(clock, s[i]!)) return true;
  return false;
}

/** dotsLeq for dot functions; entries with one dot must also carry equal payloads. */
export function dotFunLeq<E extends DotEntry>(s1: readonly E[], c1: VClock, s2: readonly E[], samePayload: (a: E, b: E) => boolean): boolean {
  let i = 0;
  for (let j = 0; j < s2.length; j++) {
    const e = s2[j]!;
    if (!entryCovered(c1, e)) continue;
    while (i < s1.length && compareEntryDots(s1[i]!, e) < 0) i++;
    if (i === s1.length || compareEntryDots(s1[i]!, e) !== 0 || !samePayload(s1[i]!, e)) return false;
  }
  return true;
}


// ---- dot sets: dot functions without payload ----

/**
 * Join of two dot sets with their clocks: a dot survives when both hold it, or when one holds it
 * and the other has not seen it (had it seen it, it removed it).
 */
export const joinDots: (s1: Dots, c1: VClock, s2: Dots, c2: VClock) => Dots = joinDotFun;

/** The dots of `s` the clock has not seen: what survives a reset by a party that saw `clock`. */
export const uncoveredDots: (s: Dots, clock: VClock) => Dots = uncoveredEntries;

export const anyCovered: (s: Dots, clock: VClock) => boolean = anyEntryCovered;

/**
 * The order half of "state 1 ⊑ state 2" for one dot set: every dot of `s2` that `c1` has seen is
 * still in `s1` (state 1 did not remove anything state 2 keeps). The other half, `c1 ≤ c2`, is
 * checked once per state by the caller.
 */
export function dotsLeq(s1: Dots, c1: VClock, s2: Dots): boolean {
  return dotFunLeq(s1, c1, s2, () => true);
}

// ---- clocks ----

/** `clock` with `actor`'s entry set to `counter` (inserted in order when absent). */
export function clockWith(clock: VClock, actor: string, counter: number): VClock {
  const out: VClockEntry[] = [];
  let placed = false;
  for (let i = 0; i < clock.length; i++) {
    const e = clock[i]!;
    if (!placed && e[0] >= actor) {
      out.push([actor, counter]);
      placed = true;
      if (e[0] === actor) continue;
    }
    out.push(e);
  }
  if (!placed) out.push([actor, counter]);
  return out;
}

/**
 * The next dot of `actor` on a state with this clock, and the clock that includes it. Refuses a
 * new actor past crdt.maxActors.
 */
export function mintDot(clock: VClock, actor: string, limits: CrdtLimits): { dot: Dot; clock: VClock } {
  const n = vcGet(clock, actor) + 1;
  checkActor(actor, n > 1, clock.length, limits);
  return { dot: [actor, n], clock: clockWith(clock, actor, n) };
}

// ---- keyed stores: entries `[key, value]` sorted by key (set elements, map fields) ----

export type KeyedEntry<V> = readonly [key: string, value: V];

/**
 * Merges two keyed stores key by key with `joinValue` (given undefined for a side that lacks the
 * key); a null result drops the key. Returns an input when the result equals it entry for entry.
 */
export function joinKeyed<V>(
  s1: readonly KeyedEntry<V>[],
  s2: readonly KeyedEntry<V>[],
  joinValue: (v1: V | undefined, v2: V | undefined, key: string) => V | null,
): readonly KeyedEntry<V>[] {
  const out: KeyedEntry<V>[] = [];
  let i = 0;
  let j = 0;
  let same1 = true;
  let same2 = true;
  while (i < s1.length || j < s2.length) {
    const k1 = i < s1.length ? s1[i]![0] : undefined;
    const k2 = j < s2.length ? s2[j]![0] : undefined;
    if (k1 !== undefined && k1 === k2) {
      const v = joinValue(s1[i]![1], s2[j]![1], k1);
      if (v !== null) out.push(v === s1[i]![1] ? s1[i]! : v === s2[j]![1] ? s2[j]! : [k1, v]);
      if (v !== s1[i]![1]) same1 = false;
      if (v !== s2[j]![1]) same2 = false;
      i++;
      j++;
    } else if (k2 === undefined || (k1 !== undefined && k1 < k2)) {
      const v = joinValue(s1[i]![1], undefined, k1!);
      if (v !== null) {
        out.push(v === s1[i]![1] ? s1[i]! : [k1!, v]);
        same2 = false;
      }
      if (v !== s1[i]![1]) same1 = false;
      i++;
    } else {
      const v = joinValue(undefined, s2[j]![1], k2);
      if (v !== null) {
        out.push(v === s2[j]![1] ? s2[j]! : [k2, v]);
        same1 = false;
      }
      if (v !== s2[j]![1]) same2 = false;
      j++;
    }
  }
  return same1 ? s1 : same2 ? s2 : out;
}

/** Binary search for `key` in a keyed store: its index, or -(insertion point) - 1. */
export function findKey<V>(s: readonly KeyedEntry<V>[], key: string): number {
  let lo = 0;
  let hi = s.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = s[mid]![0];
    if (k === key) return mid;
    if (k < key) lo = mid + 1;
    else hi = mid - 1;
  }
  return -lo - 1;
}
