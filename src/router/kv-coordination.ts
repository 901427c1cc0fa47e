/**
 * Key-value coordinations: one coordinated write and one coordinated read of a key, as state
 * machines driven by replica callbacks (etcd-raft style: no sockets or timers of their own beyond
 * the deadline; the router supplies every effect through CoordinationPorts).
 */
import type { ConflictMode, NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { RingkvError } from '../util/errors.js';
import {
  contextOf,
  decodeRecord,
  encodeContext,
  encodeRecord,
  mergeVersions,
  readableValues,
  versionsEqual,
  type MergeMode,
  type Version,
} from '../versions/index.js';
import { type ResolvedConsistency } from './consistency.js';
import { QuorumTracker } from './quorum.js';
import { consistencyReport, QuorumReadCoordination } from './quorum-read.js';
import { type HintPlacement } from '../hints/policy.js';
import type { HintSink } from '../hints/protocol.js';
import { tableIdBytes, type TableDef } from './tables.js';


import type { ConsistencyReport, Done, Replica, RouterCounters } from './types.js';
import type { ReadResult, WriteResult } from './kv-types.js';
import type { ReplicaRead, ReplicaWrite } from './replica-protocol.js';

/** A key-value table's definition (what the key-value paths work with; never a wide table's view). */
export type KvTableDef = TableDef & { conflicts: ConflictMode };


export type ReplicaCallback = (err: Error | null, versions: Version[] | null) => void;

export function decodeOrNull(rec: Uint8Array | null): Version[] | null {
  return rec ? decodeRecord(rec) : null;
}

export function reconcile(mode: MergeMode, replies: ReadonlyArray<{ versions: Version[] }>, maxSiblings: number): Version[] {
  let acc: Version[] = [];
  for (const r of replies) acc = mergeVersions(mode, acc, r.versions, maxSiblings);
  return acc;
}

/** The router's parts a coordination uses: narrow, so the state machines below stay readable. */
export interface CoordinationPorts {
  counters: RouterCounters;
  log(): Logger;
  maxSiblings(): number;
  isUp(r: Replica): boolean;
  /** Liveness of a pending replica (it may be outside the current layout: a joining node). */
  pendingUp(r: Replica): boolean;
  hints(): HintSink | undefined;
  writeReplica(r: Replica, hi: number, lo: number, op: ReplicaWrite, record: Uint8Array | null, timeoutMs: number, cb: ReplicaCallback): void;
  readReplica(r: Replica, hi: number, lo: number, op: ReplicaRead, timeoutMs: number, cb: ReplicaCallback): void;
  quorumError(kind: 'read' | 'write', t: QuorumTracker, cons: ResolvedConsistency, timedOut: boolean): RingkvError;
}

/**
 * One coordinated write, as a state machine driven by replica callbacks.
 *
 * Step 1, the coordinating replica (this node's own when it is one, as Riak's coordinating vnode):
 * it merges the new version into what it holds and answers with the merged set, which is only asked
 * for when there is somewhere to send it. If it fails, the next up replica takes its place.
 * Step 2: that merged set goes to the other replicas and into hints. Shipping the merged set, not the
 * lone new version, keeps every replica's state closed under the context the write carries (see
 * src/versions/version.ts): a context then never claims a dot that a replica lacks.
 * The answer goes out once W acks arrived (or W became impossible, or the deadline passed);
 * stragglers finish in the background.
 */
export class WriteCoordination {
  private readonly tracker: QuorumTracker;
  private readonly base: Omit<ReplicaWrite, 'versions' | 'returnMerged'>;
  private readonly single: Version[];
  private readonly candidates: readonly Replica[];
  private next = 0;
  private settled = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly p: CoordinationPorts,
    table: KvTableDef,
    key: Uint8Array,
    private readonly hi: number,
    private readonly lo: number,
    private readonly version: Version,
    private readonly cons: ResolvedConsistency,
    up: readonly Replica[],
    private readonly down: readonly Replica[],
    private readonly placements: HintPlacement[],
    private readonly timeoutMs: number,
    private readonly done: Done<WriteResult>,
    /** Pending replicas of a range movement: they get the merged set too; their acks do not count. */
    private readonly pending: readonly Replica[],
  ) {
    this.tracker = new QuorumTracker(cons.n, cons.required);
    this.base = { table: table.name, tableId: tableIdBytes(table), mode: table.conflicts, key };
    this.single = [version];
    this.candidates = up.length > 1 ? [...up].sort((a, b) => Number(b.local) - Number(a.local)) : up;
  }

  start(): void {
    this.timer = setTimeout(() => this.onDeadline(), this.timeoutMs);
    this.tryCoordinator();
  }

  private onDeadline(): void {
    if (this.settled) return;
    this.settled = true;
    this.p.counters.timeouts++;
    this.done(this.p.quorumError('write', this.tracker, this.cons, true), undefined);
  }

  private record(ok: boolean): void {
    const s = ok ? this.tracker.ack() : this.tracker.fail();
    if (this.settled || s === 'pending') return;
    this.settled = true;
    clearTimeout(this.timer);
    if (s === 'succeeded') {
      this.done(null, { context: encodeContext(this.version.clock), consistency: consistencyReport(this.cons, this.tracker.acknowledged) });
    } else this.done(this.p.quorumError('write', this.tracker, this.cons, false), undefined);
  }

  private storeHint(target: string, holder: string | null, versions: Version[], counts: boolean): void {
    this.p.counters.hintedWrites++;
    this.p.hints()!.hint(holder, { target, ...this.base, versions }, this.timeoutMs).then(
      (stored) => this.record(stored && counts),
      (e: unknown) => {
        this.p.log().debug({ err: String(e), target, holder }, 'hint store failed');
        this.record(false);
      },
    );
  }

  private tryCoordinator(): void {
    const { candidates } = this;
    if (this.next >= candidates.length || this.settled) return this.fanOut(this.single, candidates.slice(this.next));
    const c = candidates[this.next++]!;
    const op = this.replicaOp(this.single, this.next < candidates.length || this.placements.length > 0);
    this.p.writeReplica(c, this.hi, this.lo, op, null, this.timeoutMs, (err, merged) => {
      if (err) {
        this.p.log().debug({ err: String(err), replica: c.nodeId }, 'coordinating replica write failed');
        if (this.p.hints()) this.storeHint(c.nodeId, null, this.single, this.cons.any);
        else this.record(false);
        return this.tryCoordinator();
      }
      this.record(true);
      this.fanOut(merged ?? this.single, candidates.slice(this.next));
    });
  }

  /**
   * The replica write of `versions`, built field by field: an object spread of `base` here took
   * ~10% of the router thread under batched ingest (V8's slow clone path; cpu profile line ticks).
   */
  private replicaOp(versions: Version[], returnMerged: boolean): ReplicaWrite {
    const b = this.base;
    return { table: b.table, tableId: b.tableId, mode: b.mode, key: b.key, versions, returnMerged };
  }

  private fanOut(set: Version[], rest: readonly Replica[]): void {
    for (const pl of this.placements) this.storeHint(pl.target, pl.holder, set, pl.counts);
    if (this.placements.length === 0) for (let i = 0; i < this.down.length; i++) this.record(false);
    if (rest.length === 0 && this.pending.length === 0) return;
    const op = this.replicaOp(set, false);
    const rec = encodeRecord(set);
    for (const r of this.pending) this.writePending(r, op, rec);
    for (const r of rest) {
      this.p.writeReplica(r, this.hi, this.lo, op, rec, this.timeoutMs, (err) => {
        if (!err) return this.record(true);
        // A replica that failed or timed out mid-write gets a hint on this node; it counts toward
        // W only for ANY (we can't tell a slow replica from a lost one here).
        this.p.log().debug({ err: String(err), replica: r.nodeId }, 'replica write failed');
        if (this.p.hints()) this.storeHint(r.nodeId, null, set, this.cons.any);
        else this.record(false);
      });
    }
  }

  /**
   * A pending replica's copy of the write: never counted toward W. One that is down or fails gets
   * a hint on this node (like a replica that fails mid-write), never counted either.
   */
  private writePending(r: Replica, op: ReplicaWrite, rec: Uint8Array): void {
    if (!this.p.pendingUp(r)) return this.hintPending(r, op.versions);
    this.p.writeReplica(r, this.hi, this.lo, op, rec, this.timeoutMs, (err) => {
      if (!err) return;
      this.p.log().debug({ err: String(err), replica: r.nodeId }, 'pending replica write failed');
      this.hintPending(r, op.versions);
    });
  }

  private hintPending(r: Replica, versions: Version[]): void {
    const hints = this.p.hints();
    if (!hints) return;
    this.p.counters.hintedWrites++;
    hints.hint(null, { target: r.nodeId, ...this.base, versions }, this.timeoutMs).catch((e: unknown) => this.p.log().debug({ err: String(e), target: r.nodeId }, 'pending replica hint failed'));
  }
}

