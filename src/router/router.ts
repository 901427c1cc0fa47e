import type { ConflictMode, NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { tokenInto } from '../ring/hash.js';
import type { RingLayout } from '../ring/builder.js';
import { Liveness, RingTable, MAX_REPLICAS } from '../ring/table.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant } from '../util/errors.js';
import { DotCounter, decodeContext, MAX_TTL_SECONDS, newVersion, vcGet, type VClock } from '../versions/index.js';
import { resolveConsistency, type ConsistencySpec, type ResolvedConsistency } from './consistency.js';
import { LiveCoordinations, OVERDUE_GRACE_MS, type CoordinationKind } from './coordinations.js';
import type { QuorumTracker } from './quorum.js';
import type { HintSink } from '../hints/protocol.js';
import { notKeyValue, type TableDef, type TableRegistry } from './tables.js';
import type { PendingReplicas } from '../streaming/pending.js';
import type { ScanPage, ScanRequest, ScanResult, ScanSegment } from './scan.js';
import { NO_REPLICAS, type Done, type Replica, type RouterCounters } from './types.js';
import type { KeyRoute, ReadRequest, ReadResult, WriteRequest, WriteResult } from './kv-types.js';
import { registerReplicaHandlers, type RemoteReplicas } from './replica-protocol.js';
import type { PeerServices } from '../cluster/peer-services.js';
import { LocalReplicaService } from './local-replicas.js';
import { ReadCoordination, WriteCoordination, type CoordinationPorts, type KvTableDef } from './kv-coordination.js';
import { ReplicaIo } from './replica-io.js';
import { planWrite, type WritePlan, type WritePlanView } from './write-plan.js';
import { startKvScan, type KvScanDeps } from './kv-scan.js';

export type { PeerReplicaScan, ScanPage, ScanRequest, ScanResult, ScanRow } from './scan.js';
export type { ConsistencyReport, Done, Replica, RouterCounters } from './types.js';
export type { KeyRoute, ReadRequest, ReadResult, WriteRequest, WriteResult } from './kv-types.js';
export type { PeerReplicaWrite, RemoteReplicas, ReplicaRead, ReplicaWrite } from './replica-protocol.js';
export type { WritePlan } from './write-plan.js';



/** A tombstone's value: one shared empty array. */
const NO_VALUE = new Uint8Array(0);

/**
 * The coordinator. Lives on the main thread and never touches RocksDB: it finds a key's replicas in
 * the shared ring table, fans out to local shards (messages) and remote routers (peer frames), counts
 * the quorum, reconciles versions, and repairs stale replicas.
 */
export class Router implements WritePlanView {
  readonly counters: RouterCounters = {
    coordinatedWrites: 0,
    coordinatedReads: 0,
    coordinatedScans: 0,
    replicaWrites: 0,
    replicaReads: 0,
    readRepairs: 0,
    unavailable: 0,
    timeouts: 0,
    hintedWrites: 0,
    coordinationsInFlight: 0,
    overdueCoordinations: 0,
  };
  /** Every coordination from start to answer, with its deadline (the backstop that enforces it). */
  /** Keeps counters.coordinationsInFlight current itself (no wrapper closure per op). */
  private readonly coordinations = new LiveCoordinations(OVERDUE_GRACE_MS, (n) => (this.counters.coordinationsInFlight = n));
  private sweepTimer: NodeJS.Timeout | undefined;
  private layout: RingLayout;
  private readonly dots: DotCounter;
  // Scratch buffers for the allocation-free ring lookup (main thread only, used synchronously).
  private readonly tok = new Uint32Array(2);
  private readonly outNodes = new Uint16Array(MAX_REPLICAS);
  private readonly outPos = new Int32Array(1);
  /** How this router reaches replicas on other nodes (absent in unit setups without a cluster). */
  readonly remote: RemoteReplicas | undefined;
  /** Times every coordinated request (metrics); absent = no per-request cost at all. */
  observer: RequestObserver | undefined;
  /** Hinted handoff (absent in unit setups without a cluster). */
  readonly hints: HintSink | undefined;
  /**
   * The pending replicas of the range movements under way (src/streaming/pending.ts), or null when
   * none is: every write also goes to them, and their acks do not count toward W.
   */
  pending: PendingReplicas | null = null;
  /** The replica side: what this node serves to coordinators (its own and other nodes'). */
  /** This node's replica side: what other coordinators' replica ops reach (registered with the peers). */
  readonly local: LocalReplicaService;
  /** How coordinations reach one replica (a local shard or a peer). */
  private readonly io: ReplicaIo;
  /** What a scan's start reads of this router (kv-scan.ts). */
  private readonly scanDeps: KvScanDeps;

  constructor(
    private readonly opts: {
      selfId: string;
      ring: RingTable;
      layout: RingLayout;
      shards: ShardPool;
      tables: TableRegistry;
      config: NodeConfig;
      log: Logger;
      /** Remote replicas (the cluster's peer transport). */
      remote?: RemoteReplicas;
      /** Hinted handoff for down replicas. */
      hints?: HintSink;
      /** Where this router serves the replica operations of other nodes' coordinators. */
      peers?: Pick<PeerServices, 'registerService'>;
    },
  ) {
    this.layout = opts.layout;
    this.dots = new DotCounter();
    this.remote = opts.remote;
    this.hints = opts.hints;
    this.local = new LocalReplicaService({
      selfId: opts.selfId,
      ring: opts.ring,
      shards: opts.shards,
      tables: opts.tables,
      counters: this.counters,
      layout: () => this.layout,
      replicasOf: (key) => this.replicasOf(key),
      replicasOfPos: (layout, pos) => this.replicasOfPos(layout, pos),
      kvTable: (name) => this.kvTable(name),
    });
    this.io = new ReplicaIo(opts.shards, opts.remote);
    this.scanDeps = {
      counters: this.counters,
      config: opts.config,
      log: opts.log,
      layout: () => this.layout,
      kvTable: (name) => this.kvTable(name),
      replicasOfPos: (layout, pos) => this.replicasOfPos(layout, pos),
      isUp: (r) => this.isUp(r),
      scanReplica: (r, table, seg, after, limit, timeoutMs, cb) => this.io.scanReplica(r, table, seg, after, limit, timeoutMs, cb),
    };
    if (opts.peers) registerReplicaHandlers(opts.peers, this.local);
  }

  /** Called by the node whenever it publishes a new ring (same thread, so lookups stay consistent). */
  setLayout(layout: RingLayout): void {
    this.layout = layout;
    this.replicasAt = [];
  }

  /**
   * Replica lists per ring position, built on first use after each publication: a position's
   * preference list is fixed until the next publish (liveness is read per request, not cached).
   */
  private replicasAt: Array<readonly Replica[] | undefined> = [];

  get selfId(): string {
    return this.opts.selfId;
  }

  /** The ring layout this router routes by now. */
  get currentLayout(): RingLayout {
    return this.layout;
  }

  /** A key's (or a wide-column partition key's) token, ring position and preference list under the current ring. */
  replicasOf(key: Uint8Array): KeyRoute {
    tokenInto(key, this.tok);
    const hi = this.tok[0]!;
    const lo = this.tok[1]!;
    const count = this.opts.ring.lookup(hi, lo, this.outNodes, this.outPos);
    const pos = this.outPos[0]!;
    let replicas = this.replicasAt[pos];
    if (replicas === undefined || replicas.length !== count) {
      const self = this.opts.ring.selfIndex();
      const built: Replica[] = [];
      for (let i = 0; i < count; i++) {
        const nodeIndex = this.outNodes[i]!;
        const nodeId = this.layout.nodeIds[nodeIndex];
        invariant(nodeId !== undefined, `ring lookup returned node index ${nodeIndex} outside the layout`);
        built.push(Object.freeze({ nodeIndex, nodeId, local: nodeIndex === self }));
      }
      replicas = Object.freeze(built);
      if (count > 0) this.replicasAt[pos] = replicas;
    }
    return { hi, lo, pos, replicas };
  }

  private timeoutOf(req: { timeoutMs?: number | undefined }): number {
    return req.timeoutMs ?? this.opts.config.requestTimeoutMs;
  }

  isUp(r: Replica): boolean {
    return r.local || this.opts.ring.liveness(r.nodeIndex) !== Liveness.Down;
  }

  /** Down hints may go to fallback nodes (a hint sink exists). */
  get hinting(): boolean {
    return this.hints !== undefined;
  }

  isUpId(id: string): boolean {
    if (id === this.opts.selfId) return true;
    const i = this.layout.nodeIds.indexOf(id);
    return i >= 0 && this.opts.ring.liveness(i) !== Liveness.Down;
  }

  /** Coordinate a write (or a delete: a tombstone version). */
  write(req: WriteRequest): Promise<WriteResult> {
    return new Promise((resolve, reject) => this.startWrite(req, (err, r) => (err ? reject(err) : resolve(r!))));
  }

  /** Coordinate a read: the reconciled live versions of R replicas. */
  read(req: ReadRequest): Promise<ReadResult> {
    return new Promise((resolve, reject) => this.startRead(req, (err, r) => (err ? reject(err) : resolve(r!))));
  }

  /**
   * `write` with a callback: `done` runs exactly once, never inside this call, and by the request's
   * deadline (the live-coordination registry answers `timeout` itself for one that would not).
   * The IPC server uses this form for batch items (no promise per item on the hot path).
   *
   * A delete without a context on a `vclock` table reads the key first (with the write's
   * consistency) and deletes what that read saw, as Riak clients do: a blind tombstone would only
   * become a sibling of the value it was meant to delete.
   */
  startWrite(req: WriteRequest, done: Done<WriteResult>): void {
    const timeoutMs = this.timeoutOf(req);
    const kind = req.tombstone ? 'delete' : 'write';
    const o = this.observer;
    const tracked = this.track(kind, timeoutMs, o ? o.wrap(kind, req.consistency, done) : done);
    if (req.tombstone && !req.context) {
      // Also on a table not created yet (its defaults): a delete must not create a table.
      let mode: ConflictMode;
      try {
        mode = this.kvTable(req.table).conflicts;
      } catch (e) {
        return void queueMicrotask(() => tracked(e as Error, undefined));
      }
      if (mode === 'vclock') return this.runBlindDelete(req, timeoutMs, tracked);
    }
    this.runWrite(req, tracked);
  }

  private runWrite(req: WriteRequest, done: Done<WriteResult>): void {
    let c: WriteCoordination;
    try {
      c = this.prepareWrite(req, done);
    } catch (e) {
      return void queueMicrotask(() => done(e as Error, undefined));
    }
    c.start();
  }

  /**
   * The two phases of a delete without a context, under one deadline: read what is there, then
   * delete exactly that (the write phase gets what is left of the deadline). A read that saw no
   * version at all (the key was never written where it looked: the context is empty) has nothing
   * to cover, so the delete answers at once with an empty context and writes nothing. The write
   * phase always carries the read's non-empty context, so it can never come back here.
   */
  private runBlindDelete(req: WriteRequest, timeoutMs: number, done: Done<WriteResult>): void {
    const deadline = Date.now() + timeoutMs;
    const spec = req.consistency;
    const readSpec: ConsistencySpec = {};
    if (spec.n !== undefined) readSpec.n = spec.n;
    if (spec.w !== undefined) readSpec.r = spec.w;
    if (spec.level !== undefined) readSpec.level = spec.level === 'ANY' ? 'ONE' : spec.level;
    this.runRead({ table: req.table, key: req.key, consistency: readSpec, timeoutMs }, (err, seen) => {
      if (err) return done(err, undefined);
      if (seen!.context === '') return done(null, { context: '', consistency: seen!.consistency });
      const remaining = deadline - Date.now();
      if (remaining < 1) {
        this.counters.timeouts++;
        return done(new RingkvError('timeout', 'delete deadline passed after its read phase; nothing was deleted'), undefined);
      }
      invariant(seen!.context !== '', 'the write phase of a blind delete needs the context its read saw');
      this.runWrite({ ...req, context: seen!.context, timeoutMs: remaining }, done);
    });
  }

  /**
   * Register a coordination until it answers, and make sure the overdue sweep runs while any is
   * live. Every coordination is tracked, the CRDT ones (crdt-write.ts) included.
   */
  track<T>(kind: CoordinationKind, timeoutMs: number, done: Done<T>): Done<T> {
    const tracked = this.coordinations.begin<T>(kind, Date.now() + timeoutMs, done);
    if (this.sweepTimer === undefined) {
      this.sweepTimer = setInterval(() => this.sweepOverdue(), OVERDUE_SWEEP_EVERY_MS);
      this.sweepTimer.unref();
    }
    return tracked;
  }

  /** Answer coordinations that outlived their deadline (a bug: each has its own deadline timer). */
  private sweepOverdue(): void {
    const now = Date.now();
    for (const o of this.coordinations.overdue(now)) {
      this.counters.overdueCoordinations++;
      this.counters.timeouts++;
      this.opts.log.error({ kind: o.kind, lateMs: now - o.deadline }, 'a coordination outlived its deadline; answered by the backstop');
      o.fail(new RingkvError('timeout', `the ${o.kind} did not finish by its deadline (${now - o.deadline} ms late); it may still have reached some replicas`));
    }
    if (this.coordinations.size === 0 && this.sweepTimer !== undefined) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = undefined;
    }
  }

  /**
   * The pending replicas of token (hi, lo) for a write to `n` replicas (a range movement under way
   * brings them the range: they take every write, their acks never count toward W), and their liveness.
   */
  pendingReplicasOf(hi: number, lo: number, n: number): readonly Replica[] {
    return this.pending === null ? NO_REPLICAS : this.pending.at(hi, lo, n);
  }

  pendingUp(r: Replica): boolean {
    return r.local || (r.nodeIndex >= 0 ? this.opts.ring.liveness(r.nodeIndex) !== Liveness.Down : (this.pending?.isUp(r.nodeId) ?? false));
  }

  /** Does this node store token (hi, lo): a current replica, or a pending one of a movement under way? */
  storesToken(hi: number, lo: number, replicas: readonly Replica[]): boolean {
    return replicas.some((r) => r.local) || this.opts.ring.isReplica(hi, lo);
  }

  /** The key-value table of this name if one is defined (nothing else: not a wide table's view, no draft). */
  kvTableIfAny(name: string): TableDef | undefined {
    return this.opts.tables.getKv(name);
  }

  /**
   * The key-value table of this name: the existing one, else the defaults a first write would create
   * it with (nothing is stored). A wide-column table's name is refused (conflict).
   */
  private kvTable(name: string): KvTableDef {
    const t = this.opts.tables.get(name) ?? this.opts.tables.draft(name);
    if (t.conflicts === 'cell') throw notKeyValue(name);
    refuseCrdtTable(t);
    return t as KvTableDef;
  }

  /**
   * Validate everything a write needs before anything changes (the table is created on first use
   * only once the request is known to be valid), and build its coordination state.
   */
  private prepareWrite(req: WriteRequest, done: Done<WriteResult>): WriteCoordination {
    const draft = this.kvTable(req.table);
    const existing = this.opts.tables.get(req.table) === undefined ? undefined : draft;
    const ttl = req.ttlSeconds ?? 0;
    if (!Number.isSafeInteger(ttl) || ttl < 0 || ttl > MAX_TTL_SECONDS) throw new RingkvError('bad_request', `ttl must be an integer number of seconds between 0 and ${MAX_TTL_SECONDS}`, { field: 'ttl' });
    if (ttl > 0 && req.tombstone) throw new RingkvError('bad_request', 'a delete takes no ttl', { field: 'ttl' });
    let context: VClock = [];
    if (req.context) {
      try {
        context = decodeContext(req.context);
      } catch {
        throw new RingkvError('bad_request', 'context is malformed: pass back the context string a read returned', { field: 'context' });
      }
    }
    const route = this.replicasOf(req.key);
    const cons = resolveConsistency(req.consistency, 'write', draft.n, route.replicas.length);
    if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
    let counter: number;
    try {
      // The dot must be above anything of ours the context has seen, or the write would cover itself.
      counter = this.dots.next(vcGet(context, this.opts.selfId));
    } catch (e) {
      throw new RingkvError('bad_request', `context rejected: ${(e as Error).message}`, { field: 'context' });
    }
    const version = newVersion({
      node: this.opts.selfId,
      counter,
      context,
      ts: nowMicros(),
      tombstone: req.tombstone,
      value: req.tombstone ? NO_VALUE : req.value,
      maxClockEntries: this.opts.config.maxClockEntries,
      ttl,
    });
    const { up, down, placements, pending } = this.planWrite(route, draft, cons);
    const table = existing ?? (this.opts.tables.getOrCreate(req.table) as KvTableDef);
    this.counters.coordinatedWrites++;
    return new WriteCoordination(this.coordinationPorts, table, req.key, route.hi, route.lo, version, cons, up, down, placements, this.timeoutOf(req), done, pending);
  }

  /**
   * A write's plan (write-plan.ts, with this router as the view): its targets, which are up, where
   * the down ones' hints go, its pending replicas; `unavailable` (counted) when W cannot be met.
   */
  planWrite(route: KeyRoute, table: TableDef, cons: ResolvedConsistency): WritePlan {
    try {
      return planWrite(this, route, table, cons);
    } catch (e) {
      if (e instanceof RingkvError && e.code === 'unavailable') this.counters.unavailable++;
      throw e;
    }
  }

  /** `read` with a callback: `done` runs exactly once, never inside this call, and by the deadline. */
  startRead(req: ReadRequest, done: Done<ReadResult>): void {
    const o = this.observer;
    this.runRead(req, this.track('read', this.timeoutOf(req), o ? o.wrap('read', req.consistency, done) : done));
  }

  private runRead(req: ReadRequest, done: Done<ReadResult>): void {
    let c: ReadCoordination;
    try {
      // Reads never create tables: an unknown table reads with the defaults (its id is the name's).
      const table = this.kvTable(req.table);
      const route = this.replicasOf(req.key);
      const cons = resolveConsistency(req.consistency, 'read', table.n, route.replicas.length);
      if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
      this.counters.coordinatedReads++;
      const targets = route.replicas.length === cons.n ? route.replicas : route.replicas.slice(0, cons.n);
      c = new ReadCoordination(this.coordinationPorts, table, req.key, route.hi, route.lo, cons, targets, this.timeoutOf(req), this.opts.config.readRepair, done);
    } catch (e) {
      return void queueMicrotask(() => done(e as Error, undefined));
    }
    c.start();
  }

  /** Coordinate a range scan in token order (see src/router/scan.ts). */
  scan(req: ScanRequest): Promise<ScanResult> {
    return new Promise((resolve, reject) => this.startScan(req, (err, r) => (err ? reject(err) : resolve(r!))));
  }

  /**
   * `scan` with a callback: `done` runs exactly once, never inside this call. R is resolved like a
   * read's (`r` / level, clamped on small rings); scans never create tables: an unknown table
   * scans with the defaults and finds no rows.
   */
  startScan(req: ScanRequest, done: Done<ScanResult>): void {
    const o = this.observer;
    const timeoutMs = this.timeoutOf(req);
    startKvScan(this.scanDeps, req, timeoutMs, this.track('scan', timeoutMs, o ? o.wrap('scan', req.consistency, done) : done));
  }

  /** The replicas of ring position `pos` of `layout` (cached like replicasOf while it is current). */
  replicasOfPos(layout: RingLayout, pos: number): readonly Replica[] {
    invariant(Number.isInteger(pos) && pos >= 0 && pos < layout.tokens.length, `ring position ${pos} outside the layout`);
    const current = layout === this.layout;
    const cached = current ? this.replicasAt[pos] : undefined;
    if (cached !== undefined && cached.length === layout.replicas) return cached;
    const self = layout.nodeIds.indexOf(this.opts.selfId);
    const built: Replica[] = [];
    for (let k = 0; k < layout.replicas; k++) {
      const nodeIndex = layout.pref[pos * layout.replicas + k]!;
      const nodeId = layout.nodeIds[nodeIndex];
      invariant(nodeId !== undefined, `preference list names node index ${nodeIndex} outside the layout`);
      built.push(Object.freeze({ nodeIndex, nodeId, local: nodeIndex === self }));
    }
    const frozen = Object.freeze(built);
    if (current) this.replicasAt[pos] = frozen;
    return frozen;
  }

  /** One page of one replica's rows of a scan segment (replica-io.ts; any table kind). */
  scanReplica(r: Replica, table: TableDef, seg: ScanSegment, after: Uint8Array | null, limit: number, timeoutMs: number, cb: (err: Error | null, page: ScanPage | null) => void): void {
    this.io.scanReplica(r, table, seg, after, limit, timeoutMs, cb);
  }

  /**
   * Resolves once every coordination live now has answered: a write answers only after it has
   * handed its replica writes to the shards and the transport (or failed), so after this no write
   * coordinated with an older ring view is still to be sent. A movement's settle step waits for it.
   */
  coordinationsSettled(): Promise<void> {
    return this.coordinations.whenAnswered();
  }

  /** What the coordinations reach of the router (one object shared by all of them). */
  private readonly coordinationPorts: CoordinationPorts = {
    counters: this.counters,
    log: () => this.opts.log,
    maxSiblings: () => this.opts.config.maxSiblings,
    isUp: (r) => this.isUp(r),
    pendingUp: (r) => this.pendingUp(r),
    hints: () => this.hints,
    writeReplica: (r, hi, lo, op, record, timeoutMs, cb) => this.io.writeReplica(r, hi, lo, op, record, timeoutMs, cb),
    readReplica: (r, hi, lo, op, timeoutMs, cb) => this.io.readReplica(r, hi, lo, op, timeoutMs, cb),
    quorumError: (kind, t, cons, timedOut) => this.quorumError(kind, t, cons, timedOut),
  };

  /** Read this node's own replica of a key, without coordination (`GET ...?replica=local`). */
  readLocalReplica(table: string, key: Uint8Array): Promise<ReadResult> {
    return this.local.readLocalReplica(table, key);
  }

  quorumError(kind: 'read' | 'write', t: QuorumTracker, cons: ResolvedConsistency, timedOut: boolean): RingkvError {
    this.counters.unavailable++;
    const what = kind === 'read' ? 'replies' : 'acks';
    return new RingkvError(
      timedOut ? 'timeout' : 'unavailable',
      `${kind} quorum not met: ${t.acknowledged} of ${cons.n} replicas answered, ${cons.required} ${what} required` +
        (timedOut ? ' (deadline passed)' : ` (${t.failed} failed or down)`),
      { n: cons.n, required: cons.required, replied: t.acknowledged, failed: t.failed },
    );
  }
}

