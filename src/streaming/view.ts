/**
 * Everything a node derives from one gossip view about range movements: the movements under way,
 * each one's future ring, the pending replicas, and the digest every node must agree on before a
 * movement streams. Pure; recomputed by the cluster whenever membership changes.
 */
import type { EndpointState } from '../cluster/gossip-state.js';
import { buildRing, type RingLayout, type RingMember } from '../ring/builder.js';
import { futureMembers, movementDigest, movementsOf, type Movement } from './membership.js';
import { PendingTable } from './pending.js';

export interface MovementView {
  movements: Movement[];
  /** movementDigest of the current ring and the movements. */
  digest: string;
  /** The ring once each movement is done, by movement id. */
  futures: ReadonlyMap<string, RingLayout>;
  /** Null when no movement is under way (the router's write path then skips the lookup). */
  pending: PendingTable | null;
}

export function movementView(
  states: readonly EndpointState[],
  current: RingLayout,
  members: readonly RingMember[],
  selfId: string,
  maxReplicas: number,
  isUp: (id: string) => boolean,
): MovementView {
  const movements = movementsOf(states);
  const futures = new Map<string, RingLayout>();
  for (const m of movements) futures.set(m.id, buildRing(futureMembers(members, m), { maxReplicas }));
  const pending = movements.length > 0 ? new PendingTable(current, [...futures.values()], selfId, isUp) : null;
  return { movements, digest: movementDigest(current.digest, movements), futures, pending };
}
