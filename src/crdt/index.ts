/**
 * Convergent data types (issue 14): the pure core the router, shard and APIs call.
 *
 * Types: counter (PN-counter), set (ORSWOT), register (LWW), flag (enable-wins), map (typed
 * fields, nested). Each state is an immutable object tagged with its `type`; every function here
 * dispatches on it. The integration (docs/crdt.md "Integration"):
 *
 *   coordinator:           parseOp(tableType, body, limits)               → ParsedOp (400/413 on bad input)
 *   coordinating replica:  applyToEncoded(type, storedBytes, parsed, actor, nowMicros, limits)
 *                                                                       → { state, bytes } (or 409/413)
 *   other replicas, hints,
 *   read repair, Merkle AE: joinEncoded(storedBytes, incomingBytes)        → bytes to store
 *   reads:                 readEncoded(type, bytesOrUndefined)             → { value, context }
 *
 * Pure module: no I/O.
 */
import { frameState, peekStateType, unframeState } from './codec.js';
import { contextToken } from './context.js';
import { counterApply, counterFromBody, counterJoin, counterLeq, counterToBody, counterValue, EMPTY_COUNTER, type CounterState } from './counter.js';
import { EMPTY_FLAG, flagApply, flagLattice, type FlagState } from './flag.js';
import { DEFAULT_CRDT_LIMITS, limitExceeded, type CrdtLimits } from './limits.js';
import { EMPTY_MAP, mapApply, mapLattice, type MapState } from './map.js';
import { EMPTY_REGISTER, registerApply, registerFromBody, registerJoin, registerLeq, registerToBody, registerValue, type RegisterState } from './register.js';
import { EMPTY_SET, setApply, setLattice, type SetState } from './set.js';
import type { ApplyOptions, CrdtOp, CrdtType, CrdtValue, ParsedOp } from './types.js';
import { badRequest } from '../util/errors.js';

export type CrdtState = CounterState | SetState | RegisterState | FlagState | MapState;

export * from './types.js';
export { parseOp } from './ops.js';
export { CRDT_LIMIT_KEYS, crdtLimits, DEFAULT_CRDT_LIMITS, type CrdtLimits, type PreconditionReason } from './limits.js';
export { CRDT_STATE_FORMAT, peekStateType } from './codec.js';
export type { CounterState, SetState, RegisterState, FlagState, MapState };

/** The state and operation types of each CRDT type. */
interface StateOf {
  counter: CounterState;
  set: SetState;
  register: RegisterState;
  flag: FlagState;
  map: MapState;
}

/** What every top-level type provides. */
interface TopLevel<S extends CrdtState, O extends CrdtOp> {
  readonly empty: S;
  join(a: S, b: S): S;
  leq(a: S, b: S): boolean;
  apply(s: S, op: O, actor: string, opts: ApplyOptions): S;
  value(s: S): CrdtValue;
  toBody(s: S): unknown;
  fromBody(body: unknown): S;
}

const TYPES: { readonly [K in CrdtType]: TopLevel<StateOf[K], Extract<CrdtOp, { type: K }>> } = {
  counter: { empty: EMPTY_COUNTER, join: counterJoin, leq: counterLeq, apply: counterApply, value: counterValue, toBody: counterToBody, fromBody: counterFromBody },
  set: { ...setLattice, empty: EMPTY_SET, apply: setApply },
  register: { empty: EMPTY_REGISTER, join: registerJoin, leq: registerLeq, apply: registerApply, value: registerValue, toBody: registerToBody, fromBody: registerFromBody },
  flag: { ...flagLattice, empty: EMPTY_FLAG, apply: flagApply },
  map: { ...mapLattice, empty: EMPTY_MAP, apply: mapApply },
};

/** The implementation of `type`, for states and ops of that type (callers check the tags agree). */
function typeOf(type: CrdtType): TopLevel<CrdtState, CrdtOp> {
  return TYPES[type] as unknown as TopLevel<CrdtState, CrdtOp>;
}

function sameType(a: CrdtState, b: CrdtState): void {
  if (a.type !== b.type) throw new Error(`cannot join a ${a.type} state with a ${b.type} state`);
}

/** The state of a key never written (bottom of the type's lattice). */
export function emptyCrdt(type: CrdtType): CrdtState {
  return TYPES[type].empty;
}

/** Least upper bound: commutative, associative, idempotent; returns an input when it already is the join. */
export function crdtJoin(a: CrdtState, b: CrdtState): CrdtState {
  sameType(a, b);
  return typeOf(a.type).join(a, b);
}

