/**
 * Wires the node's monitoring: the request observer on the router, the metrics registry over the
 * node's parts, the per-second dashboard samples and feed, and their HTTP routes (`/metrics`,
 * `/readyz`, the dashboard). Everything here reads the parts; nothing in the parts depends on it.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { Cluster } from '../cluster/cluster.js';
import type { PeerTransport } from '../cluster/transport.js';
import type { IpcServer } from '../api/ipc-server.js';
import type { HintService } from '../hints/service.js';
import type { RepairService } from '../repair/service.js';
import type { Router } from '../router/router.js';
import type { TableRegistry } from '../router/tables.js';
import type { RingTable } from '../ring/table.js';
import type { ShardPool } from '../storage/shards.js';
import type { OpenedDatabase } from '../storage/db.js';
import { ownershipFractions } from '../ring/tokens.js';
import { BATCH_SIZE_BUCKETS, ROUND_TRIP_BUCKETS_SECONDS, SlottedHistogram } from '../metrics/histogram.js';
import { NO_STREAMS, type StreamingProvider } from '../metrics/progress.js';
import { createNodeRegistry, MAX_ROUND_TRIP_PEERS, PeerHistograms, type NodeRegistry } from '../metrics/registry.js';
import { RequestMetrics } from '../metrics/requests.js';
import { mountMetricsRoutes } from '../metrics/routes.js';
import { DashboardFeed, nodeProgress } from '../dashboard/feed.js';
import { mountDashboardRoutes } from '../dashboard/routes.js';
import { LocalSamples } from '../dashboard/samples.js';
import { readiness } from './readiness.js';

export interface MonitoringParts {
  config: NodeConfig;
  selfId: string;
  log: Logger;
  router: Router;
  pool: ShardPool;
  db: OpenedDatabase;
  ring: RingTable;
  cluster: Cluster;
  transport: PeerTransport;
  hints: HintService;
  repair: RepairService;
  tables: TableRegistry;
  ipc: () => IpcServer | undefined;
}

export interface Monitoring {
  /** Mount `/metrics`, `/readyz` and the dashboard (pass to startHttp's extraRoutes). */
  mount(app: FastifyInstance): void;
  /** Range streaming reports its progress here (dashboard bars, `ringkv_streaming_*`). */
  setStreamingProvider(p: StreamingProvider): void;
  /** The node started shutting down: `/readyz` answers 503 from now on. */
  markClosing(): void;
  stop(): void;
}

function packageVersion(): string {
  try {
    const file = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../package.json');
    return String((JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

export function startMonitoring(p: MonitoringParts): Monitoring {
  const { config, cluster, pool, hints, repair } = p;
  const enabled = config.metrics.enabled;
  let streaming: StreamingProvider = NO_STREAMS;
  let closing = false;

  const requests = new RequestMetrics();
  let registry: NodeRegistry | undefined;
  let samples: LocalSamples | undefined;
  if (enabled) {
    p.router.observer = requests;
    const batches = new SlottedHistogram(BATCH_SIZE_BUCKETS, pool.size);
    pool.onBatch = (shard, ops) => batches.record(shard, ops);
    const roundTrips = new PeerHistograms(ROUND_TRIP_BUCKETS_SECONDS, MAX_ROUND_TRIP_PEERS);
    cluster.onGossipRoundTrip = (address, seconds) => {
      const peer = cluster.gossip.all().find((s) => s.info.peer === address)?.id ?? address;
      roundTrips.observe(peer, seconds);
    };
    registry = createNodeRegistry({
      nodeId: p.selfId,
      clusterName: config.cluster.name,
      version: packageVersion(),
      requests,
      routerCounters: () => p.router.counters,
      shardCount: pool.size,
      shardQueueDepth: (i) => pool.queueDepth(i),
      shardStats: () => Promise.all(Array.from({ length: pool.size }, (_, i) => pool.stats(i))),
      shardBatches: batches,
      rocksProperty: (name) => p.db.db.getProperty(name),
      rocksDir: p.db.dir,
      hints: () => hints.snapshot(),
      hintsReplayedByTarget: () => hints.replayedByTarget(),
      repair: () => repair.progress(),
      streaming: () => streaming(),
      members: () => {
        const owned = ownershipFractions(cluster.currentLayout());
        const view = cluster.view();
        roundTrips.retain((peer) => view.some((m) => m.id === peer));
        return view.map((m) => ({ id: m.id, up: m.up, phi: m.phi, owned: owned.get(m.id) ?? 0 }));
      },
      ring: () => {
        const l = cluster.currentLayout();
        return { digest: l.digest, tokens: l.tokens.length, nodes: l.nodeIds.length };
      },
      gossipRounds: () => cluster.gossipRounds,
      gossipRoundTrips: roundTrips,
      transport: () => p.transport.stats(),
      ipc: () => p.ipc()?.stats(),
    });
    samples = new LocalSamples(requests);
    samples.start();
  }

  const progress = () => nodeProgress(hints.progress(), repair.progress(), streaming());
  // Another node's dashboard asks for this node's samples after second `since`, and its progress.
  cluster.registerService('dash-sample', async (body) => {
    const since = typeof body['since'] === 'number' && Number.isFinite(body['since']) ? body['since'] : 0;
    return { samples: samples?.since(since) ?? [], progress: progress() };
  });

  const feed = new DashboardFeed({
    selfId: p.selfId,
    clusterName: config.cluster.name,
    samples: samples ?? new LocalSamples(requests),
    members: () => cluster.view(),
    layout: () => cluster.currentLayout(),
    selfLoad: async () => (await Promise.all(Array.from({ length: pool.size }, (_, i) => pool.stats(i)))).reduce((a, s) => a + s.keys, 0),
    selfHints: () => hints.total(),
    tables: () => p.tables.all(),
    progress,
    askPeer: (id, since, timeoutMs) => cluster.request(id, { t: 'dash-sample', since }, timeoutMs),
    log: p.log,
  });

  const ready = () => {
    const layout = cluster.currentLayout();
    const self = cluster.gossip.get(p.selfId);
    return readiness({
      // A shard actor that dies stops the whole process (node.ts), so a running node has them all.
      shardsUp: pool.size,
      shards: pool.size,
      ringTokens: layout.tokens.length,
      selfInRing: layout.nodeIds.includes(p.selfId),
      status: self?.info.status ?? 'unknown',
      closing,
    });
  };

  return {
    mount(app) {
      mountMetricsRoutes(app, registry, ready);
      mountDashboardRoutes(app, feed);
    },
    setStreamingProvider(fn) {
      streaming = fn;
    },
    markClosing() {
      closing = true;
    },
    stop() {
      feed.stop();
      samples?.stop();
      p.router.observer = undefined;
      pool.onBatch = undefined;
      cluster.onGossipRoundTrip = undefined;
    },
  };
}
