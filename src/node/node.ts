import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { clusterSecret, formatHostPort, isOwnAddress, type NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { startHttp } from '../api/http.js';
import { initHasher, tokenFromHex, tokenToHex, type Token } from '../ring/hash.js';
import { Cluster } from '../cluster/cluster.js';
import type { EndpointState, MemberStatus } from '../cluster/gossip-state.js';
import { PeerTransport } from '../cluster/transport.js';
import { HintService } from '../hints/service.js';
import { listenIpc, ringInfoFromLayout, type IpcListener, type IpcServer } from '../api/ipc-server.js';
import { DEFAULT_MAX_FRAME_BYTES } from '../net/frames.js';
import { ReplyBudget } from '../net/reply-budget.js';
import { HintStore } from '../hints/store.js';
import { RingkvError } from '../util/errors.js';
import { allocateTokens, ownershipFractions } from '../ring/tokens.js';
import type { RingLayout } from '../ring/builder.js';
import { RingTable } from '../ring/table.js';
import { Router } from '../router/router.js';
import { TableRegistry } from '../router/tables.js';
import { openDatabase, StorageError, type OpenedDatabase } from '../storage/db.js';
import { MetaStore } from '../storage/meta.js';
import { prepareStorage, type MigrationOptions } from '../storage/migrate.js';
import { ShardPool } from '../storage/shards.js';
import { initVersions } from '../versions/index.js';
import { mountRepairRoutes } from '../repair/routes.js';
import { startRepairService } from '../repair/service.js';
import { CrdtCoordinator } from '../router/crdt.js';
import { mountCrdtRoutes } from '../api/crdt-http.js';
import { markCleanShutdown, startIncarnation } from './incarnation.js';
import { mountQueryRoutes, queryOkOf } from '../api/query-routes.js';
import { WideTableRegistry } from '../router/wide-tables.js';
import { WideReplicas } from '../router/wide-replicas.js';
import { CqlService } from '../router/wide-query.js';
import { REPLICA_PEER_TYPES } from '../router/replica-protocol.js';
import { META_REPLACES, META_STATUS, META_TOKENS, MovementManager } from '../streaming/manager.js';
import { EXTRA_REPLACES } from '../streaming/membership.js';
import type { MemberReply } from '../streaming/messages.js';
import { mountStreamingRoutes } from '../streaming/routes.js';
import { startMonitoring, type Monitoring } from './monitoring.js';


/** How often the gossiped key count (`load`) is refreshed. */
const LOAD_REFRESH_MS = 10_000;

export interface NodeIdentity {
  id: string;
  generation: number;
  tokens: Token[];
  /** Membership status to announce (joining / leaving survive a restart mid-movement). */
  status: MemberStatus;
  /** The dead node this one replaces (`--replace`), while the replacement runs. */
  replaces?: string;
}

/**
 * Reads (or creates, on first start) the node's durable identity from `meta`: id, shard count,
 * tokens, and a generation that grows on every start (gossip uses it to tell a restart from a delay).
 */
export function loadIdentity(meta: MetaStore, config: NodeConfig): NodeIdentity {
  const storedId = meta.get<string>('node/id');
  if (storedId && config.nodeId && storedId !== config.nodeId) {
    throw new StorageError(`data directory ${config.dataDir} belongs to node ${storedId}, but --node-id ${config.nodeId} was given`);
  }
  const id = storedId ?? config.nodeId ?? `node-${randomBytes(4).toString('hex')}`;
  if (!storedId) meta.set('node/id', id);
  const shards = meta.get<number>('node/shards');
  if (shards === undefined) meta.set('node/shards', config.shards);
  else if (shards !== config.shards) {
    throw new StorageError(`data directory ${config.dataDir} was created with ${shards} shards but --shards ${config.shards} was given`);
  }
  // Tokens are allocated once (after discovering the cluster when joining) and kept forever.
  const tokens = (meta.get<string[]>(META_TOKENS) ?? []).map(tokenFromHex);
  const stored = meta.get<MemberStatus>(META_STATUS);
  if (stored === 'left') {
    throw new StorageError(
      `data directory ${config.dataDir} belongs to node ${id}, which was decommissioned and left the ring; it does not rejoin with this data. ` +
        'To add this machine again, start it with an empty data directory: it joins as a new node and streams its ranges.',
    );
  }
  const replaces = meta.get<string>(META_REPLACES);
  if (config.replace !== undefined && tokens.length > 0 && replaces !== config.replace) {
    throw new StorageError(`--replace ${config.replace} needs an empty data directory; ${config.dataDir} already belongs to node ${id}, which owns tokens`);
  }
  const generation = Math.max((meta.get<number>('node/generation') ?? 0) + 1, Math.floor(Date.now() / 1000));
  meta.set('node/generation', generation);
  // Before statuses were stored, a node with tokens was a normal member.
  const status: MemberStatus = stored ?? (tokens.length > 0 ? 'normal' : 'joining');
  return { id, generation, tokens, status, ...(replaces !== undefined && status === 'joining' ? { replaces } : {}) };
}

export interface RunningNode {
  id: string;
  config: NodeConfig;
  router: Router;
  tables: TableRegistry;
  ring: RingTable;
  cluster: Cluster;
  transport: PeerTransport;
  layout(): RingLayout;
  http: FastifyInstance;
  /** Metrics, readiness and the dashboard (range streaming reports its progress here). */
  monitoring: Monitoring;
  close(): Promise<void>;
}

export interface StartNodeOptions {
  /** The node left the ring (decommission finished): the caller stops the process. */
  onLeft?: () => void;
  /**
   * Aborting it (a SIGINT/SIGTERM during startup) stops the startup at its next step (the wait for
   * seeds at once): what was already started is closed again, newest first, and startNode rejects
   * with StartupAborted.
   */
  signal?: AbortSignal;
}

/** startNode was interrupted through StartNodeOptions.signal; everything it had started is closed again. */
export class StartupAborted extends Error {
  constructor(reason: string) {
    super(`startup interrupted (${reason})`);
    this.name = 'StartupAborted';
  }
}

/** How long a node without tokens gossips with its seeds before it gives up. */
export const DISCOVERY_MS = 10_000;

type Undo = Array<{ what: string; fn: () => Promise<void> | void }>;

function abortReason(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error ? r.message : typeof r === 'string' ? r : 'aborted';
}

export async function startNode(config: NodeConfig, log: Logger, opts: StartNodeOptions = {}): Promise<RunningNode> {
  mkdirSync(config.dataDir, { recursive: true });
  // The IPC path first: a node pointed at a path another live node owns stops here, before it opens
  // ports, joins gossip or allocates tokens.
  const ipcListener = await listenIpc(config.ipc);
  // What has been started so far; undone newest first if a later step fails or startup is aborted.
  const undo: Undo = [{ what: 'ipc socket', fn: () => ipcListener.close() }];
  try {
    return await startNodeOn(config, log, ipcListener, undo, opts.signal, opts.onLeft);
  } catch (e) {
    await unwind(undo, log, 'cleanup after a failed startup failed');
    throw e;
  }
}

/**
 * Run the undo steps newest first, every one of them even when one fails (logged as `failure`);
 * the first error is returned. A failed startup and a shutdown are the same walk.
 */
async function unwind(undo: Undo, log: Logger, failure: string): Promise<unknown> {
  let first: unknown;
  for (let i = undo.length - 1; i >= 0; i--) {
    const u = undo[i]!;
    try {
      await u.fn();
    } catch (err) {
      first ??= err;
      log.warn({ err: String(err), step: u.what }, failure);
    }
  }
  undo.length = 0;
  return first;
}

async function startNodeOn(config: NodeConfig, log: Logger, ipcListener: IpcListener, undo: Undo, signal: AbortSignal | undefined, onLeft: (() => void) | undefined): Promise<RunningNode> {
  const checkpoint = (): void => {
    if (signal?.aborted) throw new StartupAborted(abortReason(signal));
  };
  await initHasher();
  await initVersions();
  checkpoint();
  const odb: OpenedDatabase = await openDatabase(config.dataDir, config.shards);
  undo.push({ what: 'database', fn: () => odb.db.close() });
  const meta = new MetaStore(odb);
  // Before anything reads the families: a directory of an older storage format is migrated here
  // (resuming a migration a kill interrupted), one of a newer format is refused.
  const migration = await prepareStorage(odb, meta, { shards: config.shards, maxSiblings: config.maxSiblings, log, ...migrationTestHooks(config) });
  if (migration) log.warn({ migration }, 'data directory migrated to the current storage format');
  const identity = loadIdentity(meta, config);
  log = log.child({ node: identity.id });
  const incarnation = startIncarnation(meta, identity.id, config.durability);
  if (incarnation.renewed !== null) log.info({ actor: incarnation.actor, reason: incarnation.renewed }, 'new CRDT actor incarnation');
  // Undone after the shards have closed (undo runs newest first): a clean shutdown keeps the incarnation.
  undo.push({ what: 'crdt incarnation', fn: () => markCleanShutdown(meta) });
  const tables = new TableRegistry(meta, config.tables);
  await tables.load();
  // Wide-column tables share the name space and the storage with key-value tables (TableRegistry.others).
  const wide = new WideTableRegistry(meta, tables, { n: config.tables.n, gcGraceSeconds: config.gcGraceSeconds });
  await wide.load();
  tables.others = wide;

  checkpoint();

  const ring = RingTable.create();
  const { pool, keys } = await ShardPool.start({
    shards: config.shards,
    maxQueue: config.limits.maxShardQueue,
    workerData: {
      handle: odb.db.handle,
      ringBuffer: ring.buffer,
      durability: config.durability,
      syncIntervalMs: config.syncIntervalMs,
      maxSiblings: config.maxSiblings,
      merkleDepth: config.merkleDepth,
      gcGraceSeconds: config.gcGraceSeconds,
      tombstoneSweepIntervalMs: config.tombstoneSweepIntervalMs,
      crdtActor: incarnation.actor,
      crdtLimits: config.crdt,
      spinMicros: config.shardSpinMicros,
    },
    onExit: (shard, code) => {
      // A shard actor dying means its column family has no owner: crash loudly rather than limp on.
      log.fatal({ shard, code }, 'shard worker exited unexpectedly; stopping the node');
      process.exit(70);
    },
  });
  undo.push({ what: 'shards', fn: () => pool.close() });
  log.info({ shards: config.shards, keys }, 'shards ready');
  checkpoint();

  // One reply-byte budget over every connection the node serves: IPC, the peer port and HTTP.
  const replies = new ReplyBudget({ maxReplyBytesPerConnection: config.limits.maxReplyBytesPerConnection, maxReplyBytesTotal: config.limits.maxReplyBytesTotal });
  // What one reply is assumed to cost until a connection has shown its sizes: a full-size value.
  const replyEstimate = config.limits.maxValueBytes + 1024;
  // The peer port comes up before we know the ring: gossip must flow for a joining node to allocate tokens.
  let cluster!: Cluster;
  let ipc: IpcServer | undefined;
  const transport = await PeerTransport.listen({
    // Remote clients authenticated with the cluster secret speak the IPC protocol on the peer port.
    onClient: (socket, leftover) => (ipc ? ipc.handleConnection(socket, leftover) : socket.destroy()),
    selfId: identity.id,
    secret: clusterSecret(config),
    clusterName: config.cluster.name,
    host: config.peer.host,
    port: config.peer.port,
    log,
    handler: (body, ctx) => cluster.handle(body, ctx.fromNodeId),
    replies,
    initialReplyEstimateBytes: replyEstimate,
    handshakeTimeoutMs: config.cluster.handshakeTimeoutMs,
    maxUnauthenticatedConnections: config.cluster.maxUnauthenticatedConnections,
    maxUnauthenticatedPerAddress: config.cluster.maxUnauthenticatedPerAddress,
    maxAuthenticatedConnections: config.cluster.maxAuthenticatedConnections,
  });
  undo.push({ what: 'peer transport', fn: () => transport.close() });
  const self: EndpointState = {
    id: identity.id,
    generation: identity.generation,
    version: 1,
    info: {
      peer: formatHostPort(config.peer),
      http: formatHostPort(config.http),
      ipc: config.ipc,
      rack: config.cluster.rack,
      dc: config.cluster.dc,
      tokens: identity.tokens.map(tokenToHex),
      shards: config.shards,
      status: identity.status,
      load: keys.reduce((a, b) => a + b, 0),
      ...(identity.replaces !== undefined ? { extra: { [EXTRA_REPLACES]: identity.replaces } } : {}),
    },
  };
  cluster = new Cluster({
    config,
    self,
    ring,
    transport,
    tables,
    wide,
    log,
    knownMembers: meta.get<EndpointState[]>('cluster/members') ?? [],
    persistMembers: (states) => meta.set('cluster/members', states),
  });
  // Peers may send replica operations before the router exists: they answer "starting" until then.
  for (const t of REPLICA_PEER_TYPES) cluster.reserveService(t);
  undo.push({ what: 'cluster', fn: () => cluster.stop() });
  checkpoint();
  // How this node becomes a member: it founds the cluster (now), or joins / replaces a dead node by
  // streaming (in the background, once its services are up: the join reports progress over HTTP).
  let membership: 'member' | 'join' | 'replace' = 'member';
  if (identity.tokens.length === 0) {
    const otherSeeds = config.cluster.seeds.filter((s) => !isOwnAddress(s, config.peer));
    const selfIsSeed = otherSeeds.length < config.cluster.seeds.length;
    if (otherSeeds.length > 0) log.info({ seeds: otherSeeds, timeoutMs: DISCOVERY_MS }, 'discovering the cluster through the seeds');
    const joined = await untilAborted(cluster.discover(DISCOVERY_MS), signal);
    checkpoint();
    const owned = cluster.gossip.all().some((st) => st.id !== identity.id && st.info.status === 'normal' && st.info.tokens.length > 0);
    if (config.replace !== undefined) {
      if (!joined) throw new RingkvError('unavailable', `--replace ${config.replace}: no seed answered within ${DISCOVERY_MS / 1000} s; a replacement joins a running cluster`);
      membership = 'replace';
    } else if (joined && (owned || !selfIsSeed)) {
      // A cluster exists (or will: a non-seed waits for an owner): join it by streaming.
      membership = 'join';
    } else {
      if (!joined && otherSeeds.length > 0) {
        // A node that cannot reach its seeds and forms a ring of its own splits the cluster (two rings
        // owning the same ranges); Cassandra refuses to bootstrap then, and so do we. A seed itself
        // (node 1 of a local cluster lists itself) may found the cluster.
        if (!selfIsSeed) {
          throw new RingkvError(
            'unavailable',
            `no seed answered within ${DISCOVERY_MS / 1000} s (seeds: ${otherSeeds.join(', ')}); refusing to start a new cluster. ` +
              'Start a seed first or fix --seeds; to found a new cluster, omit --seeds or list this node\'s own --peer address among them.',
          );
        }
        log.warn({ seeds: otherSeeds }, 'no other seed answered; this node is a seed itself and founds a new cluster');
      }
      const tokens = allocateTokens(cluster.otherTokens(), config.vnodes);
      meta.set(META_TOKENS, tokens.map(tokenToHex));
      meta.set(META_STATUS, 'normal');
      cluster.updateSelf({ tokens: tokens.map(tokenToHex), status: 'normal' });
      log.info({ vnodes: tokens.length, joined }, 'tokens allocated: this node founds the cluster');
    }
  } else {
    // A node that owns tokens asks its peers how they see it before it gossips: a removed or
    // replaced node must not come back (its newer generation would put it back into the ring).
    const why = await untilAborted(departureInPeersView(transport, cluster, config), signal);
    if (why !== null) {
      throw new RingkvError(
        'conflict',
        `node ${identity.id} must not rejoin the ring: ${why}. This data directory is stale: start the machine with an empty data directory to add it as a new node (or with --replace to take a dead node's place)`,
      );
    }
  }

  const hintStore = await HintStore.start({ handle: odb.db.handle, durability: config.durability, maxHintsPerTarget: 1_000_000 });
  undo.push({ what: 'hint store', fn: () => hintStore.close() });
  const hints = new HintService({ peers: cluster, store: hintStore, config, log });
  // Advertise the hint count through gossip (ringkv status shows it), at most twice a second.
  let hintGossip: NodeJS.Timeout | undefined;
  hints.onCountsChanged = () => {
    hintGossip ??= setTimeout(() => {
      hintGossip = undefined;
      try {
        cluster.updateSelf({ hints: hints.total() });
      } catch (e) {
        log.warn({ err: String(e) }, 'cannot gossip hint count');
      }
    }, 500);
  };
  cluster.onLiveness = (id, up) => hints.onLiveness(id, up);
  await hints.start();
  undo.push({
    what: 'hints',
    fn: () => {
      hints.stop();
      if (hintGossip) clearTimeout(hintGossip);
    },
  });
  checkpoint();

  // The router reaches other nodes' replicas through the cluster and serves this node's replica
  // operations on the cluster's peer port (it registers them, as the hint service does its own).
  const router = new Router({ selfId: identity.id, ring, layout: cluster.currentLayout(), shards: pool, tables, config, log, remote: cluster, hints, peers: cluster });
  cluster.onLayout = (l) => router.setLayout(l);
  cluster.onMovements = (v) => (router.pending = v.pending);
  router.setLayout(cluster.currentLayout());
  router.pending = cluster.movementView().pending;
  const crdts = new CrdtCoordinator({ router, shards: pool, remote: cluster, hints: () => hints, tables, config, log });
  cluster.registerService('crdt-apply', (b) => crdts.onPeerApply(b));
  tables.onChange = () => cluster.publishTables();
  // The shards' sweep needs each wide-column table's own gc grace; a schema change re-sends them all.
  const sendGraces = (): void => {
    for (let i = 0; i < pool.size; i++) void pool.submit(i, { op: 'table-grace', graces: wide.graces() }).catch((e: unknown) => log.warn({ err: String(e), shard: i }, 'cannot send table gc graces to a shard'));
  };
  wide.onChange = () => {
    cluster.publishTables();
    sendGraces();
  };
  sendGraces();
  const wideReplicas = new WideReplicas({ cluster, router, shards: pool, wide, log, crdtLimits: config.crdt });
  wideReplicas.register();
  const cql = new CqlService({
    router,
    replicas: wideReplicas,
    hints,
    config,
    log,
    wide,
    selfId: identity.id,
    peers: () => cluster.gossip.all().filter((st) => st.id !== identity.id && st.info.status !== 'left' && cluster.isUp(st.id)).map((st) => st.id),
  });
  cluster.publishTables();
  cluster.start();
  const repair = startRepairService({ cluster, shards: pool, router, tables, ring, config, log, gcGraceOf: (id) => wide.graceOf(id) });
  undo.push({ what: 'repair', fn: () => repair.stop() });
  const movements = new MovementManager({ cluster, router, shards: pool, tables, meta, ring, config, log, onLeft: () => onLeft?.() });
  undo.push({ what: 'range movements', fn: () => movements.stop() });
  // Gossip this node's key count (`load`, shown by status) as it changes, not only the count at start.
  let lastLoad = self.info.load;
  const loadTimer = setInterval(() => {
    void Promise.all(Array.from({ length: pool.size }, (_, i) => pool.stats(i))).then(
      (stats) => {
        const load = stats.reduce((a, st) => a + st.keys, 0);
        if (load !== lastLoad) {
          lastLoad = load;
          cluster.updateSelf({ load });
        }
      },
      (e: unknown) => log.debug({ err: String(e) }, 'load refresh failed'),
    );
  }, LOAD_REFRESH_MS);
  loadTimer.unref();
  undo.push({ what: 'load refresh', fn: () => clearInterval(loadTimer) });

  const clusterInfo = async (): Promise<unknown> => {
    const layout = cluster.currentLayout();
    const owned = ownershipFractions(layout);
    const stats = await Promise.all(Array.from({ length: pool.size }, (_, i) => pool.stats(i)));
    const selfLoad = stats.reduce((a, st) => a + st.keys, 0);
    return {
      self: identity.id,
      cluster: config.cluster.name,
      ringDigest: layout.digest,
      ringVersion: ring.version,
      nodes: cluster.view().map((m) => ({
        id: m.id,
        http: m.info.http,
        peer: m.info.peer,
        ipc: m.info.ipc,
        rack: m.info.rack,
        status: m.info.status,
        liveness: m.up ? 'up' : 'down',
        phi: m.phi,
        generation: m.generation,
        tokens: m.info.tokens.length,
        owned: owned.get(m.id) ?? 0,
        // Our own key count fresh; the others' as they last gossiped it (every LOAD_REFRESH_MS).
        load: m.id === identity.id ? selfLoad : m.info.load,
        hints: m.id === identity.id ? hints.total() : (m.info.hints ?? 0),
      })),
      hints: hints.snapshot(),
      shards: stats.map((s) => ({ shard: s.shard, keys: s.keys, queue: pool.queueDepth(s.shard), writes: s.writes, reads: s.reads, batches: s.batches, walSyncs: s.walSyncs })),
      // The range movement this node drives (or drove last), and every one under way in the cluster.
      movement: movements.summary(),
      movements: movements.clusterMovements(),
    };
  };

  const monitoring = startMonitoring({ config, selfId: identity.id, log, router, pool, db: odb, ring, cluster, transport, hints, repair, tables, ipc: () => ipc });
  undo.push({ what: 'monitoring', fn: () => monitoring.stop() });
  monitoring.setStreamingProvider(() => movements.streamProgress());
  const http = await startHttp({
    config,
    router,
    tables,
    log,
    clusterInfo,
    metrics: async () => ({ router: router.counters, cql: cql.counters, transport: transport.stats(), ipc: ipc?.stats(), replies: replies.stats(), gossipRounds: cluster.gossipRounds, hints: hints.snapshot() }),
    replies,
    extraRoutes: [
      (app) => mountRepairRoutes(app, repair),
      (app) => mountQueryRoutes(app, cql),
      (app) => mountStreamingRoutes(app, movements),
      (app) => mountCrdtRoutes(app, crdts, config),
      (app) => monitoring.mount(app),
      ...(config.testMode ? [(app: FastifyInstance) => mountFaultRoutes(app, transport)] : []),
    ],
  });
  // Before http.close(): the dashboard's event streams would hold it open.
  undo.push({ what: 'http', fn: () => http.close() });
  undo.push({ what: 'dashboard streams', fn: () => monitoring.stop() });
  checkpoint();
  ipc = ipcListener.serve({
    router,
    crdts,
    tables,
    nodeId: identity.id,
    clusterStatus: clusterInfo,
    query: async (q) => queryOkOf(await cql.execute(q)),
    log,
    ringInfo: () => {
      const layout = cluster.currentLayout();
      return ringInfoFromLayout(layout, ring.version, (id) => {
        const st = cluster.gossip.get(id);
        return { peer: st?.info.peer ?? '', http: st?.info.http ?? '', ipc: st?.info.ipc ?? '', up: cluster.isUp(id) };
      });
    },
    ringDigest: () => cluster.currentLayout().digest,
    limits: { ...config.limits, maxFrameBytes: DEFAULT_MAX_FRAME_BYTES, maxInFlightPerConnection: 1024 },
    replies,
  });
  undo.push({ what: 'ipc', fn: () => ipc?.close() });
  // Becoming a member by streaming runs in the background (progress in GET /api/v1/cluster).
  if (membership === 'replace') {
    await movements.checkReplaceable(config.replace!);
    movements.join(config.replace);
  } else if (membership === 'join') movements.join();
  else movements.resume();
  log.info({ http: formatHostPort(config.http), peer: formatHostPort(config.peer), ipc: config.ipc, data: config.dataDir, durability: config.durability }, 'ringkv node started');

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      log.info('shutting down');
      monitoring.markClosing();
      // Everything startup started, newest first: the request entry points (IPC, HTTP), the
      // timers, hints, gossip and the peer port, then the shards and the database.
      const err = await unwind(undo, log, 'shutdown step failed');
      if (err !== undefined) throw err;
      log.info('stopped');
    })());

  return { id: identity.id, config, router, tables, ring, cluster, transport, layout: () => cluster.currentLayout(), http, monitoring, close };
}

