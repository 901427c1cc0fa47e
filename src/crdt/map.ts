/**
 * Map of typed fields (riak_dt_map): field names are `name_type` (`cart_map`, `items_set`,
 * `total_counter`, `name_register`, `gift_flag`) and hold any type, maps included.
 *
 * Causal construction (Almeida et al.'s ORMap; the semantics of riak_dt_map): one clock for the
 * whole map; every field holds its own *presence dots* plus an embedded store (set, flag, counter,
 * register or map) whose dots all live in that same clock. An operation mints one dot; every field
 * it updates gets that dot as its presence dot (superseding the field's older ones) and uses it for
 * the embedded change.
 *
 * - Update/add wins over a concurrent field removal: the update's dot is unseen by the remover.
 * - Reset-remove: removing a field drops every dot of the field (presence and embedded) that the
 *   context has seen; what survives is only what concurrent updates added. E.g. a set field with
 *   five elements removed at A while B adds a sixth: after the merge the field holds only the
 *   sixth. Counters keep Riak's anomaly (counter.ts): an increment concurrent with the removal
 *   survives with its actor's whole total.
 * - A field is present while it has any dot; an emptied field (a set whose last element was
 *   removed, a disabled flag) stays present, showing [], false, 0 or null, as in Riak, until the
 *   field itself is removed.
 * - Removing a field the context has not seen, or whose dots it has seen none of, is a
 *   `not_present` precondition error, as for set elements.
 *
 * Pure module: no I/O.
 */
import { vcDescends, vcMerge, type VClock } from '../versions/vclock.js';
import { actorIndex, clockFromFlat, clockToFlat, dotsFromFlat, expectArray, expectStrictlySorted, expectString, pushDots } from './codec.js';
import { checkContextSeen } from './context.js';
import {
  emAnyCovered,
  emApply,
  emFromFlat,
  emJoin,
  emLeq,
  emRemoveCovered,
  emToFlat,
  emValue,
  EMPTY_EM_COUNTER,
  type EmCounter,
} from './counter.js';
import {
  anyCovered,
  clockWith,
  dotsLeq,
  findKey,
  joinDots,
  joinKeyed,
  nextDot,
  NO_DOTS,
  uncoveredDots,
  type Dot,
  type Dots,
  type KeyedEntry,
} from './dots.js';
import { flagStoreApply } from './flag.js';
import {
  badOp,
  checkActor,
  corruptState,
  CRDT_LIMIT_CEILINGS,
  DEFAULT_CRDT_LIMITS,
  limitExceeded,
  pathKey,
  preconditionFailed,
  type CrdtLimits,
} from './limits.js';
import {
  checkRegisterValue,
  EMPTY_MV_REGISTER,
  mvAnyCovered,
  mvApply,
  mvFromFlat,
  mvJoin,
  mvLeq,
  mvRemoveCovered,
  mvToFlat,
  mvValue,
  type MvRegister,
} from './register.js';
import {
  EMPTY_SET_STORE,
  setStoreAnyCovered,
  setStoreApply,
  setStoreFromFlat,
  setStoreJoin,
  setStoreLeq,
  setStoreRemoveCovered,
  setStoreToFlat,
  setStoreValue,
  type SetStore,
} from './set.js';
import { fieldType, hasRemovals, type ApplyOptions, type CrdtOp, type CrdtType, type CrdtValue, type MapOp } from './types.js';

/** An embedded store, by the type its field name declares. */
export type Nested =
  | { readonly kind: 'counter'; readonly entries: EmCounter }
  | { readonly kind: 'set'; readonly elems: SetStore }
  | { readonly kind: 'flag'; readonly dots: Dots }
  | { readonly kind: 'register'; readonly entries: MvRegister }
  | { readonly kind: 'map'; readonly fields: MapStore };

export interface Field {
  /** Dots of the latest updates of the field (concurrent ones coexist). */
  readonly dots: Dots;
  readonly store: Nested;
}

/** `[name_type, field]` sorted by name; no bottom fields. */
export type MapStore = readonly KeyedEntry<Field>[];

