/**
 * The movement manager (riak_core's handoff manager): drives the range movements this node runs
 * (its own join or decommission, its replacement of a dead node, a removenode run here), persists
 * their progress in `meta` so a killed node resumes, and reports them.
 *
 * A movement's steps:
 *  1. announce it in gossip (status joining with tokens / leaving / a minted removal);
 *  2. settle: push the announcement to every live peer and wait until each answers `stream-settle`
 *     with this node's own movement digest (so every coordinator sends writes to the pending
 *     replicas; a peer answers only once the coordinations it started before have answered);
 *     bounded by SETTLE_TIMEOUT_MS, reported either way (Cassandra waits ring_delay instead);
 *  3. plan (plan.ts) and stream (mover.ts), persisting each task's cursor;
 *  4. flip: status normal (join, replace) or left (decommission), or mint the removed node's left
 *     state; every node then drops or adds the tokens.
 * One movement at a time in the cluster: a node refuses to start one while another is visible, and
 * two announced at once are ordered deterministically (membership.precedes); the one that must
 * give way withdraws (a join takes new tokens later) or fails with a message.
 * What the movement says in gossip and the settle check are movement-gossip.ts; the per-peer
 * stream figures are progress.ts (pure); the peer side of streaming is exchange.ts.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { NodeConfig } from '../config/config.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { allocateTokens } from '../ring/tokens.js';
import { tokenToHex } from '../ring/hash.js';
import type { RingTable } from '../ring/table.js';
import type { Router } from '../router/router.js';
import type { TableRegistry } from '../router/tables.js';
import type { MetaStore } from '../storage/meta.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant } from '../util/errors.js';
import { checkDecommission, checkRemove, checkReplace, removalMovesData, replicationNeed } from './admission.js';
import { STREAM_LIMITS } from './batch.js';
import { runCleanup, type CleanupReport } from './cleanup.js';
import { describeMovement, EXTRA_REMOVED_BY, EXTRA_REPLACES, yieldsTo, type Movement } from './membership.js';
import { StreamExchange } from './exchange.js';
import type { MemberReply } from './messages.js';
import { runTasks, StallError, StoppedError, type MoverPorts } from './mover.js';
import { planStreams, replicationFactors } from './plan.js';
import { isMember, MovementGossip, type ClusterMovement } from './movement-gossip.js';
import { isTerminal, resumeTasks, streamProgressOf, summarize, type MovementRecord, type MovementSummary, type SessionMark } from './progress.js';
import type { StreamProgress } from '../metrics/progress.js';
import { ByteThrottle, mibPerSecond } from './throttle.js';

/** `meta` keys: the movement this node drives (or drove last), and its own membership state. */
export const META_MOVEMENT = 'movement/current';
export const META_STATUS = 'node/status';
export const META_TOKENS = 'node/tokens';
export const META_REPLACES = 'node/replaces';

/** How long a movement waits for every live peer to confirm it before streaming anyway (reported). */
const SETTLE_TIMEOUT_MS = 30_000;
/** A task without progress this long stalls the movement (reported, retried after STALL_RETRY_MS). */
const STALL_TIMEOUT_MS = 60_000;
const STALL_RETRY_MS = 5_000;
const PERSIST_EVERY_MS = 500;
/** How long a decommissioned node waits for its peers to see it left before it exits. */
const LEFT_CONFIRM_MS = 10_000;

export interface ManagerDeps {
  cluster: Cluster;
  router: Router;
  shards: ShardPool;
  tables: TableRegistry;
  meta: MetaStore;
  ring: RingTable;
  config: NodeConfig;
  log: Logger;
  /** The node has left the ring (decommission done): the process should stop. */
  onLeft: () => void;
}

export type { ClusterMovement } from './movement-gossip.js';