/** The partial order the join is the least upper bound of: a ⊑ b iff b has seen all a has. */
export function crdtLeq(a: CrdtState, b: CrdtState): boolean {
  sameType(a, b);
  return typeOf(a.type).leq(a, b);
}

/**
 * Applies an operation at the coordinating replica whose id is `actor`; returns the new state or
 * throws (nothing changes): 400 bad op, 409 precondition (details.precondition), 413 limit.
 */
export function crdtApply(state: CrdtState, op: CrdtOp, actor: string, opts: ApplyOptions = {}): CrdtState {
  if (op.type !== state.type) throw badRequest(`a ${state.type} takes ${state.type} operations, not ${op.type} ones`);
  return typeOf(state.type).apply(state, op, actor, opts);
}

/** Plain JSON: 5, ["a","b"] (sorted by UTF-16 code units), "v" | null, true, {"items_set": [...], ...}. */
export function crdtValue(state: CrdtState): CrdtValue {
  return typeOf(state.type).value(state);
}

/** The opaque context token for later removes (set, flag, map); undefined for counters and registers. */
export function crdtContext(state: CrdtState): string | undefined {
  return state.type === 'set' || state.type === 'flag' || state.type === 'map' ? contextToken(state.clock) : undefined;
}

/** Actors (coordinating nodes) the state has recorded. */
export function crdtActors(state: CrdtState): string[] {
  switch (state.type) {
    case 'counter':
      return state.entries.map((e) => e[0]);
    case 'register':
      return state.entry === null ? [] : [state.entry.actor];
    default:
      return state.clock.map((e) => e[0]);
  }
}

/** Canonical bytes: equal states give equal bytes. */
export function encodeCrdt(state: CrdtState): Buffer {
  return frameState(state.type, typeOf(state.type).toBody(state));
}

/** Decodes and fully validates; throws `corrupt CRDT state: ...` on anything else. */
export function decodeCrdt(bytes: Uint8Array): CrdtState {
  const { type, body } = unframeState(bytes);
  return typeOf(type).fromBody(body);
}

// ---- byte-level helpers for the integration ----

function decodeAs(type: CrdtType, bytes: Uint8Array | undefined): CrdtState {
  if (bytes === undefined) return TYPES[type].empty;
  const stored = peekStateType(bytes);
  if (stored !== type) throw new Error(`stored state is a ${stored}, the table is of type ${type}`);
  return decodeCrdt(bytes);
}

/**
 * The coordinating replica's step: decode what it stores (undefined: nothing yet), apply, encode.
 * Refuses (413 crdt.maxStateBytes) an operation that leaves the state larger than the limit and
 * larger than it was (so removes still work on a state that joins pushed past the limit).
 */
export function applyToEncoded(
  type: CrdtType,
  stored: Uint8Array | undefined,
  parsed: ParsedOp,
  actor: string,
  nowMicros: number,
  limits: CrdtLimits = DEFAULT_CRDT_LIMITS,
): { state: CrdtState; bytes: Buffer } {
  const state = crdtApply(decodeAs(type, stored), parsed.op, actor, { context: parsed.context, nowMicros, limits });
  const bytes = encodeCrdt(state);
  if (bytes.length > limits.maxStateBytes && bytes.length > (stored?.length ?? 0)) {
    throw limitExceeded('maxStateBytes', limits, '', `a ${bytes.length}-byte state`);
  }
  return { state, bytes };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * Merge of a stored state with an incoming one (replica write, hint, read repair, anti-entropy):
 * returns `stored` itself when the incoming state adds nothing (the caller can skip the write),
 * `incoming` itself when it already covers `stored`, else the encoded join.
 */
export function joinEncoded(stored: Uint8Array, incoming: Uint8Array): Uint8Array {
  if (bytesEqual(stored, incoming)) return stored;
  const a = decodeCrdt(stored);
  const b = decodeCrdt(incoming);
  // leq is one pass without allocation, and a ⊑ b iff a ⊔ b = b (property-tested), so the common
  // cases — a stale or duplicate delivery, and a newer state from the coordinating replica — cost
  // no join and no encode.
  if (crdtLeq(b, a)) return stored;
  if (crdtLeq(a, b)) return incoming;
  return encodeCrdt(crdtJoin(a, b));
}

/** What a read answers: the value (the type's empty value for an absent key) and the context token. */
export function readEncoded(type: CrdtType, bytes: Uint8Array | undefined): { value: CrdtValue; context: string | undefined } {
  const state = decodeAs(type, bytes);
  return { value: crdtValue(state), context: crdtContext(state) };
}
