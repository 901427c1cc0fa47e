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
import type { VClock } from '../versions/vclock.js';
import { causalLattice, type CausalLattice } from './causal.js';
import { dotsFromFlat, dotsToFlat, expectArray, expectStrictlySorted, expectString, pushDots } from './codec.js';
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
  dotsLeq,
  findKey,
  joinDots,
  joinKeyed,
  mintDot,
  NO_DOTS,
  uncoveredDots,
  type Dot,
  type Dots,
  type KeyedEntry,
} from './dots.js';
import { flagStoreApply } from './flag.js';
import {
  badOp,
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

/** What each field type embeds: its store inside the map (dots in the map's clock). */
interface InnerStores {
  counter: EmCounter;
  register: MvRegister;
  set: SetStore;
  flag: Dots;
  map: MapStore;
}

/** An embedded store, tagged with the type its field name declares. */
export type Nested = { [K in CrdtType]: { readonly kind: K; readonly inner: InnerStores[K] } }[CrdtType];

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

interface Env {
  readonly limits: CrdtLimits;
  readonly nowMicros: number | undefined;
  /** Nesting level of the map being updated (top-level map = 1). */
  readonly depth: number;
}

/** The operations a map needs from an embedded store type. */
interface Embedded<S, O extends CrdtOp> {
  readonly bottom: S;
  isBottom(s: S): boolean;
  join(s1: S, c1: VClock, s2: S, c2: VClock): S;
  /** What survives a reset by a party that saw `clock`. */
  removeCovered(s: S, clock: VClock): S;
  anyCovered(s: S, clock: VClock): boolean;
  /** The store half of (s1, c1) ⊑ (s2, c2). */
  leq(s1: S, c1: VClock, s2: S): boolean;
  value(s: S): CrdtValue;
  apply(s: S, op: O, dot: Dot, ctx: VClock, env: Env, path: string): S;
  toFlat(s: S, index: ReadonlyMap<string, number>): unknown;
  fromFlat(x: unknown, clock: VClock, what: string, depth: number): S;
}

type OpOf<K extends CrdtType> = Extract<CrdtOp, { type: K }>;

const EMBEDDED: { readonly [K in CrdtType]: Embedded<InnerStores[K], OpOf<K>> } = {
  counter: {
    bottom: EMPTY_EM_COUNTER,
    isBottom: (s) => s.length === 0,
    join: emJoin,
    removeCovered: emRemoveCovered,
    anyCovered: emAnyCovered,
    leq: emLeq,
    value: emValue,
    apply: (s, op, dot, _ctx, _env, path) => emApply(s, op.increment, dot, path),
    toFlat: emToFlat,
    fromFlat: (x, clock, what) => emFromFlat(x, clock, what),
  },
  register: {
    bottom: EMPTY_MV_REGISTER,
    isBottom: (s) => s.length === 0,
    join: mvJoin,
    removeCovered: mvRemoveCovered,
    anyCovered: mvAnyCovered,
    leq: mvLeq,
    value: mvValue,
    apply: (s, op, dot, _ctx, env, path) => {
      checkRegisterValue(op.assign, env.limits, pathKey(path, 'assign'));
      return mvApply(s, op.assign, dot, env.nowMicros);
    },
    toFlat: mvToFlat,
    fromFlat: (x, clock, what) => mvFromFlat(x, clock, what),
  },
  set: {
    bottom: EMPTY_SET_STORE,
    isBottom: (s) => s.length === 0,
    join: setStoreJoin,
    removeCovered: setStoreRemoveCovered,
    anyCovered: setStoreAnyCovered,
    leq: setStoreLeq,
    value: setStoreValue,
    apply: (s, op, dot, ctx, env, path) => setStoreApply(s, op.add, op.remove, op.add.length > 0 ? dot : null, ctx, env.limits, path),
    toFlat: setStoreToFlat,
    fromFlat: (x, clock, what) => setStoreFromFlat(x, clock, what),
  },
  flag: {
    bottom: NO_DOTS,
    isBottom: (s) => s.length === 0,
    join: joinDots,
    removeCovered: uncoveredDots,
    anyCovered,
    leq: dotsLeq,
    value: (s) => s.length > 0,
    apply: (s, op, dot, ctx) => flagStoreApply(s, op.enable, dot, ctx),
    toFlat: dotsToFlat,
    fromFlat: (x, clock, what) => dotsFromFlat(x, clock, what),
  },
  map: {
    bottom: EMPTY_MAP_STORE,
    isBottom: (s) => s.length === 0,
    join: (s1, c1, s2, c2) => mapStoreJoin(s1, c1, s2, c2),
    removeCovered: (s, clock) => mapStoreRemoveCovered(s, clock),
    anyCovered: (s, clock) => mapStoreAnyCovered(s, clock),
    leq: (s1, c1, s2) => mapStoreLeq(s1, c1, s2),
    value: (s) => mapStoreValue(s),
    apply: (s, op, dot, ctx, env, path) => {
      if (env.depth + 1 > env.limits.maxMapDepth) throw limitExceeded('maxMapDepth', env.limits, path, `a map nested ${env.depth + 1} levels deep`);
      return mapStoreApply(s, op, dot, ctx, { ...env, depth: env.depth + 1 }, path);
    },
    toFlat: (s, index) => mapStoreToFlat(s, index),
    fromFlat: (x, clock, what, depth) => {
      if (depth + 1 > CRDT_LIMIT_CEILINGS.maxMapDepth) throw corruptState(`${what}: maps nested deeper than ${CRDT_LIMIT_CEILINGS.maxMapDepth}`);
      return mapStoreFromFlat(x, clock, what, depth + 1);
    },
  },
};

/** The embedded type of `kind`, for a store of that kind (the kind tag and the store agree). */
function embedded(kind: CrdtType): Embedded<unknown, CrdtOp> {
  return EMBEDDED[kind] as unknown as Embedded<unknown, CrdtOp>;
}

const BOTTOM: { readonly [K in CrdtType]: Nested } = Object.freeze({
  counter: Object.freeze({ kind: 'counter', inner: EMPTY_EM_COUNTER }),
  register: Object.freeze({ kind: 'register', inner: EMPTY_MV_REGISTER }),
  set: Object.freeze({ kind: 'set', inner: EMPTY_SET_STORE }),
  flag: Object.freeze({ kind: 'flag', inner: NO_DOTS }),
  map: Object.freeze({ kind: 'map', inner: EMPTY_MAP_STORE }),
});

function kindOf(name: string): CrdtType {
  const t = fieldType(name);
  if (t === null) throw new Error(`map field ${JSON.stringify(name)} has no type suffix`);
  return t;
}

/** `n` itself when its inner store is `inner`, else a new wrapper of n's kind. */
function rewrap(n: Nested, inner: unknown): Nested {
  return inner === n.inner ? n : ({ kind: n.kind, inner } as Nested);
}

function nestedJoin(a: Nested, c1: VClock, b: Nested, c2: VClock): Nested {
  if (a === b) return a;
  const inner = embedded(a.kind).join(a.inner, c1, b.inner, c2);
  return inner === b.inner ? b : rewrap(a, inner);
}

function nestedApply(n: Nested, op: CrdtOp, dot: Dot, ctx: VClock, env: Env, path: string): Nested {
  if (op.type !== n.kind) throw badOp(path, `a ${n.kind} field takes ${n.kind} operations, not ${op.type} ones`);
  return rewrap(n, embedded(n.kind).apply(n.inner, op, dot, ctx, env, path));
}

// ---- fields ----

function isBottomField(dots: Dots, store: Nested): boolean {
  return dots.length === 0 && embedded(store.kind).isBottom(store.inner);
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
  const store = rewrap(f.store, embedded(f.store.kind).removeCovered(f.store.inner, clock));
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
  return anyCovered(f.dots, clock) || embedded(f.store.kind).anyCovered(f.store.inner, clock);
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
    if (!embedded(f2.store.kind).leq((f1?.store ?? BOTTOM[f2.store.kind]).inner, c1, f2.store.inner)) return false;
  }
  return true;
}

