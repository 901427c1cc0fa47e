/**
 * Whether a range movement may start, and if not, why (pure: from a gossip view). Cassandra's rules:
 * one range movement at a time in the cluster; a node leaves only if the others can still hold N
 * copies of every table; streaming needs the nodes it streams to up; removenode is for dead nodes.
 * Every refusal is a RingkvError whose message says why and what to do.
 */
import type { EndpointState } from '../cluster/gossip-state.js';
import { RingkvError } from '../util/errors.js';
import { currentMembers, describeMovement, EXTRA_REMOVED_BY, type Movement } from './membership.js';

/** The largest N among the tables (the configured default counts as a table), and which table has it. */
export interface ReplicationNeed {
  n: number;
  table: string;
}

export function replicationNeed(defaultN: number, tables: ReadonlyArray<{ name: string; n: number }>): ReplicationNeed {
  let need: ReplicationNeed = { n: defaultN, table: '(the default for new tables)' };
  for (const t of tables) if (t.n > need.n) need = { n: t.n, table: t.name };
  return need;
}

/** Members that own ranges now and will after `leaving` is gone. */
function owners(states: readonly EndpointState[], leaving: string): string[] {
  return currentMembers(states)
    .filter((m) => m.status === 'normal' && m.id !== leaving)
    .map((m) => m.id);
}

function refuseIfMoving(movements: readonly Movement[], what: string): void {
  if (movements.length === 0) return;
  const m = movements[0]!;
  throw new RingkvError('conflict', `${what} refused: another range movement is under way (${describeMovement(m)}${m.streaming ? ', streaming' : ''}); one range movement at a time, retry when it has finished`, {
    movement: m.id,
  });
}

function refuseIfTooFew(states: readonly EndpointState[], leaving: string, need: ReplicationNeed, what: string): void {
  const left = owners(states, leaving);
  if (left.length >= need.n) return;
  throw new RingkvError(
    'conflict',
    `${what} refused: without ${leaving} the ring would have ${left.length} node${left.length === 1 ? '' : 's'}, but table ${need.table} keeps N=${need.n} copies; add a node first (or lower that table's N)`,
    { remaining: left.length, n: need.n, table: need.table },
  );
}

/** Why `self` may not be decommissioned now, or nothing (throws the refusal). */
export function checkDecommission(states: readonly EndpointState[], self: string, movements: readonly Movement[], need: ReplicationNeed, isUp: (id: string) => boolean): void {
  const me = states.find((s) => s.id === self);
  if (me === undefined || me.info.status !== 'normal' || me.info.tokens.length === 0) {
    throw new RingkvError('conflict', `decommission refused: node ${self} is ${me?.info.status ?? 'unknown'}, not a normal member owning ranges`);
  }
  refuseIfMoving(movements, 'decommission');
  refuseIfTooFew(states, self, need, 'decommission');
  const down = owners(states, self).filter((id) => !isUp(id));
  if (down.length > 0) {
    throw new RingkvError('conflict', `decommission refused: ${down.join(', ')} ${down.length === 1 ? 'is' : 'are'} down, and its ranges' new replicas must be up to receive them; bring ${down.length === 1 ? 'it' : 'them'} back or removenode ${down.length === 1 ? 'it' : 'them'} first`, {
      down,
    });
  }
}

/** Why node `target` may not be removed by `self` now, or nothing (throws the refusal). */
export function checkRemove(states: readonly EndpointState[], self: string, target: string, movements: readonly Movement[], need: ReplicationNeed, isUp: (id: string) => boolean): void {
  if (target === self) throw new RingkvError('bad_request', `removenode ${target}: a node cannot remove itself; run decommission on it instead`, { field: 'node' });
  const st = states.find((s) => s.id === target);
  if (st === undefined) throw new RingkvError('not_found', `removenode: node ${target} is not a member of this cluster (as ${self} sees it)`, { field: 'node' });
  if (st.info.status === 'left') throw new RingkvError('conflict', `removenode: node ${target} has already left the ring`);
  // A removal whose driver died is taken over; a running one is not interfered with.
  const by = st.info.extra?.[EXTRA_REMOVED_BY];
  if (typeof by === 'string' && (by === self || isUp(by))) throw new RingkvError('conflict', `removenode: node ${target} is already being removed (by ${by})`);
  if (isUp(target)) throw new RingkvError('conflict', `removenode refused: node ${target} is up; removenode is for dead nodes (decommission a live one)`);
  // A node that died joining or leaving is itself a movement that cannot finish; removing it is
  // how that movement ends, so it does not count as "another movement".
  refuseIfMoving(movements.filter((m) => m.node !== target), 'removenode');
  // A joining node owns nothing: it is only dropped. Otherwise its ranges need N copies elsewhere.
  if (st.info.status !== 'joining') refuseIfTooFew(states, target, need, 'removenode');
}

/** Does removing `target` move data (it owns ranges), or only drop it from the membership (it was joining)? */
export function removalMovesData(states: readonly EndpointState[], target: string): boolean {
  const st = states.find((s) => s.id === target);
  return st !== undefined && st.info.status !== 'joining' && st.info.tokens.length > 0;
}

/** Why dead node `target` may not be replaced now, or nothing (the peer's view of it, and the movements). */
export function checkReplace(self: string, target: string, peerView: { known: boolean; status: string | null; up: boolean; departed: string | null; tokens: readonly string[] }): void {
  if (target === self) throw new RingkvError('bad_request', `--replace ${target}: the replacement needs a node id of its own (start it with another --node-id, or let it generate one)`);
  if (!peerView.known) throw new RingkvError('not_found', `--replace ${target}: no such node in the cluster`);
  if (peerView.departed !== null) throw new RingkvError('conflict', `--replace ${target}: ${peerView.departed}`);
  if (peerView.status !== 'normal' || peerView.tokens.length === 0) throw new RingkvError('conflict', `--replace ${target}: the node is ${peerView.status ?? 'unknown'}, not a normal member owning ranges`);
  if (peerView.up) throw new RingkvError('conflict', `--replace ${target}: the node is up; replace only a dead node (stop it first)`);
}
