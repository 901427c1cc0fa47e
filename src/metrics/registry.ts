/**
 * The node's Prometheus registry (prom-client): every metric ringkv exports, read from the node's
 * parts at scrape time through narrow source interfaces (`collect()` callbacks), plus the request
 * histograms the router records into typed arrays (requests.ts). prom-client writes the
 * exposition; nothing here formats text.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { RepairProgress } from '../repair/service.js';
import type { RouterCounters } from '../router/router.js';
import type { ShardStats } from '../storage/shard-protocol.js';
import type { TransportStats } from '../cluster/transport.js';
import type { IpcStats } from '../api/ipc-server.js';
import type { HintStats } from '../hints/service.js';
import { BATCH_SIZE_BUCKETS, LATENCY_BUCKETS_SECONDS, ROUND_TRIP_BUCKETS_SECONDS, SlottedHistogram, type HistogramRow } from './histogram.js';
import { metricNameProblems, METRIC_PREFIX, type MetricKind } from './names.js';
import type { StreamingProvider } from './progress.js';
import type { RequestMetrics } from './requests.js';

/** One member as this node sees it (from the cluster's view). */
export interface MemberView {
  id: string;
  up: boolean;
  phi: number;
  owned: number;
}

/** Everything the registry reads, as narrow functions of plain data (unit tests pass literals). */
export interface MetricsSources {
  nodeId: string;
  clusterName: string;
  version: string;
  requests: RequestMetrics;
  routerCounters: () => RouterCounters;
  shardCount: number;
  shardQueueDepth: (shard: number) => number;
  shardStats: () => Promise<ShardStats[]>;
  /** Ops per router → shard message, one histogram slot per shard. */
  shardBatches: SlottedHistogram;
  /** A RocksDB property through the binding (DB-wide ones: the binding reads the default family only). */
  rocksProperty: (name: string) => string;
  /** The RocksDB directory, for the SST and WAL file sizes. */
  rocksDir: string;
  hints: () => Pick<HintStats, 'stored' | 'refused' | 'replayed' | 'replayFailures' | 'expired' | 'pending' | 'replay'>;
  hintsReplayedByTarget: () => ReadonlyMap<string, number>;
  repair: () => RepairProgress;
  streaming: StreamingProvider;
  members: () => MemberView[];
  ring: () => { digest: string; tokens: number; nodes: number };
  gossipRounds: () => number;
  gossipRoundTrips: PeerHistograms;
  transport: () => TransportStats;
  ipc: () => IpcStats | undefined;
}

/** The HELP text and label names of one metric, with the check of its name. */
interface Spec<L extends string> {
  name: string;
  help: string;
  labelNames?: readonly L[];
}

/** Throws when a name breaks the conventions: every family below is created through it. */
export function checked(kind: MetricKind, name: string, labelNames: readonly string[]): void {
  const problems = metricNameProblems(name, kind, labelNames);
  if (problems.length > 0) throw new Error(`invariant violated: metric names break Prometheus conventions: ${problems.join('; ')}`);
}

type Labels<L extends string> = Partial<Record<L, string | number>>;
type Sample<L extends string> = readonly [Labels<L>, number];
type Reader<L extends string> = () => Iterable<Sample<L>> | Promise<Iterable<Sample<L>>>;

/** Histograms per peer, created on first observation (peers are cluster members: bounded). */
export class PeerHistograms {
  private readonly byPeer = new Map<string, SlottedHistogram>();

  constructor(
    readonly bounds: readonly number[],
    private readonly maxPeers: number,
  ) {}

  observe(peer: string, v: number): void {
    let h = this.byPeer.get(peer);
    if (!h) {
      if (this.byPeer.size >= this.maxPeers) return;
      this.byPeer.set(peer, (h = new SlottedHistogram(this.bounds, 1)));
    }
    h.record(0, v);
  }

  /** Forget peers that left the cluster. */
  retain(keep: (peer: string) => boolean): void {
    for (const p of this.byPeer.keys()) if (!keep(p)) this.byPeer.delete(p);
  }

