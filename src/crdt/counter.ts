/**
 * Counters.
 *
 * Top level: a PN-counter (riak_dt_pncounter): per actor — the coordinating *node*, never a
 * client — the total of its increments P and of its decrements N; value ΣP − ΣN; join takes the
 * pointwise maximum. Only the actor itself ever raises its own entry (on its own stored state, in
 * its shard's mailbox order), so the maximum is always its latest total. Size: one entry per node
 * that ever coordinated an increment of the key (≤ crdt.maxActors).
 *
 * Inside a map: an embedded counter (riak_dt_emcntr) also remembers, per actor, the dot of the
 * operation that set its entry, so a field removal can reset exactly the entries it saw (see
 * map.ts). Its known anomaly, as in Riak: an increment concurrent with the field's removal
 * survives with the actor's whole total, not only the concurrent increment.
 *
 * Exactness: entries are non-negative safe integers, and an operation is refused when the state
 * it produces would have ΣP or ΣN beyond 2^53 − 1, so a value read from a state a single replica
 * produced is exact. A join of concurrent states that each stayed within the range can exceed it
 * (a counter pushed to ±9e15 from several nodes at once); its value is then rounded to a double.
 *
 * Pure module: no I/O.
 */
import { RingkvError } from '../util/errors.js';
import type { VClock } from '../versions/vclock.js';
import { dotAt, expectStrictlySorted, expectString, expectTuples, internActor, isCount } from './codec.js';
import { anyEntryCovered, dotFunLeq, joinDotFun, uncoveredEntries, type Dot } from './dots.js';
import { checkActor, corruptState, DEFAULT_CRDT_LIMITS } from './limits.js';
import type { ApplyOptions, CounterOp } from './types.js';

/** `[actor, P, N]`, sorted by actor; never `[actor, 0, 0]`. */
export type PnEntry = readonly [actor: string, p: number, n: number];

export interface CounterState {
  readonly type: 'counter';
  readonly entries: readonly PnEntry[];
}

export const EMPTY_COUNTER: CounterState = Object.freeze({ type: 'counter', entries: Object.freeze([]) as readonly PnEntry[] });

function rangeError(path: string): RingkvError {
  return new RingkvError(
    'too_large',
    `${path === '' ? 'operation' : path}: the counter would leave the exact integer range ±(2^53 − 1)`,
    { limit: 'counter range', max: Number.MAX_SAFE_INTEGER, path },
  );
}

/** P and N of an actor after adding `delta`, refusing what leaves the exact range. */
function bump(p: number, n: number, delta: number, path: string): [number, number] {
  const p2 = delta > 0 ? p + delta : p;
  const n2 = delta < 0 ? n - delta : n;
  if (p2 > Number.MAX_SAFE_INTEGER || n2 > Number.MAX_SAFE_INTEGER) throw rangeError(path);
  return [p2, n2];
}

function checkTotals(sumP: number, sumN: number, path: string): void {
  if (sumP > Number.MAX_SAFE_INTEGER || sumN > Number.MAX_SAFE_INTEGER) throw rangeError(path);
}

// ---- top-level PN-counter ----

export function counterJoin(a: CounterState, b: CounterState): CounterState {
  if (a === b) return a;
  const x = a.entries;
  const y = b.entries;
  const out: PnEntry[] = [];
  let aCovers = true; // a ⊒ b so far
  let bCovers = true;
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    const ex = x[i];
    const ey = y[j];
    if (ex !== undefined && ey !== undefined && ex[0] === ey[0]) {
      const p = Math.max(ex[1], ey[1]);
      const n = Math.max(ex[2], ey[2]);
      if (p !== ex[1] || n !== ex[2]) aCovers = false;
      if (p !== ey[1] || n !== ey[2]) bCovers = false;
      out.push(p === ex[1] && n === ex[2] ? ex : p === ey[1] && n === ey[2] ? ey : [ex[0], p, n]);
      i++;
      j++;
    } else if (ey === undefined || (ex !== undefined && ex[0] < ey[0])) {
      out.push(ex!);
      bCovers = false;
      i++;
    } else {
      out.push(ey);
      aCovers = false;
      j++;
    }
  }
  if (aCovers) return a;
  if (bCovers) return b;
  return { type: 'counter', entries: out };
}

export function counterApply(s: CounterState, op: CounterOp, actor: string, opts: ApplyOptions = {}): CounterState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  const at = s.entries.findIndex((e) => e[0] >= actor);
  const known = at >= 0 && s.entries[at]![0] === actor;
  if (op.increment === 0) return s;
  checkActor(actor, known, s.entries.length, limits);
  const old = known ? s.entries[at]! : undefined;
  const [p, n] = bump(old?.[1] ?? 0, old?.[2] ?? 0, op.increment, '');
  const entries = s.entries.slice();
  if (known) entries[at] = [actor, p, n];
  else entries.splice(at < 0 ? entries.length : at, 0, [actor, p, n]);
  let sumP = 0;
  let sumN = 0;
  for (const e of entries) {
    sumP += e[1];
    sumN += e[2];
  }
  checkTotals(sumP, sumN, '');
  return { type: 'counter', entries };
}

