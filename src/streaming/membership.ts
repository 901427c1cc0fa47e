/**
 * Range movements as every node derives them from the gossiped membership (pure: no I/O, no clock).
 *
 * A movement is visible in gossip through the states of the nodes involved, so every node that has
 * the same view computes the same current ring, the same future ring of each movement and the same
 * pending replicas (src/streaming/pending.ts):
 *
 *  - join:    a node with tokens and `status: joining` (its tokens are not in the current ring);
 *  - replace: the same, with `extra.replaces = X`: it takes dead node X's tokens; once it is
 *             `normal`, X leaves the current ring (a member a normal node replaces owns nothing);
 *  - leave:   a node with `status: leaving` (decommission; it still owns its ranges);
 *  - remove:  a dead node whose state another node minted with `status: leaving` and
 *             `extra.removedBy = Y` (removenode run on Y; GossipState.mintForeign).
 *
 * The node that drives a movement (the joining / leaving / replacing node, or Y for a removal)
 * gossips its progress in `extra` (`mv.*` keys); `mv.state` says whether it has started streaming.
 */
import type { EndpointState } from '../cluster/gossip-state.js';
import type { MemberStatus, RingMember } from '../ring/builder.js';
import { tokenFromHex, xxh64Hex } from '../ring/hash.js';

/** `extra` key of a replacing node: the id of the dead node whose tokens it takes. */
export const EXTRA_REPLACES = 'replaces';
/** `extra` key minted into a removed node's state: the node running the removal. */
export const EXTRA_REMOVED_BY = 'removedBy';
/** `extra` keys of a movement's driver: its state, and progress (ranges done / total, keys, bytes). */
export const EXTRA_MV_STATE = 'mv.state';
export const EXTRA_MV_DONE = 'mv.done';
export const EXTRA_MV_TOTAL = 'mv.total';
export const EXTRA_MV_KEYS = 'mv.keys';
export const EXTRA_MV_BYTES = 'mv.bytes';

export type MovementKind = 'join' | 'leave' | 'remove' | 'replace';

export interface Movement {
  kind: MovementKind;
  /** The node whose tokens enter (join, replace) or leave (leave, remove) the ring. */
  node: string;
  /** replace: the dead node whose tokens `node` takes. */
  replaces?: string;
  /** The node that streams and reports: `node` itself, or for a removal the node running it. */
  driver: string;
  /** Stable identity: kind, node and the tokens involved (a join that re-allocates is another movement). */
  id: string;
  /** The driver has started streaming: such a movement never yields to another. */
  streaming: boolean;
}