/**
 * One coordinated read of a key's versions (the skeleton: quorum-read.ts): the R replies are
 * reconciled with the table's merge, and read repair sends the reconciled versions to the replicas
 * whose versions differ.
 */
export class ReadCoordination extends QuorumReadCoordination<Version[], ReadResult> {
  private readonly replies: Array<{ replica: Replica; versions: Version[] }> = [];
  private readonly op: ReplicaRead;

  constructor(
    private readonly p: CoordinationPorts,
    private readonly table: KvTableDef,
    private readonly key: Uint8Array,
    private readonly hi: number,
    private readonly lo: number,
    cons: ResolvedConsistency,
    targets: readonly Replica[],
    timeoutMs: number,
    repairMode: NodeConfig['readRepair'],
    done: Done<ReadResult>,
  ) {
    super(p, cons, targets, timeoutMs, repairMode, done);
    this.op = { table: table.name, tableId: tableIdBytes(table), key };
  }

  protected readReplica(r: Replica, timeoutMs: number, cb: (err: Error | null, versions: Version[] | null) => void): void {
    this.p.readReplica(r, this.hi, this.lo, this.op, timeoutMs, cb);
  }

  protected accept(r: Replica, versions: Version[] | null): boolean {
    this.replies.push({ replica: r, versions: versions ?? [] });
    return true;
  }

