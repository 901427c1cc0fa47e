/**
 * The replica side of the key-value router (riak_core's vnode side, apart from the coordinators):
 * replica-level writes, reads and scans that coordinators send to this node (its own router's and
 * other nodes'), each checked as input (ownership in this node's ring view, the table id of the
 * name, the record's bytes) before it reaches the owning local shard.
 */
import { decodeCrdt } from '../crdt/index.js';
import { positionOf, type RingLayout } from '../ring/builder.js';
import type { RingTable } from '../ring/table.js';
import { REPAIR_LIMITS } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, type ErrorCode } from '../util/errors.js';
import { contextOf, decodeRecord, encodeContext, readableValues } from '../versions/index.js';
import { decodeOrNull } from './kv-coordination.js';
import type { KeyRoute, ReadResult } from './kv-types.js';
import type { LocalReplicas, PeerReplicaWrite, ReplicaRead } from './replica-protocol.js';
import { segmentWithinRange, type PeerReplicaScan, type ScanPage } from './scan.js';
import { notKeyValue, tableIdBytes, type TableDef, type TableRegistry } from './tables.js';
import type { Replica, RouterCounters } from './types.js';

export interface LocalReplicaDeps {
  selfId: string;
  ring: RingTable;
  shards: ShardPool;
  tables: TableRegistry;
  counters: RouterCounters;
  /** The ring layout the router routes by now. */
  layout(): RingLayout;
  replicasOf(key: Uint8Array): KeyRoute;
  replicasOfPos(layout: RingLayout, pos: number): readonly Replica[];
  /** The key-value table of a name (refusing wide-column and crdt tables). */
  kvTable(name: string): TableDef;
}

export class LocalReplicaService implements LocalReplicas {
  constructor(private readonly d: LocalReplicaDeps) {}

  /**
   * Read this node's own replica of a key, without coordination (operators and tests use it to
   * inspect one replica: `GET ...?replica=local`). Fails with not_owner when this node holds none.
   */
  async readLocalReplica(table: string, key: Uint8Array): Promise<ReadResult> {
    const def = this.d.kvTable(table);
    const versions = decodeOrNull(await this.applyReplicaRead({ table: def.name, tableId: tableIdBytes(def), key })) ?? [];
    return { values: readableValues(versions, Date.now() * 1000), context: encodeContext(contextOf(versions)), consistency: { n: 1, required: 1, replied: 1 } };
  }

  /**
   * A replica-level write arriving from another node's coordinator: validate its record (a peer's
   * bytes are checked like any input before they can reach storage) and store it in the owning
   * local shard. Resolves with the merged record when asked (a view: copy or encode it at once).
   */
  applyReplicaWrite(op: PeerReplicaWrite): Promise<Uint8Array | null> {
    this.d.counters.replicaWrites++;
    const { hi, lo, replicas } = this.d.replicasOf(op.key);
    // A pending replica of the key (a range movement brings it here) takes writes too.
    const self = replicas.find((r) => r.local);
    if (!self && !this.d.ring.isReplica(hi, lo)) return Promise.reject(new RingkvError('not_owner', `node ${this.d.selfId} is not a replica of this key in its ring view`));
    if (!(op.record instanceof Uint8Array)) return Promise.reject(new RingkvError('bad_request', 'replica write without record bytes'));
    let tableId: Uint8Array;
    try {
      // A crdt table's state, or a key-value table's versions (never a wide-column table's cells).
      const def = this.peerTable(op.table, op.tableId, op.mode === 'crdt' ? 'records' : 'kv');
      checkPeerRecord(op, this.d.tables.get(op.table));
      tableId = tableIdBytes(def);
      // A crdt table is defined explicitly and arrives by gossip; creating it on first use here
      // would make it a vclock table until then.
      if (op.mode !== 'crdt') this.d.tables.getOrCreate(op.table);
    } catch (e) {
      if (e instanceof RingkvError) return Promise.reject(e);
      return Promise.reject(new RingkvError('bad_request', `replica write with a bad record: ${(e as Error).message}`));
    }
    return new Promise((resolve, reject) =>
      this.d.shards.write(tableId, op.mode, op.key, hi, lo, op.record, op.returnMerged === true, (res) =>
        res.ok ? resolve(res.record) : reject(new RingkvError(res.code as ErrorCode, res.message)),
      ),
    );
  }

  /** A key-value or crdt table (what replica reads and writes of whole records touch), never a wide-column table. */
  private recordsTable(name: string): TableDef {
    const t = this.d.tables.get(name) ?? this.d.tables.draft(name);
    if (t.conflicts === 'cell') throw notKeyValue(name);
    return t;
  }

