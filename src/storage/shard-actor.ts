/**
 * The group-commit core of a shard actor: one turn's reads and writes (from the data wire) and
 * control ops (from the control plane) applied against this shard's column family in one multi-get,
 * the merges in mailbox order, one WriteBatch (fsynced first under `durability: sync`), then the
 * replies: wire replies into `replyWire`, control answers returned. Every committed change of a
 * key's stored record is reported through the digest-change hook once the batch is durable (the
 * worker keeps its Merkle trees with it); the dead-record index is kept here.
 *
 * Placement: this shard stores exactly the tokens whose placement shard is its own (a fixed
 * function of the token, placement.ts) among those this node replicates; anything else routed here
 * by a stale view is refused with not_owner.
 *
 * Over (db, column, ring, trees) and ports, with no thread, timer or message port of its own: the
 * worker entry (workers/shard.ts) drains its mailbox into `processOps` and schedules the background
 * runs (tree rebuild, sweep, cleanup) that the ports start, so this is unit-tested on a temp RocksDB.
 * This is the path of every read and write: per op it allocates nothing beyond what the merge needs.
 */
import { countKeys, fsyncedCommitCount, readRowsSync, SyncWriteBatch, type ColumnHandle, type RocksDB } from './rocks.js';
import { encodeStorageKey, MIN_STORAGE_KEY_BYTES, TABLE_ID_BYTES, type KeyBounds } from './keys.js';
import { DeadRecordIndex } from './tombstone-sweep.js';
import { KeySlots } from './key-slots.js';
import type { ShardTrees } from './shard-trees.js';
import { OpError, ShardQueries } from './shard-queries.js';
import { localShardOf, shardOfToken, type ReplicaView } from './placement.js';
import {
  REPAIR_LIMITS,
  type CellWriteOp,
  type CleanupOp,
  type DataOp,
  type RepairResult,
  type ShardOp,
  type ShardResult,
  type ShardWorkerData,
} from './shard-protocol.js';
import { WIRE_CRDT_APPLY, WIRE_READ, WireReplyWriter, type WireRequest } from './shard-wire.js';
import { applyCrdtRequest, type CrdtShardContext } from './crdt-shard.js';
import type { Hash64 } from '../merkle/index.js';
import { asBuffer } from '../util/bytes.js';
import { RingkvError } from '../util/errors.js';
import { decodeRecord, encodeRecord, hash64, isDead, isSingleVersionRecord, mergeVersions, versionsEqual, type Version } from '../versions/index.js';
import type { ConflictMode, TableMode } from '../config/config.js';
import { isSweepCandidate, mergeStoredRecords, validateRecord } from './records.js';
import { cellWriteKeys, slicePage, WideOpError } from './wide-shard.js';

/** Dead records one shard tracks for the sweep (~100 bytes each); more and sweeps scan everything. */
export const MAX_DEAD_INDEX = 200_000;

/** The worker settings the group commit reads, and the CRDT context ops are applied under. */
export type ShardActorSettings = Pick<ShardWorkerData, 'shard' | 'shards' | 'durability' | 'maxSiblings' | 'merkleDepth' | 'gcGraceSeconds'> & { crdt: CrdtShardContext };

/** What the actor reports to, and asks of, the worker around it. */
export interface ShardActorPorts {
  /** First in every turn: adopt a ring published since the last one (and schedule the tree rebuild it may need). */
  checkRing(): void;
  /**
   * The digest-change hook: key's stored record changed from `before` to `after` (null: absent),
   * called once the batch holding the change is durable in the WAL, so the trees describe what is stored.
   */
  digestChanged(key: Buffer, before: Hash64 | null, after: Hash64 | null): void;
  /** A `sweep` op: start (or join) a tombstone sweep that answers op `id` when it finishes. */
  requestSweep(id: number): void;
  /** A `cleanup` op: start (or join) a cleanup run that answers `op.id` when it finishes. */
  requestCleanup(op: CleanupOp): void;
  /** Control ops waiting in the mailbox (a stats answer reports it). */
  queuedOps(): number;
}

type ControlOp = Exclude<DataOp, { op: 'repair-write' } | { op: 'cell-write' } | { op: 'sweep' } | { op: 'cleanup' }>;