export class MovementManager {
  private record: MovementRecord | null;
  private session: SessionMark | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  private readonly wakers = new Set<() => void>();
  private readonly throttles = new Map<string, ByteThrottle>();
  private lastPersist = 0;
  private cleaning = false;
  private readonly exchange: StreamExchange;
  /** The movement's gossip: progress out, other drivers' progress in, the settle check. */
  private readonly gossip: MovementGossip;

  constructor(private readonly d: ManagerDeps) {
    this.record = d.meta.get<MovementRecord>(META_MOVEMENT) ?? null;
    this.exchange = new StreamExchange(d);
    this.gossip = new MovementGossip(d.cluster, () => d.config.requestTimeoutMs);
  }

  private get self(): string {
    return this.d.cluster.selfId;
  }

  // ----------------------------------------------------------------------------------------------
  // Reports

  /** The movement this node drives (or drove last), for GET /api/v1/cluster and `ringkv status`. */
  summary(): MovementSummary | null {
    return this.record ? summarize(this.record, this.session, Date.now()) : null;
  }

  /** The running movement's streams per peer and direction, for the metrics and the dashboard (progress.ts). */
  streamProgress(): StreamProgress[] {
    return streamProgressOf(this.record, this.self, Date.now());
  }

  /** Every movement under way in the cluster, with the progress its driver gossips. */
  clusterMovements(): ClusterMovement[] {
    return this.gossip.clusterMovements();
  }

  // ----------------------------------------------------------------------------------------------
  // Entry points

  /** A node without tokens joins (or replaces `replaces`): in the background, once the cluster is quiet. */
  join(replaces?: string): void {
    if (replaces !== undefined) this.d.meta.set(META_REPLACES, replaces);
    this.launch(() => this.joinLoop(replaces));
  }

  /** At startup: continue what this node was doing when it stopped (a join, a decommission, a removal). */
  resume(): boolean {
    const st = this.d.cluster.gossip.self().info;
    const replaces = this.d.meta.get<string>(META_REPLACES);
    if (st.status === 'joining' && st.tokens.length > 0) {
      this.launch(async () => {
        if ((await this.runMovement()) === 'yielded') await this.joinLoop(replaces);
      });
      return true;
    }
    if (st.status === 'joining') {
      this.join(replaces);
      return true;
    }
    if (st.status === 'leaving') {
      this.launch(async () => void (await this.runMovement()));
      return true;
    }
    const r = this.record;
    if (r && (r.kind === 'join' || r.kind === 'replace') && st.status === 'normal' && !isTerminal(r.state)) {
      // Killed between the flip to normal and recording it: the join is done.
      this.setState('done');
      return false;
    }
    if (r && r.kind === 'remove' && r.driver === this.self && !isTerminal(r.state)) {
      this.launch(async () => {
        const x = this.d.cluster.gossip.get(r.node);
        if (x && isMember(x)) this.mintRemoval(r.node);
        await this.runMovement();
      });
      return true;
    }
    return false;
  }

  /** POST /api/v1/decommission: checks now (a refusal says why), then streams in the background. */
  decommission(): MovementSummary {
    this.refuseIfBusy();
    checkDecommission(this.d.cluster.gossip.all(), this.self, this.d.cluster.movements(), this.need(), (id) => this.d.cluster.isUp(id));
    this.d.meta.set(META_STATUS, 'leaving');
    this.d.cluster.updateSelf({ status: 'leaving' });
    this.newRecord();
    this.launch(async () => void (await this.runMovement()));
    return this.summary()!;
  }