function mapStoreValue(s: MapStore): { [field: string]: CrdtValue } {
  const out: { [field: string]: CrdtValue } = {};
  for (const [name, f] of s) out[name] = embedded(f.store.kind).value(f.store.inner);
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
    out.push(name, dots, embedded(f.store.kind).toFlat(f.store.inner, index));
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
    const store = rewrap(BOTTOM[kind], embedded(kind).fromFlat(flat[3 * i + 2], clock, inner, depth));
    if (isBottomField(dots, store)) throw corruptState(`${inner}: empty field stored`);
    out[i] = [name, { dots, store }];
    prev = name;
  }
  return out;
}

// ---- top-level map ----

export const mapLattice: CausalLattice<MapState> = causalLattice(
  'map',
  (s: MapState) => s.fields,
  (clock, fields) => ({ type: 'map', clock, fields }),
  { join: mapStoreJoin, leq: mapStoreLeq, value: mapStoreValue, toFlat: mapStoreToFlat, fromFlat: (x, clock, what) => mapStoreFromFlat(x, clock, what, 1) },
);

export function mapApply(s: MapState, op: MapOp, actor: string, opts: ApplyOptions = {}): MapState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  if (hasRemovals(op)) checkContextSeen(s.clock, opts.context, '');
  const minted = op.update.length > 0 ? mintDot(s.clock, actor, limits) : null;
  const fields = mapStoreApply(s.fields, op, minted?.dot ?? null, opts.context ?? s.clock, { limits, nowMicros: opts.nowMicros, depth: 1 }, '');
  return { type: 'map', clock: minted?.clock ?? s.clock, fields };
}