/**
 * Test mode only (the --test-mode flag): small migration batches and a SIGKILL of this process after
 * a given number of them, so the integration test can kill a real node midway through a migration.
 */
function migrationTestHooks(config: NodeConfig): Pick<MigrationOptions, 'batchRecords' | 'afterBatch'> {
  if (!config.testMode) return {};
  const batch = Number(process.env['RINGKV_TEST_MIGRATION_BATCH'] ?? 0);
  const killAfter = Number(process.env['RINGKV_TEST_MIGRATION_KILL_AFTER'] ?? 0);
  return {
    ...(batch > 0 ? { batchRecords: batch } : {}),
    ...(killAfter > 0 ? { afterBatch: (_phase: string, batches: number) => void (batches >= killAfter && process.kill(process.pid, 'SIGKILL')) } : {}),
  };
}

/** `p`, or a StartupAborted rejection as soon as `signal` aborts (p runs on; its outcome is then ignored). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return p;
  p.catch(() => undefined);
  if (signal.aborted) return Promise.reject(new StartupAborted(abortReason(signal)));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(new StartupAborted(abortReason(signal)));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

/** How long a restarting node waits for a peer to say how it sees it. */
const DEPARTURE_CHECK_MS = 2000;

/**
 * Why the peers say this node left the ring (decommissioned, removed, replaced), or null when none
 * that answered says so (or none answered: then gossip decides, as before).
 */
