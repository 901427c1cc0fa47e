/**
 * The replica side of wide-column tables, and how a coordinator reaches a replica: on this node, the
 * partition's shard (placement by token) through the shard's `cell-write` / `slice` ops; on another
 * node, the peer services registered here (`wide-write`, `wide-slice`), which check what they are
 * asked (replica of the token in this node's ring view, the table's live storage id, bounds) before
 * a shard sees it; the shard refuses a mutation whole if any record is not a cell record.
 * `wide-schema` takes a DDL's schema pushed by its coordinator. `wide-counter` applies a counter
 * column's increment at this node's replica (the coordinating replica of a counter update,
 * wide-counter.ts): a CRDT apply in the shard actor, at the cell's storage key.
 *
 * Mutations and slice pages cross both the worker boundary and the peer port packed
 * (storage/wide-wire.ts): one byte string, not an array of small ones.
 *
 * A partition's mutation is ONE message and ONE shard op: its entries share the token, hence the
 * replicas and the local shard, and are merged per key with the cell rule in one WriteBatch.
 */
import type { Cluster } from '../cluster/cluster.js';
import { DEFAULT_CRDT_LIMITS, parseOp, type CrdtLimits } from '../crdt/index.js';
import type { Logger } from '../log/logger.js';
import { encodeApplyRequest } from '../storage/crdt-shard.js';
import type { PackedSlicePage, ShardResult } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { packCellWrite, packSlice, unpackCellWrite, unpackEntries } from '../storage/wide-wire.js';
import { detachedBytes } from '../util/bytes.js';
import { RingkvError, asRingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { parseRowSuffix, TAG_ROW } from '../wide/layout.js';
import { isCounterTable } from '../wide/schema.js';
import { SLICE_LIMITS, type SlicePage, type SuffixRange } from '../wide/slice.js';
import { peerApplyReply, shardApplyOutcome, type ApplyOutcome, type PeerCrdtApplyReply } from './crdt-replicas.js';
import type { Router } from './router.js';
import type { Replica } from './types.js';
import type { WideTableRegistry } from './wide-tables.js';
import { wideWriteMessage, type WideCounterBody, type WideSliceBody, type WideWriteBody } from './wide-protocol.js';

const SHARD_CODES: ReadonlySet<string> = new Set(['bad_request', 'not_owner', 'overloaded', 'unavailable', 'too_large', 'conflict']);

function shardError(r: ShardResult & { ok: false }): RingkvError {
  return new RingkvError((SHARD_CODES.has(r.code) ? r.code : 'internal') as ErrorCode, r.message);
}

function bytes(v: unknown, what: string): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new RingkvError('bad_request', `${what} must be bytes`);
  return v;
}

function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new RingkvError('bad_request', `${what} must be a string`);
  return v;
}

export class WideReplicas {
  constructor(
    private readonly o: {
      cluster: Cluster;
      router: Router;
      shards: ShardPool;
      wide: WideTableRegistry;
      log: Logger;
      /** Bounds of the counter states counter columns keep (config crdt.*). */
      crdtLimits?: CrdtLimits;
    },
  ) {}

  /** Serve the replica side for peers. */
  register(): void {
    const c = this.o.cluster;
    c.registerService('wide-write', async (b) => ({ changed: await this.applyWriteBody(str(b['table'], 'table'), bytes(b['body'], 'body')) }));
    c.registerService('wide-slice', async (b) => {
      const body: WideSliceBody = {
        table: str(b['table'], 'table'),
        tableId: bytes(b['tableId'], 'tableId'),
        key: bytes(b['key'], 'key'),
        ranges: b['ranges'] as SuffixRange[],
        reverse: b['reverse'] === true,
        after: b['after'] === null || b['after'] === undefined ? null : bytes(b['after'], 'after'),
        rowLimit: b['rowLimit'] as number,
        byteLimit: b['byteLimit'] as number,
        withDeletions: b['withDeletions'] === true,
      };
      return this.applySlice(body);
    });
    c.registerService('wide-counter', (b) => this.onPeerCounter(b));
    c.registerService('wide-schema', async (b) => {
      if (!this.o.wide.adoptEncoded(b['schema'])) throw new RingkvError('bad_request', 'wide-schema carries no schema this node accepts');
      return { ok: true };
    });
  }

