/**
 * The coordinator of convergent data types (issue 14): validates a client's CRDT update or read,
 * routes it like any key (same ring, quorum, sloppy hints, deadlines and live-coordination
 * backstop as the version path in router.ts) and runs its state machine (crdt-write.ts,
 * crdt-read.ts). It also answers other coordinators asking this node to apply an operation at its
 * replica (`crdt-apply` peer messages).
 */
import { parseOp } from '../crdt/index.js';
import { encodeApplyRequest } from '../storage/crdt-shard.js';
import { RingkvError, asRingkvError } from '../util/errors.js';
import { resolveConsistency, type ConsistencySpec } from './consistency.js';
import { crdtReadResult, CrdtReadCoordination, type CrdtReadResult } from './crdt-read.js';
import { CrdtReplicaIo, peerApplyReply, type ApplyOutcome, type CrdtDeps, type PeerCrdtApplyReply } from './crdt-replicas.js';
import { CrdtUpdateCoordination, type CrdtUpdateResult } from './crdt-write.js';
import type { Done } from './types.js';
import { tableIdBytes, validateTableName, type TableDef } from './tables.js';

export type { CrdtReadResult, CrdtUpdateResult };

export interface CrdtUpdateRequest {
  table: string;
  key: Uint8Array;
  /** The operation body as the client sent it: `{"increment": 5}`, `{"remove": [...], "context": "..."}`, ... */
  operation: unknown;
  consistency: ConsistencySpec;
  timeoutMs?: number | undefined;
}

export interface CrdtReadRequest {
  table: string;
  key: Uint8Array;
  consistency: ConsistencySpec;
  timeoutMs?: number | undefined;
}

export class CrdtCoordinator {
  constructor(private readonly d: CrdtDeps) {}

  private timeoutOf(req: { timeoutMs?: number | undefined }): number {
    return req.timeoutMs ?? this.d.config.requestTimeoutMs;
  }

  /** The definition of a crdt table, or a clear error: unknown tables are not created by CRDT operations (they need a type). */
  private crdtTable(name: string): TableDef {
    validateTableName(name);
    const t = this.d.tables.get(name);
    if (!t) {
      throw new RingkvError('not_found', `table ${name} does not exist; define it first: PUT /api/v1/tables/${name} {"conflicts": "crdt", "type": "counter" | "set" | "map" | "register" | "flag"}`, { field: 'table' });
    }
    if (t.conflicts !== 'crdt' || t.type === undefined) {
      throw new RingkvError('bad_request', `table ${name} is a ${t.conflicts} table; convergent data type operations need a table defined with conflicts "crdt" and a type`, { field: 'table' });
    }
    return t;
  }

  private ioFor(table: TableDef, key: Uint8Array): { io: CrdtReplicaIo; route: ReturnType<CrdtDeps['router']['replicasOf']> } {
    const route = this.d.router.replicasOf(key);
    return { io: new CrdtReplicaIo(this.d, table, key, route.hi, route.lo), route };
  }

  update(req: CrdtUpdateRequest): Promise<CrdtUpdateResult> {
    return new Promise((resolve, reject) => this.startUpdate(req, (err, r) => (err ? reject(err) : resolve(r!))));
  }

  /** `done` runs exactly once, never inside this call, by the request's deadline. */
  startUpdate(req: CrdtUpdateRequest, rawDone: Done<CrdtUpdateResult>): void {
    const timeoutMs = this.timeoutOf(req);
    // Request metrics count an update as a write (and a read as a read), labelled by consistency.
    const o = this.d.router.observer;
    const done = this.d.router.track('crdt-update', timeoutMs, o ? o.wrap('write', req.consistency, rawDone) : rawDone);
    let c: CrdtUpdateCoordination;
    try {
      const table = this.crdtTable(req.table);
      // Validated in full before anything is sent: a bad operation changes nothing anywhere.
      const parsed = parseOp(table.type!, req.operation, this.d.config.crdt);
      const { io, route } = this.ioFor(table, req.key);
      const cons = resolveConsistency(req.consistency, 'write', table.n, route.replicas.length);
      if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
      const plan = this.d.router.planWrite(route, table, cons);
      this.d.router.counters.coordinatedWrites++;
      c = new CrdtUpdateCoordination(this.d, io, parsed, req.operation, cons, plan, timeoutMs, done);
    } catch (e) {
      return void queueMicrotask(() => done(e as Error, undefined));
    }
    c.start();
  }

