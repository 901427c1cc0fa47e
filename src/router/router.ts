import type { ConflictMode, NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { tokenInto } from '../ring/hash.js';
import type { RingLayout } from '../ring/builder.js';
import { Liveness, RingTable, MAX_REPLICAS } from '../ring/table.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import {
  DotCounter,
  contextOf,
  decodeContext,
  decodeRecord,
  encodeContext,
  encodeRecord,
  liveValues,
  mergeVersions,
  newVersion,
  vcGet,
  versionsEqual,
  type VClock,
  type Version,
} from '../versions/index.js';
import { resolveConsistency, type ConsistencySpec, type ResolvedConsistency } from './consistency.js';
import { QuorumTracker } from './quorum.js';
import { clockwiseFallbacks, placeHints } from '../hints/policy.js';
import type { HintService } from '../hints/service.js';
import type { TableDef, TableRegistry } from './tables.js';

/** A replica's storage-level operation, as sent to a local shard or a remote node's router. */
export interface ReplicaWrite {
  table: string;
  tableId: number;
  mode: ConflictMode;
  key: Uint8Array;
  versions: Version[];
  /** Ask the replica to answer with the merged versions it now stores. */
  returnMerged?: boolean;
}
export interface ReplicaRead {
  table: string;
  tableId: number;
  key: Uint8Array;
}

/** How the router reaches replicas on other nodes (the peer transport implements it). */
export interface RemoteReplicas {
  write(nodeId: string, op: ReplicaWrite, timeoutMs: number): Promise<Version[] | null>;
  read(nodeId: string, op: ReplicaRead, timeoutMs: number): Promise<Version[] | null>;
}

export interface WriteRequest {
  table: string;
  key: Uint8Array;
  /** Value bytes; ignored for deletes. */
  value: Uint8Array;
  tombstone: boolean;
  context?: string | undefined;
  consistency: ConsistencySpec;
  timeoutMs?: number | undefined;
}

export interface ConsistencyReport {
  n: number;
  required: number;
  replied: number;
  clamped?: ResolvedConsistency['clamped'];
}

export interface WriteResult {
  context: string;
  consistency: ConsistencyReport;
}

export interface ReadRequest {
  table: string;
  key: Uint8Array;
  consistency: ConsistencySpec;
  timeoutMs?: number | undefined;
}

export interface ReadResult {
  /** Live (non-deleted) versions after reconciliation: 0 = absent or deleted, >1 = siblings. */
  values: Version[];
  context: string;
  consistency: ConsistencyReport;
}

export interface RouterCounters {
  coordinatedWrites: number;
  coordinatedReads: number;
  replicaWrites: number;
  replicaReads: number;
  readRepairs: number;
  unavailable: number;
  timeouts: number;
  hintedWrites: number;
}