  /**
   * The partition's token and this node's standing as its replica (for a write, a pending replica of
   * a range movement under way counts: it takes writes too); refuses a table id that is not the live
   * incarnation here.
   */
  private local(table: string, tableId: Uint8Array, key: Uint8Array, forWrite: boolean): { hi: number; lo: number; shard: number } {
    const { hi, lo, replicas } = this.o.router.replicasOf(key);
    const stores = forWrite ? this.o.router.storesToken(hi, lo, replicas) : replicas.some((r) => r.local);
    if (!stores) throw new RingkvError('not_owner', `node ${this.o.router.selfId} is not a replica of this partition in its ring view`);
    const live = this.o.wide.get(table);
    if (!live) throw new RingkvError('unavailable', `table ${table} is not a live wide-column table on node ${this.o.router.selfId} (its schema has not arrived, or the table was dropped)`);
    if (!Buffer.from(tableId.buffer, tableId.byteOffset, tableId.byteLength).equals(Buffer.from(live.id, 'hex'))) {
      throw new RingkvError('conflict', `table ${table}: the write names another incarnation than node ${this.o.router.selfId}'s live one (dropped and re-created?)`);
    }
    return { hi, lo, shard: this.o.shards.shardOf(hi) };
  }

  /**
   * A partition mutation arriving for this node's replica (a coordinator's, a peer's, a replayed
   * hint's), packed: its table id and partition key are checked here, its entries (cell records,
   * bounded count) by the shard, which refuses the whole mutation if any is malformed.
   */
  async applyWriteBody(table: string, body: Uint8Array): Promise<number> {
    let head: ReturnType<typeof unpackCellWrite>;
    try {
      head = unpackCellWrite(body);
    } catch (e) {
      throw new RingkvError('bad_request', `wide-write: ${(e as Error).message}`);
    }
    const { hi, lo, shard } = this.local(table, head.table, head.partitionKey, true);
    const r = await this.o.shards.submit(shard, { op: 'cell-write', hi, lo, body: detachedBytes(body) });
    if (!r.ok) throw shardError(r);
    invariant('repair' in r && r.repair.kind === 'cell-write', 'a cell-write answered with something else');
    return r.repair.changed;
  }

  /** One slice page of this node's replica of a partition, packed as the shard answered it (a peer gets it so). */
  async applySlice(b: WideSliceBody): Promise<PackedSlicePage> {
    const { hi, lo, shard } = this.local(b.table, b.tableId, b.key, false);
    if (!Array.isArray(b.ranges) || b.ranges.length > 10_000) throw new RingkvError('bad_request', 'slice ranges must be an array of at most 10000');
    const rowLimit = Math.min(Number(b.rowLimit) | 0, SLICE_LIMITS.maxRowsPerPage);
    const byteLimit = Math.min(Number(b.byteLimit) | 0, SLICE_LIMITS.maxPageBytes);
    if (rowLimit < 1 || byteLimit < 1) throw new RingkvError('bad_request', 'slice limits must be positive');
    for (const x of b.ranges) if (!x || !(x.start instanceof Uint8Array) || !(x.end instanceof Uint8Array)) throw new RingkvError('bad_request', 'slice ranges need start and end bytes');
    const r = await this.o.shards.submit(shard, { op: 'slice', hi, lo, body: packSlice(b.tableId, b.key, b.after, b.ranges), reverse: b.reverse, rowLimit, byteLimit, withDeletions: b.withDeletions });
    if (!r.ok) throw shardError(r);
    invariant('repair' in r && r.repair.kind === 'slice', 'a slice answered with something else');
    return r.repair.page;
  }

  /**
   * Apply a counter increment (`request`: encodeApplyRequest bytes of a counter operation) at this
   * node's replica of the cell, in its shard actor; `cb` gets the cell's new state, or why nothing
   * was applied (definite) or whether it may have been (a lost shard answer).
   */
  applyCounter(b: WideCounterBody, request: Uint8Array, cb: (o: ApplyOutcome) => void): void {
    let at: { hi: number; lo: number };
    try {
      at = this.local(b.table, b.tableId, b.key, false);
      this.checkCounterCell(b.table, b.suffix);
    } catch (e) {
      return void queueMicrotask(() => cb({ ok: false, definite: true, err: asRingkvError(e) }));
    }
    this.o.shards.crdtApply(b.tableId, b.key, at.hi, at.lo, request, (res) => cb(shardApplyOutcome(res)), b.suffix);
  }

