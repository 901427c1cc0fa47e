/**
 * How a coordinator reaches one replica (riak_core's vnode-master dispatch): this node's own shard
 * by message, another node's router by peer frame, behind one callback shape, so a coordination
 * never asks where its replica lives. Per-op hot: plain methods, no promise on the local path, and
 * the versions encoded once (`record` when the caller encoded them already).
 */
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, type ErrorCode } from '../util/errors.js';
import { decodeRecord, encodeRecord, type Version } from '../versions/index.js';
import { decodeOrNull, type ReplicaCallback } from './kv-coordination.js';
import type { PeerReplicaWrite, RemoteReplicas, ReplicaRead, ReplicaWrite } from './replica-protocol.js';
import type { PeerReplicaScan, ScanPage, ScanSegment } from './scan.js';
import { tableIdBytes, type TableDef } from './tables.js';
import type { Replica } from './types.js';

export class ReplicaIo {
  /** `remote` absent: a unit setup without a cluster (a remote replica answers `unavailable`). */
  constructor(
    private readonly shards: ShardPool,
    private readonly remote: RemoteReplicas | undefined,
  ) {}

  /**
   * Write to one replica: a local shard by message (record bytes: `record` when the caller encoded
   * `op.versions` already), or a remote node's router by frame. `cb` runs once, never inside this
   * call, with the merged versions when `op.returnMerged` asked for them.
   */
  writeReplica(r: Replica, hi: number, lo: number, op: ReplicaWrite, record: Uint8Array | null, timeoutMs: number, cb: ReplicaCallback): void {
    if (r.local) {
      this.shards.write(op.tableId, op.mode, op.key, hi, lo, record ?? encodeRecord(op.versions), op.returnMerged === true, (res) => {
        if (!res.ok) return cb(new RingkvError(res.code as ErrorCode, res.message), null);
        cb(null, res.record ? decodeRecord(res.record) : null);
      });
      return;
    }
    if (!this.remote) return void queueMicrotask(() => cb(unreachable(r), null));
    const peerOp: PeerReplicaWrite = { table: op.table, tableId: op.tableId, mode: op.mode, key: op.key, record: record ?? encodeRecord(op.versions) };
    if (op.returnMerged) peerOp.returnMerged = true;
    this.remote.writeRecord(r.nodeId, peerOp, timeoutMs).then(
      (rec) => cb(null, decodeOrNull(rec)),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e)), null),
    );
  }

  /** Read one replica's versions of a key (null: it holds none). `cb` runs once, never inside this call. */
  readReplica(r: Replica, hi: number, lo: number, op: ReplicaRead, timeoutMs: number, cb: ReplicaCallback): void {
    if (r.local) {
      this.shards.read(op.tableId, op.key, hi, lo, (res) => {
        if (!res.ok) return cb(new RingkvError(res.code as ErrorCode, res.message), null);
        deliverVersions(res.record, cb);
      });
      return;
    }
    if (!this.remote) return void queueMicrotask(() => cb(unreachable(r), null));
    this.remote.readRecord(r.nodeId, op, timeoutMs).then(
      (rec) => deliverVersions(rec, cb),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e)), null),
    );
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
      this.shards
        .scan({ table: tableIdBytes(table), startHi: seg.startHi, startLo: seg.startLo, endHi: seg.endHi, endLo: seg.endLo, after, limit })
        .then((page) => cb(null, page), fail)
        .catch(fail);
      return;
    }
    if (!this.remote) return void queueMicrotask(() => cb(unreachable(r), null));
    const op: PeerReplicaScan = { table: table.name, tableId: tableIdBytes(table), startHi: seg.startHi, startLo: seg.startLo, endHi: seg.endHi, endLo: seg.endLo, after, limit };
    this.remote.scanRecords(r.nodeId, op, timeoutMs).then((page) => cb(null, page), fail);
  }
}

function unreachable(r: Replica): RingkvError {
  return new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`);
}
/** A replica's record bytes (null: it holds none) to `cb` as versions, or the decode error. */
function deliverVersions(rec: Uint8Array | null | undefined, cb: ReplicaCallback): void {
  let versions: Version[] | null;
  try {
    versions = decodeOrNull(rec ?? null);
  } catch (e) {
    return cb(e as Error, null);
  }
  cb(null, versions);
}

