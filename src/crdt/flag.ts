/**
 * Enable-wins flag (riak_dt_od_flag): a clock plus the dots of the enables that are in force.
 * Enabled iff some dot is. enable mints a dot (superseding the replica's others); disable(ctx)
 * drops the dots the context has seen, so an enable the disabling client did not see survives:
 * enable wins over a concurrent disable. Disabling a disabled flag is not an error (Riak's
 * behaviour); a context the coordinating replica has not caught up with is (`context_ahead`, as
 * for set removes).
 *
 * Pure module: no I/O.
 */
import { vcDescends, vcMerge, type VClock } from '../versions/vclock.js';
import { actorIndex, clockFromFlat, clockToFlat, dotsFromFlat, dotsToFlat, expectArray } from './codec.js';
import { clockWith, dotsLeq, joinDots, nextDot, NO_DOTS, uncoveredDots, type Dot, type Dots } from './dots.js';
import { checkActor, corruptState, DEFAULT_CRDT_LIMITS } from './limits.js';
import { checkContextSeen } from './context.js';
import type { ApplyOptions, FlagOp } from './types.js';

export interface FlagState {
  readonly type: 'flag';
  readonly clock: VClock;
  readonly dots: Dots;
}

export const EMPTY_FLAG: FlagState = Object.freeze({ type: 'flag', clock: Object.freeze([]) as VClock, dots: NO_DOTS });

/** The flag store (shared with map fields): enable sets the dots to the new one, disable drops the seen ones. */
export function flagStoreApply(dots: Dots, enable: boolean, dot: Dot | null, ctx: VClock): Dots {
  if (enable) {
    if (dot === null) throw new Error('flagStoreApply: enable needs a dot');
    return [dot];
  }
  return uncoveredDots(dots, ctx);
}

export function flagJoin(a: FlagState, b: FlagState): FlagState {
  if (a === b) return a;
  const clock = vcMerge(a.clock, b.clock);
  const dots = joinDots(a.dots, a.clock, b.dots, b.clock);
  if (clock === a.clock && dots === a.dots) return a;
  if (clock === b.clock && dots === b.dots) return b;
  return { type: 'flag', clock, dots };
}

export function flagApply(s: FlagState, op: FlagOp, actor: string, opts: ApplyOptions = {}): FlagState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  if (!op.enable) {
    checkContextSeen(s.clock, opts.context, '');
    const dots = flagStoreApply(s.dots, false, null, opts.context ?? s.clock);
    return dots === s.dots ? s : { type: 'flag', clock: s.clock, dots };
  }
  const dot = nextDot(s.clock, actor);
  checkActor(actor, dot[1] > 1, s.clock.length, limits);
  return { type: 'flag', clock: clockWith(s.clock, actor, dot[1]), dots: flagStoreApply(s.dots, true, dot, s.clock) };
}

export function flagValue(s: FlagState): boolean {
  return s.dots.length > 0;
}

export function flagLeq(a: FlagState, b: FlagState): boolean {
  return vcDescends(b.clock, a.clock) && dotsLeq(a.dots, a.clock, b.dots);
}

/** Body: `[clock, dots]`. */
export function flagToBody(s: FlagState): unknown {
  return [clockToFlat(s.clock), dotsToFlat(s.dots, actorIndex(s.clock))];
}

export function flagFromBody(body: unknown): FlagState {
  const a = expectArray(body, 'flag');
  if (a.length !== 2) throw corruptState('flag body is not [clock, dots]');
  const clock = clockFromFlat(a[0]);
  return { type: 'flag', clock, dots: dotsFromFlat(a[1], clock, 'flag dots') };
}