function extraString(s: EndpointState, key: string): string | undefined {
  const v = s.info.extra?.[key];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** Nodes a `normal` member replaces: they own nothing any more. */
function replacedNodes(states: readonly EndpointState[]): Set<string> {
  const out = new Set<string>();
  for (const s of states) {
    const x = extraString(s, EXTRA_REPLACES);
    if (x !== undefined && s.info.status === 'normal') out.add(x);
  }
  return out;
}

/** The current ring's membership: every member with tokens, a replaced node counted as left. */
export function currentMembers(states: readonly EndpointState[]): RingMember[] {
  const replaced = replacedNodes(states);
  return states
    .filter((s) => s.info.tokens.length > 0)
    .map((s) => ({ id: s.id, tokens: s.info.tokens.map(tokenFromHex), rack: s.info.rack, status: replaced.has(s.id) ? ('left' as const) : s.info.status }));
}

/** The movements under way in a view, sorted by id. */
export function movementsOf(states: readonly EndpointState[]): Movement[] {
  const replaced = replacedNodes(states);
  const byId = new Map(states.map((s) => [s.id, s]));
  const streaming = (driver: string): boolean => {
    const st = byId.get(driver);
    const v = st ? extraString(st, EXTRA_MV_STATE) : undefined;
    return v === 'streaming' || v === 'finishing';
  };
  const out: Movement[] = [];
  for (const s of states) {
    if (replaced.has(s.id)) continue;
    const tokensHash = xxh64Hex(s.info.tokens.join(','));
    if (s.info.status === 'joining' && s.info.tokens.length > 0) {
      const x = extraString(s, EXTRA_REPLACES);
      if (x !== undefined) out.push({ kind: 'replace', node: s.id, replaces: x, driver: s.id, id: `replace:${s.id}:${x}:${tokensHash}`, streaming: streaming(s.id) });
      else out.push({ kind: 'join', node: s.id, driver: s.id, id: `join:${s.id}:${tokensHash}`, streaming: streaming(s.id) });
    } else if (s.info.status === 'leaving' && s.info.tokens.length > 0) {
      const by = extraString(s, EXTRA_REMOVED_BY);
      if (by !== undefined) out.push({ kind: 'remove', node: s.id, driver: by, id: `remove:${s.id}:${by}:${tokensHash}`, streaming: streaming(by) });
      else out.push({ kind: 'leave', node: s.id, driver: s.id, id: `leave:${s.id}:${tokensHash}`, streaming: streaming(s.id) });
    }
  }
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** The membership once movement `m` is done (the other movements as they are now). */
export function futureMembers(current: readonly RingMember[], m: Movement): RingMember[] {
  const status = (id: string, now: MemberStatus): MemberStatus => {
    if (id === m.node) return m.kind === 'join' || m.kind === 'replace' ? 'normal' : 'left';
    if (m.kind === 'replace' && id === m.replaces) return 'left';
    return now;
  };
  return current.map((r) => ({ ...r, status: status(r.id, r.status) }));
}

/**
 * What every node must agree on before a movement streams: the current ring (its digest) and the
 * set of movements. Equal digests mean equal pending replicas everywhere (they are a function of
 * exactly these). Progress and streaming flags are not part of it.
 */
export function movementDigest(ringDigest: string, movements: readonly Movement[]): string {
  return xxh64Hex(`${ringDigest};${movements.map((m) => m.id).join(';')}`);
}

/**
 * Does `a` go before `b` when both want to run? A movement that streams already goes first (it
 * never yields); otherwise the lower driver id goes first (two nodes that start to join at once:
 * the higher id waits). Deterministic, so both sides reach the same verdict from the same view.
 */
export function precedes(a: Movement, b: Movement): boolean {
  if (a.streaming !== b.streaming) return a.streaming;
  if (a.driver !== b.driver) return a.driver < b.driver;
  return a.id < b.id;
}

/** The movement `mine` must give way to (withdraw or fail), or undefined when it may proceed. */
export function yieldsTo(mine: Movement, all: readonly Movement[]): Movement | undefined {
  if (mine.streaming) return undefined;
  return all.find((o) => o.id !== mine.id && precedes(o, mine));
}

/** A one-line description for logs and error messages. */
export function describeMovement(m: Pick<Movement, 'kind' | 'node' | 'replaces' | 'driver'>): string {
  switch (m.kind) {
    case 'join':
      return `join of ${m.node}`;
    case 'leave':
      return `decommission of ${m.node}`;
    case 'remove':
      return `removal of ${m.node} (run by ${m.driver})`;
    case 'replace':
      return `replacement of ${m.replaces ?? '?'} by ${m.node}`;
  }
}

/**
 * Why node `id` no longer belongs to the ring in this view (it was decommissioned, removed, or
 * replaced), or null. A restarted node asks a peer before it gossips its own state, which (being of
 * a newer generation) would otherwise bring it back into the ring without its data.
 */
export function departureOf(states: readonly EndpointState[], id: string): string | null {
  for (const s of states) {
    if (extraString(s, EXTRA_REPLACES) === id && s.info.status === 'normal') return `it was replaced by ${s.id}`;
  }
  const st = states.find((s) => s.id === id);
  if (st === undefined) return null;
  const by = extraString(st, EXTRA_REMOVED_BY);
  if (by !== undefined) return st.info.status === 'left' ? `it was removed from the ring by removenode on ${by}` : `removenode on ${by} is removing it`;
  if (st.info.status === 'left') return 'it was decommissioned (it left the ring)';
  return null;
}
