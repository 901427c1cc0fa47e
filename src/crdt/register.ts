/**
 * Last-writer-wins registers holding a string.
 *
 * Order of two assigns, applied identically by every replica: the larger timestamp wins; on equal
 * timestamps the larger actor id (JS string order), then the larger value (JS string order). It
 * is a total order on (ts, actor, value), so the join — the larger entry — is commutative,
 * associative and idempotent whatever the delivery order.
 *
 * Timestamp: the coordinating replica's clock in microseconds, but never below the current entry's
 * timestamp + 1 (`max(now, ts + 1)`), so an assign made after another was applied at the same
 * replica wins even when that replica's clock is behind the writer of the current value (the rule
 * the vclock write path uses for dot counters). Concurrent assigns at different replicas are
 * ordered by their clocks: LWW's usual caveat.
 *
 * Inside a map the register is a multi-value register read as LWW: each assign is a dot whose
 * entry replaces every entry the replica has; concurrent assigns coexist until the next assign,
 * and the value shown is the largest under the order above. The dots let a field removal reset
 * exactly the assigns it saw.
 *
 * Pure module: no I/O.
 */
import type { VClock } from '../versions/vclock.js';
import { dotAt, expectString, expectTuples, internActor, isCount, isPositiveCount } from './codec.js';
import { anyEntryCovered, dotFunLeq, joinDotFun, uncoveredEntries, type Dot } from './dots.js';
import { checkActor, corruptState, DEFAULT_CRDT_LIMITS, limitExceeded, utf8Bytes, type CrdtLimits } from './limits.js';
import type { ApplyOptions, RegisterOp } from './types.js';

export interface LwwEntry {
  readonly ts: number;
  readonly actor: string;
  readonly value: string;
}

export interface RegisterState {
  readonly type: 'register';
  /** null: never assigned. */
  readonly entry: LwwEntry | null;
}

export const EMPTY_REGISTER: RegisterState = Object.freeze({ type: 'register', entry: null });

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The LWW order: timestamp, then actor, then value. */
export function compareLww(a: LwwEntry, b: LwwEntry): number {
  return a.ts - b.ts || cmpStr(a.actor, b.actor) || cmpStr(a.value, b.value);
}

export function registerJoin(a: RegisterState, b: RegisterState): RegisterState {
  if (b.entry === null) return a;
  if (a.entry === null) return b;
  return compareLww(a.entry, b.entry) >= 0 ? a : b;
}

function timestamp(nowMicros: number | undefined, floor: number): number {
  if (!isCount(nowMicros)) throw new Error('register assign needs ApplyOptions.nowMicros (the coordinating replica clock, µs)');
  const ts = Math.max(nowMicros, floor + 1);
  if (!Number.isSafeInteger(ts)) throw new Error('register timestamp overflow');
  return ts;
}

export function checkRegisterValue(value: string, limits: CrdtLimits, path: string): void {
  if (utf8Bytes(value) > limits.maxRegisterBytes) throw limitExceeded('maxRegisterBytes', limits, path, `a ${utf8Bytes(value)}-byte value`);
}

export function registerApply(s: RegisterState, op: RegisterOp, actor: string, opts: ApplyOptions = {}): RegisterState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  checkActor(actor, false, 0, limits);
  checkRegisterValue(op.assign, limits, 'assign');
  return { type: 'register', entry: { ts: timestamp(opts.nowMicros, s.entry?.ts ?? 0), actor, value: op.assign } };
}

export function registerValue(s: RegisterState): string | null {
  return s.entry === null ? null : s.entry.value;
}

export function registerLeq(a: RegisterState, b: RegisterState): boolean {
  if (a.entry === null) return true;
  return b.entry !== null && compareLww(a.entry, b.entry) <= 0;
}

/** Body: `[]` (never assigned) or `[ts, actor, value]`. */
export function registerToBody(s: RegisterState): unknown {
  return s.entry === null ? [] : [s.entry.ts, s.entry.actor, s.entry.value];
}

export function registerFromBody(body: unknown): RegisterState {
  const a = expectTuples(body, 3, 'register');
  if (a.length === 0) return EMPTY_REGISTER;
  if (a.length !== 3) throw corruptState('register has more than one entry');
  const ts = a[0];
  const actor = expectString(a[1], 'register actor');
  const value = expectString(a[2], 'register value');
  if (!isPositiveCount(ts) || actor.length === 0) throw corruptState('register entry is invalid');
  return { type: 'register', entry: { ts, actor: internActor(actor), value } };
}

// ---- embedded multi-value register read as LWW (map fields) ----

/** `[actor, dot counter, ts, value]`, sorted by dot. */
export type MvEntry = readonly [actor: string, counter: number, ts: number, value: string];
export type MvRegister = readonly MvEntry[];

export const EMPTY_MV_REGISTER: MvRegister = Object.freeze([]) as MvRegister;

export const mvJoin: (s1: MvRegister, c1: VClock, s2: MvRegister, c2: VClock) => MvRegister = joinDotFun;
export const mvRemoveCovered: (s: MvRegister, clock: VClock) => MvRegister = uncoveredEntries;
export const mvAnyCovered: (s: MvRegister, clock: VClock) => boolean = anyEntryCovered;

export function mvLeq(s1: MvRegister, c1: VClock, s2: MvRegister): boolean {
  return dotFunLeq(s1, c1, s2, (a, b) => a[2] === b[2] && a[3] === b[3]);
}

function compareMv(a: MvEntry, b: MvEntry): number {
  return a[2] - b[2] || cmpStr(a[0], b[0]) || cmpStr(a[3], b[3]);
}

/** The assign replaces every entry this replica has (they are in the new dot's causal past). */
export function mvApply(s: MvRegister, value: string, dot: Dot, nowMicros: number | undefined): MvRegister {
  let floor = 0;
  for (const e of s) floor = Math.max(floor, e[2]);
  return [[dot[0], dot[1], timestamp(nowMicros, floor), value]];
}

export function mvValue(s: MvRegister): string | null {
  let best: MvEntry | undefined;
  for (const e of s) if (best === undefined || compareMv(e, best) > 0) best = e;
  return best === undefined ? null : best[3];
}

/** Flat `[actorIndex, dot counter, ts, value, ...]`. */
export function mvToFlat(s: MvRegister, index: ReadonlyMap<string, number>): unknown[] {
  const out: unknown[] = [];
  for (const e of s) out.push(index.get(e[0])!, e[1], e[2], e[3]);
  return out;
}

export function mvFromFlat(x: unknown, clock: VClock, what: string): MvRegister {
  const flat = expectTuples(x, 4, what);
  const out: MvEntry[] = new Array<MvEntry>(flat.length / 4);
  for (let i = 0; i < out.length; i++) {
    const dot = dotAt(flat, 4 * i, clock, what);
    const ts = flat[4 * i + 2];
    const value = expectString(flat[4 * i + 3], `${what} value`);
    if (!isPositiveCount(ts)) throw corruptState(`${what}: bad timestamp`);
    const e: MvEntry = [dot[0], dot[1], ts, value];
    if (i > 0) {
      const p = out[i - 1]!;
      if (!(p[0] < e[0] || (p[0] === e[0] && p[1] < e[1]))) throw corruptState(`${what}: entries out of order`);
    }
    out[i] = e;
  }
  return out.length === 0 ? EMPTY_MV_REGISTER : out;
}