async function departureInPeersView(transport: PeerTransport, cluster: Cluster, config: NodeConfig): Promise<string | null> {
  const addresses = new Set<string>();
  for (const st of cluster.gossip.all()) if (st.id !== cluster.selfId && st.info.status !== 'left') addresses.add(st.info.peer);
  for (const s of config.cluster.seeds) if (!isOwnAddress(s, config.peer)) addresses.add(s);
  const answers = await Promise.all(
    [...addresses].map(async (a) => {
      try {
        const r = (await transport.request(a, { t: 'stream-member', node: cluster.selfId }, DEPARTURE_CHECK_MS)) as Partial<MemberReply>;
        return typeof r.departed === 'string' ? r.departed : null;
      } catch {
        return null;
      }
    }),
  );
  return answers.find((x) => x !== null) ?? null;
}

/** Test-mode only: cut and heal links to chosen peers (a partition without network namespaces). */
function mountFaultRoutes(app: FastifyInstance, transport: PeerTransport): void {
  app.put<{ Body: unknown }>('/api/v1/test/partition', async (req) => {
    const b = req.body as { blocked?: unknown } | null;
    const blocked = b?.blocked;
    if (!Array.isArray(blocked) || !blocked.every((x) => typeof x === 'string')) {
      throw new RingkvError('bad_request', 'body must be { "blocked": [node ids] }', { field: 'blocked' });
    }
    transport.setBlocked(blocked as string[]);
    return { blocked: transport.blocked() };
  });
}