export class ShardActor {
  /** Wire replies of the current turn; the worker sends them and resets it. */
  readonly replyWire = new WireReplyWriter();
  /** Records whose versions are all tombstones: what the sweep visits once a full scan filled it. */
  readonly deadIndex = new DeadRecordIndex(MAX_DEAD_INDEX);
  keyCount = 0;
  private writes = 0;
  private reads = 0;
  private batches = 0;
  private purgedTotal = 0;
  /** Wide-column tables with a gc grace of their own (storage id hex → seconds; `table-grace` ops keep it current). */
  private tableGraces = new Map<string, number>();
  private readonly writeBatch: SyncWriteBatch;
  private readonly queries: ShardQueries;
  private readonly shard: number;
  private readonly shards: number;
  private readonly syncCommits: boolean;
  private readonly maxSiblings: number;
  private readonly gcGraceSeconds: number;
  private readonly crdtCtx: CrdtShardContext;

  constructor(
    private readonly db: RocksDB,
    private readonly column: ColumnHandle,
    private readonly ring: ReplicaView,
    private readonly trees: ShardTrees,
    settings: ShardActorSettings,
    private readonly ports: ShardActorPorts,
  ) {
    this.shard = settings.shard;
    this.shards = settings.shards;
    this.syncCommits = settings.durability === 'sync';
    this.maxSiblings = settings.maxSiblings;
    this.gcGraceSeconds = settings.gcGraceSeconds;
    this.crdtCtx = settings.crdt;
    this.writeBatch = new SyncWriteBatch(db, column);
    this.queries = new ShardQueries(settings.shard, settings.merkleDepth, trees, { readChunk: (b, a, l) => this.readChunk(b, a, l), getMany: (keys) => this.getMany(keys), digest: hash64 });
  }

  /** Count the stored keys (at start; commits keep the count after that). */
  async countKeys(): Promise<number> {
    this.keyCount = await countKeys(this.db, this.column);
    return this.keyCount;
  }

  /**
   * Up to `limit` (key, value) rows of `bounds` after `after` (exclusive), read synchronously through
   * a fresh iterator: the rows reflect every batch committed so far, and nothing can be written while
   * they are read (this thread is the only writer).
   */
  readChunk(bounds: KeyBounds, after: Buffer | null, limit: number): Buffer[] {
    return readRowsSync(this.db, { column: this.column, ...(after !== null ? { gt: after } : bounds.gte ? { gte: bounds.gte } : {}), ...(bounds.lt ? { lt: bounds.lt } : {}) }, limit);
  }

  /** The stored records of `keys` (undefined: absent). */
  getMany(keys: Buffer[]): Array<Buffer | undefined> {
    return this.db._getManySync(keys, { column: this.column });
  }

  /** The gc grace of the table a storage key belongs to. */
  graceSecondsOf(key: Buffer): number {
    if (this.tableGraces.size === 0) return this.gcGraceSeconds;
    return this.tableGraces.get(key.toString('hex', 8, 8 + TABLE_ID_BYTES)) ?? this.gcGraceSeconds;
  }

  /**
   * Does this shard store token (hi, lo) under the current ring: is it localShardOf's answer? (The
   * placement check first: it is free, the replica check is a binary search.)
   */
  ownsToken(hi: number, lo: number): boolean {
    return shardOfToken(hi, this.shards) === this.shard && localShardOf(this.ring, hi, lo, this.shards) === this.shard;
  }

  /**
   * Delete these (key, stored record) rows in one batch (the sweep's purges, a cleanup's ranges):
   * out of the Merkle trees, the dead-record index and the key count once the batch is committed.
   */
  deleteStored(rows: ReadonlyArray<readonly [Buffer, Buffer]>): void {
    for (const [k] of rows) this.writeBatch.del(k);
    this.writeBatch.commit(this.syncCommits);
    for (const [k, v] of rows) {
      this.ports.digestChanged(k, hash64(v), null);
      this.deadIndex.forget(k);
    }
    this.keyCount -= rows.length;
  }

  /** The sweep's purge: deleteStored, counted as purged tombstones. */
  purge(rows: ReadonlyArray<readonly [Buffer, Buffer]>): void {
    this.deleteStored(rows);
    this.purgedTotal += rows.length;
  }

