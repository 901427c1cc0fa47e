/**
 * What a movement says to the cluster and hears back, through gossip and peer requests: its
 * driver's progress in its own gossip `extra` (at most once a second unless forced), every
 * driver's progress read back for GET /api/v1/cluster, the push of this node's state to every
 * member, and the settle check (which live peers do not yet answer `stream-settle` with this
 * node's movement digest). The encoding of progress in `extra` is pure (`progressExtra`,
 * `patchExtra`, `clusterMovementOf`); the class is the edge over a narrow cluster port.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { EndpointState } from '../cluster/gossip-state.js';
import { EXTRA_MV_BYTES, EXTRA_MV_DONE, EXTRA_MV_KEYS, EXTRA_MV_STATE, EXTRA_MV_TOTAL, EXTRA_REMOVED_BY, type Movement, type MovementKind } from './membership.js';
import { isTerminal, summarize, type MovementRecord, type SessionMark } from './progress.js';

/** How often (at most) a driver gossips its progress unprompted. */
const GOSSIP_PROGRESS_EVERY_MS = 1_000;
/** Headroom over the request timeout for a `stream-settle` answer (the peer waits for its coordinations first). */
const SETTLE_ANSWER_SLACK_MS = 2_000;

/** A movement under way in the cluster, with the progress its driver gossips (null: not gossiped yet). */
export interface ClusterMovement {
  id: string;
  kind: MovementKind;
  node: string;
  replaces?: string;
  driver: string;
  state: string;
  rangesDone: number | null;
  rangesTotal: number | null;
  keys: number | null;
  bytes: number | null;
}

type Extra = Record<string, string | number>;
export type ExtraPatch = Record<string, string | number | undefined>;


/** The `extra` patch that gossips record `r`'s progress (or clears it: none, or finished). */
export function progressExtra(r: MovementRecord | null, session: SessionMark | null, nowMs: number): ExtraPatch {
  if (r === null || isTerminal(r.state)) return { [EXTRA_MV_STATE]: undefined, [EXTRA_MV_DONE]: undefined, [EXTRA_MV_TOTAL]: undefined, [EXTRA_MV_KEYS]: undefined, [EXTRA_MV_BYTES]: undefined };
  const s = summarize(r, session, nowMs);
  return { [EXTRA_MV_STATE]: r.state, [EXTRA_MV_DONE]: s.rangesDone, [EXTRA_MV_TOTAL]: s.rangesTotal, [EXTRA_MV_KEYS]: s.keys, [EXTRA_MV_BYTES]: s.bytes };
}

/**
 * `cur` with `patch` applied (undefined deletes a key), or null when nothing changes (then no new
 * gossip version is minted). An empty result is `undefined`: gossip carries no empty `extra`.
 */
export function patchExtra(cur: Readonly<Extra> | undefined, patch: ExtraPatch): { extra: Extra | undefined } | null {
  const next: Extra = { ...(cur ?? {}) };
  let changed = false;
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) {
      if (k in next) changed = true;
      delete next[k];
    } else if (next[k] !== v) {
      next[k] = v;
      changed = true;
    }
  }
  return changed ? { extra: Object.keys(next).length > 0 ? next : undefined } : null;
}

/** Movement `m` with the progress its driver gossips in `extra`. */
export function clusterMovementOf(m: Movement, extra: Readonly<Record<string, unknown>>): ClusterMovement {
  const num = (k: string): number | null => (typeof extra[k] === 'number' ? extra[k] : null);
  const state = extra[EXTRA_MV_STATE];
  const out: ClusterMovement = { id: m.id, kind: m.kind, node: m.node, driver: m.driver, state: typeof state === 'string' ? state : 'announced', rangesDone: num(EXTRA_MV_DONE), rangesTotal: num(EXTRA_MV_TOTAL), keys: num(EXTRA_MV_KEYS), bytes: num(EXTRA_MV_BYTES) };
  if (m.replaces !== undefined) out.replaces = m.replaces;
  return out;
}

/** A member that is still part of the cluster's membership (not left, not being removed). */
export function isMember(s: EndpointState): boolean {
  return s.info.status !== 'left' && s.info.extra?.[EXTRA_REMOVED_BY] === undefined;
}

/** The cluster as a movement's gossip sees it. */
export type MovementCluster = Pick<Cluster, 'selfId' | 'gossip' | 'isUp' | 'updateSelf' | 'gossipWith' | 'request' | 'movements' | 'movementView'>;

export class MovementGossip {
  private lastGossip = 0;

  constructor(
    private readonly cluster: MovementCluster,
    /** The node's request timeout (read per call: the config is live). */
    private readonly requestTimeoutMs: () => number,
  ) {}

  /** Gossip record `r`'s state and progress in this node's `extra`: at most once a second unless forced. */
  publishProgress(r: MovementRecord | null, session: SessionMark | null, force: boolean): void {
    const t = Date.now();
    if (!force && t - this.lastGossip < GOSSIP_PROGRESS_EVERY_MS) return;
    this.lastGossip = t;
    const next = patchExtra(this.cluster.gossip.self().info.extra, progressExtra(r, session, t));
    if (next !== null) this.cluster.updateSelf(next);
  }

  /** Every movement under way in the cluster, with the progress its driver gossips. */
  clusterMovements(): ClusterMovement[] {
    return this.cluster.movements().map((m) => clusterMovementOf(m, this.cluster.gossip.get(m.driver)?.info.extra ?? {}));
  }

  /** The other members that look up now. */
  livePeers(): string[] {
    const self = this.cluster.selfId;
    return this.cluster.gossip
      .all()
      .filter((s) => s.id !== self && isMember(s) && this.cluster.isUp(s.id))
      .map((s) => s.id);
  }

  /**
   * Push our state to every member now (a gossip exchange each; failures are left to gossip). Not
   * only to those that look up: a restarted node has not heard from anyone yet, and the exchange
   * is also how it learns who is up before it asks them to confirm a movement or plans sources.
   */
  async pushGossip(): Promise<void> {
    const self = this.cluster.selfId;
    const members = this.cluster.gossip
      .all()
      .filter((s) => s.id !== self && isMember(s))
      .map((s) => s.id);
    await Promise.all(members.map((p) => this.cluster.gossipWith(p).catch(() => undefined)));
  }

  /** Live peers whose movement digest differs from ours (after pushing our view to them). */
  async lagging(): Promise<string[]> {
    await this.pushGossip();
    const mine = this.cluster.movementView().digest;
    const answers = await Promise.all(
      this.livePeers().map(async (p) => {
        try {
          const r = (await this.cluster.request(p, { t: 'stream-settle' }, this.requestTimeoutMs() + SETTLE_ANSWER_SLACK_MS)) as { digest?: unknown };
          return r.digest === mine ? null : p;
        } catch {
          return this.cluster.isUp(p) ? p : null;
        }
      }),
    );
    return answers.filter((x): x is string => x !== null);
  }
}
