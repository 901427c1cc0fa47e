/**
 * The dashboard's live feed: while at least one browser is subscribed (Server-Sent Events), once a
 * second this node asks every up member for its new per-second request samples and its background
 * work progress (`dash-sample` over the peer port), merges the samples of each second into cluster
 * throughput and p99 per operation, and pushes one `tick` event with the cluster's state to every
 * subscriber. New subscribers get an `init` event first: the last few minutes of points and the ring.
 * Nothing runs while nobody watches.
 */
import type { ServerResponse } from 'node:http';
import type { RingLayout } from '../ring/builder.js';
import type { Logger } from '../log/logger.js';
import type { NodeInfo } from '../cluster/gossip-state.js';
import type { TableDef } from '../router/tables.js';
import type { ReplayProgress } from '../hints/service.js';
import type { RepairProgress } from '../repair/service.js';
import type { StreamProgress } from '../metrics/progress.js';
import { LATENCY_BUCKETS_SECONDS } from '../metrics/histogram.js';
import { SampleMerger, toPoint, type SecondSample, type SeriesPoint } from '../metrics/series.js';
import { memberStateCode } from '../cluster/member-state.js';
import { ownershipFractions } from '../ring/tokens.js';
import { SAMPLE_SECONDS, type LocalSamples } from './samples.js';

/** Browsers subscribed at once; more are answered 503. */
export const MAX_DASHBOARD_STREAMS = 16;
/** Unsent bytes a subscriber may fall behind by before it is dropped (it reconnects and starts over). */
export const STREAM_BUFFER_BYTES_MAX = 1024 * 1024;
/** How long a tick waits for a member's samples. */
const PEER_TIMEOUT_MS = 900;
/** Ticks run this far past each second boundary, once every node has closed the second before. */
const TICK_OFFSET_MS = 400;
/** Seconds between a second's end and its point being drawn (see SampleMerger). */
const LAG_SECONDS = 1;
/** Samples accepted in one answer (a node keeps SAMPLE_SECONDS). */
const MAX_SAMPLES_PER_ANSWER = SAMPLE_SECONDS + 5;
/** Replay passes that ended longer ago than this are not drawn. */
const RECENT_REPLAY_MS = 5 * 60_000;

/** What a node reports about its own background work. */
export interface NodeProgress {
  replay: Record<string, ReplayProgress>;
  repair: Omit<RepairProgress, 'last'> & { lastDurationMs: number | null; lastRangesDiffered: number | null };
  streaming: StreamProgress[];
}

/** A member's answer to `dash-sample`. */
export interface PeerSample {
  samples: SecondSample[];
  progress: NodeProgress;
}

export interface FeedDeps {
  selfId: string;
  clusterName: string;
  samples: LocalSamples;
  members: () => Array<{ id: string; info: NodeInfo; up: boolean }>;
  layout: () => RingLayout;
  /** This node's key count, fresh (the others' come from gossip). */
  selfLoad: () => Promise<number>;
  selfHints: () => number;
  tables: () => TableDef[];
  progress: () => NodeProgress;
  askPeer: (nodeId: string, since: number, timeoutMs: number) => Promise<unknown>;
  log: Logger;
}

export interface DashboardNode {
  id: string;
  /** nodetool's two letters: U/D (up/down) + N/J/L (normal/joining/leaving). */
  state: string;
  liveness: 'up' | 'down';
  status: string;
  rack: string;
  http: string;
  load: number;
  owned: number;
  tokens: number;
  hints: number;
  /** Requests this node coordinated in the last second drawn; null when it did not answer. */
  opsPerSec: number | null;
}

export interface DashboardRing {
  digest: string;
  nodeIds: string[];
  /** [token's high 32 bits, low 32 bits, owner's index in nodeIds], ascending. */
  tokens: Array<[number, number, number]>;
}

export interface DashboardState {
  now: number;
  self: string;
  cluster: string;
  ringDigest: string;
  nodes: DashboardNode[];
  hints: Array<{ holder: string } & Pick<ReplayProgress, 'pending' | 'sent' | 'failed' | 'replaying' | 'targetUp' | 'perSecond'> & { target: string }>;
  repair: Array<{ node: string } & NodeProgress['repair']>;
  streaming: Array<{ node: string } & StreamProgress>;
  tables: Array<Pick<TableDef, 'name' | 'conflicts' | 'n' | 'quorum'>>;
}

