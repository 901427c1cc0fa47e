import type { NodeConfig } from '../config/config.js';
import { isOwnAddress } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { logEvent } from '../log/events.js';
import { tokenFromHex, tokenToHex, type Token } from '../ring/hash.js';
import { buildRing, type RingLayout, type RingMember } from '../ring/builder.js';
import { Liveness, ringTableCapacityError, type RingTable } from '../ring/table.js';
import { type RemoteReplicas, type ReplicaPeerMessage, type ReplicaPeerReply, type PeerReplicaWrite, type ReplicaRead, type ReplicaWrite } from '../router/replica-protocol.js';
import type { PeerReplicaScan, ScanPage } from '../router/scan.js';
import type { PeerServiceHandler, PeerServices } from './peer-services.js';
import type { TableDef, TableRegistry } from '../router/tables.js';
import { RingkvError } from '../util/errors.js';
import { decodeRecord, encodeRecord, type Version } from '../versions/index.js';
import { GossipState, type Ack, type Ack2, type EndpointState, type MemberStatus, type NodeInfo, type Syn } from './gossip-state.js';
import { currentMembers, EXTRA_REMOVED_BY, EXTRA_REPLACES, movementsOf, type Movement } from '../streaming/membership.js';
import { movementView, type MovementView } from '../streaming/view.js';
import { PhiAccrualDetector } from './phi.js';
import type { HandshakeDenial, PeerTransport } from './transport.js';

export const MAX_RING_REPLICAS = 5;

/** Peer-port request bodies, defined once for both sides. */
export type PeerMessage = { t: 'gossip-syn'; syn: Syn } | { t: 'gossip-ack2'; ack2: Ack2 } | { t: 'ping' } | ReplicaPeerMessage;

export type PeerReply = { t: 'gossip-ack'; ack: Ack } | ReplicaPeerReply;

/** The peer message types the cluster itself serves (services may not take them). */
const CORE_PEER_TYPES: ReadonlySet<string> = new Set<PeerMessage['t']>(['gossip-syn', 'gossip-ack2', 'ping']);

/** Membership as the ring builder needs it, from the gossip view (a replaced node owns nothing). */
export function ringMembersOf(states: readonly EndpointState[]): RingMember[] {
  return currentMembers(states);
}

/**
 * A cheap fingerprint of what the ring and the movements depend on, to rebuild only when
 * membership really changed.
 */
function membershipKey(states: readonly EndpointState[]): string {
  return states.map((s) => `${s.id}|${s.info.status}|${s.info.rack}|${s.info.tokens.join(',')}|${s.info.extra?.[EXTRA_REPLACES] ?? ''}|${s.info.extra?.[EXTRA_REMOVED_BY] ?? ''}`).join(';');
}

/**
 * The cluster runtime: the I/O edge around the pure gossip state and failure detector. It runs the
 * gossip timer, feeds heartbeats to the phi detector, writes liveness into the shared ring table,
 * rebuilds and republishes the ring when membership changes, and serves peer requests.
 */
export class Cluster implements RemoteReplicas, PeerServices {
  readonly gossip: GossipState;
  readonly detector: PhiAccrualDetector;
  private layout: RingLayout;
  private movementState: MovementView;
  private memberKey = '';
  private gossipTimer: NodeJS.Timeout | undefined;
  private livenessTimer: NodeJS.Timeout | undefined;
  private lastSeenVersion = new Map<string, string>();
  private rounds = 0;
  onLayout: ((layout: RingLayout) => void) | undefined;
  /** Called after every publication with the movements under way (the router's pending replicas). */
  onMovements: ((view: MovementView) => void) | undefined;
  /** Peer message handlers registered by other services (router replicas, repair, hints), keyed by message type. */
  private readonly services = new Map<string, PeerServiceHandler>();
  /** Called when a node's liveness flips (hint replay starts when an owner comes back). */
  onLiveness: ((nodeId: string, up: boolean) => void) | undefined;
  /** Called with the round trip of every gossip SYN → ACK that succeeded (metrics). */
  onGossipRoundTrip: ((peerAddress: string, seconds: number) => void) | undefined;

  /** Message types a service will serve once it exists: until it registers, they answer `unavailable` (starting), not `bad_request`. */
  private readonly reserved = new Set<string>();

  /** Announce that `type` will be served (the node reserves the replica operations before its router exists). */
  reserveService(type: string): void {
    if (CORE_PEER_TYPES.has(type)) throw new Error(`invariant violated: peer message type ${type} is the cluster's own`);
    this.reserved.add(type);
  }