  read(req: CrdtReadRequest): Promise<CrdtReadResult> {
    return new Promise((resolve, reject) => this.startRead(req, (err, r) => (err ? reject(err) : resolve(r!))));
  }

  startRead(req: CrdtReadRequest, rawDone: Done<CrdtReadResult>): void {
    const timeoutMs = this.timeoutOf(req);
    const o = this.d.router.observer;
    const done = this.d.router.track('crdt-read', timeoutMs, o ? o.wrap('read', req.consistency, rawDone) : rawDone);
    let c: CrdtReadCoordination;
    try {
      const table = this.crdtTable(req.table);
      const { io, route } = this.ioFor(table, req.key);
      const cons = resolveConsistency(req.consistency, 'read', table.n, route.replicas.length);
      if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
      this.d.router.counters.coordinatedReads++;
      const targets = route.replicas.length === cons.n ? route.replicas : route.replicas.slice(0, cons.n);
      c = new CrdtReadCoordination(this.d, io, cons, targets, timeoutMs, this.d.config.readRepair, done);
    } catch (e) {
      return void queueMicrotask(() => done(e as Error, undefined));
    }
    c.start();
  }

  /** This node's own replica of a key, without coordination (`GET ...?replica=local`); not_owner when it holds none. */
  async readLocal(table: string, key: Uint8Array): Promise<CrdtReadResult> {
    const def = this.crdtTable(table);
    const { io, route } = this.ioFor(def, key);
    const self = route.replicas.find((r) => r.local);
    if (!self) throw new RingkvError('not_owner', `node ${this.d.router.selfId} is not a replica of this key in its ring view`);
    const state = await new Promise<Uint8Array | null>((resolve, reject) => io.read(self, this.d.config.requestTimeoutMs, (err, s) => (err ? reject(err) : resolve(s))));
    return crdtReadResult(io, state, { n: 1, required: 1, replied: 1 });
  }

  /**
   * Another coordinator asks this node to apply an operation at its replica of a key. Every
   * failure is answered in the body (with its details), so the asker can tell "not applied" from
   * "answer lost".
   */
  async onPeerApply(body: Record<string, unknown>): Promise<PeerCrdtApplyReply> {
    let outcome: ApplyOutcome;
    try {
      outcome = await this.applyForPeer(body);
    } catch (e) {
      outcome = { ok: false, definite: true, err: asRingkvError(e) };
    }
    return peerApplyReply(outcome);
  }

  private applyForPeer(body: Record<string, unknown>): Promise<ApplyOutcome> {
    const name = body['table'];
    const key = body['key'];
    const tableId = body['tableId'];
    if (typeof name !== 'string') throw new RingkvError('bad_request', 'crdt-apply needs a table name');
    if (!(key instanceof Uint8Array) || key.length === 0 || key.length > this.d.config.limits.maxKeyBytes) throw new RingkvError('bad_request', 'crdt-apply needs a key within limits.maxKeyBytes');
    const def = this.d.tables.get(name);
    // The schema travels by gossip: a table this node has not heard of yet is refused (the asker tries another replica).
    if (!def) throw new RingkvError('unavailable', `table ${name} is not known on node ${this.d.router.selfId} yet`);
    if (!(tableId instanceof Uint8Array) || !Buffer.from(tableId.buffer, tableId.byteOffset, tableId.byteLength).equals(tableIdBytes(def))) {
      throw new RingkvError('bad_request', `crdt-apply for table ${name} carries a table id that is not this node's id of that name`, { field: 'tableId' });
    }
    const table = this.crdtTable(name);
    const parsed = parseOp(table.type!, body['operation'], this.d.config.crdt);
    const { io, route } = this.ioFor(table, key);
    const self = route.replicas.find((r) => r.local);
    if (!self) throw new RingkvError('not_owner', `node ${this.d.router.selfId} is not a replica of this key in its ring view`);
    return new Promise<ApplyOutcome>((resolve) => io.apply(self, encodeApplyRequest(table.type!, parsed), body['operation'], this.d.config.requestTimeoutMs, resolve));
  }
}
