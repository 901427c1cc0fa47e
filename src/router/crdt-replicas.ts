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
import type { CrdtType } from '../crdt/index.js';
import type { HintSink } from '../hints/protocol.js';
import type { Logger } from '../log/logger.js';
import type { WireReply } from '../storage/shard-wire.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, type ErrorCode } from '../util/errors.js';
import type { Router } from './router.js';
import type { PeerReplicaWrite, ReplicaRead } from './replica-protocol.js';
import type { Replica } from './types.js';
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
  hints: () => HintSink | undefined;
  tables: TableRegistry;
  config: NodeConfig;
  log: Logger;
}

export type ApplyOutcome = { ok: true; state: Uint8Array } | { ok: false; definite: boolean; err: RingkvError };

/**
 * One CRDT key's replica I/O as an update coordination (crdt-write.ts) uses it: a crdt table's key
 * (CrdtReplicaIo below) or a wide-column counter cell (router/wide-counter.ts).
 */
export interface CrdtKeyIo {
  readonly type: CrdtType;
  readonly log: Logger;
  /** Apply `request` (encodeApplyRequest bytes) at a local replica, or the client's `operation` at a remote one. */
  apply(r: Replica, request: Uint8Array, operation: unknown, timeoutMs: number, cb: (o: ApplyOutcome) => void): void;
  /** Merge `state` into a replica's stored state. */
  write(r: Replica, state: Uint8Array, timeoutMs: number, cb: (err: Error | null) => void): void;
  /** A replica's stored state (null: it holds none). */
  read(r: Replica, timeoutMs: number, cb: (err: Error | null, state: Uint8Array | null) => void): void;
  /** Store `state` as a hint for `target` on `holder` (null: this node); resolves whether it is durable there. */
  hint(target: string, holder: string | null, state: Uint8Array, timeoutMs: number): Promise<boolean>;
}

/** Local shard errors that mean the operation was not applied (anything else might have been). */
const DEFINITE_SHARD_CODES: ReadonlySet<string> = new Set(['bad_request', 'conflict', 'too_large', 'overloaded', 'not_owner', 'internal']);

function asError(e: unknown): RingkvError {
  if (e instanceof RingkvError) return e;
  return new RingkvError('internal', e instanceof Error ? e.message : String(e));
}

/** A local shard's answer to a crdt apply as an outcome (the new state copied: the reply is a view into a message). */
export function shardApplyOutcome(res: WireReply): ApplyOutcome {
  if (res.ok) return { ok: true, state: own(res.record!) };
  return { ok: false, definite: DEFINITE_SHARD_CODES.has(res.code), err: new RingkvError(res.code as ErrorCode, res.message, res.details) };
}

/**
 * The answer to a peer that asked this node to apply an operation: a definite failure travels in
 * the body (with its details), so the asker can tell "not applied" from "answer lost"; an unknown
 * one here is unknown to the asker too, so it fails the request itself (thrown: a transport-level
 * error, which the asker treats as a lost answer).
 */
export function peerApplyReply(outcome: ApplyOutcome): PeerCrdtApplyReply {
  if (outcome.ok) return { ok: true, state: outcome.state };
  if (!outcome.definite) throw outcome.err;
  const reply: PeerCrdtApplyReply = { ok: false, code: outcome.err.code, message: outcome.err.message };
  if (outcome.err.details !== undefined) reply.details = outcome.err.details;
  return reply;
}

/** The asker's side: a peer's answer to an apply request (or its transport failure) as an outcome. */
export function applyOutcomeOf(nodeId: string, reply: Promise<unknown>, cb: (o: ApplyOutcome) => void): void {
  reply.then(
    (body) => {
      const r = body as PeerCrdtApplyReply | null;
      if (r && r.ok === true && r.state instanceof Uint8Array) return cb({ ok: true, state: own(r.state) });
      if (r && r.ok === false) return cb({ ok: false, definite: true, err: new RingkvError(r.code, r.message, r.details) });
      cb({ ok: false, definite: false, err: new RingkvError('internal', `node ${nodeId} answered an apply request with something else`) });
    },
    // The transport cannot tell "never sent" from "sent, answer lost": treat both as unknown.
    (e: unknown) => cb({ ok: false, definite: false, err: asError(e) }),
  );
}

/** A copy: reply bytes are views into a message buffer that is not ours to keep. */
function own(b: Uint8Array): Buffer {
  return Buffer.from(b);
}

/** The CRDT side of one crdt table key's replica I/O. */
export class CrdtReplicaIo implements CrdtKeyIo {
  constructor(
    private readonly d: CrdtDeps,
    readonly table: TableDef,
    readonly key: Uint8Array,
    readonly hi: number,
    readonly lo: number,
  ) {}

  get type(): CrdtType {
    return this.table.type!;
  }

  /** Apply `request` (encodeApplyRequest bytes) at a local replica, or the client's `operation` at a remote one. */
  apply(r: Replica, request: Uint8Array, operation: unknown, timeoutMs: number, cb: (o: ApplyOutcome) => void): void {
    if (r.local) {
      this.d.shards.crdtApply(tableIdBytes(this.table), this.key, this.hi, this.lo, request, (res) => cb(shardApplyOutcome(res)));
      return;
    }
    const remote = this.d.remote;
    if (!remote) return void queueMicrotask(() => cb({ ok: false, definite: true, err: new RingkvError('unavailable', `no transport to reach node ${r.nodeId}`) }));
    const msg: PeerCrdtApply = { t: 'crdt-apply', table: this.table.name, tableId: tableIdBytes(this.table), key: this.key, operation };
    applyOutcomeOf(r.nodeId, remote.request(r.nodeId, msg as unknown as { t: string } & Record<string, unknown>, timeoutMs), cb);
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
