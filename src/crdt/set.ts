/**
 * Observed-remove set without tombstones (ORSWOT, as riak_dt_orswot): a clock for the whole set
 * plus, per element, the dots of the adds that put it there.
 *
 * - add: mints one dot for the operation; each added element's dots become exactly that dot (the
 *   new dot's causal past covers the element's older dots, so they are superseded, not lost).
 * - remove(ctx): drops the element's dots that the context has seen. Dots of adds the context has
 *   not seen survive: add wins over a concurrent remove. No tombstone: the clock remembers the
 *   removed dots.
 * - join: an element's dot survives when both sides hold it, or one holds it and the other's
 *   clock has not seen it (see dots.ts).
 *
 * Refused removes (precondition errors, 409): an element with no dot the context has seen
 * (`not_present`: never added, already removed, or only re-added concurrently — Riak's
 * `{precondition, {not_present, E}}`), and any remove when the coordinating replica's clock does
 * not descend the client's context (`context_ahead`: it cannot know which adds the client saw, and
 * removing fewer would silently lose the remove). We refuse instead of keeping Riak's deferred
 * operations: the state stays a plain lattice, and the coordinator can catch up (join the other
 * replicas' states) and retry; see docs/crdt.md.
 *
 * Pure module: no I/O.
 */
import type { VClock } from '../versions/vclock.js';
import { causalLattice, type CausalLattice } from './causal.js';
import { checkContextSeen } from './context.js';
import { dotAt, expectArray, expectStrictlySorted, expectString, pushDots } from './codec.js';
import { compareDots } from '../versions/version.js';
import {
  anyCovered,
  dotsLeq,
  joinDots,
  joinKeyed,
  mintDot,
  NO_DOTS,
  uncoveredDots,
  type Dot,
  type Dots,
  type KeyedEntry,
} from './dots.js';
import { corruptState, DEFAULT_CRDT_LIMITS, limitExceeded, pathKey, preconditionFailed, type CrdtLimits } from './limits.js';
import type { ApplyOptions, SetOp } from './types.js';

/** `[element, dots]` sorted by element (JS string order); dots never empty. */
export type SetStore = readonly KeyedEntry<Dots>[];

export interface SetState {
  readonly type: 'set';
  readonly clock: VClock;
  readonly elems: SetStore;
}

export const EMPTY_SET_STORE: SetStore = Object.freeze([]) as SetStore;
export const EMPTY_SET: SetState = Object.freeze({ type: 'set', clock: Object.freeze([]) as VClock, elems: EMPTY_SET_STORE });

// ---- the store (shared with map fields) ----

export function setStoreJoin(s1: SetStore, c1: VClock, s2: SetStore, c2: VClock): SetStore {
  return joinKeyed(s1, s2, (d1, d2) => {
    const d = joinDots(d1 ?? NO_DOTS, c1, d2 ?? NO_DOTS, c2);
    return d.length === 0 ? null : d;
  });
}

/** What survives a reset by a party that saw `clock`: every element's unseen dots. */
export function setStoreRemoveCovered(s: SetStore, clock: VClock): SetStore {
  return joinKeyed(s, EMPTY_SET_STORE, (d) => {
    const left = uncoveredDots(d!, clock);
    return left.length === 0 ? null : left;
  });
}

export function setStoreAnyCovered(s: SetStore, clock: VClock): boolean {
  for (const [, d] of s) if (anyCovered(d, clock)) return true;
  return false;
}

/** The store half of (s1, c1) ⊑ (s2, c2). */
export function setStoreLeq(s1: SetStore, c1: VClock, s2: SetStore): boolean {
  let i = 0;
  for (const [e, d2] of s2) {
    while (i < s1.length && s1[i]![0] < e) i++;
    const d1 = i < s1.length && s1[i]![0] === e ? s1[i]![1] : NO_DOTS;
    if (!dotsLeq(d1, c1, d2)) return false;
  }
  return true;
}

/**
 * Removes (`remove`, seen by `ctx`), then adds (`add`, with `dot`). Both lists sorted and
 * disjoint. Throws a precondition error for an element the context has not seen, and a limit
 * error when the set would grow past crdt.maxSetElements.
 */