  /**
   * One group commit: every read and write (`data`, from the wire) and control op of this turn. One
   * multi-get serves all of them; merges run in order; one WriteBatch persists every changed key;
   * wire replies go into `replyWire`, control replies are returned (a sweep or cleanup op is
   * answered later, by the run the ports start).
   */
  processOps(data: WireRequest[], ops: ShardOp[]): ShardResult[] {
    this.batches++;
    this.ports.checkRing();
    const replies: Array<ShardResult | undefined> = new Array<ShardResult | undefined>(ops.length);
    // Encode every key once; one multi-get serves every read and every read-modify-write in the batch.
    const keySlots = new KeySlots();
    const keys = keySlots.keys;
    const dataSlot = new Int32Array(data.length).fill(-1);
    for (let i = 0; i < data.length; i++) {
      const d = data[i]!;
      if (this.ownsToken(d.hi, d.lo)) dataSlot[i] = keySlots.slotOf(encodeStorageKey(d.hi, d.lo, d.table, d.key, d.kind === WIRE_CRDT_APPLY ? d.suffix : undefined));
    }
    const entrySlots: Array<Int32Array | undefined> = new Array<Int32Array | undefined>(ops.length);
    /** A cell-write's storage keys and records (the op's entries, validated), by op index. */
    const cellWrites: Array<Array<{ key: Buffer; record: Buffer }> | undefined> = new Array<Array<{ key: Buffer; record: Buffer }> | undefined>(ops.length);
    /** A repair-write's entries decoded, by op index: versions, or null for a cell record (checked, merged as bytes). */
    const entryVersions: Array<Array<Version[] | null> | undefined> = new Array<Array<Version[] | null> | undefined>(ops.length);
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      if (op.op === 'cell-write') {
        const entries = this.cellWriteEntries(op);
        if (!Array.isArray(entries)) {
          replies[i] = { id: op.id, ok: false, ...entries };
          continue;
        }
        cellWrites[i] = entries;
        entrySlots[i] = Int32Array.from(entries, (e) => keySlots.slotOf(e.key));
        continue;
      }
      if (op.op === 'repair-write') {
        if (!Array.isArray(op.entries) || op.entries.length > REPAIR_LIMITS.maxKeysPerOp) {
          replies[i] = { id: op.id, ok: false, code: 'bad_request', message: `repair-write takes at most ${REPAIR_LIMITS.maxKeysPerOp} entries` };
          continue;
        }
        // Entries that carry stored bytes (repair, range streaming) are decoded (or, cell records and
        // CRDT states, checked) here, all before any is applied: one that does not decode as its
        // mode says fails the op and nothing of it is written. (null: merged as bytes.)
        const decoded: Array<Version[] | null> = [];
        try {
          for (const entry of op.entries) {
            if (!('record' in entry)) decoded.push(entry.versions);
            else if (entry.mode === 'cell' || entry.mode === 'crdt') {
              validateRecord(entry.mode, entry.record);
              decoded.push(null);
            } else decoded.push(decodeRecord(entry.record));
          }
        } catch (e) {
          replies[i] = { id: op.id, ok: false, code: 'bad_request', message: `repair-write: an entry does not decode: ${(e as Error).message}` };
          continue;
        }
        entryVersions[i] = decoded;
        const slots = new Int32Array(op.entries.length).fill(-1);
        for (let e = 0; e < op.entries.length; e++) {
          const k = asBuffer(op.entries[e]!.key);
          // A repaired key this shard does not own under the current ring is refused like any write.
          if (k.length >= MIN_STORAGE_KEY_BYTES && this.ownsToken(k.readUInt32BE(0), k.readUInt32BE(4))) slots[e] = keySlots.slotOf(k);
        }
        entrySlots[i] = slots;
      }
    }
    const raw = keys.length > 0 ? this.getMany(keys) : [];
    // Stored state per key, decoded lazily: `stored[i]` is the record bytes that will be stored (or
    // are: raw[i]) and `current[i]` its versions once something needed them.
    const stored: Array<Buffer | undefined> = raw.slice();
    const current: Array<Version[] | null | undefined> = new Array<Version[] | null | undefined>(keys.length);
    const dirty = new Uint8Array(keys.length);
    const versionsAt = (idx: number): Version[] => {
      let v = current[idx];
      if (v === undefined) {
        const b = stored[idx];
        v = b === undefined ? null : decodeRecord(b);
        current[idx] = v;
      }
      return v ?? [];
    };
    /** Merge one record into key `idx` with its table's mode; true when what is stored changed. */
    const mergeRecord = (idx: number, mode: TableMode, record: Uint8Array): boolean => {
      if (mode === 'cell' || mode === 'crdt') return this.mergeBytes(idx, mode, record, stored, current, dirty);
      const before = versionsAt(idx);
      const merged = mergeVersions(mode, before, decodeRecord(record), this.maxSiblings);
      if (versionsEqual(merged, before)) return false;
      current[idx] = merged;
      stored[idx] = undefined;
      dirty[idx] = 1;
      return true;
    };