  /** A replica-level read from another node's coordinator: this node's stored record (a view), or null. */
  applyReplicaRead(op: ReplicaRead): Promise<Uint8Array | null> {
    this.d.counters.replicaReads++;
    const { hi, lo, replicas } = this.d.replicasOf(op.key);
    const self = replicas.find((r) => r.local);
    if (!self) return Promise.reject(new RingkvError('not_owner', `node ${this.d.selfId} is not a replica of this key in its ring view`));
    let tableId: Uint8Array;
    try {
      tableId = tableIdBytes(this.peerTable(op.table, op.tableId, 'records'));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    return new Promise((resolve, reject) =>
      this.d.shards.read(tableId, op.key, hi, lo, (res) => (res.ok ? resolve(res.record) : reject(new RingkvError(res.code as ErrorCode, res.message)))),
    );
  }

  /**
   * The table a replica op from a peer names, checked: its id must be this node's id of that name
   * (a peer computing ids another way, e.g. an older version, is refused rather than given another
   * table's storage), and the name must not collide with a table this node knows.
   * `kind`: `kv` a version table; `records` what replica reads and writes touch, a version table or a
   * crdt table (a state); `any` any table, wide-column storage views included.
   */
  private peerTable(name: string, id: unknown, kind: 'kv' | 'records' | 'any'): TableDef {
    const def = kind === 'kv' ? this.d.kvTable(name) : kind === 'records' ? this.recordsTable(name) : (this.d.tables.get(name) ?? this.d.tables.draft(name));
    if (!(id instanceof Uint8Array) || !Buffer.from(id.buffer, id.byteOffset, id.byteLength).equals(tableIdBytes(def))) {
      throw new RingkvError('bad_request', `replica op for table ${name} carries a table id that is not this node's id of that name (a peer of another ringkv version?)`, { field: 'tableId' });
    }
    return def;
  }

  /**
   * A replica scan from another node's coordinator: the segment must lie inside one ring range this
   * node stores (in its own ring view), and is read from every local shard (ShardPool.scan).
   */
  applyReplicaScan(op: PeerReplicaScan): Promise<ScanPage> {
    try {
      const words = [op.startHi, op.startLo, op.endHi, op.endLo];
      if (!words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff)) throw new RingkvError('bad_request', 'replica scan bounds must be uint32 words');
      if (!Number.isInteger(op.limit) || op.limit < 1 || op.limit > REPAIR_LIMITS.maxScanPage) {
        throw new RingkvError('bad_request', `replica scan limit must be 1..${REPAIR_LIMITS.maxScanPage}`);
      }
      if (op.after !== null && !(op.after instanceof Uint8Array)) throw new RingkvError('bad_request', 'replica scan cursor must be bytes or null');
      // Any table kind: wide-column token scans read replicas through this path too.
      const table = this.peerTable(op.table, op.tableId, 'any');
      const layout = this.d.layout();
      if (layout.tokens.length === 0) throw new RingkvError('not_owner', `node ${this.d.selfId} has no ring yet`);
      const end = { hi: op.endHi, lo: op.endLo };
      const pos = positionOf(layout, end);
      const n = layout.tokens.length;
      const prev = layout.tokens[(pos + n - 1) % n]!;
      // (start, end] must lie inside the range holding `end`: the shard stores whole ranges only.
      if (!segmentWithinRange(prev, layout.tokens[pos]!, { hi: op.startHi, lo: op.startLo }, end)) {
        throw new RingkvError('not_owner', `scan segment does not lie inside one ring range in node ${this.d.selfId}'s ring view`);
      }
      const self = this.d.replicasOfPos(layout, pos).find((x) => x.local);
      if (!self) throw new RingkvError('not_owner', `node ${this.d.selfId} is not a replica of that range in its ring view`);
      this.d.counters.replicaReads++;
      return this.d.shards.scan({ table: tableIdBytes(table), startHi: op.startHi, startLo: op.startLo, endHi: op.endHi, endLo: op.endLo, after: op.after, limit: op.limit });
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

/**
 * A peer's replica write, checked before it can reach storage: its mode is one this version knows,
 * its bytes decode as that mode's kind (a version record, or a CRDT state of the table's type), and
 * a table this node knows is not written with the other kind of bytes.
 */
function checkPeerRecord(op: PeerReplicaWrite, known: TableDef | undefined): void {
  const mode: unknown = op.mode;
  if (mode !== 'vclock' && mode !== 'lww' && mode !== 'crdt') throw new RingkvError('bad_request', `replica write with an unknown mode ${JSON.stringify(mode)}`, { field: 'mode' });
  if (known && (known.conflicts === 'crdt') !== (op.mode === 'crdt')) {
    throw new RingkvError('bad_request', `replica write in mode ${op.mode} for table ${known.name}, which is a ${known.conflicts} table here`, { field: 'mode' });
  }
  if (op.mode !== 'crdt') {
    decodeRecord(op.record);
    return;
  }
  const state = decodeCrdt(op.record);
  if (known?.type !== undefined && state.type !== known.type) throw new RingkvError('bad_request', `replica write of a ${state.type} state into ${known.type} table ${known.name}`, { field: 'record' });
}