interface Subscriber {
  res: ServerResponse;
  initialized: boolean;
}

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function finiteOr0(x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : 0;
}

/** A member's samples, checked like any input from the network: malformed entries are dropped. */
export function parseSamples(x: unknown): SecondSample[] {
  if (!Array.isArray(x)) return [];
  const width = LATENCY_BUCKETS_SECONDS.length + 1;
  const out: SecondSample[] = [];
  for (const s of x.slice(-MAX_SAMPLES_PER_ANSWER)) {
    if (!isObj(s) || typeof s['sec'] !== 'number' || !Number.isInteger(s['sec']) || !isObj(s['ops'])) continue;
    const ops: SecondSample['ops'] = {};
    for (const op of ['read', 'write', 'delete', 'scan'] as const) {
      const o = s['ops'][op];
      if (!isObj(o) || !Array.isArray(o['buckets']) || o['buckets'].length !== width) continue;
      ops[op] = { count: finiteOr0(o['count']), errors: finiteOr0(o['errors']), sum: finiteOr0(o['sum']), buckets: o['buckets'].map(finiteOr0) };
    }
    out.push({ sec: s['sec'], ops });
  }
  return out;
}

export function ringOf(layout: RingLayout): DashboardRing {
  return { digest: layout.digest, nodeIds: [...layout.nodeIds], tokens: layout.tokens.map((t, i) => [t.hi, t.lo, layout.owner[i]!]) };
}

export class DashboardFeed {
  private readonly subs = new Set<Subscriber>();
  private timer: NodeJS.Timeout | undefined;
  private merger: SampleMerger | undefined;
  private history: SeriesPoint[] = [];
  private ticking = false;
  private stopped = false;
  /** Requests per node in the last second it reported. */
  private readonly nodeRate = new Map<string, number>();

  constructor(private readonly d: FeedDeps) {}

  get subscribers(): number {
    return this.subs.size;
  }

  /** Take over an HTTP response as an event stream; false when the subscriber limit is reached. */
  subscribe(res: ServerResponse): boolean {
    if (this.stopped || this.subs.size >= MAX_DASHBOARD_STREAMS) return false;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    // Reconnect quickly after a node restart (EventSource reconnects on its own).
    res.write('retry: 2000\n\n');
    const sub: Subscriber = { res, initialized: false };
    this.subs.add(sub);
    res.on('close', () => {
      this.subs.delete(sub);
      if (this.subs.size === 0) this.idle();
    });
    if (!this.timer && !this.ticking) void this.tick();
    return true;
  }

  /** End every stream (node shutdown). */
  stop(): void {
    this.stopped = true;
    for (const s of this.subs) s.res.end();
    this.subs.clear();
    this.idle();
  }

  private idle(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.merger = undefined;
    this.history = [];
    this.nodeRate.clear();
  }