export interface MapState {
  readonly type: 'map';
  readonly clock: VClock;
  readonly fields: MapStore;
}

export const EMPTY_MAP_STORE: MapStore = Object.freeze([]) as MapStore;
export const EMPTY_MAP: MapState = Object.freeze({ type: 'map', clock: Object.freeze([]) as VClock, fields: EMPTY_MAP_STORE });

const BOTTOM: { readonly [K in CrdtType]: Extract<Nested, { kind: K }> } = Object.freeze({
  counter: Object.freeze({ kind: 'counter', entries: EMPTY_EM_COUNTER }),
  set: Object.freeze({ kind: 'set', elems: EMPTY_SET_STORE }),
  flag: Object.freeze({ kind: 'flag', dots: NO_DOTS }),
  register: Object.freeze({ kind: 'register', entries: EMPTY_MV_REGISTER }),
  map: Object.freeze({ kind: 'map', fields: EMPTY_MAP_STORE }),
});

function kindOf(name: string): CrdtType {
  const t = fieldType(name);
  if (t === null) throw new Error(`map field ${JSON.stringify(name)} has no type suffix`);
  return t;
}

// ---- embedded stores, dispatched on kind ----

function nestedIsBottom(n: Nested): boolean {
  switch (n.kind) {
    case 'counter':
    case 'register':
      return n.entries.length === 0;
    case 'set':
      return n.elems.length === 0;
    case 'flag':
      return n.dots.length === 0;
    case 'map':
      return n.fields.length === 0;
  }
}

/** Wraps a changed inner store, or returns `n` when the inner store is the same object. */
function rewrap(n: Nested, inner: EmCounter | MvRegister | SetStore | Dots | MapStore): Nested {
  switch (n.kind) {
    case 'counter':
      return inner === n.entries ? n : { kind: 'counter', entries: inner as EmCounter };
    case 'register':
      return inner === n.entries ? n : { kind: 'register', entries: inner as MvRegister };
    case 'set':
      return inner === n.elems ? n : { kind: 'set', elems: inner as SetStore };
    case 'flag':
      return inner === n.dots ? n : { kind: 'flag', dots: inner as Dots };
    case 'map':
      return inner === n.fields ? n : { kind: 'map', fields: inner as MapStore };
  }
}

function nestedJoin(a: Nested, c1: VClock, b: Nested, c2: VClock): Nested {
  if (a === b) return a;
  let inner: EmCounter | MvRegister | SetStore | Dots | MapStore;
  switch (a.kind) {
    case 'counter':
      inner = emJoin(a.entries, c1, (b as typeof a).entries, c2);
      break;
    case 'register':
      inner = mvJoin(a.entries, c1, (b as typeof a).entries, c2);
      break;
    case 'set':
      inner = setStoreJoin(a.elems, c1, (b as typeof a).elems, c2);
      break;
    case 'flag':
      inner = joinDots(a.dots, c1, (b as typeof a).dots, c2);
      break;
    case 'map':
      inner = mapStoreJoin(a.fields, c1, (b as typeof a).fields, c2);
      break;
  }
  return rewrap(a, inner) === a ? a : rewrap(b, inner);
}

function nestedRemoveCovered(n: Nested, clock: VClock): Nested {
  switch (n.kind) {
    case 'counter':
      return rewrap(n, emRemoveCovered(n.entries, clock));
    case 'register':
      return rewrap(n, mvRemoveCovered(n.entries, clock));
    case 'set':
      return rewrap(n, setStoreRemoveCovered(n.elems, clock));
    case 'flag':
      return rewrap(n, uncoveredDots(n.dots, clock));
    case 'map':
      return rewrap(n, mapStoreRemoveCovered(n.fields, clock));
  }
}

function nestedAnyCovered(n: Nested, clock: VClock): boolean {
  switch (n.kind) {
    case 'counter':
      return emAnyCovered(n.entries, clock);
    case 'register':
      return mvAnyCovered(n.entries, clock);
    case 'set':
      return setStoreAnyCovered(n.elems, clock);
    case 'flag':
      return anyCovered(n.dots, clock);
    case 'map':
      return mapStoreAnyCovered(n.fields, clock);
  }
}