  protected result(consistency: ConsistencyReport): ReadResult {
    // A single replica's versions are its stored merge already (merging them into nothing is the identity).
    const merged = this.replies.length === 1 ? this.replies[0]!.versions : reconcile(this.table.conflicts, this.replies, this.p.maxSiblings());
    return { values: readableValues(merged, Date.now() * 1000), context: encodeContext(contextOf(merged)), consistency };
  }

  protected async repair(timeoutMs: number): Promise<void> {
    const { replies } = this;
    if (replies.length < 2) return;
    const merged = reconcile(this.table.conflicts, replies, this.p.maxSiblings());
    const op: ReplicaWrite = { table: this.table.name, tableId: tableIdBytes(this.table), mode: this.table.conflicts, key: this.key, versions: merged };
    let rec: Uint8Array | null = null;
    await Promise.all(
      replies
        .filter((r) => !versionsEqual(r.versions, merged))
        .map(async (s) => {
          this.p.counters.readRepairs++;
          if (s.replica.local) rec ??= encodeRecord(merged);
          const err = await new Promise<Error | null>((res) => this.p.writeReplica(s.replica, this.hi, this.lo, op, rec, timeoutMs, res));
          if (err) this.p.log().debug({ err: String(err), replica: s.replica.nodeId }, 'read repair write failed');
        }),
    );
  }
}