  private schedule(): void {
    if (this.stopped || this.subs.size === 0) return;
    const now = Date.now();
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, 1000 - (now % 1000) + TICK_OFFSET_MS);
  }

  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const nowSec = Math.floor(Date.now() / 1000);
      // The first tick after a quiet period asks for every node's whole history.
      this.merger ??= new SampleMerger(LAG_SECONDS, nowSec - SAMPLE_SECONDS - 1);
      const merger = this.merger;
      const since = merger.emittedUpTo;
      const members = this.d.members();
      const progress = new Map<string, NodeProgress>([[this.d.selfId, this.d.progress()]]);
      const take = (id: string, samples: SecondSample[]): void => {
        for (const s of samples) merger.add(s);
        const last = samples[samples.length - 1];
        if (last && last.sec >= nowSec - 1 - LAG_SECONDS) this.nodeRate.set(id, Object.values(last.ops).reduce((a, o) => a + o.count, 0));
        else this.nodeRate.set(id, 0);
      };
      take(this.d.selfId, this.d.samples.since(since));
      await Promise.all(
        members
          .filter((m) => m.id !== this.d.selfId && m.up)
          .map(async (m) => {
            try {
              const a = await this.d.askPeer(m.id, since, PEER_TIMEOUT_MS);
              if (!isObj(a)) return;
              take(m.id, parseSamples(a['samples']));
              if (isObj(a['progress'])) progress.set(m.id, a['progress'] as unknown as NodeProgress);
            } catch (e) {
              this.nodeRate.delete(m.id);
              this.d.log.debug({ peer: m.id, err: String(e) }, 'dashboard sample failed');
            }
          }),
      );
      for (const m of members) if (!m.up) this.nodeRate.delete(m.id);
      if (this.merger !== merger) return; // everyone left while we waited
      const points = merger.finalize(nowSec).map((s) => toPoint(s, LATENCY_BUCKETS_SECONDS));
      this.history.push(...points);
      if (this.history.length > SAMPLE_SECONDS) this.history.splice(0, this.history.length - SAMPLE_SECONDS);
      if (this.subs.size === 0) return;
      const state = await this.state(members, progress);
      const layout = this.d.layout();
      // The ring goes with every init, and to everyone with the tick that first sees a new one.
      const ring = ringOf(layout);
      const ringChanged = layout.digest !== this.lastDigest;
      this.lastDigest = layout.digest;
      for (const sub of [...this.subs]) {
        if (!sub.initialized) {
          sub.initialized = true;
          this.send(sub, 'init', { ...state, ring, points: this.history });
        } else {
          this.send(sub, 'tick', ringChanged ? { ...state, ring, points } : { ...state, points });
        }
      }
    } catch (e) {
      this.d.log.warn({ err: String(e) }, 'dashboard tick failed');
    } finally {
      this.ticking = false;
      this.schedule();
    }
  }

  private lastDigest = '';

  private send(sub: Subscriber, event: string, data: Record<string, unknown>): void {
    if (sub.res.writableLength > STREAM_BUFFER_BYTES_MAX) {
      this.d.log.info({ buffered: sub.res.writableLength }, 'dropping a dashboard stream that does not keep up');
      sub.res.end();
      this.subs.delete(sub);
      return;
    }
    sub.res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** The cluster as this node sees it now (also `GET /api/v1/dashboard`). */
  async state(members = this.d.members(), progress = new Map<string, NodeProgress>([[this.d.selfId, this.d.progress()]])): Promise<DashboardState> {
    const layout = this.d.layout();
    const owned = ownershipFractions(layout);
    const selfLoad = await this.d.selfLoad();
    const now = Date.now();
    const nodes: DashboardNode[] = members
      .map((m) => ({
        id: m.id,
        state: memberStateCode(m.up, m.info.status),
        liveness: m.up ? ('up' as const) : ('down' as const),
        status: m.info.status,
        rack: m.info.rack,
        http: m.info.http,
        load: m.id === this.d.selfId ? selfLoad : m.info.load,
        owned: owned.get(m.id) ?? 0,
        tokens: m.info.tokens.length,
        hints: m.id === this.d.selfId ? this.d.selfHints() : (m.info.hints ?? 0),
        opsPerSec: this.nodeRate.get(m.id) ?? null,
      }))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const hints: DashboardState['hints'] = [];
    const repair: DashboardState['repair'] = [];
    const streaming: DashboardState['streaming'] = [];
    for (const [node, p] of [...progress].sort(([a], [b]) => (a < b ? -1 : 1))) {
      for (const [target, r] of Object.entries(isObj(p.replay) ? p.replay : {})) {
        const recent = r.replaying || r.pending > 0 || (r.finishedAt !== null && now - r.finishedAt < RECENT_REPLAY_MS);
        if (!recent) continue;
        hints.push({ holder: node, target, pending: r.pending, sent: r.sent, failed: r.failed, replaying: r.replaying, targetUp: r.targetUp, perSecond: r.perSecond });
      }
      if (isObj(p.repair)) repair.push({ node, ...p.repair });
      if (Array.isArray(p.streaming)) for (const s of p.streaming) streaming.push({ node, ...s });
    }
    return {
      now,
      self: this.d.selfId,
      cluster: this.d.clusterName,
      ringDigest: layout.digest,
      nodes,
      hints,
      repair,
      streaming,
      tables: this.d.tables().map((t) => ({ name: t.name, conflicts: t.conflicts, n: t.n, quorum: t.quorum })),
    };
  }
}

/** A node's progress report (its `dash-sample` answer's second half). */
export function nodeProgress(replay: Record<string, ReplayProgress>, repair: RepairProgress, streaming: readonly StreamProgress[]): NodeProgress {
  const { last, ...rest } = repair;
  return { replay, repair: { ...rest, lastDurationMs: last?.durationMs ?? null, lastRangesDiffered: last?.rangesDiffered ?? null }, streaming: [...streaming] };
}
