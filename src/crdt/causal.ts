/**
 * The top level of a causal type (set, flag, map): a clock plus a store whose dots it covers.
 * Join, order, value and encoding are the same for all three given the store's own operations;
 * `causalLattice` builds them.
 *
 * Pure module: no I/O.
 */
import { vcDescends, vcMerge, type VClock } from '../versions/vclock.js';
import { actorIndex, clockFromFlat, clockToFlat, expectArray } from './codec.js';
import { corruptState } from './limits.js';
import type { CrdtType, CrdtValue } from './types.js';

/** What a causal type's store provides. */
export interface CausalStore<S> {
  join(s1: S, c1: VClock, s2: S, c2: VClock): S;
  /** The store half of (s1, c1) ⊑ (s2, c2): nothing state 1 removed is still in state 2. */
  leq(s1: S, c1: VClock, s2: S): boolean;
  value(s: S): CrdtValue;
  /** The store with its dots written against `index` (actor → position in the clock). */
  toFlat(s: S, index: ReadonlyMap<string, number>): unknown;
  fromFlat(x: unknown, clock: VClock, what: string): S;
}

export interface CausalLattice<T> {
  join(a: T, b: T): T;
  leq(a: T, b: T): boolean;
  value(t: T): CrdtValue;
  /** Body: `[clock, store]`. */
  toBody(t: T): unknown;
  fromBody(body: unknown): T;
}

export function causalLattice<T extends { readonly type: CrdtType; readonly clock: VClock }, S>(
  type: T['type'],
  storeOf: (t: T) => S,
  make: (clock: VClock, store: S) => T,
  store: CausalStore<S>,
): CausalLattice<T> {
  return {
    join(a, b) {
      // Returns an input when it already is the join (callers can skip a write).
      if (a === b) return a;
      const clock = vcMerge(a.clock, b.clock);
      const joined = store.join(storeOf(a), a.clock, storeOf(b), b.clock);
      if (clock === a.clock && joined === storeOf(a)) return a;
      if (clock === b.clock && joined === storeOf(b)) return b;
      return make(clock, joined);
    },
    leq: (a, b) => vcDescends(b.clock, a.clock) && store.leq(storeOf(a), a.clock, storeOf(b)),
    value: (t) => store.value(storeOf(t)),
    toBody: (t) => [clockToFlat(t.clock), store.toFlat(storeOf(t), actorIndex(t.clock))],
    fromBody(body) {
      const a = expectArray(body, type);
      if (a.length !== 2) throw corruptState(`${type} body is not [clock, store]`);
      const clock = clockFromFlat(a[0]);
      return make(clock, store.fromFlat(a[1], clock, type));
    },
  };
}