  registerService(type: string, handler: PeerServiceHandler): void {
    if (this.services.has(type) || CORE_PEER_TYPES.has(type)) {
      throw new Error(`invariant violated: peer message type ${type} registered twice`);
    }
    this.services.set(type, handler);
  }

  /** Send a service message to another node's peer port. */
  request(nodeId: string, body: { t: string } & Record<string, unknown>, timeoutMs: number): Promise<unknown> {
    return this.o.transport.request(this.addressOf(nodeId), body, timeoutMs);
  }

  constructor(
    private readonly o: {
      config: NodeConfig;
      self: EndpointState;
      ring: RingTable;
      transport: PeerTransport;
      tables: TableRegistry;
      /** Wide-column schemas: gossiped beside the key-value table definitions, converged the same way. */
      wide?: { encodedAll(): string[]; adoptEncoded(text: unknown): boolean };
      log: Logger;
      /**
       * The other members as this node last knew them (persisted by `persistMembers`). A restarted
       * node starts from them, so its ring is the cluster's ring from the first request: with only
       * itself it would route by a one-node ring and file replica writes under the wrong ranges
       * until its first gossip exchange (found by the hint replay test). They count as down until
       * heard from; fresh gossip supersedes them (higher generation or version).
       */
      knownMembers?: readonly EndpointState[];
      /** Store the other members whenever the ring's membership changes (Cassandra's system.peers). */
      persistMembers?: (states: EndpointState[]) => void;
    },
  ) {
    this.gossip = new GossipState(o.self);
    if (o.knownMembers && o.knownMembers.length > 0) {
      try {
        this.gossip.apply(o.knownMembers.filter((st) => st.id !== o.self.id));
      } catch (e) {
        o.log.warn({ err: String(e) }, 'ignoring unreadable stored membership');
      }
    }
    this.detector = new PhiAccrualDetector({
      threshold: o.config.cluster.phiThreshold,
      firstHeartbeatEstimateMs: o.config.cluster.gossipIntervalMs,
      // Heartbeats reach a node through random gossip, so a quiet round is normal. Right after a
      // node dies its peers still pick it as a gossip target, so heartbeats between the survivors
      // thin out just when they matter. Without this margin (and the fallback target in
      // gossipRound), a survivor busy with load was convicted for ~0.5 s (phi 8.2-8.5 after a
      // 2.5 s gap), failing W=2 writes that had two live replicas. A real death is detected one
      // round later (3.2-4.2 s on an idle 3-node cluster; Akka's cluster default pause is 3 s).
      acceptableHeartbeatPauseMs: o.config.cluster.gossipIntervalMs,
    });
    this.layout = buildRing([], { maxReplicas: MAX_RING_REPLICAS });
    this.movementState = movementView([], this.layout, [], o.self.id, MAX_RING_REPLICAS, () => true);
    this.rebuildRing(true);
  }

  get selfId(): string {
    return this.gossip.selfId;
  }

  currentLayout(): RingLayout {
    return this.layout;
  }

  /** The movements, future rings and pending replicas of the current publication. */
  movementView(): MovementView {
    return this.movementState;
  }

  /** The movements under way in the gossip view now, with their drivers' streaming flags fresh. */
  movements(): Movement[] {
    return movementsOf(this.gossip.all());
  }

  /**
   * Gossip with one peer now (SYN/ACK/ACK2) instead of waiting for a random round: a movement
   * pushes its announcement to every live peer this way before it asks them to confirm it.
   */
  async gossipWith(nodeId: string): Promise<void> {
    const err = await this.exchange(this.addressOf(nodeId));
    if (err) throw err;
  }

  /**
   * Mint a new version of a dead node's state (removenode: GossipState.mintForeign) and act on it
   * like on any gossip change. The detector takes no heartbeat from it (see afterChange).
   */
  mintForeign(nodeId: string, patch: Partial<NodeInfo>): void {
    this.gossip.mintForeign(nodeId, patch);
    this.afterChange([nodeId]);
  }

  /** Start gossiping. Liveness is evaluated more often than gossip so a dead node is seen quickly. */
  start(): void {
    const every = this.o.config.cluster.gossipIntervalMs;
    this.gossipTimer = setInterval(() => void this.gossipRound(), every);
    this.livenessTimer = setInterval(() => this.updateLiveness(), Math.max(100, Math.floor(every / 4)));
    void this.gossipRound();
  }