interface Replica {
  nodeIndex: number;
  nodeId: string;
  shard: number;
  local: boolean;
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
    replicaWrites: 0,
    replicaReads: 0,
    readRepairs: 0,
    unavailable: 0,
    timeouts: 0,
    hintedWrites: 0,
  };
  private layout: RingLayout;
  private readonly dots: DotCounter;
  // Scratch buffers for the allocation-free ring lookup (main thread only, used synchronously).
  private readonly tok = new Uint32Array(2);
  private readonly outNodes = new Uint16Array(MAX_REPLICAS);
  private readonly outShards = new Uint16Array(MAX_REPLICAS);
  private readonly outPos = new Int32Array(1);
  remote: RemoteReplicas | undefined;
  /** Hinted handoff (absent in unit setups without a cluster). */
  hints: HintService | undefined;

  constructor(
    private readonly opts: {
      selfId: string;
      ring: RingTable;
      layout: RingLayout;
      shards: ShardPool;
      tables: TableRegistry;
      config: NodeConfig;
      log: Logger;
    },
  ) {
    this.layout = opts.layout;
    this.dots = new DotCounter();
  }

  /** Called by the node whenever it publishes a new ring (same thread, so lookups stay consistent). */
  setLayout(layout: RingLayout): void {
    this.layout = layout;
  }

  get selfId(): string {
    return this.opts.selfId;
  }

  private replicasOf(key: Uint8Array): { hi: number; lo: number; pos: number; replicas: Replica[] } {
    tokenInto(key, this.tok);
    const hi = this.tok[0]!;
    const lo = this.tok[1]!;
    const count = this.opts.ring.lookup(hi, lo, this.outNodes, this.outShards, this.outPos);
    const self = this.opts.ring.selfIndex();
    const replicas: Replica[] = [];
    for (let i = 0; i < count; i++) {
      const nodeIndex = this.outNodes[i]!;
      const nodeId = this.layout.nodeIds[nodeIndex];
      invariant(nodeId !== undefined, `ring lookup returned node index ${nodeIndex} outside the layout`);
      replicas.push({ nodeIndex, nodeId, shard: this.outShards[i]!, local: nodeIndex === self });
    }
    return { hi, lo, pos: this.outPos[0]!, replicas };
  }

  private timeoutOf(req: { timeoutMs?: number | undefined }): number {
    return req.timeoutMs ?? this.opts.config.requestTimeoutMs;
  }

  private isUp(r: Replica): boolean {
    return r.local || this.opts.ring.liveness(r.nodeIndex) !== Liveness.Down;
  }

  private isUpId(id: string): boolean {
    if (id === this.opts.selfId) return true;
    const i = this.layout.nodeIds.indexOf(id);
    return i >= 0 && this.opts.ring.liveness(i) !== Liveness.Down;
  }

  async write(req: WriteRequest): Promise<WriteResult> {
    const table = this.opts.tables.getOrCreate(req.table);
    let context: VClock = [];
    if (req.context) {
      try {
        context = decodeContext(req.context);
      } catch {
        throw new RingkvError('bad_request', 'context is malformed: pass back the context string a read returned', { field: 'context' });
      }
    }
    const { hi, lo, pos, replicas } = this.replicasOf(req.key);
    const cons = resolveConsistency(req.consistency, 'write', table.n, replicas.length);
    if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
    this.counters.coordinatedWrites++;
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
      value: req.tombstone ? new Uint8Array(0) : req.value,
      maxClockEntries: this.opts.config.maxClockEntries,
    });
    const targets = replicas.slice(0, cons.n);
    const tracker = new QuorumTracker(cons.n, cons.required);
    const timeoutMs = this.timeoutOf(req);
    const base = { table: table.name, tableId: table.id, mode: table.conflicts, key: req.key };
    const up = targets.filter((r) => this.isUp(r));
    const down = targets.filter((r) => !up.includes(r));
    // Sloppy quorum: each down replica's write goes, as a hint naming it, to the next healthy
    // node clockwise that isn't a replica (or stays with this coordinator when none is left).
    const placements =
      down.length > 0 && this.hints
        ? placeHints(
            down.map((r) => r.nodeId),
            clockwiseFallbacks(this.layout, pos, new Set(targets.map((r) => r.nodeId)), down.length + 2),
            (id) => this.isUpId(id),
            table.quorum,
            cons.any,
          )
        : [];
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
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.counters.timeouts++;
        reject(this.quorumError('write', tracker, cons, true));
      }, timeoutMs);
      const record = (ok: boolean): void => {
        const s = ok ? tracker.ack() : tracker.fail();
        if (settled || s === 'pending') return;
        settled = true;
        clearTimeout(timer);
        if (s === 'succeeded') resolve();
        else reject(this.quorumError('write', tracker, cons, false));
      };
      const storeHint = (target: string, holder: string | null, versions: Version[], counts: boolean): void => {
        this.counters.hintedWrites++;
        this.hints!.hint(holder, { target, ...base, versions }, timeoutMs).then(
          (stored) => record(stored && counts),
          (e: unknown) => {
            this.opts.log.debug({ err: String(e), target, holder }, 'hint store failed');
            record(false);
          },
        );
      };
      // Step 2: the coordinating replica's merged set goes to the other replicas and into hints.
      // Shipping the merged set, not the lone new version, keeps every replica's state closed
      // under the context the write carries (see src/versions/version.ts): a context then never
      // claims a dot that a replica lacks.
      const fanOut = (set: Version[], rest: Replica[]): void => {
        for (const p of placements) storeHint(p.target, p.holder, set, p.counts);
        if (placements.length === 0) for (let i = 0; i < down.length; i++) record(false);
        if (rest.length === 0) return;
        const op: ReplicaWrite = { ...base, versions: set };
        const rec = encodeRecord(set);
        for (const r of rest) {
          this.writeReplica(r, hi, lo, op, rec, timeoutMs, (err) => {
            if (!err) return record(true);
            // A replica that failed or timed out mid-write gets a hint on this node; it counts
            // toward W only for ANY (we can't tell a slow replica from a lost one here).
            this.opts.log.debug({ err: String(err), replica: r.nodeId }, 'replica write failed');
            if (this.hints) storeHint(r.nodeId, null, set, cons.any);
            else record(false);
          });
        }
      };
      // Step 1, the coordinating replica (this node's own when it is one, as Riak's coordinating
      // vnode): it merges the new version into what it holds and answers with the merged set,
      // which is only asked for when there is somewhere to send it.
      const candidates = up.length > 1 ? [...up].sort((a, b) => Number(b.local) - Number(a.local)) : up;
      let next = 0;
      const single = [version];
      const tryCoordinator = (): void => {
        if (next >= candidates.length || settled) return fanOut(single, candidates.slice(next));
        const c = candidates[next++]!;
        const wantMerged = next < candidates.length || placements.length > 0;
        const op: ReplicaWrite = { ...base, versions: single, returnMerged: wantMerged };
        this.writeReplica(c, hi, lo, op, null, timeoutMs, (err, merged) => {
          if (err) {
            this.opts.log.debug({ err: String(err), replica: c.nodeId }, 'coordinating replica write failed');
            if (this.hints) storeHint(c.nodeId, null, single, cons.any);
            else record(false);
            return tryCoordinator();
          }
          record(true);
          fanOut(merged ?? single, candidates.slice(next));
        });
      };
      tryCoordinator();
    });
    return { context: encodeContext(version.clock), consistency: report(cons, tracker.acknowledged) };
  }

  async read(req: ReadRequest): Promise<ReadResult> {
    const table = this.opts.tables.getOrCreate(req.table);
    const { hi, lo, replicas } = this.replicasOf(req.key);
    const cons = resolveConsistency(req.consistency, 'read', table.n, replicas.length);
    if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
    this.counters.coordinatedReads++;
    const targets = replicas.slice(0, cons.n);
    const tracker = new QuorumTracker(cons.n, cons.required);
    const replies: Array<{ replica: Replica; versions: Version[] }> = [];
    const timeoutMs = this.timeoutOf(req);
    const op: ReplicaRead = { table: table.name, tableId: table.id, key: req.key };
    const mode = table.conflicts;
    const blocking = this.opts.config.readRepair === 'blocking';
    let allDone!: () => void;
    const everyone = new Promise<void>((res) => (allDone = res));
    let outstanding = targets.length;
    const doneOne = (): void => {
      if (--outstanding === 0) allDone();
    };

    const answer = await new Promise<Version[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.counters.timeouts++;
        allDone();
        reject(this.quorumError('read', tracker, cons, true));
      }, timeoutMs);
      const settle = (s: ReturnType<QuorumTracker['ack']>): void => {
        if (s === 'succeeded' && !blocking) {
          clearTimeout(timer);
          resolve(reconcile(mode, replies, this.opts.config.maxSiblings));
        } else if (s === 'failed') {
          clearTimeout(timer);
          reject(this.quorumError('read', tracker, cons, false));
        }
      };
      if (blocking) {
        void everyone.then(() => {
          clearTimeout(timer);
          if (tracker.acknowledged >= cons.required) resolve(reconcile(mode, replies, this.opts.config.maxSiblings));
        });
      }
      for (const r of targets) {
        if (!this.isUp(r)) {
          settle(tracker.fail());
          doneOne();
          continue;
        }
        this.readReplica(r, hi, lo, op, timeoutMs, (err, versions) => {
          if (err) {
            const s = tracker.fail();
            if (s !== 'pending') settle(s);
          } else {
            replies.push({ replica: r, versions: versions ?? [] });
            const s = tracker.ack();
            if (s !== 'pending') settle(s);
          }
          doneOne();
        });
      }
    });

    // Read repair once every replica answered (or the deadline passed): stale ones get the merge.
    if (this.opts.config.readRepair !== 'off') {
      const repair = everyone.then(() => this.readRepair(hi, lo, table, req.key, replies, timeoutMs));
      if (blocking) await repair;
      else void repair;
    }
    return {
      values: liveValues(answer),
      context: encodeContext(contextOf(answer)),
      consistency: report(cons, tracker.acknowledged),
    };
  }

  private async readRepair(
    hi: number,
    lo: number,
    table: TableDef,
    key: Uint8Array,
    replies: ReadonlyArray<{ replica: Replica; versions: Version[] }>,
    timeoutMs: number,
  ): Promise<void> {
    if (replies.length < 2) return;
    const merged = reconcile(table.conflicts, replies, this.opts.config.maxSiblings);
    const op: ReplicaWrite = { table: table.name, tableId: table.id, mode: table.conflicts, key, versions: merged };
    await Promise.all(
      replies
        .filter((r) => !versionsEqual(r.versions, merged))
        .map(async (s) => {
          this.counters.readRepairs++;
          const err = await new Promise<Error | null>((done) => this.writeReplica(s.replica, hi, lo, op, null, timeoutMs, done));
          if (err) this.opts.log.debug({ err: String(err), replica: s.replica.nodeId }, 'read repair write failed');
        }),
    );
  }

  /**
   * Write to one replica: a local shard by message (record bytes: `record` when the caller encoded
   * `op.versions` already), or a remote node's router by frame. `cb` runs once, never inside this
   * call, with the merged versions when `op.returnMerged` asked for them.
   */
  private writeReplica(r: Replica, hi: number, lo: number, op: ReplicaWrite, record: Uint8Array | null, timeoutMs: number, cb: ReplicaCallback): void {
    if (r.local) {
      this.opts.shards.write(r.shard, op.tableId, op.mode, op.key, hi, lo, record ?? encodeRecord(op.versions), op.returnMerged === true, (res) => {
        if (!res.ok) return cb(new RingkvError(res.code as ErrorCode, res.message), null);
        cb(null, res.record ? decodeRecord(res.record) : null);
      });
      return;
    }
    if (!this.remote) return void queueMicrotask(() => cb(new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`), null));
    this.remote.write(r.nodeId, op, timeoutMs).then(
      (v) => cb(null, v),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e)), null),
    );
  }

  private readReplica(r: Replica, hi: number, lo: number, op: ReplicaRead, timeoutMs: number, cb: ReplicaCallback): void {
    if (r.local) {
      this.opts.shards.read(r.shard, op.tableId, op.key, hi, lo, (res) => {
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
    this.remote.read(r.nodeId, op, timeoutMs).then(
      (v) => cb(null, v),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e)), null),
    );
  }

  /**
   * Read this node's own replica of a key, without coordination (operators and tests use it to
   * inspect one replica: `GET ...?replica=local`). Fails with not_owner when this node holds none.
   */
  async readLocalReplica(table: string, key: Uint8Array): Promise<ReadResult> {
    const def = this.opts.tables.getOrCreate(table);
    const versions = (await this.applyReplicaRead({ table: def.name, tableId: def.id, key })) ?? [];
    return { values: liveValues(versions), context: encodeContext(contextOf(versions)), consistency: { n: 1, required: 1, replied: 1 } };
  }

  /** A replica-level write arriving from another node's coordinator: store it in the owning local shard. */
  async applyReplicaWrite(op: ReplicaWrite): Promise<Version[] | null> {
    this.counters.replicaWrites++;
    const { hi, lo, replicas } = this.replicasOf(op.key);
    const self = replicas.find((r) => r.local);
    if (!self) throw new RingkvError('not_owner', `node ${this.opts.selfId} is not a replica of this key in its ring view`);
    this.opts.tables.getOrCreate(op.table);
    return promiseOf((cb) => this.writeReplica(self, hi, lo, op, null, this.opts.config.requestTimeoutMs, cb));
  }

  async applyReplicaRead(op: ReplicaRead): Promise<Version[] | null> {
    this.counters.replicaReads++;
    const { hi, lo, replicas } = this.replicasOf(op.key);
    const self = replicas.find((r) => r.local);
    if (!self) throw new RingkvError('not_owner', `node ${this.opts.selfId} is not a replica of this key in its ring view`);
    return promiseOf((cb) => this.readReplica(self, hi, lo, op, this.opts.config.requestTimeoutMs, cb));
  }

  private quorumError(kind: 'read' | 'write', t: QuorumTracker, cons: ResolvedConsistency, timedOut: boolean): RingkvError {
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

type ReplicaCallback = (err: Error | null, versions: Version[] | null) => void;

function promiseOf(start: (cb: ReplicaCallback) => void): Promise<Version[] | null> {
  return new Promise((resolve, reject) => start((err, v) => (err ? reject(err) : resolve(v))));
}

function reconcile(mode: ConflictMode, replies: ReadonlyArray<{ versions: Version[] }>, maxSiblings: number): Version[] {
  let acc: Version[] = [];
  for (const r of replies) acc = mergeVersions(mode, acc, r.versions, maxSiblings);
  return acc;
}

function report(cons: ResolvedConsistency, replied: number): ConsistencyReport {
  const r: ConsistencyReport = { n: cons.n, required: cons.required, replied };
  if (cons.clamped) r.clamped = cons.clamped;
  return r;
}

let lastMicros = 0;
/** Wall-clock microseconds, strictly increasing within this process (LWW timestamps). */
export function nowMicros(): number {
  const t = Date.now() * 1000;
  lastMicros = t > lastMicros ? t : lastMicros + 1;
  return lastMicros;
}