function nestedLeq(a: Nested, c1: VClock, b: Nested): boolean {
  switch (a.kind) {
    case 'counter':
      return emLeq(a.entries, c1, (b as typeof a).entries);
    case 'register':
      return mvLeq(a.entries, c1, (b as typeof a).entries);
    case 'set':
      return setStoreLeq(a.elems, c1, (b as typeof a).elems);
    case 'flag':
      return dotsLeq(a.dots, c1, (b as typeof a).dots);
    case 'map':
      return mapStoreLeq(a.fields, c1, (b as typeof a).fields);
  }
}

function nestedValue(n: Nested): CrdtValue {
  switch (n.kind) {
    case 'counter':
      return emValue(n.entries);
    case 'register':
      return mvValue(n.entries);
    case 'set':
      return setStoreValue(n.elems);
    case 'flag':
      return n.dots.length > 0;
    case 'map':
      return mapStoreValue(n.fields);
  }
}

interface Env {
  readonly limits: CrdtLimits;
  readonly nowMicros: number | undefined;
  /** Nesting level of the map being updated (top-level map = 1). */
  readonly depth: number;
}

function nestedApply(n: Nested, op: CrdtOp, dot: Dot, ctx: VClock, env: Env, path: string): Nested {
  if (op.type !== n.kind) throw badOp(path, `a ${n.kind} field takes ${n.kind} operations, not ${op.type} ones`);
  switch (op.type) {
    case 'counter':
      return rewrap(n, emApply((n as Extract<Nested, { kind: 'counter' }>).entries, op.increment, dot, path));
    case 'register':
      checkRegisterValue(op.assign, env.limits, pathKey(path, 'assign'));
      return rewrap(n, mvApply((n as Extract<Nested, { kind: 'register' }>).entries, op.assign, dot, env.nowMicros));
    case 'set':
      return rewrap(n, setStoreApply((n as Extract<Nested, { kind: 'set' }>).elems, op.add, op.remove, op.add.length > 0 ? dot : null, ctx, env.limits, path));
    case 'flag':
      return rewrap(n, flagStoreApply((n as Extract<Nested, { kind: 'flag' }>).dots, op.enable, dot, ctx));
    case 'map':
      if (env.depth + 1 > env.limits.maxMapDepth) throw limitExceeded('maxMapDepth', env.limits, path, `a map nested ${env.depth + 1} levels deep`);
      return rewrap(n, mapStoreApply((n as Extract<Nested, { kind: 'map' }>).fields, op, dot, ctx, { ...env, depth: env.depth + 1 }, path));
  }
}

function nestedToFlat(n: Nested, index: ReadonlyMap<string, number>): unknown {
  switch (n.kind) {
    case 'counter':
      return emToFlat(n.entries, index);
    case 'register':
      return mvToFlat(n.entries, index);
    case 'set':
      return setStoreToFlat(n.elems, index);
    case 'flag': {
      const out: number[] = [];
      pushDots(out, n.dots, index);
      return out;
    }
    case 'map':
      return mapStoreToFlat(n.fields, index);
  }
}

function nestedFromFlat(kind: CrdtType, x: unknown, clock: VClock, what: string, depth: number): Nested {
  switch (kind) {
    case 'counter':
      return rewrap(BOTTOM.counter, emFromFlat(x, clock, what));
    case 'register':
      return rewrap(BOTTOM.register, mvFromFlat(x, clock, what));
    case 'set':
      return rewrap(BOTTOM.set, setStoreFromFlat(x, clock, what));
    case 'flag':
      return rewrap(BOTTOM.flag, dotsFromFlat(x, clock, what));
    case 'map':
      if (depth + 1 > CRDT_LIMIT_CEILINGS.maxMapDepth) throw corruptState(`${what}: maps nested deeper than ${CRDT_LIMIT_CEILINGS.maxMapDepth}`);
      return rewrap(BOTTOM.map, mapStoreFromFlat(x, clock, what, depth + 1));
  }
}