  stop(): void {
    if (this.gossipTimer) clearInterval(this.gossipTimer);
    if (this.livenessTimer) clearInterval(this.livenessTimer);
  }

  /** Gossip with the seeds until we have learned at least one other member (or the deadline passes). */
  async discover(timeoutMs: number): Promise<boolean> {
    const seeds = this.seedAddresses();
    if (seeds.length === 0) return false;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const s of seeds) {
        const err = await this.exchange(s);
        if (err instanceof RingkvError && err.code === 'unauthorized') {
          const denial = err.details as Partial<HandshakeDenial> | undefined;
          if (denial?.reason === 'wrong_cluster') throw new RingkvError('unauthorized', `seed ${s} refused this node: ${denial.serverMessage ?? err.message}`);
          throw new RingkvError('unauthorized', `seed ${s} rejected this node's cluster secret; check cluster.secret / --secret`);
        }
      }
      if (this.gossip.all().some((st) => st.id !== this.selfId)) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  }

  private seedAddresses(): string[] {
    return this.o.config.cluster.seeds.filter((s) => !isOwnAddress(s, this.o.config.peer));
  }

  updateSelf(patch: Partial<NodeInfo>): void {
    this.gossip.updateSelf(patch);
    this.afterChange([this.selfId]);
  }

  /** Tokens of the other members currently owning ranges (for token allocation on join). */
  otherTokens(): Token[][] {
    return this.gossip
      .all()
      .filter((s) => s.id !== this.selfId && s.info.status === 'normal')
      .map((s) => s.info.tokens.map(tokenFromHex));
  }

  private async gossipRound(): Promise<void> {
    this.rounds++;
    this.gossip.beat();
    const others = this.gossip.all().filter((s) => s.id !== this.selfId && s.info.status !== 'left');
    const live = others.filter((s) => this.isUp(s.id));
    const down = others.filter((s) => !this.isUp(s.id));
    const targets = new Set<string>();
    const pick = <T>(xs: T[]): T | undefined => xs[Math.floor(Math.random() * xs.length)];
    const l = pick(live);
    if (l) targets.add(l.info.peer);
    // A live-looking peer that cannot be reached (just died, not yet convicted) must not cost this
    // round: exchange with another live peer instead, so survivors keep hearing from each other.
    const fallback = l && live.length > 1 ? pick(live.filter((s) => s !== l)) : undefined;
    // Now and then a down node (to notice it came back) and a seed (to heal split views).
    const d = pick(down);
    if (d && Math.random() < 0.5) targets.add(d.info.peer);
    const seeds = this.seedAddresses();
    if (seeds.length > 0 && (live.length === 0 || Math.random() < 0.2)) targets.add(pick(seeds)!);
    await Promise.all(
      [...targets].map(async (t) => {
        const err = await this.exchange(t);
        if (err && err.code !== 'unauthorized' && l && t === l.info.peer && fallback && !targets.has(fallback.info.peer)) await this.exchange(fallback.info.peer);
      }),
    );
  }

  /** One SYN → ACK → ACK2 exchange with the peer at `address`; returns the error on failure. */
  private async exchange(address: string): Promise<RingkvError | undefined> {
    const timeout = Math.max(500, this.o.config.cluster.gossipIntervalMs);
    try {
      const t0 = performance.now();
      const reply = (await this.o.transport.request(address, { t: 'gossip-syn', syn: this.gossip.makeSyn() } satisfies PeerMessage, timeout)) as PeerReply;
      if (reply.t !== 'gossip-ack') throw new Error(`unexpected gossip reply ${String(reply.t)}`);
      this.onGossipRoundTrip?.(address, (performance.now() - t0) / 1000);
      const { ack2, changed } = this.gossip.onAck(reply.ack);
      this.afterChange(changed);
      if (ack2.states.length > 0) await this.o.transport.request(address, { t: 'gossip-ack2', ack2 } satisfies PeerMessage, timeout);
      return undefined;
    } catch (e) {
      this.o.log.debug({ peer: address, err: String(e) }, 'gossip exchange failed');
      return e instanceof RingkvError ? e : new RingkvError('internal', String(e));
    }
  }

  /** Peer-port request handler: gossip and replica operations. */
  async handle(body: unknown, fromNodeId: string): Promise<unknown> {
    const msg = body as PeerMessage;
    if (typeof msg !== 'object' || msg === null || typeof (msg as { t?: unknown }).t !== 'string') {
      throw new RingkvError('bad_request', 'peer message without a type');
    }
    const service = this.services.get(msg.t);
    if (service) return service(msg as unknown as Record<string, unknown>, fromNodeId);
    switch (msg.t) {
      case 'gossip-syn': {
        const ack = this.gossip.onSyn(msg.syn);
        return { t: 'gossip-ack', ack };
      }
      case 'gossip-ack2': {
        this.afterChange(this.gossip.onAck2(msg.ack2));
        return { t: 'ok' };
      }
      case 'ping':
        return { t: 'ok' };
      default:
        // A reserved type's service is not up yet (node.ts reserves the replica operations; the router registers them once it exists).
        if (this.reserved.has(msg.t)) throw new RingkvError('unavailable', 'node is starting');
        throw new RingkvError('bad_request', `unknown peer message type ${JSON.stringify((msg as { t: unknown }).t)} from ${fromNodeId}`);
    }
  }

  /** After gossip changed some states: heartbeats for the detector, schema adoption, ring rebuild. */
  private afterChange(changed: readonly string[]): void {
    if (changed.length === 0) return;
    const now = performance.now();
    for (const id of changed) {
      if (id === this.selfId) continue;
      const st = this.gossip.get(id);
      if (!st) continue;
      const v = `${st.generation}:${st.version}`;
      // A state some node minted for a dead node it removes (or a node that left) is no sign of
      // life: it must not reset the detector.
      const minted = st.info.extra?.[EXTRA_REMOVED_BY] !== undefined || st.info.status === 'left';
      if (this.lastSeenVersion.get(id) !== v) {
        this.lastSeenVersion.set(id, v);
        if (!minted) this.detector.heartbeat(id, now);
      }
      this.adoptTables(st);
    }
    this.rebuildRing(false);
    this.updateLiveness();
  }

  private adoptTables(st: EndpointState): void {
    const raw = st.info.schema;
    if (typeof raw !== 'string') return;
    try {
      // `{ tables, wide }`: key-value definitions and wide-column schemas (encoded schema texts).
      const parsed = JSON.parse(raw) as { tables?: unknown; wide?: unknown };
      if (Array.isArray(parsed.tables)) for (const def of parsed.tables as TableDef[]) this.o.tables.adopt(def);
      if (Array.isArray(parsed.wide) && this.o.wide) for (const text of parsed.wide) this.o.wide.adoptEncoded(text);
    } catch (e) {
      this.o.log.warn({ from: st.id, err: String(e) }, 'ignoring malformed table schema in gossip');
    }
  }

  /** Advertise our table schemas (they're small) so every coordinator applies the same settings. */
  publishTables(): void {
    try {
      this.updateSelf({ schema: JSON.stringify({ tables: this.o.tables.allKv(), wide: this.o.wide?.encodedAll() ?? [] }) });
    } catch (e) {
      // The table is stored locally either way; failing to advertise it must not fail the request.
      this.o.log.error({ err: String(e) }, 'cannot advertise table schemas through gossip');
    }
  }

  private rebuildRing(force: boolean): void {
    const states = this.gossip.all();
    const key = membershipKey(states);
    if (!force && key === this.memberKey) return;
    this.memberKey = key;
    try {
      this.o.persistMembers?.(states.filter((st) => st.id !== this.selfId));
    } catch (e) {
      this.o.log.warn({ err: String(e) }, 'cannot persist cluster membership');
    }
    const members = ringMembersOf(states);
    const layout = buildRing(members, { maxReplicas: MAX_RING_REPLICAS });
    const tooBig = ringTableCapacityError(layout);
    if (tooBig !== null) {
      // Keep serving with the ring we have: a membership the table cannot hold must not take the
      // node down (or leave it without a ring). It is retried when membership changes again.
      this.o.log.error({ nodes: layout.nodeIds.length, tokens: layout.tokens.length }, `ring not published: ${tooBig}`);
      return;
    }
    const view = movementView(states, layout, members, this.selfId, MAX_RING_REPLICAS, (id) => this.isUp(id));
    this.layout = layout;
    this.movementState = view;
    // The ranges this node is a pending replica of go into the table too: its shards accept them.
    this.o.ring.publish(layout, layout.nodeIds.indexOf(this.selfId), (id) => (id === this.selfId || this.isUp(id) ? Liveness.Up : Liveness.Down), view.pending?.selfRanges ?? []);
    logEvent(this.o.log, 'ring.published', { digest: layout.digest, nodes: layout.nodeIds.length, tokens: layout.tokens.length, movements: view.movements.map((m) => m.id) });
    this.onLayout?.(layout);
    this.onMovements?.(view);
  }

  isUp(id: string): boolean {
    if (id === this.selfId) return true;
    return this.detector.isAvailable(id, performance.now());
  }

  /** Liveness as the ring table holds it (nodes outside the ring: the detector's verdict). */
  private ringUp(id: string, now: number): boolean {
    const i = this.layout.nodeIds.indexOf(id);
    return i >= 0 ? this.o.ring.liveness(i) !== Liveness.Down : this.detector.isAvailable(id, now);
  }

  private updateLiveness(): void {
    const now = performance.now();
    this.layout.nodeIds.forEach((id, i) => {
      const up = id === this.selfId || this.detector.isAvailable(id, now);
      const l = up ? Liveness.Up : Liveness.Down;
      if (this.o.ring.liveness(i) !== l) {
        this.o.ring.setLiveness(i, l);
        if (id !== this.selfId) this.onLiveness?.(id, up);
        logEvent(this.o.log, up ? 'node.up' : 'node.down', { peer: id, phi: Number(this.detector.phi(id, now).toFixed(2)) });
      }
    });
  }

  /** A member's status as gossip knows it (undefined: not known). */
  memberStatus(nodeId: string): MemberStatus | undefined {
    return this.gossip.get(nodeId)?.info.status;
  }

  addressOf(nodeId: string): string {
    const st = this.gossip.get(nodeId);
    if (!st) throw new RingkvError('unavailable', `node ${nodeId} is not known to gossip`);
    return st.info.peer;
  }

  // RemoteReplicas: the router's path to replicas on other nodes.
  async writeRecord(nodeId: string, op: PeerReplicaWrite, timeoutMs: number): Promise<Uint8Array | null> {
    const r = (await this.o.transport.request(this.addressOf(nodeId), { t: 'write', op } satisfies PeerMessage, timeoutMs)) as PeerReply;
    if (r.t === 'record') return r.record;
    if (r.t !== 'ok') throw new RingkvError('internal', `unexpected reply to write from ${nodeId}`);
    return null;
  }

  async readRecord(nodeId: string, op: ReplicaRead, timeoutMs: number): Promise<Uint8Array | null> {
    const r = (await this.o.transport.request(this.addressOf(nodeId), { t: 'read', op } satisfies PeerMessage, timeoutMs)) as PeerReply;
    if (r.t !== 'record') throw new RingkvError('internal', `unexpected reply to read from ${nodeId}`);
    return r.record;
  }

  async scanRecords(nodeId: string, op: PeerReplicaScan, timeoutMs: number): Promise<ScanPage> {
    const r = (await this.o.transport.request(this.addressOf(nodeId), { t: 'scan', op } satisfies PeerMessage, timeoutMs)) as PeerReply;
    if (r.t !== 'scan-page') throw new RingkvError('internal', `unexpected reply to scan from ${nodeId}`);
    // msgpack has no undefined: a missing cursor is the end of the segment (the router checks the rest).
    return { rows: r.rows, next: r.next ?? null };
  }

  /** Write versions to a node's replica (hint replay): the record path, merged versions decoded. */
  async write(nodeId: string, op: ReplicaWrite, timeoutMs: number): Promise<Version[] | null> {
    const peerOp: PeerReplicaWrite = { table: op.table, tableId: op.tableId, mode: op.mode, key: op.key, record: encodeRecord(op.versions) };
    if (op.returnMerged) peerOp.returnMerged = true;
    const rec = await this.writeRecord(nodeId, peerOp, timeoutMs);
    return rec ? decodeRecord(rec) : null;
  }

  /** This node's view of every member, for status endpoints. */
  view(): Array<{ id: string; info: NodeInfo; generation: number; up: boolean; phi: number }> {
    // Report what routing uses: refresh the ring's liveness bytes now, then read them, so a status
    // that says "down" means the router already treats the node as down.
    this.updateLiveness();
    const now = performance.now();
    return this.gossip.all().map((s) => ({
      id: s.id,
      info: s.info,
      generation: s.generation,
      up: s.id === this.selfId || this.ringUp(s.id, now),
      phi: s.id === this.selfId ? 0 : Number(this.detector.phi(s.id, now).toFixed(3)),
    }));
  }

  get gossipRounds(): number {
    return this.rounds;
  }
}

export function tokensHex(tokens: readonly Token[]): string[] {
  return tokens.map(tokenToHex);
}
