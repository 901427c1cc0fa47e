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
import { vcDescends, vcMerge, type VClock } from '../versions/vclock.js';
import { checkContextSeen } from './context.js';
import { clockFromFlat, clockToFlat, dotsFromFlat, expectArray, expectStrictlySorted, expectString, pushDots, actorIndex } from './codec.js';
import {
  anyCovered,
  clockWith,
  dotsLeq,
  joinDots,
  joinKeyed,
  nextDot,
  NO_DOTS,
  uncoveredDots,
  type Dot,
  type Dots,
  type KeyedEntry,
} from './dots.js';
import { checkActor, corruptState, DEFAULT_CRDT_LIMITS, limitExceeded, pathKey, preconditionFailed, type CrdtLimits } from './limits.js';
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

/** Flat `[element, [actorIndex, counter, ...], element, ...]`. */
export function setStoreToFlat(s: SetStore, index: ReadonlyMap<string, number>): unknown[] {
  const out: unknown[] = [];
  for (const [e, d] of s) {
    const flat: number[] = [];
    pushDots(flat, d, index);
    out.push(e, flat);
  }
  return out;
}

export function setStoreFromFlat(x: unknown, clock: VClock, what: string): SetStore {
  const flat = expectArray(x, what);
  if (flat.length % 2 !== 0) throw corruptState(`${what}: odd length`);
  if (flat.length === 0) return EMPTY_SET_STORE;
  const out: KeyedEntry<Dots>[] = new Array<KeyedEntry<Dots>>(flat.length / 2);
  let prev: string | undefined;
  for (let i = 0; i < out.length; i++) {
    const e = expectString(flat[2 * i], `${what} element`);
    expectStrictlySorted(prev, e, `${what} elements`);
    const d = dotsFromFlat(flat[2 * i + 1], clock, `${what} element dots`);
    if (d.length === 0) throw corruptState(`${what}: element without dots`);
    out[i] = [e, d];
    prev = e;
  }
  return out;
}

// ---- top-level set ----

export function setJoin(a: SetState, b: SetState): SetState {
  if (a === b) return a;
  const clock = vcMerge(a.clock, b.clock);
  const elems = setStoreJoin(a.elems, a.clock, b.elems, b.clock);
  if (clock === a.clock && elems === a.elems) return a;
  if (clock === b.clock && elems === b.elems) return b;
  return { type: 'set', clock, elems };
}

export function setApply(s: SetState, op: SetOp, actor: string, opts: ApplyOptions = {}): SetState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  if (op.remove.length > 0) checkContextSeen(s.clock, opts.context, '');
  let dot: Dot | null = null;
  if (op.add.length > 0) {
    dot = nextDot(s.clock, actor);
    checkActor(actor, dot[1] > 1, s.clock.length, limits);
  }
  const elems = setStoreApply(s.elems, op.add, op.remove, dot, opts.context ?? s.clock, limits, '');
  return { type: 'set', clock: dot === null ? s.clock : clockWith(s.clock, actor, dot[1]), elems };
}

export function setValue(s: SetState): string[] {
  return setStoreValue(s.elems);
}

export function setLeq(a: SetState, b: SetState): boolean {
  return vcDescends(b.clock, a.clock) && setStoreLeq(a.elems, a.clock, b.elems);
}

/** Body: `[clock, elements]`. */
export function setToBody(s: SetState): unknown {
  return [clockToFlat(s.clock), setStoreToFlat(s.elems, actorIndex(s.clock))];
}

export function setFromBody(body: unknown): SetState {
  const a = expectArray(body, 'set');
  if (a.length !== 2) throw corruptState('set body is not [clock, elements]');
  const clock = clockFromFlat(a[0]);
  return { type: 'set', clock, elems: setStoreFromFlat(a[1], clock, 'set') };
}