  /** POST /api/v1/removenode: removes dead node `id` from the ring, re-replicating its ranges. */
  removenode(id: string): MovementSummary {
    this.refuseIfBusy();
    checkRemove(this.d.cluster.gossip.all(), this.self, id, this.d.cluster.movements(), this.need(), (x) => this.d.cluster.isUp(x));
    if (!removalMovesData(this.d.cluster.gossip.all(), id)) {
      // It died while joining: it owns nothing, so it only leaves the membership (no streaming).
      const now = Date.now();
      this.d.cluster.mintForeign(id, { status: 'left', extra: { ...(this.d.cluster.gossip.get(id)?.info.extra ?? {}), [EXTRA_REMOVED_BY]: this.self } });
      this.record = { id: `remove:${id}:joining`, kind: 'remove', node: id, driver: this.self, state: 'done', startedAt: now, updatedAt: now, finishedAt: now, tasks: [] };
      this.persist(true);
      logEvent(this.d.log, 'range.done', { movement: this.record.id, kind: 'remove', node: id, ranges: 0, keys: 0, bytes: 0, note: 'it was joining and owned no ranges: dropped' });
      void this.gossip.pushGossip();
      return this.summary()!;
    }
    this.mintRemoval(id);
    this.newRecord(id);
    this.launch(async () => void (await this.runMovement()));
    return this.summary()!;
  }

  /** `--replace X` at startup: X must be a dead normal member in a live peer's view. */
  async checkReplaceable(x: string): Promise<void> {
    const peers = this.gossip.livePeers();
    let lastErr: unknown = new RingkvError('unavailable', 'no live peer to ask about the node to replace');
    for (const p of peers) {
      try {
        const view = (await this.d.cluster.request(p, { t: 'stream-member', node: x }, 5000)) as MemberReply;
        checkReplace(this.self, x, view);
        return;
      } catch (e) {
        if (e instanceof RingkvError && e.code !== 'unavailable' && e.code !== 'timeout') throw e;
        lastErr = e;
      }
    }
    throw lastErr;
  }

  /** POST /api/v1/cleanup. */
  async cleanup(): Promise<CleanupReport> {
    const movements = this.d.cluster.movements();
    if (movements.length > 0) throw new RingkvError('conflict', `cleanup refused: a range movement is under way (${describeMovement(movements[0]!)}); run it when the movement has finished`);
    if (this.d.ring.selfIndex() < 0) throw new RingkvError('conflict', `cleanup refused: node ${this.self} owns no ranges yet`);
    if (this.cleaning) throw new RingkvError('conflict', 'a cleanup is already running on this node');
    this.cleaning = true;
    try {
      const report = await runCleanup(this.d.shards, this.d.tables.all(), this.d.config.tables.n);
      logEvent(this.d.log, 'range.cleanup', { scanned: report.scanned, removed: report.removed, ms: report.durationMs });
      return report;
    } finally {
      this.cleaning = false;
    }
  }

  /**
   * Change this node's per-source stream throttle now (Cassandra's nodetool setstreamthroughput):
   * it applies from the next batch on, to the movement running too. Not persisted.
   */
  setThroughput(mibs: number): number {
    if (typeof mibs !== 'number' || !(mibs >= 0.01 && mibs <= 100_000)) throw new RingkvError('bad_request', `mibs must be a number in [0.01, 100000], got ${JSON.stringify(mibs)}`, { field: 'mibs' });
    this.d.config.streamThroughputMiBs = mibs;
    this.throttles.clear();
    logEvent(this.d.log, 'range.throughput', { mibs });
    return mibs;
  }

  stop(): void {
    this.stopping = true;
    for (const w of this.wakers) w();
    this.wakers.clear();
  }

  // ----------------------------------------------------------------------------------------------
  // Lifecycle

  private refuseIfBusy(): void {
    if (this.running !== null && this.record && !isTerminal(this.record.state)) {
      throw new RingkvError('conflict', `this node is already running a range movement (${describeMovement(this.record)}, ${this.record.state})`);
    }
  }

  private need(): ReturnType<typeof replicationNeed> {
    return replicationNeed(this.d.config.tables.n, this.d.tables.all());
  }

