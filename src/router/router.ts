import type { ConflictMode, NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { tokenInto, tokenOf, type Token } from '../ring/hash.js';
import type { RingLayout } from '../ring/builder.js';
import { Liveness, RingTable, MAX_REPLICAS } from '../ring/table.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { DotCounter, decodeContext, decodeRecord, encodeRecord, MAX_TTL_SECONDS, newVersion, vcGet, type VClock, type Version } from '../versions/index.js';
import { resolveConsistency, type ConsistencySpec, type ResolvedConsistency } from './consistency.js';
import { LiveCoordinations, OVERDUE_GRACE_MS, type CoordinationKind } from './coordinations.js';
import { QuorumTracker } from './quorum.js';
import { clockwiseFallbacks, placeHints, type HintPlacement } from '../hints/policy.js';
import type { HintSink } from '../hints/protocol.js';
import { notKeyValue, tableIdBytes, type TableDef, type TableRegistry } from './tables.js';

import type { PendingReplicas } from '../streaming/pending.js';
import { encodeStorageKey } from '../storage/keys.js';
import {
  SCAN_LIMITS,
  ScanCoordination,
  clipWalk,
  decodePagingState,
  encodePagingState,
  planScanSegments,
  scanWalkStart,
  type PeerReplicaScan,
  type ScanPage,
  type ScanPorts,
  type ScanRequest,
  type ScanResult,
  type ScanSegment,
} from './scan.js';
import type { Done, Replica, RouterCounters } from './types.js';
import type { KeyRoute, ReadRequest, ReadResult, WriteRequest, WriteResult } from './kv-types.js';
import { registerReplicaHandlers, type PeerReplicaWrite, type RemoteReplicas, type ReplicaRead, type ReplicaWrite } from './replica-protocol.js';
import type { PeerServices } from '../cluster/peer-services.js';
import { LocalReplicaService } from './local-replicas.js';
import {
  decodeOrNull,
  EMPTY,
  NO_PLACEMENTS,
  NO_REPLICAS,
  ReadCoordination,
  WriteCoordination,
  type CoordinationPorts,
  type KvTableDef,
  type ReplicaCallback,
} from './kv-coordination.js';

export type { PeerReplicaScan, ScanPage, ScanRequest, ScanResult, ScanRow } from './scan.js';
export type { ConsistencyReport, Done, Replica, RouterCounters } from './types.js';
export type { KeyRoute, ReadRequest, ReadResult, WriteRequest, WriteResult } from './kv-types.js';
export type { PeerReplicaWrite, RemoteReplicas, ReplicaRead, ReplicaWrite } from './replica-protocol.js';


/**
 * Where a write goes: its N targets, which of them are up, where the down ones' hints go, and the
 * pending replicas (range movements: they take the write too, never counted toward W).
 */
export interface WritePlan {
  targets: readonly Replica[];
  up: readonly Replica[];
  down: readonly Replica[];
  placements: HintPlacement[];
  pending: readonly Replica[];
}

/**
 * The coordinator. Lives on the main thread and never touches RocksDB: it finds a key's replicas in
 * the shared ring table, fans out to local shards (messages) and remote routers (peer frames), counts
 * the quorum, reconciles versions, and repairs stale replicas.
 */
export class Router {
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
  private readonly local: LocalReplicaService;

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
    if (opts.peers) registerReplicaHandlers(opts.peers, this);
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

  private isUpId(id: string): boolean {
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
      value: req.tombstone ? EMPTY : req.value,
      maxClockEntries: this.opts.config.maxClockEntries,
      ttl,
    });
    const { up, down, placements, pending } = this.planWrite(route, draft, cons);
    const table = existing ?? (this.opts.tables.getOrCreate(req.table) as KvTableDef);
    this.counters.coordinatedWrites++;
    return new WriteCoordination(this.coordinationPorts, table, req.key, route.hi, route.lo, version, cons, up, down, placements, this.timeoutOf(req), done, pending);
  }

  /**
   * A write's targets (the first N replicas), which are up, and where the down ones' hints go; or
   * `unavailable` when too few are up to meet W (then nothing may be written).
   */
  planWrite(route: KeyRoute, table: TableDef, cons: ResolvedConsistency): WritePlan {
    const targets = route.replicas.length === cons.n ? route.replicas : route.replicas.slice(0, cons.n);
    let up = targets;
    let down: readonly Replica[] = NO_REPLICAS;
    for (const r of targets) {
      if (!this.isUp(r)) {
        up = targets.filter((x) => this.isUp(x));
        down = targets.filter((x) => !this.isUp(x));
        break;
      }
    }
    // Sloppy quorum: each down replica's write goes, as a hint naming it, to the next healthy
    // node clockwise that isn't one of the key's N replicas (or stays with this coordinator when
    // none is left).
    const placements =
      down.length > 0 && this.hints
        ? placeHints(
            down.map((r) => r.nodeId),
            clockwiseFallbacks(this.layout, route.pos, new Set(targets.map((r) => r.nodeId)), down.length + 2),
            (id) => this.isUpId(id),
            table.quorum,
            cons.any,
          )
        : NO_PLACEMENTS;
    const hintCredit = placements.filter((p) => p.counts).length;
    if (up.length + hintCredit < cons.required) {
      // Known unavailable (Cassandra's UnavailableException): write nothing rather than a partial write.
      this.counters.unavailable++;
      throw new RingkvError(
        'unavailable',
        `write quorum not met: ${up.length} of ${cons.n} replicas are up, ${cons.required} acks required (down: ${down.map((r) => r.nodeId).join(', ')}` +
          `${hintCredit > 0 ? `; ${hintCredit} hinted fallbacks count` : ''}); nothing was written`,
        { n: cons.n, required: cons.required, up: up.length },
      );
    }
    // Pending replicas for the N the request asked for (before the clamp to the current ring: a
    // join can bring the ring up to that N).
    const pending = this.pending === null ? NO_REPLICAS : this.pending.at(route.hi, route.lo, cons.clamped?.requested.n ?? cons.n);
    return { targets, up, down, placements, pending };
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
    const tracked = this.track('scan', this.timeoutOf(req), o ? o.wrap('scan', req.consistency, done) : done);
    let c: ScanCoordination<Replica>;
    try {
      const limit = req.limit;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > SCAN_LIMITS.maxLimit) {
        throw new RingkvError('bad_request', `limit must be an integer between 1 and ${SCAN_LIMITS.maxLimit}, got ${JSON.stringify(limit)}`, { field: 'limit' });
      }
      const table = this.kvTable(req.table);
      // Where the walk starts, where its one turn of the ring ends, and (continuing) the cursor.
      let walk: { from: Token; exclusive: boolean; end: Token; after: Uint8Array | null };
      if (req.pagingState !== undefined) {
        if (req.startKey !== undefined) throw new RingkvError('bad_request', 'give either a start key or a pagingState, not both', { field: 'pagingState' });
        const ps = decodePagingState(req.pagingState, this.opts.config.limits.maxKeyBytes);
        const t = tokenOf(ps.lastKey);
        walk = { from: t, exclusive: false, end: ps.walkEnd, after: encodeStorageKey(t.hi, t.lo, tableIdBytes(table), ps.lastKey) };
      } else {
        if (!(req.startKey instanceof Uint8Array) || req.startKey.length === 0) throw new RingkvError('bad_request', 'a scan needs a non-empty start key', { field: 'key' });
        const from = tokenOf(req.startKey);
        const exclusive = req.exclusive === true;
        walk = { from, exclusive, end: scanWalkStart(from, exclusive), after: null };
      }
      const layout = this.layout;
      const cons = resolveConsistency(req.consistency, 'read', table.n, layout.tokens.length > 0 ? layout.replicas : 0);
      if (cons.n === 0 || layout.tokens.length === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
      const segments = clipWalk(planScanSegments(layout.tokens, walk.from, walk.exclusive), scanWalkStart(walk.from, walk.exclusive), walk.end);
      const { end } = walk;
      const done: Done<ScanResult> = (err, r) => {
        // The continuation: after the last row, up to where this scan's turn of the ring ends.
        if (r && !r.endOfRing) r.pagingState = encodePagingState(end, r.rows[r.rows.length - 1]!.key);
        tracked(err, r);
      };
      this.counters.coordinatedScans++;
      const ports: ScanPorts<Replica> = {
        log: () => this.opts.log,
        maxSiblings: () => this.opts.config.maxSiblings,
        // Positions are of the layout this scan planned with; a publish mid-scan is caught by the
        // replicas, which check the segment against their own ring view.
        replicasAt: (pos) => this.replicasOfPos(layout, pos),
        isUp: (r) => this.isUp(r),
        scanReplica: (r, seg, after, lim, timeoutMs, cb) => this.scanReplica(r, table, seg, after, lim, timeoutMs, cb),
        onUnavailable: (timedOut) => {
          this.counters.unavailable++;
          if (timedOut) this.counters.timeouts++;
        },
      };
      c = new ScanCoordination(ports, table.conflicts, segments, cons, limit, this.timeoutOf(req), done, walk.after);
    } catch (e) {
      return void queueMicrotask(() => tracked(e as Error, undefined));
    }
    c.start();
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

  /** One page of one replica's rows of a scan segment: a local shard's scan op, or a peer's (any table kind). */
  scanReplica(
    r: Replica,
    table: TableDef,
    seg: ScanSegment,
    after: Uint8Array | null,
    limit: number,
    timeoutMs: number,
    cb: (err: Error | null, page: ScanPage | null) => void,
  ): void {
    const fail = (e: unknown): void => cb(e instanceof Error ? e : new Error(String(e)), null);
    if (r.local) {
      this.opts.shards
        .scan({ table: tableIdBytes(table), startHi: seg.startHi, startLo: seg.startLo, endHi: seg.endHi, endLo: seg.endLo, after, limit })
        .then((page) => cb(null, page), fail)
        .catch(fail);
      return;
    }
    if (!this.remote) return void queueMicrotask(() => cb(new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`), null));
    const op: PeerReplicaScan = { table: table.name, tableId: tableIdBytes(table), startHi: seg.startHi, startLo: seg.startLo, endHi: seg.endHi, endLo: seg.endLo, after, limit };
    this.remote.scanRecords(r.nodeId, op, timeoutMs).then((page) => cb(null, page), fail);
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
    writeReplica: (r, hi, lo, op, record, timeoutMs, cb) => this.writeReplica(r, hi, lo, op, record, timeoutMs, cb),
    readReplica: (r, hi, lo, op, timeoutMs, cb) => this.readReplica(r, hi, lo, op, timeoutMs, cb),
    quorumError: (kind, t, cons, timedOut) => this.quorumError(kind, t, cons, timedOut),
  };

  /**
   * Write to one replica: a local shard by message (record bytes: `record` when the caller encoded
   * `op.versions` already), or a remote node's router by frame. `cb` runs once, never inside this
   * call, with the merged versions when `op.returnMerged` asked for them.
   */
  private writeReplica(r: Replica, hi: number, lo: number, op: ReplicaWrite, record: Uint8Array | null, timeoutMs: number, cb: ReplicaCallback): void {
    if (r.local) {
      this.opts.shards.write(op.tableId, op.mode, op.key, hi, lo, record ?? encodeRecord(op.versions), op.returnMerged === true, (res) => {
        if (!res.ok) return cb(new RingkvError(res.code as ErrorCode, res.message), null);
        cb(null, res.record ? decodeRecord(res.record) : null);
      });
      return;
    }
    if (!this.remote) return void queueMicrotask(() => cb(new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`), null));
    const peerOp: PeerReplicaWrite = { table: op.table, tableId: op.tableId, mode: op.mode, key: op.key, record: record ?? encodeRecord(op.versions) };
    if (op.returnMerged) peerOp.returnMerged = true;
    this.remote.writeRecord(r.nodeId, peerOp, timeoutMs).then(
      (rec) => cb(null, decodeOrNull(rec)),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e)), null),
    );
  }

  private readReplica(r: Replica, hi: number, lo: number, op: ReplicaRead, timeoutMs: number, cb: ReplicaCallback): void {
    if (r.local) {
      this.opts.shards.read(op.tableId, op.key, hi, lo, (res) => {
        if (!res.ok) return cb(new RingkvError(res.code as ErrorCode, res.message), null);
        let versions: Version[] | null;
        try {
          versions = res.record ? decodeRecord(res.record) : null;
        } catch (e) {
          return cb(e as Error, null);
        }
        cb(null, versions);
      });
      return;
    }
    if (!this.remote) return void queueMicrotask(() => cb(new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`), null));
    this.remote.readRecord(r.nodeId, op, timeoutMs).then(
      (rec) => {
        let versions: Version[] | null;
        try {
          versions = decodeOrNull(rec);
        } catch (e) {
          return cb(e as Error, null);
        }
        cb(null, versions);
      },
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e)), null),
    );
  }

  /** Read this node's own replica of a key, without coordination (`GET ...?replica=local`). */
  readLocalReplica(table: string, key: Uint8Array): Promise<ReadResult> {
    return this.local.readLocalReplica(table, key);
  }

  applyReplicaWrite(op: PeerReplicaWrite): Promise<Uint8Array | null> {
    return this.local.applyReplicaWrite(op);
  }

  applyReplicaRead(op: ReplicaRead): Promise<Uint8Array | null> {
    return this.local.applyReplicaRead(op);
  }

  applyReplicaScan(op: PeerReplicaScan): Promise<ScanPage> {
    return this.local.applyReplicaScan(op);
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