    for (let i = 0; i < data.length; i++) this.applyWire(data[i]!, dataSlot[i]!, stored, current, versionsAt, dirty);
    for (let i = 0; i < ops.length; i++) {
      if (replies[i]) continue;
      const op = ops[i]!;
      if (op.op === 'repair-write') {
        const slots = entrySlots[i]!;
        let changed = 0;
        let notOwner = 0;
        let refused = 0;
        for (let e = 0; e < op.entries.length; e++) {
          const idx = slots[e]!;
          if (idx < 0) {
            notOwner++;
            continue;
          }
          this.writes++;
          const entry = op.entries[e]!;
          const versions = entryVersions[i]![e]!;
          if (versions === null) {
            try {
              if (mergeRecord(idx, entry.mode, (entry as { record: Uint8Array }).record)) changed++;
            } catch {
              refused++; // a CRDT state of another type than the stored one: neither overwritten nor merged
            }
            continue;
          }
          const before = versionsAt(idx);
          const merged = mergeVersions(entry.mode as ConflictMode, before, versions, this.maxSiblings);
          if (!versionsEqual(merged, before)) {
            current[idx] = merged;
            stored[idx] = undefined;
            dirty[idx] = 1;
            changed++;
          }
        }
        replies[i] = { id: op.id, ok: true, repair: { kind: 'repair-write', changed, notOwner, ...(refused > 0 ? { refused } : {}) } };
      } else if (op.op === 'cell-write') {
        const slots = entrySlots[i]!;
        const entries = cellWrites[i]!;
        let changed = 0;
        for (let e = 0; e < entries.length; e++) {
          this.writes++;
          if (mergeRecord(slots[e]!, 'cell', entries[e]!.record)) changed++;
        }
        replies[i] = { id: op.id, ok: true, repair: { kind: 'cell-write', changed } };
      }
    }

    if (dirty.some((d) => d === 1)) {
      const fresh: Array<Hash64 | null> = new Array<Hash64 | null>(keys.length).fill(null);
      for (let i = 0; i < keys.length; i++) {
        if (dirty[i] !== 1) continue;
        const cur = current[i];
        const enc = stored[i] ?? encodeRecord(cur!);
        this.writeBatch.put(keys[i]!, enc);
        fresh[i] = hash64(enc);
        if (raw[i] === undefined) this.keyCount++;
        this.deadIndex.note(keys[i]!, cur ? isDead(cur) : isSweepCandidate(enc));
      }
      this.writeBatch.commit(this.syncCommits);
      // Only after the batch is durable in the WAL: the trees describe what is stored. The stored
      // bytes are canonical (encodeRecord), so hashing them equals recordDigest of the versions.
      for (let i = 0; i < keys.length; i++) {
        if (dirty[i] !== 1) continue;
        const before = raw[i];
        this.ports.digestChanged(keys[i]!, before === undefined ? null : hash64(before), fresh[i]!);
      }
    }