  private launch(body: () => Promise<void>): void {
    const run = body().catch((e: unknown) => {
      if (e instanceof StoppedError || this.stopping) return;
      this.d.log.error({ event: 'range.failed', movement: this.record?.id, err: String(e) }, 'range movement failed');
      if (this.record && !isTerminal(this.record.state)) {
        this.record.state = 'failed';
        this.record.error = e instanceof Error ? e.message : String(e);
        this.persist(true);
      }
    });
    this.running = run.finally(() => {
      if (this.running === tracked) this.running = null;
    });
    const tracked = this.running;
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopping) return Promise.reject(new StoppedError('the node is stopping'));
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        clearTimeout(t);
        reject(new StoppedError('the node is stopping'));
      };
      const t = setTimeout(() => {
        this.wakers.delete(wake);
        resolve();
      }, ms);
      this.wakers.add(wake);
    });
  }

  /** This node's movement as gossip shows it now (fresh streaming flags). */
  private mine(removing: string | undefined = this.record?.kind === 'remove' ? this.record.node : undefined): { mine: Movement | undefined; all: Movement[] } {
    const all = this.d.cluster.movements();
    const mine = all.find((m) => (m.kind === 'remove' ? m.driver === this.self && m.node === removing : m.node === this.self));
    return { mine, all };
  }

  private newRecord(removing?: string): void {
    const { mine } = this.mine(removing);
    invariant(mine !== undefined, 'an announced movement is visible in gossip');
    const now = Date.now();
    const carried = this.record && this.record.kind === mine.kind && this.record.node === mine.node && !isTerminal(this.record.state) ? this.record.tasks : [];
    this.record = { id: mine.id, kind: mine.kind, node: mine.node, driver: mine.driver, state: 'settling', startedAt: now, updatedAt: now, tasks: carried };
    if (mine.replaces !== undefined) this.record.replaces = mine.replaces;
    this.persist(true);
  }

  private persist(now = false): void {
    const r = this.record;
    if (r === null) return;
    const t = Date.now();
    if (!now && t - this.lastPersist < PERSIST_EVERY_MS) return;
    this.lastPersist = t;
    r.updatedAt = t;
    this.d.meta.set(META_MOVEMENT, r);
  }

  private setState(state: MovementRecord['state'], error?: string): void {
    const r = this.record;
    invariant(r !== null, 'a movement state needs a movement');
    r.state = state;
    if (error !== undefined) r.error = error;
    else delete r.error;
    if (isTerminal(state)) r.finishedAt = Date.now();
    this.persist(true);
    this.gossip.publishProgress(this.record, this.session, true);
  }

  /** Wait until no other movement is under way and some node owns ranges, then return. */
  private async waitQuiet(): Promise<void> {
    let said = '';
    for (;;) {
      const others = this.d.cluster.movements().filter((m) => m.node !== this.self);
      const owners = this.d.cluster.gossip.all().some((s) => s.id !== this.self && s.info.status === 'normal' && s.info.tokens.length > 0);
      if (others.length === 0 && owners) return;
      const why = others.length > 0 ? `waiting for the ${describeMovement(others[0]!)} to finish` : 'waiting for a node that owns ranges';
      if (why !== said) logEvent(this.d.log, 'range.wait', { node: this.self, why });
      said = why;
      await this.sleep(500);
    }
  }

  private async joinLoop(replaces: string | undefined): Promise<void> {
    for (;;) {
      this.record = { id: `join:${this.self}:waiting`, kind: replaces ? 'replace' : 'join', node: this.self, driver: this.self, state: 'waiting', startedAt: Date.now(), updatedAt: Date.now(), tasks: [] };
      if (replaces !== undefined) this.record.replaces = replaces;
      await this.waitQuiet();
      let tokens: string[];
      if (replaces !== undefined) {
        tokens = [...(this.d.cluster.gossip.get(replaces)?.info.tokens ?? [])];
        if (tokens.length === 0) throw new RingkvError('conflict', `cannot replace ${replaces}: its tokens are not known any more`);
      } else {
        tokens = allocateTokens(this.d.cluster.otherTokens(), this.d.config.vnodes).map(tokenToHex);
      }
      this.d.meta.set(META_TOKENS, tokens);
      this.d.meta.set(META_STATUS, 'joining');
      this.d.cluster.updateSelf({ tokens, status: 'joining', ...(replaces !== undefined ? { extra: { ...(this.d.cluster.gossip.self().info.extra ?? {}), [EXTRA_REPLACES]: replaces } } : {}) });
      logEvent(this.d.log, 'range.announce', { kind: replaces ? 'replace' : 'join', node: this.self, vnodes: tokens.length, replaces });
      this.newRecord();
      if ((await this.runMovement()) === 'done') return;
    }
  }

  /** Mark dead node `id` as being removed by this node (minted into its gossip state). */
  private mintRemoval(id: string): void {
    const extra = { ...(this.d.cluster.gossip.get(id)?.info.extra ?? {}), [EXTRA_REMOVED_BY]: this.self };
    this.d.cluster.mintForeign(id, { status: 'leaving', extra });
  }

  /** Settle, plan, stream, flip; retried while it stalls. */
  private async runMovement(): Promise<'done' | 'yielded'> {
    for (;;) {
      try {
        return await this.attempt();
      } catch (e) {
        if (e instanceof StoppedError || this.stopping) throw e;
        if (!(e instanceof StallError)) throw e;
        this.d.log.error({ event: 'range.stalled', movement: this.record?.id, err: e.message, retryMs: STALL_RETRY_MS }, 'range movement stalled; retrying');
        this.setState('stalled', e.message);
        await this.sleep(STALL_RETRY_MS);
      }
    }
  }

  private async attempt(): Promise<'done' | 'yielded'> {
    if (this.record === null || this.record.id !== this.mine().mine?.id) this.newRecord(this.record?.kind === 'remove' ? this.record.node : undefined);
    this.setState('settling');
    const t0 = Date.now();
    let lagging: string[] = [];
    for (;;) {
      const { mine, all } = this.mine();
      if (mine === undefined) throw new Error('this node\'s movement is no longer visible in gossip');
      const rival = yieldsTo(mine, all);
      if (rival !== undefined) return this.yieldTo(mine, rival);
      await this.d.router.coordinationsSettled();
      lagging = await this.gossip.lagging();
      if (lagging.length === 0) break;
      if (Date.now() - t0 > SETTLE_TIMEOUT_MS) {
        this.d.log.warn({ event: 'range.settle-timeout', lagging }, 'some live nodes did not confirm the movement in time; streaming anyway');
        break;
      }
      await this.sleep(250);
    }
    const r = this.record!;
    r.settle = { settled: lagging.length === 0, waitedMs: Date.now() - t0, lagging };
    const { mine } = this.mine();
    invariant(mine !== undefined, 'the movement is visible after settling');
    const current = this.d.cluster.currentLayout();
    // The cluster rebuilds the view synchronously on every membership change, so it has this movement.
    const future = this.d.cluster.movementView().futures.get(mine.id);
    invariant(future !== undefined, `the future ring of ${mine.id} is published`);
    const factors = replicationFactors([this.d.config.tables.n, ...this.d.tables.all().map((t) => t.n)]);
    const plan = planStreams({ current, future, factors, isUp: (id) => this.d.cluster.isUp(id) });
    r.tasks = resumeTasks(plan, r.tasks);
    r.id = mine.id;
    this.session = { sinceMs: Date.now(), keys: r.tasks.reduce((a, t) => a + t.keys, 0), bytes: r.tasks.reduce((a, t) => a + t.bytes, 0) };
    this.setState('streaming');
    await this.gossip.pushGossip();
    const s0 = summarize(r, null, Date.now());
    logEvent(this.d.log, 'range.stream', { movement: r.id, step: describeMovement(mine), ranges: s0.rangesTotal, done: s0.rangesDone, sources: s0.sources, settled: r.settle.settled, settleMs: r.settle.waitedMs, lagging: r.settle.lagging });
    await runTasks(r.tasks, this.moverPorts(), STALL_TIMEOUT_MS);
    this.setState('finishing');
    await this.finish(mine);
    this.setState('done');
    const s = summarize(r, this.session, Date.now());
    logEvent(this.d.log, 'range.done', { movement: r.id, step: describeMovement(mine), ranges: s.rangesTotal, keys: s.keys, bytes: s.bytes, ms: Date.now() - r.startedAt });
    if (mine.kind === 'leave') this.d.onLeft();
    return 'done';
  }

  /** The ring flip at the end of a movement. */
  private async finish(m: Movement): Promise<void> {
    switch (m.kind) {
      case 'join':
      case 'replace':
        this.d.meta.set(META_STATUS, 'normal');
        this.d.cluster.updateSelf({ status: 'normal' });
        if (m.replaces !== undefined && this.d.cluster.gossip.get(m.replaces)) this.d.cluster.mintForeign(m.replaces, { status: 'left' });
        await this.gossip.pushGossip();
        return;
      case 'remove':
        this.d.cluster.mintForeign(m.node, { status: 'left' });
        await this.gossip.pushGossip();
        return;
      case 'leave': {
        this.d.meta.set(META_STATUS, 'left');
        this.d.cluster.updateSelf({ status: 'left' });
        // Others drop this node from their ring once they see it left; wait (bounded) until they have.
        const by = Date.now() + LEFT_CONFIRM_MS;
        while (Date.now() < by && (await this.gossip.lagging()).length > 0) await this.sleep(200);
        return;
      }
    }
  }

  /** Give way to a movement that goes first (membership.precedes). */
  private yieldTo(mine: Movement, rival: Movement): 'yielded' {
    const why = `yielded to the concurrent ${describeMovement(rival)}`;
    logEvent(this.d.log, 'range.yield', { movement: mine.id, step: describeMovement(mine), rival: rival.id });
    switch (mine.kind) {
      case 'join':
      case 'replace':
        // Withdraw the tokens; the join loop takes new ones once the cluster is quiet again.
        this.d.meta.set(META_TOKENS, []);
        this.d.cluster.updateSelf({ tokens: [] });
        this.setState('waiting', why);
        break;
      case 'leave':
        this.d.meta.set(META_STATUS, 'normal');
        this.d.cluster.updateSelf({ status: 'normal' });
        this.setState('failed', `decommission ${why}; run it again when that one has finished`);
        break;
      case 'remove': {
        const x = { ...(this.d.cluster.gossip.get(mine.node)?.info.extra ?? {}) };
        delete x[EXTRA_REMOVED_BY];
        this.d.cluster.mintForeign(mine.node, { status: 'normal', extra: Object.keys(x).length > 0 ? x : undefined });
        this.setState('failed', `removenode ${why}; run it again when that one has finished`);
        break;
      }
    }
    return 'yielded';
  }

  // ----------------------------------------------------------------------------------------------
  // Streaming through the ports

  private throttle(source: string): ByteThrottle {
    let t = this.throttles.get(source);
    if (t === undefined) this.throttles.set(source, (t = new ByteThrottle(mibPerSecond(this.d.config.streamThroughputMiBs), STREAM_LIMITS.streamBatchBytesMax, Date.now())));
    return t;
  }

  private moverPorts(): MoverPorts {
    return {
      fetch: (source, range, after, maxBytes, maxRows) => this.exchange.fetch(source, range, after, maxBytes, maxRows),
      apply: (target, rows, tables) => this.exchange.apply(target, rows, tables),
      isUp: (id) => this.d.cluster.isUp(id),
      throttle: (s) => this.throttle(s),
      progressed: () => {
        this.persist();
        this.gossip.publishProgress(this.record, this.session, false);
      },
      stopped: () => this.stopping,
      sleep: (ms) => this.sleep(ms),
      now: () => Date.now(),
      log: this.d.log,
    };
  }
}