export function counterValue(s: CounterState): number {
  let v = 0;
  for (const e of s.entries) v += e[1] - e[2];
  return v;
}

/** a ⊑ b: every entry of a is pointwise ≤ b's. */
export function counterLeq(a: CounterState, b: CounterState): boolean {
  let j = 0;
  for (const ea of a.entries) {
    while (j < b.entries.length && b.entries[j]![0] < ea[0]) j++;
    const eb = b.entries[j];
    if (eb === undefined || eb[0] !== ea[0] || eb[1] < ea[1] || eb[2] < ea[2]) return false;
  }
  return true;
}

/** Body: flat `[actor, P, N, actor, P, N, ...]`. */
export function counterToBody(s: CounterState): unknown {
  const out: unknown[] = [];
  for (const e of s.entries) out.push(e[0], e[1], e[2]);
  return out;
}

export function counterFromBody(body: unknown): CounterState {
  const flat = expectTuples(body, 3, 'counter');
  const entries: PnEntry[] = new Array<PnEntry>(flat.length / 3);
  let prev: string | undefined;
  for (let i = 0; i < entries.length; i++) {
    const actor = expectString(flat[3 * i], 'counter actor');
    const p = flat[3 * i + 1];
    const n = flat[3 * i + 2];
    expectStrictlySorted(prev, actor, 'counter actors');
    if (actor.length === 0 || !isCount(p) || !isCount(n) || p + n === 0) throw corruptState(`counter entry ${i} is invalid`);
    entries[i] = [internActor(actor), p, n];
    prev = actor;
  }
  return entries.length === 0 ? EMPTY_COUNTER : { type: 'counter', entries };
}

// ---- embedded counter (map fields) ----

/** `[actor, dot counter, P, N]`, sorted by actor, one entry per actor. */
export type EmEntry = readonly [actor: string, counter: number, p: number, n: number];
export type EmCounter = readonly EmEntry[];

export const EMPTY_EM_COUNTER: EmCounter = Object.freeze([]) as EmCounter;

export function emJoin(s1: EmCounter, c1: VClock, s2: EmCounter, c2: VClock): EmCounter {
  const out = joinDotFun(s1, c1, s2, c2);
  // An actor's newer entry is minted on a state that saw its older one, so both can never survive.
  for (let i = 1; i < out.length; i++) {
    if (out[i - 1]![0] === out[i]![0]) throw new Error(`invariant violated: two live counter entries for actor ${out[i]![0]}`);
  }
  return out;
}

export const emRemoveCovered: (s: EmCounter, clock: VClock) => EmCounter = uncoveredEntries;
export const emAnyCovered: (s: EmCounter, clock: VClock) => boolean = anyEntryCovered;

export function emLeq(s1: EmCounter, c1: VClock, s2: EmCounter): boolean {
  return dotFunLeq(s1, c1, s2, (a, b) => a[2] === b[2] && a[3] === b[3]);
}

/** Adds `delta` to the dot's actor's entry, which then carries the dot. */
export function emApply(s: EmCounter, delta: number, dot: Dot, path: string): EmCounter {
  if (delta === 0) return s;
  const actor = dot[0];
  const at = s.findIndex((e) => e[0] >= actor);
  const old = at >= 0 && s[at]![0] === actor ? s[at] : undefined;
  const [p, n] = bump(old?.[2] ?? 0, old?.[3] ?? 0, delta, path);
  let sumP = 0;
  let sumN = 0;
  for (const e of s) {
    if (e !== old) {
      sumP += e[2];
      sumN += e[3];
    }
  }
  checkTotals(sumP + p, sumN + n, path);
  const out = s.slice();
  const entry: EmEntry = [actor, dot[1], p, n];
  if (old !== undefined) out[at] = entry;
  else out.splice(at < 0 ? out.length : at, 0, entry);
  return out;
}

export function emValue(s: EmCounter): number {
  let v = 0;
  for (const e of s) v += e[2] - e[3];
  return v;
}

/** Flat `[actorIndex, dot counter, P, N, ...]`. */
export function emToFlat(s: EmCounter, index: ReadonlyMap<string, number>): number[] {
  const out: number[] = [];
  for (const e of s) out.push(index.get(e[0])!, e[1], e[2], e[3]);
  return out;
}

export function emFromFlat(x: unknown, clock: VClock, what: string): EmCounter {
  const flat = expectTuples(x, 4, what);
  const out: EmEntry[] = new Array<EmEntry>(flat.length / 4);
  for (let i = 0; i < out.length; i++) {
    const [actor, k] = dotAt(flat, 4 * i, clock, what);
    const p = flat[4 * i + 2];
    const n = flat[4 * i + 3];
    if (!isCount(p) || !isCount(n)) throw corruptState(`${what}: bad totals`);
    if (i > 0 && !(out[i - 1]![0] < actor)) throw corruptState(`${what}: actors out of order or duplicated`);
    out[i] = [actor, k, p, n];
  }
  return out.length === 0 ? EMPTY_EM_COUNTER : out;
}