    // Control ops answer after the batch, so they see this turn's writes.
    for (let i = 0; i < ops.length; i++) {
      if (replies[i]) continue;
      const op = ops[i]!;
      if (op.op === 'repair-write' || op.op === 'cell-write') continue;
      if (op.op === 'stats') {
        replies[i] = {
          id: op.id,
          ok: true,
          stats: {
            shard: this.shard,
            keys: this.keyCount,
            writes: this.writes,
            reads: this.reads,
            batches: this.batches,
            walSyncs: fsyncedCommitCount(),
            queue: this.ports.queuedOps(),
            merkleRanges: this.trees.all.length,
            merkleReady: this.trees.all.filter((t) => t.done).length,
            merkleRebuilds: this.trees.rebuilds,
            tombstonesPurged: this.purgedTotal,
          },
        };
        continue;
      }
      if (op.op === 'cleanup') {
        this.ports.requestCleanup(op); // answered when the run finishes
        continue;
      }
      if (op.op === 'sweep') {
        this.ports.requestSweep(op.id); // answered when the sweep finishes
        continue;
      }
      try {
        replies[i] = { id: op.id, ok: true, repair: this.control(op) };
      } catch (e) {
        if (!(e instanceof OpError)) throw e;
        replies[i] = { id: op.id, ok: false, code: e.code, message: e.message };
      }
    }
    return replies.filter((r): r is ShardResult => r !== undefined);
  }

  /**
   * One wire read or write against this turn's state. Writes merge into what is stored; a write of a
   * single version to an absent key stores the router's record bytes as they came (the merge of one
   * version into nothing is that version, and encodeRecord is canonical, so the bytes are identical).
   */
  private applyWire(
    d: WireRequest,
    idx: number,
    stored: Array<Buffer | undefined>,
    current: Array<Version[] | null | undefined>,
    versionsAt: (idx: number) => Version[],
    dirty: Uint8Array,
  ): void {
    if (idx < 0) {
      this.replyWire.error(d.id, 'not_owner', `shard ${this.shard} does not own this key's token on this node`);
      return;
    }
    if (d.kind === WIRE_READ) {
      this.reads++;
      const b = stored[idx];
      // Bytes of a key written earlier this turn, or as read from RocksDB: canonical either way. A key
      // merged this turn is encoded once, here, and the commit stores these same bytes.
      const cur = current[idx];
      if (b === undefined && cur) stored[idx] = encodeRecord(cur);
      this.replyWire.ok(d.id, stored[idx] ?? null, false);
      return;
    }
    this.writes++;
    if (d.kind === WIRE_CRDT_APPLY || d.mode === 'crdt') return this.crdtWire(d, idx, stored, current, dirty);
    if (current[idx] === undefined && stored[idx] === undefined && isSingleVersionRecord(d.record)) {
      stored[idx] = Buffer.from(d.record); // a copy: the view's message buffer is not ours to keep
      dirty[idx] = 1;
      this.replyWire.ok(d.id, d.returnMerged ? d.record : null, true);
      return;
    }
    let incoming: Version[];
    try {
      incoming = decodeRecord(d.record);
    } catch (e) {
      this.replyWire.error(d.id, 'bad_request', (e as Error).message);
      return;
    }
    const before = versionsAt(idx);
    const merged = mergeVersions(d.mode, before, incoming, this.maxSiblings);
    const changed = !versionsEqual(merged, before);
    if (changed) {
      current[idx] = merged;
      // Encoded once when the reply carries it: the commit stores these same bytes.
      stored[idx] = d.returnMerged ? encodeRecord(merged) : undefined;
      dirty[idx] = 1;
    }
    this.replyWire.ok(d.id, d.returnMerged ? (stored[idx] ?? encodeRecord(current[idx] ?? merged)) : null, changed);
  }

  /**
   * Merge a cell record or a CRDT state into what key `idx` stores, as bytes (storage/records.ts);
   * true when that changed it. Throws on bytes of another family or CRDT type than the stored ones.
   */
  private mergeBytes(idx: number, mode: 'cell' | 'crdt', incoming: Uint8Array, stored: Array<Buffer | undefined>, current: Array<Version[] | null | undefined>, dirty: Uint8Array): boolean {
    const cur = storedBytesAt(idx, stored, current);
    const merged = mergeStoredRecords(mode, cur, incoming, this.maxSiblings);
    if (merged === cur) return false;
    // A copy: the incoming bytes may be a view into a message buffer that is not ours to keep.
    stored[idx] = Buffer.from(merged);
    current[idx] = undefined;
    dirty[idx] = 1;
    return true;
  }

  /**
   * A CRDT operation applied at this (the coordinating) replica, or a replica write of a CRDT state
   * (crdt-shard.ts). The apply answers with the new state, which the router replicates; an
   * operation that cannot apply answers its error (with details: precondition, limit) and changes nothing.
   */
  private crdtWire(
    d: Exclude<WireRequest, { kind: typeof WIRE_READ }>,
    idx: number,
    stored: Array<Buffer | undefined>,
    current: Array<Version[] | null | undefined>,
    dirty: Uint8Array,
  ): void {
    try {
      if (d.kind === WIRE_CRDT_APPLY) {
        const next = Buffer.from(applyCrdtRequest(d.request, storedBytesAt(idx, stored, current), this.crdtCtx));
        stored[idx] = next;
        current[idx] = undefined;
        dirty[idx] = 1;
        this.replyWire.ok(d.id, next, true);
        return;
      }
      const changed = this.mergeBytes(idx, 'crdt', d.record, stored, current, dirty);
      this.replyWire.ok(d.id, d.returnMerged ? (stored[idx] ?? null) : null, changed);
    } catch (e) {
      if (e instanceof RingkvError) this.replyWire.error(d.id, e.code, e.message, e.details);
      else this.replyWire.error(d.id, 'bad_request', (e as Error).message);
    }
  }

  /** A cell-write's keys, or why it is refused (wrong shard for the token, malformed input). */
  private cellWriteEntries(op: CellWriteOp): Array<{ key: Buffer; record: Buffer }> | { code: string; message: string } {
    if (Number.isInteger(op.hi) && Number.isInteger(op.lo) && !this.ownsToken(op.hi >>> 0, op.lo >>> 0)) {
      return { code: 'not_owner', message: `shard ${this.shard} does not own this partition's token on this node` };
    }
    try {
      return cellWriteKeys(op);
    } catch (e) {
      if (e instanceof WideOpError) return { code: 'bad_request', message: e.message };
      throw e;
    }
  }

  /** A control op answered at once (after the turn's commit); throws OpError to refuse it. */
  private control(op: ControlOp): RepairResult {
    switch (op.op) {
      case 'merkle-roots':
        return this.queries.merkleRoots();
      case 'merkle-tree':
        return this.queries.merkleTree(op.range);
      case 'merkle-nodes':
        return this.queries.merkleNodes(op);
      case 'leaf-keys':
        return this.queries.leafKeys(op);
      case 'fetch-keys':
        return this.queries.fetchKeys(op);
      case 'scan':
        return this.queries.scan(op);
      case 'stream-page':
        return this.queries.streamPage(op);
      case 'slice': {
        if (!this.ownsToken(op.hi >>> 0, op.lo >>> 0)) throw new OpError('not_owner', `shard ${this.shard} does not own this partition's token on this node`);
        try {
          return { kind: 'slice', page: slicePage(this.db, this.column, op) };
        } catch (e) {
          if (e instanceof WideOpError) throw new OpError('bad_request', e.message);
          if (e instanceof RingkvError) throw new OpError(e.code, e.message);
          throw e;
        }
      }
      case 'table-grace':
        if (!Array.isArray(op.graces)) throw new OpError('bad_request', 'table-grace needs graces');
        this.tableGraces = new Map(op.graces.filter(([id, s]) => typeof id === 'string' && Number.isSafeInteger(s) && s >= 0));
        return { kind: 'table-grace' };
      default: {
        const never: never = op;
        throw new OpError('bad_request', `unknown shard op ${JSON.stringify((never as { op: unknown }).op)}`);
      }
    }
  }
}

/**
 * The bytes a key holds, as this turn left them (a key whose versions were decoded this turn holds a
 * version record: a cell or CRDT merge then refuses it as of the wrong family).
 */
function storedBytesAt(idx: number, stored: Array<Buffer | undefined>, current: Array<Version[] | null | undefined>): Uint8Array | undefined {
  const cur = current[idx];
  return stored[idx] ?? (cur ? encodeRecord(cur) : undefined);
}