  /** The suffix names a counter column's cell of a live counter table here (a peer's input: checked before a shard sees it). */
  private checkCounterCell(table: string, suffix: Uint8Array): void {
    const s = this.o.wide.schema(table);
    if (!s || s.dropped || !isCounterTable(s)) throw new RingkvError('bad_request', `table ${table} has no counter columns on node ${this.o.router.selfId}`, { table });
    let name: string | null = null;
    try {
      const p = parseRowSuffix(suffix);
      if (p.kind === 'cell' && suffix[0] === TAG_ROW) name = Buffer.from(p.name!).toString('utf8');
    } catch {
      name = null;
    }
    if (name === null || !s.regular.some((c) => c.name === name && c.type === 'counter')) throw new RingkvError('bad_request', 'a counter increment must name a counter column\'s cell', { table });
  }

  /** Another coordinator's counter increment for this node's replica; failures answered in the body as crdt-apply's are. */
  private async onPeerCounter(b: Record<string, unknown>): Promise<PeerCrdtApplyReply> {
    let outcome: ApplyOutcome;
    try {
      const body: WideCounterBody = {
        table: str(b['table'], 'table'),
        tableId: bytes(b['tableId'], 'tableId'),
        key: bytes(b['key'], 'key'),
        suffix: bytes(b['suffix'], 'suffix'),
        delta: b['delta'] as number,
      };
      const request = encodeApplyRequest('counter', parseOp('counter', { increment: body.delta }, this.o.crdtLimits ?? DEFAULT_CRDT_LIMITS));
      outcome = await new Promise<ApplyOutcome>((resolve) => this.applyCounter(body, request, resolve));
    } catch (e) {
      outcome = { ok: false, definite: true, err: asRingkvError(e) };
    }
    return peerApplyReply(outcome);
  }

  /** Ask a remote replica to apply a counter increment (`wide-counter`); its answer as a PeerCrdtApplyReply. */
  requestCounter(nodeId: string, b: WideCounterBody, timeoutMs: number): Promise<unknown> {
    return this.o.cluster.request(nodeId, { t: 'wide-counter', ...b }, timeoutMs);
  }

  /** Write a partition mutation to one replica (this node's shard, or a peer's). */
  write(r: Replica, b: WideWriteBody, timeoutMs: number): Promise<number> {
    if (r.local) return this.applyWriteBody(b.table, packCellWrite(b.tableId, b.key, b.entries));
    return this.o.cluster.request(r.nodeId, wideWriteMessage(b), timeoutMs).then((x) => Number((x as { changed?: unknown }).changed) || 0);
  }

  /** One slice page of one replica, unpacked (views into the reply). */
  async slice(r: Replica, b: WideSliceBody, timeoutMs: number): Promise<SlicePage> {
    const page = r.local ? await this.applySlice(b) : ((await this.o.cluster.request(r.nodeId, { t: 'wide-slice', ...b }, timeoutMs)) as Partial<PackedSlicePage> | null);
    return unpackSlicePage(page);
  }

  /** Push a DDL's schema (encoded) to one node; resolves when that node has merged it. */
  async pushSchema(nodeId: string, schema: string, timeoutMs: number): Promise<void> {
    await this.o.cluster.request(nodeId, { t: 'wide-schema', schema }, timeoutMs);
  }
}

/** A packed slice page (a shard's, or a peer's: checked before the merge trusts it) as entries. */
export function unpackSlicePage(p: Partial<PackedSlicePage> | null): SlicePage {
  if (p === null || typeof p !== 'object' || !(p.entries instanceof Uint8Array)) throw new RingkvError('internal', 'slice page without packed entries');
  const next = p.next ?? null;
  if (next !== null && !(next instanceof Uint8Array)) throw new RingkvError('internal', 'slice page cursor is not bytes');
  const dels = p.deletions ?? null;
  if (dels !== null && !(dels instanceof Uint8Array)) throw new RingkvError('internal', 'slice page deletions are not packed bytes');
  try {
    return { deletions: dels === null ? null : unpackEntries(dels), entries: unpackEntries(p.entries), next };
  } catch (e) {
    throw new RingkvError('internal', `malformed slice page: ${(e as Error).message}`);
  }
}