// ---- fields ----

function isBottomField(dots: Dots, store: Nested): boolean {
  return dots.length === 0 && nestedIsBottom(store);
}

function fieldJoin(name: string, f1: Field | undefined, c1: VClock, f2: Field | undefined, c2: VClock): Field | null {
  const bottom = BOTTOM[kindOf(name)];
  const dots = joinDots(f1?.dots ?? NO_DOTS, c1, f2?.dots ?? NO_DOTS, c2);
  const store = nestedJoin(f1?.store ?? bottom, c1, f2?.store ?? bottom, c2);
  if (isBottomField(dots, store)) return null;
  if (f1 !== undefined && dots === f1.dots && store === f1.store) return f1;
  if (f2 !== undefined && dots === f2.dots && store === f2.store) return f2;
  return { dots, store };
}

function fieldRemoveCovered(f: Field, clock: VClock): Field | null {
  const dots = uncoveredDots(f.dots, clock);
  const store = nestedRemoveCovered(f.store, clock);
  if (isBottomField(dots, store)) return null;
  return dots === f.dots && store === f.store ? f : { dots, store };
}

// ---- the store (top level and nested maps) ----

export function mapStoreJoin(s1: MapStore, c1: VClock, s2: MapStore, c2: VClock): MapStore {
  return joinKeyed(s1, s2, (f1, f2, name) => fieldJoin(name, f1, c1, f2, c2));
}

function mapStoreRemoveCovered(s: MapStore, clock: VClock): MapStore {
  return joinKeyed(s, EMPTY_MAP_STORE, (f) => fieldRemoveCovered(f!, clock));
}

function fieldAnyCovered(f: Field, clock: VClock): boolean {
  return anyCovered(f.dots, clock) || nestedAnyCovered(f.store, clock);
}

function mapStoreAnyCovered(s: MapStore, clock: VClock): boolean {
  for (const [, f] of s) if (fieldAnyCovered(f, clock)) return true;
  return false;
}

function mapStoreLeq(s1: MapStore, c1: VClock, s2: MapStore): boolean {
  let i = 0;
  for (const [name, f2] of s2) {
    while (i < s1.length && s1[i]![0] < name) i++;
    const f1 = i < s1.length && s1[i]![0] === name ? s1[i]![1] : undefined;
    if (!dotsLeq(f1?.dots ?? NO_DOTS, c1, f2.dots)) return false;
    if (!nestedLeq(f1?.store ?? BOTTOM[kindOf(name)], c1, f2.store)) return false;
  }
  return true;
}

function mapStoreValue(s: MapStore): { [field: string]: CrdtValue } {
  const out: { [field: string]: CrdtValue } = {};
  for (const [name, f] of s) out[name] = nestedValue(f.store);
  return out;
}

/** Field removes (seen by `ctx`), then field updates (each gets `dot`); lists sorted and disjoint. */
function mapStoreApply(s: MapStore, op: MapOp, dot: Dot | null, ctx: VClock, env: Env, path: string): MapStore {
  const out: KeyedEntry<Field>[] = s.slice();
  for (const name of op.remove) {
    const at = findKey(out, name);
    const f = at >= 0 ? out[at]![1] : undefined;
    if (f === undefined) throw preconditionFailed('not_present', pathKey(path, 'remove'), `field ${JSON.stringify(name)} is not in the map`);
    if (!fieldAnyCovered(f, ctx)) {
      throw preconditionFailed('not_present', pathKey(path, 'remove'), `field ${JSON.stringify(name)} has no update the context has seen`);
    }
    const left = fieldRemoveCovered(f, ctx);
    if (left === null) out.splice(at, 1);
    else out[at] = [name, left];
  }
  let grew = false;
  for (const [name, fop] of op.update) {
    if (dot === null) throw new Error('mapStoreApply: updates need a dot');
    const at = findKey(out, name);
    const old = at >= 0 ? out[at]![1].store : BOTTOM[kindOf(name)];
    // Paths of apply-time errors follow the body shape: update.cart_map.items_set.remove.
    const fieldPath = pathKey(env.depth === 1 ? pathKey(path, 'update') : path, name);
    const field: Field = { dots: [dot], store: nestedApply(old, fop, dot, ctx, env, fieldPath) };
    if (at >= 0) out[at] = [name, field];
    else {
      out.splice(-at - 1, 0, [name, field]);
      grew = true;
    }
  }
  if (grew && out.length > env.limits.maxMapFields) throw limitExceeded('maxMapFields', env.limits, pathKey(path, 'update'), `a map of ${out.length} fields`);
  return out;
}

