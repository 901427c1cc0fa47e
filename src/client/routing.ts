/**
 * The client's routing policy, pure: from the ring, the endpoints' health and the seeds, where a
 * request for a key goes, best first. No sockets or clocks: the caller passes `now`.
 *
 * Any node can coordinate any key, so routing is only an optimisation: a key's up, reachable
 * replicas come first (zero-hop), then every other node we know, so a request can always fail over.
 */
import type { IpcKey, RingInfo } from '../api/ipc-protocol.js';
import type { ClientRing } from './ring.js';

/** Where a request may go: an endpoint, and the node it should be (undefined: whoever answers). */
export interface Candidate {
  ep: string;
  node: string | undefined;
}

/** What routing needs to know of one endpoint (the client's connection pool entry satisfies it). */
export interface EndpointHealth {
  /** Skip this endpoint until then (connection failures back off). */
  downUntil: number;
  nodeId: string | undefined;
  conns: ReadonlyArray<{ readonly closed: boolean } | undefined>;
}

export interface RoutingView {
  ring: ClientRing | undefined;
  tokenAware: boolean;
  /** The endpoint of a ring node for this client (its IPC path or its peer address). */
  endpointOf: (node: RingInfo['nodes'][number]) => string;
  endpoints: ReadonlyMap<string, EndpointHealth>;
  seeds: readonly string[];
  now: number;
}

/**
 * Where to send a request for `key`, best first: its up, reachable replicas in preference order,
 * then endpoints with an open connection, the seeds, the key's other replicas, and last the known
 * endpoints that are not backing off. Each endpoint once.
 */
export function routeCandidates(v: RoutingView, key: IpcKey | undefined): Candidate[] {
  const out: Candidate[] = [];
  const seen = new Set<string>();
  const add = (ep: string, node: string | undefined): void => {
    if (ep && !seen.has(ep)) {
      seen.add(ep);
      out.push({ ep, node });
    }
  };
  const ring = v.ring;
  const later: Candidate[] = [];
  if (key !== undefined && ring && v.tokenAware && ring.size > 0) {
    for (const idx of ring.replicaView(key)) {
      const n = ring.nodes[idx]!;
      const ep = v.endpointOf(n);
      if (!ep) continue;
      const e = v.endpoints.get(ep);
      if (n.up && !(e && e.downUntil > v.now)) add(ep, n.id);
      else later.push({ ep, node: n.id });
    }
  }
  const fallbacks: Candidate[] = [];
  for (const [ep, e] of v.endpoints) {
    if (e.conns.some((c) => c && !c.closed)) add(ep, e.nodeId);
    else fallbacks.push({ ep, node: e.nodeId });
  }
  for (const s of v.seeds) add(s, v.endpoints.get(s)?.nodeId);
  for (const l of later) add(l.ep, l.node);
  for (const f of fallbacks) if (!(v.endpoints.get(f.ep)!.downUntil > v.now)) add(f.ep, f.node);
  return out;
}

/**
 * The endpoint a key's request goes to first (its first up, reachable replica), without building
 * the whole candidate list: batches group items by it and build the list once per group.
 * Undefined when routing is not token-aware or no replica qualifies.
 */
export function primaryEndpoint(v: RoutingView, key: IpcKey): string | undefined {
  const ring = v.ring;
  if (!ring || !v.tokenAware || ring.size === 0) return undefined;
  const view = ring.replicaView(key);
  for (let i = 0; i < view.length; i++) {
    const n = ring.nodes[view[i]!]!;
    if (!n.up) continue;
    const ep = v.endpointOf(n);
    if (!ep) continue;
    const e = v.endpoints.get(ep);
    if (e && e.downUntil > v.now) continue;
    return ep;
  }
  return undefined;
}