  rows(): Array<{ peer: string; row: HistogramRow }> {
    return [...this.byPeer].map(([peer, h]) => ({ peer, row: h.row(0) }));
  }
}

/** Peers whose gossip round trips are kept (MAX_PEER_LINKS in the transport is the hard bound). */
export const MAX_ROUND_TRIP_PEERS = 1024;

/** The default metrics prom-client names `…_total` although they are gauges (active handles etc.): left out. */
function isMisnamedDefault(m: { name: string; type?: unknown }): boolean {
  return m.name.endsWith('_total') && String(m.type) !== 'counter';
}

export interface NodeRegistry {
  registry: Registry;
  /** The exposition, with its content type. */
  scrape(): Promise<{ contentType: string; body: string }>;
}

export function createNodeRegistry(src: MetricsSources, opts: { defaultMetrics?: boolean } = {}): NodeRegistry {
  const registry = new Registry();

  // Replace a metric's samples with what its source reports now (non-finite values are left out).
  const refill = async <L extends string>(m: { reset(): void }, read: Reader<L>, put: (labels: Partial<Record<L, string | number>>, v: number) => void): Promise<void> => {
    const samples = await read();
    m.reset();
    for (const [labels, v] of samples) if (Number.isFinite(v)) put(labels as Partial<Record<L, string | number>>, v);
  };
  const gauge = <L extends string>(s: Spec<L>, read: Reader<L>): void => {
    checked('gauge', s.name, s.labelNames ?? []);
    new Gauge<L>({ name: s.name, help: s.help, labelNames: s.labelNames ?? [], registers: [registry], collect() { return refill(this, read, (l, v) => this.set(l, v)); } });
  };
  // A counter whose value is kept elsewhere (cumulative since start): set on every scrape.
  const counter = <L extends string>(s: Spec<L>, read: Reader<L>): void => {
    checked('counter', s.name, s.labelNames ?? []);
    new Counter<L>({ name: s.name, help: s.help, labelNames: s.labelNames ?? [], registers: [registry], collect() { return refill(this, read, (l, v) => v >= 0 && this.inc(l, v)); } });
  };
  const histogram = <L extends string>(s: Spec<L>, bounds: readonly number[], read: () => Iterable<{ labels: Labels<L>; row: HistogramRow }>): void => {
    checked('histogram', s.name, s.labelNames ?? []);
    registry.registerMetric(exportedHistogram(s.name, s.help, bounds, read) as unknown as Metric);
  };
  const one = (v: number): Array<Sample<never>> => [[{}, v]];

  // Stats that several families read come from one request per scrape.
  const shardStats = shared(src.shardStats);

  // --- node and ring
  gauge({ name: 'ringkv_node_info', help: 'Always 1; labels name this node, its cluster and the ringkv version.', labelNames: ['node', 'cluster', 'version'] }, () => [
    [{ node: src.nodeId, cluster: src.clusterName, version: src.version }, 1],
  ]);
  gauge({ name: 'ringkv_ring_info', help: 'Always 1; the digest label is the ring this node routes by (equal digests: equal rings).', labelNames: ['digest'] }, () => [[{ digest: src.ring().digest }, 1]]);
  gauge({ name: 'ringkv_ring_tokens', help: 'Tokens on the ring this node routes by.' }, () => one(src.ring().tokens));
  gauge({ name: 'ringkv_ring_nodes', help: 'Nodes owning tokens on the ring this node routes by.' }, () => one(src.ring().nodes));
  gauge({ name: 'ringkv_member_up', help: 'Whether this node sees the member up (1) or down (0), as routing does.', labelNames: ['peer'] }, () =>
    src.members().map((m) => [{ peer: m.id }, m.up ? 1 : 0] as const),
  );
  gauge({ name: 'ringkv_member_owned_ratio', help: 'Share of the token space whose primary replica is the member (0..1).', labelNames: ['peer'] }, () =>
    src.members().map((m) => [{ peer: m.id }, m.owned] as const),
  );

  // --- coordinator requests (recorded by the router, see requests.ts)
  const req = src.requests;
  counter({ name: 'ringkv_requests_total', help: 'Requests coordinated by this node, answered (successfully or not), per operation and consistency level.', labelNames: ['op', 'consistency'] }, () =>
    req.slotsInUse().map((s) => [{ op: s.op, consistency: s.consistency }, req.latency.totals[s.slot]!] as const),
  );
  histogram(
    { name: 'ringkv_request_duration_seconds', help: 'Coordinator-side latency of requests, from the router taking them to their answer.', labelNames: ['op', 'consistency'] },
    LATENCY_BUCKETS_SECONDS,
    () => req.slotsInUse().map((s) => ({ labels: { op: s.op, consistency: s.consistency }, row: req.latency.row(s.slot) })),
  );
  counter({ name: 'ringkv_request_errors_total', help: 'Coordinated requests answered with an error, per operation and error code.', labelNames: ['op', 'code'] }, () =>
    req.errorCounts().map((e) => [{ op: e.op, code: e.code }, e.count] as const),
  );
  gauge({ name: 'ringkv_requests_in_flight', help: 'Coordinated requests started and not yet answered.' }, () => one(req.inFlight));
  counter({ name: 'ringkv_replica_requests_total', help: 'Replica-level operations served for other coordinators.', labelNames: ['op'] }, () => {
    const c = src.routerCounters();
    return [
      [{ op: 'read' }, c.replicaReads],
      [{ op: 'write' }, c.replicaWrites],
    ];
  });
  counter({ name: 'ringkv_read_repairs_total', help: 'Stale replicas sent the reconciled versions after a read.' }, () => one(src.routerCounters().readRepairs));
  counter({ name: 'ringkv_hinted_writes_total', help: 'Replica writes stored as hints instead (replica down or failed).' }, () => one(src.routerCounters().hintedWrites));

  // --- shards
  gauge({ name: 'ringkv_shard_queue_ops', help: 'Operations submitted to the shard actor and not yet answered (its mailbox depth).', labelNames: ['shard'] }, () =>
    Array.from({ length: src.shardCount }, (_, i) => [{ shard: i }, src.shardQueueDepth(i)] as const),
  );
  histogram({ name: 'ringkv_shard_batch_ops', help: 'Operations per router → shard message; the shard commits at least this many together.', labelNames: ['shard'] }, BATCH_SIZE_BUCKETS, () =>
    Array.from({ length: src.shardCount }, (_, i) => ({ labels: { shard: i }, row: src.shardBatches.row(i) })),
  );
  gauge({ name: 'ringkv_shard_keys', help: "Keys stored in the shard's column family (the actor's own count).", labelNames: ['shard'] }, async () =>
    (await shardStats()).map((s) => [{ shard: s.shard }, s.keys] as const),
  );
  counter({ name: 'ringkv_shard_commits_total', help: 'Group commits (one multi-get + one write batch) of the shard actor.', labelNames: ['shard'] }, async () =>
    (await shardStats()).map((s) => [{ shard: s.shard }, s.batches] as const),
  );
  counter({ name: 'ringkv_shard_ops_total', help: 'Reads and writes executed by the shard actor.', labelNames: ['shard', 'op'] }, async () =>
    (await shardStats()).flatMap((s) => [[{ shard: s.shard, op: 'read' }, s.reads] as const, [{ shard: s.shard, op: 'write' }, s.writes] as const]),
  );
  counter({ name: 'ringkv_tombstones_purged_total', help: 'Records purged by the tombstone sweep.', labelNames: ['shard'] }, async () =>
    (await shardStats()).map((s) => [{ shard: s.shard }, s.tombstonesPurged] as const),
  );

  // --- RocksDB. The binding's getProperty reads the default column family only (DB::GetProperty
  // without a family handle), so per-family sizes are out of reach; these properties are DB-wide.
  // Unreadable (the db closing, an unknown property: empty string) is left out of the scrape.
  const prop = (name: string): number => {
    try {
      const raw = src.rocksProperty(name);
      return raw === '' ? NaN : Number(raw);
    } catch {
      return NaN;
    }
  };
  gauge({ name: 'ringkv_rocksdb_running_compactions', help: 'RocksDB compactions running now (rocksdb.num-running-compactions).' }, () => one(prop('rocksdb.num-running-compactions')));
  gauge({ name: 'ringkv_rocksdb_running_flushes', help: 'RocksDB memtable flushes running now (rocksdb.num-running-flushes).' }, () => one(prop('rocksdb.num-running-flushes')));
  counter({ name: 'ringkv_rocksdb_background_errors_total', help: 'RocksDB background errors (rocksdb.background-errors).' }, () => one(prop('rocksdb.background-errors')));
  gauge({ name: 'ringkv_rocksdb_write_stopped', help: 'Whether RocksDB stops writes now (1) for too many memtables or L0 files (rocksdb.is-write-stopped).' }, () =>
    one(prop('rocksdb.is-write-stopped')),
  );
  gauge({ name: 'ringkv_rocksdb_delayed_write_rate_bytes_per_second', help: 'Write rate RocksDB throttles to, 0 when not delaying (rocksdb.actual-delayed-write-rate).' }, () =>
    one(prop('rocksdb.actual-delayed-write-rate')),
  );
  const files = shared(() => rocksFileBytes(src.rocksDir));
  gauge({ name: 'ringkv_rocksdb_sst_files_bytes', help: 'Bytes of SST files in the RocksDB directory (every column family).' }, async () => one((await files()).sst));
  gauge({ name: 'ringkv_rocksdb_wal_files_bytes', help: 'Bytes of write-ahead log files in the RocksDB directory.' }, async () => one((await files()).wal));

  // --- hints
  gauge({ name: 'ringkv_hints_pending', help: 'Hints held on this node, per target node.', labelNames: ['target'] }, () =>
    Object.entries(src.hints().pending).map(([t, n]) => [{ target: t }, n] as const),
  );
  counter({ name: 'ringkv_hints_replayed_total', help: 'Hints delivered to their target node (and deleted here).', labelNames: ['target'] }, () =>
    [...src.hintsReplayedByTarget()].map(([t, n]) => [{ target: t }, n] as const),
  );
  gauge({ name: 'ringkv_hint_replay_running', help: 'Whether a replay pass to the target runs now.', labelNames: ['target'] }, () =>
    Object.entries(src.hints().replay).map(([t, r]) => [{ target: t }, r.replaying ? 1 : 0] as const),
  );
  counter({ name: 'ringkv_hints_stored_total', help: 'Hints stored on this node.' }, () => one(src.hints().stored));
  counter({ name: 'ringkv_hints_refused_total', help: 'Hints refused because the target already had the maximum stored.' }, () => one(src.hints().refused));
  counter({ name: 'ringkv_hints_expired_total', help: 'Hints dropped for being older than maxHintWindowMs.' }, () => one(src.hints().expired));
  counter({ name: 'ringkv_hint_replay_failures_total', help: 'Hint deliveries that failed (retried in a later pass).' }, () => one(src.hints().replayFailures));

  // --- anti-entropy repair
  gauge({ name: 'ringkv_repair_running', help: 'Whether a repair session runs on this node now.' }, () => one(src.repair().running ? 1 : 0));
  gauge({ name: 'ringkv_repair_session_ranges', help: '(range, peer) pairs the running or last repair session planned.' }, () => one(src.repair().pairsTotal));
  gauge({ name: 'ringkv_repair_session_ranges_done', help: '(range, peer) pairs the running or last repair session finished.' }, () => one(src.repair().pairsDone));
  counter({ name: 'ringkv_repair_sessions_total', help: 'Repair sessions finished, by outcome.', labelNames: ['outcome'] }, () => {
    const p = src.repair();
    return [
      [{ outcome: 'ok' }, p.sessions],
      [{ outcome: 'failed' }, p.failedSessions],
    ];
  });
  counter({ name: 'ringkv_repair_ranges_differed_total', help: '(range, peer) pairs whose Merkle roots differed.' }, () => one(src.repair().totals.rangesDiffered));
  counter({ name: 'ringkv_repair_keys_total', help: 'Keys whose merged versions a repair wrote, by direction.', labelNames: ['direction'] }, () => {
    const t = src.repair().totals;
    return [
      [{ direction: 'sent' }, t.keysSent],
      [{ direction: 'received' }, t.keysReceived],
    ];
  });
  counter({ name: 'ringkv_repair_bytes_total', help: 'Repair protocol bytes, by direction.', labelNames: ['direction'] }, () => {
    const t = src.repair().totals;
    return [
      [{ direction: 'sent' }, t.bytesSent],
      [{ direction: 'received' }, t.bytesReceived],
    ];
  });

  // --- range streaming (fed by the elasticity work through a provider; empty until then)
  const streamLabels = ['operation', 'peer', 'direction'] as const;
  gauge({ name: 'ringkv_streaming_transferred_bytes', help: 'Bytes a range stream has moved so far.', labelNames: streamLabels }, () =>
    src.streaming().map((s) => [{ operation: s.operation, peer: s.peer, direction: s.direction }, s.bytesDone] as const),
  );
  gauge({ name: 'ringkv_streaming_expected_bytes', help: 'Bytes a range stream is expected to move in all.', labelNames: streamLabels }, () =>
    src.streaming().map((s) => [{ operation: s.operation, peer: s.peer, direction: s.direction }, s.bytesTotal] as const),
  );
  gauge({ name: 'ringkv_streaming_ranges_done', help: 'Ranges a range stream has finished.', labelNames: streamLabels }, () =>
    src.streaming().map((s) => [{ operation: s.operation, peer: s.peer, direction: s.direction }, s.rangesDone] as const),
  );
  gauge({ name: 'ringkv_streaming_ranges', help: 'Ranges a range stream moves in all.', labelNames: streamLabels }, () =>
    src.streaming().map((s) => [{ operation: s.operation, peer: s.peer, direction: s.direction }, s.rangesTotal] as const),
  );

  // --- gossip and failure detection
  counter({ name: 'ringkv_gossip_rounds_total', help: 'Gossip rounds this node started.' }, () => one(src.gossipRounds()));
  gauge({ name: 'ringkv_gossip_phi', help: "The phi-accrual failure detector's suspicion of the member (convicted at cluster.phiThreshold).", labelNames: ['peer'] }, () =>
    src
      .members()
      .filter((m) => m.id !== src.nodeId)
      .map((m) => [{ peer: m.id }, m.phi] as const),
  );
  histogram({ name: 'ringkv_gossip_round_trip_seconds', help: 'Gossip SYN → ACK round trips, per peer.', labelNames: ['peer'] }, ROUND_TRIP_BUCKETS_SECONDS, () =>
    src.gossipRoundTrips.rows().map((r) => ({ labels: { peer: r.peer }, row: r.row })),
  );

  // --- peer transport
  const peers = (): Array<{ peer: string; s: TransportStats['peers'][number] }> => src.transport().peers.map((s) => ({ peer: s.id ?? s.address, s }));
  gauge({ name: 'ringkv_peer_connected', help: 'Whether the outgoing link to the peer is connected and authenticated.', labelNames: ['peer'] }, () =>
    peers().map((p) => [{ peer: p.peer }, p.s.connected ? 1 : 0] as const),
  );
  gauge({ name: 'ringkv_peer_queue_bytes', help: 'Encoded request bytes waiting to be written to the peer.', labelNames: ['peer'] }, () =>
    peers().map((p) => [{ peer: p.peer }, p.s.queuedBytes] as const),
  );
  gauge({ name: 'ringkv_peer_queued_requests', help: 'Requests waiting to be written to the peer.', labelNames: ['peer'] }, () =>
    peers().map((p) => [{ peer: p.peer }, p.s.queued] as const),
  );
  gauge({ name: 'ringkv_peer_in_flight_requests', help: 'Requests written to the peer and waiting for its answer.', labelNames: ['peer'] }, () =>
    peers().map((p) => [{ peer: p.peer }, p.s.inFlight] as const),
  );
  counter({ name: 'ringkv_peer_frames_total', help: 'Frames on peer connections, by direction.', labelNames: ['direction'] }, () => {
    const t = src.transport();
    return [
      [{ direction: 'in' }, t.framesIn],
      [{ direction: 'out' }, t.framesOut],
    ];
  });
  counter({ name: 'ringkv_peer_auth_failures_total', help: 'Peer handshakes that failed authentication.' }, () => one(src.transport().authFailures));
  counter({ name: 'ringkv_peer_bad_frames_total', help: 'Peer connections closed for a malformed frame.' }, () => one(src.transport().badFrames));

  // --- IPC socket
  const ipc = (): IpcStats | undefined => src.ipc();
  gauge({ name: 'ringkv_ipc_connections', help: 'Open IPC client connections (socket and peer-port clients).' }, () => one(ipc()?.connections ?? 0));
  gauge({ name: 'ringkv_ipc_in_flight_requests', help: 'IPC requests being served now.' }, () => one(ipc()?.inFlight ?? 0));
  gauge({ name: 'ringkv_ipc_paused_connections', help: 'IPC connections paused for backpressure now.' }, () => one(ipc()?.pausedConnections ?? 0));
  counter({ name: 'ringkv_ipc_requests_total', help: 'IPC request frames accepted (a batch counts once).' }, () => one(ipc()?.requests ?? 0));
  counter({ name: 'ringkv_ipc_bad_frames_total', help: 'IPC connections closed for a malformed, oversized or id-less frame.' }, () => one(ipc()?.badFrames ?? 0));
  counter({ name: 'ringkv_ipc_backpressure_pauses_total', help: 'Times an IPC connection was paused for backpressure.' }, () => one(ipc()?.pauses ?? 0));

  // --- process: event-loop lag, GC, memory, CPU (prom-client's default metrics, with our prefix)
  if (opts.defaultMetrics !== false) {
    const defaults = new Registry();
    collectDefaultMetrics({ register: defaults, prefix: METRIC_PREFIX });
    for (const m of defaults.getMetricsAsArray()) {
      if (isMisnamedDefault(m)) continue;
      registry.registerMetric(m as unknown as Metric);
    }
  }

  return {
    registry,
    async scrape() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/** Histogram rows from our typed arrays in the shape prom-client's Registry formats (its `get()` contract). */
function exportedHistogram<L extends string>(name: string, help: string, bounds: readonly number[], read: () => Iterable<{ labels: Labels<L>; row: HistogramRow }>) {
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    async get() {
      const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> = [];
      for (const { labels, row } of read()) {
        const base = labels as Record<string, string | number>;
        bounds.forEach((le, i) => values.push({ value: row.cumulative[i]!, labels: { ...base, le }, metricName: `${name}_bucket` }));
        values.push({ value: row.count, labels: { ...base, le: '+Inf' }, metricName: `${name}_bucket` });
        values.push({ value: row.sum, labels: base, metricName: `${name}_sum` });
        values.push({ value: row.count, labels: base, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
    reset() {},
  };
}

/** Bytes of SST and WAL files in a RocksDB directory (files vanishing mid-listing are skipped). */
export async function rocksFileBytes(dir: string): Promise<{ sst: number; wal: number }> {
  let sst = 0;
  let wal = 0;
  for (const f of await readdir(dir)) {
    const isSst = f.endsWith('.sst');
    if (!isSst && !f.endsWith('.log')) continue;
    try {
      const s = await stat(path.join(dir, f));
      if (isSst) sst += s.size;
      else wal += s.size;
    } catch {
      // compacted away or recycled between readdir and stat
    }
  }
  return { sst, wal };
}

/**
 * `fn` with concurrent calls sharing one run: a scrape collects every family in the same tick, so the
 * families reading shard stats share one round of stats messages, and the next scrape asks anew.
 */
function shared<T>(fn: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () =>
    (pending ??= fn().finally(() => {
      pending = undefined;
    }));
}
