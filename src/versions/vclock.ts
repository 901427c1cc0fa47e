/**
 * Version vectors ("vector clocks") keyed by coordinator node id.
 *
 * Representation: a sorted (by node id, JS string order), duplicate-free array of
 * `[node, counter]` pairs with positive safe-integer counters. Entries that are
 * absent mean counter 0. The sorted array form (rather than a Map/object) is chosen
 * because clocks are tiny (≈ number of coordinators that ever wrote a key, bounded by
 * pruning), are compared far more often than built, and must encode canonically:
 * a merge walk over two sorted arrays is branch-cheap and allocation-free.
 *
 * All functions treat clocks as immutable and may return one of their inputs (or
 * share entry tuples with them) instead of copying — callers must never mutate a clock.
 *
 * Pure module: no I/O, safe to use from worker threads.
 */

/** One clock entry / one dot: `[coordinator node id, counter]`. */
export type VClockEntry = readonly [node: string, counter: number];

/** Sorted by node id, no duplicates, counters positive safe integers. */
export type VClock = ReadonlyArray<VClockEntry>;

export type VcOrder = 'equal' | 'before' | 'after' | 'concurrent';

/** The canonical empty clock; shared so "no context" costs no allocation. */
export const EMPTY_VCLOCK: VClock = Object.freeze([]) as VClock;

/**
 * Causal order of `a` relative to `b`: 'before' means a < b (b descends a strictly),
 * 'after' means a > b.
 */
export function vcCompare(a: VClock, b: VClock): VcOrder {
  if (a === b) return 'equal';
  let aBigger = false; // some entry where a > b
  let bBigger = false; // some entry where b > a
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ea = a[i]!;
    const eb = b[j]!;
    if (ea[0] === eb[0]) {
      if (ea[1] > eb[1]) aBigger = true;
      else if (ea[1] < eb[1]) bBigger = true;
      i++;
      j++;
    } else if (ea[0] < eb[0]) {
      aBigger = true; // b lacks this node (counter 0)
      i++;
    } else {
      bBigger = true;
      j++;
    }
    if (aBigger && bBigger) return 'concurrent';
  }
  if (i < a.length) aBigger = true;
  if (j < b.length) bBigger = true;
  if (aBigger) return bBigger ? 'concurrent' : 'after';
  return bBigger ? 'before' : 'equal';
}

/** True iff `a` ≥ `b` pointwise (a has seen everything b has). */
export function vcDescends(a: VClock, b: VClock): boolean {
  if (a === b || b.length === 0) return true;
  if (b.length > a.length) return false; // b has a node a lacks (entries are positive)
  let i = 0;
  for (let j = 0; j < b.length; j++) {
    const eb = b[j]!;
    // Advance through a to eb's node; a node of b missing in a means a < b there.
    while (i < a.length && a[i]![0] < eb[0]) i++;
    if (i === a.length) return false;
    const ea = a[i]!;
    if (ea[0] !== eb[0] || ea[1] < eb[1]) return false;
    i++;
  }
  return true;
}

/**
 * Pointwise maximum. Returns one of the inputs unchanged when it already descends the
 * other (the overwhelmingly common case on the write path), so no allocation happens.
 */
export function vcMerge(a: VClock, b: VClock): VClock {
  const order = vcCompare(a, b);
  if (order === 'equal' || order === 'after') return a;
  if (order === 'before') return b;
  const out: VClockEntry[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ea = a[i]!;
    const eb = b[j]!;
    if (ea[0] === eb[0]) {
      // Reuse the winning tuple: entries are immutable, so sharing is safe and cheap.
      out.push(ea[1] >= eb[1] ? ea : eb);
      i++;
      j++;
    } else if (ea[0] < eb[0]) {
      out.push(ea);
      i++;
    } else {
      out.push(eb);
      j++;
    }
  }
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

/** Counter for `node`, 0 when absent. Linear scan: clocks are a handful of entries. */
export function vcGet(a: VClock, node: string): number {
  for (let i = 0; i < a.length; i++) {
    const e = a[i]!;
    if (e[0] === node) return e[1];
    if (e[0] > node) return 0; // sorted: node cannot appear later
  }
  return 0;
}

/** True iff `clock[node] >= counter`, i.e. the clock has seen dot (node, counter). */
export function vcCovers(clock: VClock, node: string, counter: number): boolean {
  return vcGet(clock, node) >= counter;
}

/**
 * Bounds the clock to `maxEntries` by dropping the entries with the smallest counters.
 * Counters are ≈ microsecond timestamps, so this drops the coordinators that have not
 * written the key for the longest time, as the Dynamo paper prunes by timestamp.
 * Ties are broken by node id so every replica prunes identically.
 *
 * Safety: dropping entries only makes a clock cover *less*, so pruning can create
 * spurious siblings (a superseded version resurfacing) but can never make a version
 * look superseded when it is not — i.e. it never loses writes.
 *
 * `keep`, when given, names an entry that is never dropped (the writer's own dot: a
 * version's clock must always cover its dot).
 */
export function vcPrune(a: VClock, maxEntries: number, keep?: string): VClock {
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw new Error(`vcPrune: maxEntries must be a positive integer, got ${String(maxEntries)}`);
  }
  if (a.length <= maxEntries) return a;
  // Rank candidates for removal: oldest (smallest counter) first, node id as tiebreak.
  const byAge = a.filter((e) => e[0] !== keep);
  byAge.sort((x, y) => x[1] - y[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const dropCount = a.length - maxEntries;
  const drop = new Set<VClockEntry>();
  for (let k = 0; k < dropCount; k++) drop.add(byAge[k]!);
  return a.filter((e) => !drop.has(e));
}

/** Strict node-id order used for clocks and dots (JS UTF-16 code-unit order). */
export function compareNodeIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Why the value is not a well-formed clock, or null when it is. Shared by
 * `vcValidate` (client input) and the record decoder (disk input) so both enforce the
 * exact same invariants without the cost of building error strings on success.
 */
export function vclockProblem(x: unknown): string | null {
  if (!Array.isArray(x)) return 'clock must be an array';
  let prev: string | null = null;
  for (let i = 0; i < x.length; i++) {
    const e: unknown = x[i];
    if (!Array.isArray(e) || e.length !== 2) return `entry ${i} must be a [node, counter] pair`;
    const node: unknown = e[0];
    const counter: unknown = e[1];
    if (typeof node !== 'string' || node.length === 0) {
      return `entry ${i}: node id must be a non-empty string`;
    }
    if (typeof counter !== 'number' || !Number.isSafeInteger(counter) || counter <= 0) {
      return `entry ${i}: counter must be a positive safe integer`;
    }
    if (prev !== null && !(prev < node)) {
      return `entry ${i}: node ids must be strictly increasing (sorted, no duplicates)`;
    }
    prev = node;
  }
  return null;
}

/**
 * Checks untrusted input (e.g. a client-supplied causal context) and returns it typed.
 * Rejects rather than repairs unsorted/duplicate input: contexts are opaque tokens we
 * produced, so anything non-canonical is tampering or corruption.
 */
export function vcValidate(x: unknown): VClock {
  const problem = vclockProblem(x);
  if (problem !== null) throw new Error(`invalid vector clock: ${problem}`);
  return x as VClock;
}
