/**
 * `GET /readyz`: whether this node should get client traffic now (Kubernetes' readiness probe, a load
 * balancer's health check). `/healthz` only says the process answers. Pure: the node passes what it
 * sees; keyed on the node's own gossiped status, so a joining or leaving node is out of rotation
 * from the moment it gossips that status.
 */

export interface ReadinessInput {
  /** Shard actors running (a dead actor stops the process, so this is "started and not closing"). */
  shardsUp: number;
  shards: number;
  /** Tokens on the ring this node routes by, and whether it owns some of them itself. */
  ringTokens: number;
  selfInRing: boolean;
  /** This node's status as it gossips it: joining | normal | leaving | left. */
  status: string;
  /** The node is shutting down. */
  closing: boolean;
}

export interface Readiness {
  ready: boolean;
  checks: { shards: boolean; ring: boolean; status: boolean; running: boolean };
  /** Why not, one phrase per failed check (empty when ready). */
  reasons: string[];
}

export function readiness(i: ReadinessInput): Readiness {
  const checks = {
    shards: i.shards > 0 && i.shardsUp === i.shards,
    ring: i.ringTokens > 0 && i.selfInRing,
    // A leaving node still owns and serves its ranges until it is gone.
    status: i.status === 'normal' || i.status === 'leaving',
    running: !i.closing,
  };
  const reasons: string[] = [];
  if (!checks.shards) reasons.push(`${i.shardsUp} of ${i.shards} shards up`);
  if (!checks.ring) reasons.push(i.ringTokens === 0 ? 'no ring known yet' : 'this node owns no tokens on its ring');
  if (!checks.status) reasons.push(`node status is ${i.status}`);
  if (!checks.running) reasons.push('node is shutting down');
  return { ready: reasons.length === 0, checks, reasons };
}