export function setStoreApply(
  s: SetStore,
  add: readonly string[],
  remove: readonly string[],
  dot: Dot | null,
  ctx: VClock,
  limits: CrdtLimits,
  path: string,
): SetStore {
  if (add.length > 0 && dot === null) throw new Error('setStoreApply: adds need a dot');
  const out: KeyedEntry<Dots>[] = [];
  const added: Dots = dot === null ? NO_DOTS : [dot];
  let a = 0;
  let r = 0;
  let grew = 0;
  for (let i = 0; i <= s.length; i++) {
    const key = i < s.length ? s[i]![0] : undefined;
    // Adds of new elements that sort before this entry.
    while (a < add.length && (key === undefined || add[a]! < key)) {
      out.push([add[a]!, added]);
      a++;
      grew++;
    }
    while (r < remove.length && (key === undefined || remove[r]! < key)) {
      throw preconditionFailed('not_present', pathKey(path, 'remove'), `element ${JSON.stringify(remove[r])} is not in the set`);
    }
    if (key === undefined) break;
    if (a < add.length && add[a] === key) {
      out.push([key, added]);
      a++;
    } else if (r < remove.length && remove[r] === key) {
      const left = uncoveredDots(s[i]![1], ctx);
      if (left === s[i]![1]) {
        throw preconditionFailed('not_present', pathKey(path, 'remove'), `element ${JSON.stringify(key)} has no add the context has seen`);
      }
      if (left.length > 0) out.push([key, left]);
      r++;
    } else {
      out.push(s[i]!);
    }
  }
  if (grew > 0 && out.length > limits.maxSetElements) {
    throw limitExceeded('maxSetElements', limits, pathKey(path, 'add'), `a set of ${out.length} elements`);
  }
  return out;
}

export function setStoreValue(s: SetStore): string[] {
  return s.map((e) => e[0]);
}

/**
 * Columnar: `[[element, ...], [n, actorIndex, counter, ... (n pairs), n, ...]]` — one strings array
 * and one numbers array rather than an array per element, which msgpack packs and unpacks about
 * twice as fast for large sets (the bytes are the same size).
 */
export function setStoreToFlat(s: SetStore, index: ReadonlyMap<string, number>): [string[], number[]] {
  const elems: string[] = new Array<string>(s.length);
  const dots: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const [e, d] = s[i]!;
    elems[i] = e;
    dots.push(d.length);
    pushDots(dots, d, index);
  }
  return [elems, dots];
}

export function setStoreFromFlat(x: unknown, clock: VClock, what: string): SetStore {
  const body = expectArray(x, what);
  if (body.length !== 2) throw corruptState(`${what}: not [elements, dots]`);
  const elems = expectArray(body[0], `${what} elements`);
  const dots = expectArray(body[1], `${what} dots`);
  if (elems.length === 0) {
    if (dots.length !== 0) throw corruptState(`${what}: dots without elements`);
    return EMPTY_SET_STORE;
  }
  const out: KeyedEntry<Dots>[] = new Array<KeyedEntry<Dots>>(elems.length);
  let prev: string | undefined;
  let pos = 0;
  for (let i = 0; i < elems.length; i++) {
    const e = expectString(elems[i], `${what} element`);
    expectStrictlySorted(prev, e, `${what} elements`);
    const n = dots[pos];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || pos + 1 + 2 * n > dots.length) throw corruptState(`${what}: bad dot count for element ${i}`);
    pos++;
    const d: Dot[] = new Array<Dot>(n);
    for (let k = 0; k < n; k++, pos += 2) {
      d[k] = dotAt(dots, pos, clock, `${what} element dots`);
      if (k > 0 && compareDots(d[k - 1]!, d[k]!) >= 0) throw corruptState(`${what}: element dots out of order or duplicated`);
    }
    out[i] = [e, d];
    prev = e;
  }
  if (pos !== dots.length) throw corruptState(`${what}: trailing dots`);
  return out;
}

// ---- top-level set ----

export const setLattice: CausalLattice<SetState> = causalLattice(
  'set',
  (s: SetState) => s.elems,
  (clock, elems) => ({ type: 'set', clock, elems }),
  { join: setStoreJoin, leq: setStoreLeq, value: setStoreValue, toFlat: setStoreToFlat, fromFlat: setStoreFromFlat },
);

export function setApply(s: SetState, op: SetOp, actor: string, opts: ApplyOptions = {}): SetState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  if (op.remove.length > 0) checkContextSeen(s.clock, opts.context, '');
  const minted = op.add.length > 0 ? mintDot(s.clock, actor, limits) : null;
  const elems = setStoreApply(s.elems, op.add, op.remove, minted?.dot ?? null, opts.context ?? s.clock, limits, '');
  return { type: 'set', clock: minted?.clock ?? s.clock, elems };
}