/** The key-value API (`/api/v1/store`, IPC put/get/del/scan) does not serve crdt tables: their keys hold states, not values. */
function refuseCrdtTable(t: TableDef): void {
  if (t.conflicts === 'crdt') {
    throw new RingkvError('bad_request', `table ${t.name} holds ${t.type ?? 'crdt'} states; read and update it through /api/v1/crdt/${t.name}/{key} (IPC crdt_get / crdt_update)`, { field: 'table' });
  }
}

let lastMicros = 0;
/** Wall-clock microseconds, strictly increasing within this process (LWW timestamps). */
export function nowMicros(): number {
  const t = Date.now() * 1000;
  lastMicros = t > lastMicros ? t : lastMicros + 1;
  return lastMicros;
}

/** The operations a coordinator serves, as metrics label them (a delete is a tombstone write). */
export type RequestOp = 'read' | 'write' | 'delete' | 'scan';

/**
 * Sees every request a client asks this router to coordinate (not the internal read of a blind
 * delete, nor replica-level ops from other coordinators): `wrap` is called once at the start and
 * returns the callback to complete it with.
 */
export interface RequestObserver {
  wrap<T>(op: RequestOp, consistency: ConsistencySpec, done: Done<T>): Done<T>;
}

/** Period of the overdue-coordination sweep (runs only while coordinations are live). */
const OVERDUE_SWEEP_EVERY_MS = 500;