/** Flat `[name, [field dots], embedded, name, ...]`. */
function mapStoreToFlat(s: MapStore, index: ReadonlyMap<string, number>): unknown[] {
  const out: unknown[] = [];
  for (const [name, f] of s) {
    const dots: number[] = [];
    pushDots(dots, f.dots, index);
    out.push(name, dots, nestedToFlat(f.store, index));
  }
  return out;
}

function mapStoreFromFlat(x: unknown, clock: VClock, what: string, depth: number): MapStore {
  const flat = expectArray(x, what);
  if (flat.length % 3 !== 0) throw corruptState(`${what}: length not a multiple of 3`);
  if (flat.length === 0) return EMPTY_MAP_STORE;
  const out: KeyedEntry<Field>[] = new Array<KeyedEntry<Field>>(flat.length / 3);
  let prev: string | undefined;
  for (let i = 0; i < out.length; i++) {
    const name = expectString(flat[3 * i], `${what} field name`);
    expectStrictlySorted(prev, name, `${what} fields`);
    const kind = fieldType(name);
    if (kind === null) throw corruptState(`${what}: field ${JSON.stringify(name)} has no type suffix`);
    const inner = `${what}.${name}`;
    const dots = dotsFromFlat(flat[3 * i + 1], clock, `${inner} dots`);
    const store = nestedFromFlat(kind, flat[3 * i + 2], clock, inner, depth);
    if (isBottomField(dots, store)) throw corruptState(`${inner}: empty field stored`);
    out[i] = [name, { dots, store }];
    prev = name;
  }
  return out;
}

// ---- top-level map ----

export function mapJoin(a: MapState, b: MapState): MapState {
  if (a === b) return a;
  const clock = vcMerge(a.clock, b.clock);
  const fields = mapStoreJoin(a.fields, a.clock, b.fields, b.clock);
  if (clock === a.clock && fields === a.fields) return a;
  if (clock === b.clock && fields === b.fields) return b;
  return { type: 'map', clock, fields };
}

export function mapApply(s: MapState, op: MapOp, actor: string, opts: ApplyOptions = {}): MapState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  if (hasRemovals(op)) checkContextSeen(s.clock, opts.context, '');
  let dot: Dot | null = null;
  if (op.update.length > 0) {
    dot = nextDot(s.clock, actor);
    checkActor(actor, dot[1] > 1, s.clock.length, limits);
  }
  const fields = mapStoreApply(s.fields, op, dot, opts.context ?? s.clock, { limits, nowMicros: opts.nowMicros, depth: 1 }, '');
  return { type: 'map', clock: dot === null ? s.clock : clockWith(s.clock, actor, dot[1]), fields };
}

export function mapValue(s: MapState): { [field: string]: CrdtValue } {
  return mapStoreValue(s.fields);
}

export function mapLeq(a: MapState, b: MapState): boolean {
  return vcDescends(b.clock, a.clock) && mapStoreLeq(a.fields, a.clock, b.fields);
}

/** Body: `[clock, fields]`. */
export function mapToBody(s: MapState): unknown {
  return [clockToFlat(s.clock), mapStoreToFlat(s.fields, actorIndex(s.clock))];
}

export function mapFromBody(body: unknown): MapState {
  const a = expectArray(body, 'map');
  if (a.length !== 2) throw corruptState('map body is not [clock, fields]');
  const clock = clockFromFlat(a[0]);
  return { type: 'map', clock, fields: mapStoreFromFlat(a[1], clock, 'map', 1) };
}
