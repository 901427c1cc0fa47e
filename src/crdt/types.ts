/**
 * Shared vocabulary of the convergent data types: type names, typed operations (what
 * `parseOp` produces from a client's JSON and what `apply` consumes), apply options, values.
 *
 * Pure module: types and constants only.
 */
import type { VClock } from '../versions/vclock.js';
import type { CrdtLimits } from './limits.js';

export const CRDT_TYPES = ['counter', 'set', 'map', 'register', 'flag'] as const;
export type CrdtType = (typeof CRDT_TYPES)[number];

export function isCrdtType(x: unknown): x is CrdtType {
  return typeof x === 'string' && (CRDT_TYPES as readonly string[]).includes(x);
}

/** `{"increment": n}` or `{"decrement": n}` (stored as increment -n). */
export interface CounterOp {
  readonly type: 'counter';
  readonly increment: number;
}

/** `{"add": [...], "remove": [...]}`: both lists sorted, duplicate-free and disjoint; removes apply first. */
export interface SetOp {
  readonly type: 'set';
  readonly add: readonly string[];
  readonly remove: readonly string[];
}

/** `{"assign": "v"}`; the timestamp comes from the coordinating replica (ApplyOptions.nowMicros). */
export interface RegisterOp {
  readonly type: 'register';
  readonly assign: string;
}

/** `{"enable": true}` / `{"disable": true}`. */
export interface FlagOp {
  readonly type: 'flag';
  readonly enable: boolean;
}

/**
 * `{"update": {field: op, ...}, "remove": [field, ...]}`; fields are `name_type`. Both lists are
 * sorted by field name and disjoint; removes apply first.
 */
export interface MapOp {
  readonly type: 'map';
  readonly update: ReadonlyArray<readonly [field: string, op: CrdtOp]>;
  readonly remove: readonly string[];
}

export type CrdtOp = CounterOp | SetOp | RegisterOp | FlagOp | MapOp;

/** A client's operation as parsed: the op and, for removes, the causal context it read. */
export interface ParsedOp {
  readonly op: CrdtOp;
  /** Decoded `context` token, when the client sent one. */
  readonly context: VClock | undefined;
}

export interface ApplyOptions {
  /**
   * The causal context the client read (ParsedOp.context). Removes and disables remove only what
   * it has seen. Absent: the coordinating replica's own clock (remove everything it has seen).
   */
  context?: VClock;
  /** The coordinating replica's wall clock, microseconds since the epoch; required by register assigns. */
  nowMicros?: number;
  limits?: CrdtLimits;
}

/** What `value` answers: plain JSON. */
export type CrdtValue = number | boolean | string | null | string[] | { [field: string]: CrdtValue };

/** True when the operation removes or disables something anywhere (and so depends on a context). */
export function hasRemovals(op: CrdtOp): boolean {
  switch (op.type) {
    case 'set':
      return op.remove.length > 0;
    case 'flag':
      return !op.enable;
    case 'map':
      return op.remove.length > 0 || op.update.some(([, o]) => hasRemovals(o));
    default:
      return false;
  }
}

/** The type a map field holds, from its `name_type` name; null when the name has no type suffix. */
export function fieldType(name: string): CrdtType | null {
  const i = name.lastIndexOf('_');
  if (i <= 0) return null;
  const t = name.slice(i + 1);
  return isCrdtType(t) ? t : null;
}
