/**
 * How the CRDT coordinations (crdt-write.ts, crdt-read.ts) reach a key's replicas: apply an
 * operation at one replica, write a state to one, read one's state. Local replicas are this node's
 * shards (by message), remote ones other nodes (peer frames). Everything is bytes: a state is
 * stored, shipped, hinted and hashed as its canonical encoding.
 *
 * An apply's failure is *definite* when the replica answered that it did not apply the operation
 * (a refusal, a precondition, a limit), and *unknown* when the answer was lost (a timeout or a
 * dropped connection after the request left): the operation may then have been applied and will
 * spread from that replica. Coordinators never resend an unknown one (a retried increment
 * double-counts).
 */
import type { NodeConfig } from '../config/config.js';
import type { HintService } from '../hints/service.js';
import type { Logger } from '../log/logger.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, type ErrorCode } from '../util/errors.js';
import type { PeerReplicaWrite, ReplicaRead, Replica, Router } from './router.js';
import { tableIdBytes, type TableDef, type TableRegistry } from './tables.js';

/** The peer message that asks a replica to apply an operation (answered by CrdtCoordinator.onPeerApply). */
export interface PeerCrdtApply {
  t: 'crdt-apply';
  table: string;
  tableId: Uint8Array;
  key: Uint8Array;
  /** The client's operation body, parsed again (and so validated) by the replica. */
  operation: unknown;
}

/** The answer to a PeerCrdtApply: errors travel in the body so their details (precondition, limit) arrive. */
export type PeerCrdtApplyReply = { ok: true; state: Uint8Array } | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown> };

/** What the CRDT coordinations need of other nodes (the Cluster implements it). */
export interface CrdtRemote {
  request(nodeId: string, body: { t: string } & Record<string, unknown>, timeoutMs: number): Promise<unknown>;
  writeRecord(nodeId: string, op: PeerReplicaWrite, timeoutMs: number): Promise<Uint8Array | null>;
  readRecord(nodeId: string, op: ReplicaRead, timeoutMs: number): Promise<Uint8Array | null>;
}

export interface CrdtDeps {
  router: Pick<Router, 'replicasOf' | 'isUp' | 'pendingUp' | 'planWrite' | 'track' | 'counters' | 'quorumError' | 'selfId' | 'observer'>;
  shards: Pick<ShardPool, 'crdtApply' | 'write' | 'read'>;
  remote: CrdtRemote | undefined;
  hints: () => HintService | undefined;
  tables: TableRegistry;
  config: NodeConfig;
  log: Logger;
}

export type ApplyOutcome = { ok: true; state: Uint8Array } | { ok: false; definite: boolean; err: RingkvError };

/** Local shard errors that mean the operation was not applied (anything else might have been). */
const DEFINITE_SHARD_CODES: ReadonlySet<string> = new Set(['bad_request', 'conflict', 'too_large', 'overloaded', 'not_owner', 'internal']);

function asError(e: unknown): RingkvError {
  if (e instanceof RingkvError) return e;
  return new RingkvError('internal', e instanceof Error ? e.message : String(e));
}

/** A copy: reply bytes are views into a message buffer that is not ours to keep. */
function own(b: Uint8Array): Buffer {
  return Buffer.from(b);
}

/** The CRDT side of one key's replica I/O. */
export class CrdtReplicaIo {
  constructor(
    private readonly d: CrdtDeps,
    readonly table: TableDef,
    readonly key: Uint8Array,
    readonly hi: number,
    readonly lo: number,
  ) {}

  /** Apply `request` (encodeApplyRequest bytes) at a local replica, or the client's `operation` at a remote one. */
  apply(r: Replica, request: Uint8Array, operation: unknown, timeoutMs: number, cb: (o: ApplyOutcome) => void): void {
    if (r.local) {
      this.d.shards.crdtApply(tableIdBytes(this.table), this.key, this.hi, this.lo, request, (res) => {
        if (res.ok) return cb({ ok: true, state: own(res.record!) });
        const err = new RingkvError(res.code as ErrorCode, res.message, res.details);
        cb({ ok: false, definite: DEFINITE_SHARD_CODES.has(res.code), err });
      });
      return;
    }
    const remote = this.d.remote;
    if (!remote) return void queueMicrotask(() => cb({ ok: false, definite: true, err: new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`) }));
    const msg: PeerCrdtApply = { t: 'crdt-apply', table: this.table.name, tableId: tableIdBytes(this.table), key: this.key, operation };
    remote.request(r.nodeId, msg as unknown as { t: string } & Record<string, unknown>, timeoutMs).then(
      (body) => {
        const reply = body as PeerCrdtApplyReply | null;
        if (reply && reply.ok === true && reply.state instanceof Uint8Array) return cb({ ok: true, state: own(reply.state) });
        if (reply && reply.ok === false) return cb({ ok: false, definite: true, err: new RingkvError(reply.code, reply.message, reply.details) });
        cb({ ok: false, definite: false, err: new RingkvError('internal', `node ${r.nodeId} answered crdt-apply with something else`) });
      },
      // The transport cannot tell "never sent" from "sent, answer lost": treat both as unknown.
      (e: unknown) => cb({ ok: false, definite: false, err: asError(e) }),
    );
  }

  /** Merge `state` into a replica's stored state (a replica write in mode crdt). */
  write(r: Replica, state: Uint8Array, timeoutMs: number, cb: (err: Error | null) => void): void {
    if (r.local) {
      this.d.shards.write(tableIdBytes(this.table), 'crdt', this.key, this.hi, this.lo, state, false, (res) =>
        cb(res.ok ? null : new RingkvError(res.code as ErrorCode, res.message, res.details)),
      );
      return;
    }
    const remote = this.d.remote;
    if (!remote) return void queueMicrotask(() => cb(new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`)));
    const op: PeerReplicaWrite = { table: this.table.name, tableId: tableIdBytes(this.table), mode: 'crdt', key: this.key, record: state };
    remote.writeRecord(r.nodeId, op, timeoutMs).then(
      () => cb(null),
      (e: unknown) => cb(asError(e)),
    );
  }

  /** A replica's stored state (null: it holds none). */
  read(r: Replica, timeoutMs: number, cb: (err: Error | null, state: Uint8Array | null) => void): void {
    if (r.local) {
      this.d.shards.read(tableIdBytes(this.table), this.key, this.hi, this.lo, (res) => {
        if (!res.ok) return cb(new RingkvError(res.code as ErrorCode, res.message), null);
        cb(null, res.record ? own(res.record) : null);
      });
      return;
    }
    const remote = this.d.remote;
    if (!remote) return void queueMicrotask(() => cb(new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`), null));
    remote.readRecord(r.nodeId, { table: this.table.name, tableId: tableIdBytes(this.table), key: this.key }, timeoutMs).then(
      (rec) => cb(null, rec),
      (e: unknown) => cb(asError(e), null),
    );
  }

  /** Store `state` as a hint for `target` on `holder` (null: this node); resolves whether it is durable there. */
  hint(target: string, holder: string | null, state: Uint8Array, timeoutMs: number): Promise<boolean> {
    const hints = this.d.hints();
    if (!hints) return Promise.resolve(false);
    return hints.hint(holder, { target, table: this.table.name, mode: 'crdt', key: this.key, state }, timeoutMs);
  }

  get log(): Logger {
    return this.d.log;
  }
}
