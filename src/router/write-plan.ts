/**
 * Where a write goes (Dynamo's preference list with sloppy quorum, Cassandra's pending ranges):
 * its N targets, which of them are up, where the down ones' hints go, and the pending replicas of
 * a range movement under way. Pure: the ring layout, liveness and the pending replicas come in
 * through `WritePlanView` (the Router implements it itself, so planning a write allocates no ports
 * object); nothing is sent or counted here.
 */
import type { RingLayout } from '../ring/builder.js';
import { clockwiseFallbacks, placeHints, type HintPlacement } from '../hints/policy.js';
import type { PendingReplicas } from '../streaming/pending.js';
import { RingkvError } from '../util/errors.js';
import type { ResolvedConsistency } from './consistency.js';
import type { KeyRoute } from './kv-types.js';
import type { TableDef } from './tables.js';
import { NO_REPLICAS, type Replica } from './types.js';

/** No hint placements: one shared empty list. */
const NO_PLACEMENTS: HintPlacement[] = [];

/**
 * Where a write goes: its N targets, which of them are up, where the down ones' hints go, and the
 * pending replicas (range movements: they take the write too, never counted toward W).
 */
export interface WritePlan {
  targets: readonly Replica[];
  up: readonly Replica[];
  down: readonly Replica[];
  placements: HintPlacement[];
  pending: readonly Replica[];
}

/** What planning a write reads of the node's view: the ring it routes by, liveness, movements. */
export interface WritePlanView {
  /** The ring layout the route was looked up in (its clockwise walk finds the hint holders). */
  readonly currentLayout: RingLayout;
  /** The pending replicas of the movements under way, or null when none is. */
  readonly pending: PendingReplicas | null;
  /** Whether down replicas' writes may go to fallback nodes as hints (a hint sink exists). */
  readonly hinting: boolean;
  isUp(r: Replica): boolean;
  /** Liveness of a node by id (the fallbacks of the clockwise walk are ids). */
  isUpId(id: string): boolean;
}

/**
 * A write's targets (the first N replicas of `route`), which are up, and where the down ones'
 * hints go; throws `unavailable` when too few are up (plus counting hint holders) to meet W, and
 * then nothing may be written (Cassandra's UnavailableException). Allocates nothing when every
 * target is up and no movement is under way.
 */
export function planWrite(view: WritePlanView, route: KeyRoute, table: Pick<TableDef, 'quorum'>, cons: ResolvedConsistency): WritePlan {
  const targets = route.replicas.length === cons.n ? route.replicas : route.replicas.slice(0, cons.n);
  let up = targets;
  let down: readonly Replica[] = NO_REPLICAS;
  for (const r of targets) {
    if (!view.isUp(r)) {
      up = targets.filter((x) => view.isUp(x));
      down = targets.filter((x) => !view.isUp(x));
      break;
    }
  }
  // Sloppy quorum: each down replica's write goes, as a hint naming it, to the next healthy
  // node clockwise that isn't one of the key's N replicas (or stays with this coordinator when
  // none is left).
  const placements =
    down.length > 0 && view.hinting
      ? placeHints(
          down.map((r) => r.nodeId),
          clockwiseFallbacks(view.currentLayout, route.pos, new Set(targets.map((r) => r.nodeId)), down.length + 2),
          (id) => view.isUpId(id),
          table.quorum,
          cons.any,
        )
      : NO_PLACEMENTS;
  const hintCredit = placements.filter((p) => p.counts).length;
  if (up.length + hintCredit < cons.required) {
    throw new RingkvError(
      'unavailable',
      `write quorum not met: ${up.length} of ${cons.n} replicas are up, ${cons.required} acks required (down: ${down.map((r) => r.nodeId).join(', ')}` +
        `${hintCredit > 0 ? `; ${hintCredit} hinted fallbacks count` : ''}); nothing was written`,
      { n: cons.n, required: cons.required, up: up.length },
    );
  }
  // Pending replicas for the N the request asked for (before the clamp to the current ring: a
  // join can bring the ring up to that N).
  const pending = view.pending === null ? NO_REPLICAS : view.pending.at(route.hi, route.lo, cons.clamped?.requested.n ?? cons.n);
  return { targets, up, down, placements, pending };
}
