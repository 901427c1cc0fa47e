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
import type { VClock } from '../versions/vclock.js';
import { causalLattice, type CausalLattice } from './causal.js';
import { dotsFromFlat, dotsToFlat } from './codec.js';
import { dotsLeq, joinDots, mintDot, NO_DOTS, uncoveredDots, type Dot, type Dots } from './dots.js';
import { DEFAULT_CRDT_LIMITS } from './limits.js';
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

export const flagLattice: CausalLattice<FlagState> = causalLattice(
  'flag',
  (s: FlagState) => s.dots,
  (clock, dots) => ({ type: 'flag', clock, dots }),
  { join: joinDots, leq: dotsLeq, value: (d) => d.length > 0, toFlat: dotsToFlat, fromFlat: dotsFromFlat },
);

export function flagApply(s: FlagState, op: FlagOp, actor: string, opts: ApplyOptions = {}): FlagState {
  const limits = opts.limits ?? DEFAULT_CRDT_LIMITS;
  if (!op.enable) {
    checkContextSeen(s.clock, opts.context, '');
    const dots = flagStoreApply(s.dots, false, null, opts.context ?? s.clock);
    return dots === s.dots ? s : { type: 'flag', clock: s.clock, dots };
  }
  const { dot, clock } = mintDot(s.clock, actor, limits);
  return { type: 'flag', clock, dots: flagStoreApply(s.dots, true, dot, s.clock) };
}
