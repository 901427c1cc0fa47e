/**
 * The replica side of wide-column tables, and how a coordinator reaches a replica: on this node, the
 * partition's shard (placement by token) through the shard's `cell-write` / `slice` ops; on another
 * node, the peer services registered here (`wide-write`, `wide-slice`), which check what they are
 * asked (replica of the token in this node's ring view, the table's live storage id, cell records,
 * bounds) before a shard sees it. `wide-schema` takes a DDL's schema pushed by its coordinator.
 *
 * A partition's mutation is ONE message and ONE shard op: its entries share the token, hence the
 * replicas and the local shard, and are merged per key with the cell rule in one WriteBatch.
 */
import type { Cluster } from '../cluster/cluster.js';
import type { Logger } from '../log/logger.js';
import type { ShardResult } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { MAX_CELL_WRITE_ENTRIES } from '../storage/wide-shard.js';
import { packCellWrite, packSlice, unpackEntries } from '../storage/wide-wire.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { cellKindOf } from '../wide/cell.js';
import { SLICE_LIMITS, type SliceRequest, type SlicePage, type SuffixRange } from '../wide/slice.js';
import type { StoredEntry } from '../wide/reader.js';
import type { Replica, Router } from './router.js';
import type { WideTableRegistry } from './wide-tables.js';

/** One partition's mutation as it crosses the peer port (and as a hint replays it). */
export interface WideWriteBody {
  table: string;
  /** The table's storage id (its incarnation's, wide-tables.ts). */
  tableId: Uint8Array;
  /** The serialized partition key: its token places the write. */
  key: Uint8Array;
  entries: StoredEntry[];
}

/** One page of a partition slice, asked of a replica: the table, the partition, and the slice request. */
export interface WideSliceBody extends SliceRequest {
  table: string;
  tableId: Uint8Array;
  key: Uint8Array;
}

/** The peer message of a partition mutation (a coordinator's write, a replayed hint). */
export function wideWriteMessage(b: WideWriteBody): { t: 'wide-write' } & Record<string, unknown> {
  return { t: 'wide-write', table: b.table, tableId: b.tableId, key: b.key, entries: b.entries };
}

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
    },
  ) {}

  /** Serve the replica side for peers. */
  register(): void {
    const c = this.o.cluster;
    c.registerService('wide-write', async (b) => {
      const body: WideWriteBody = { table: str(b['table'], 'table'), tableId: bytes(b['tableId'], 'tableId'), key: bytes(b['key'], 'key'), entries: b['entries'] as StoredEntry[] };
      return { changed: await this.applyWrite(body) };
    });
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
    c.registerService('wide-schema', async (b) => {
      if (!this.o.wide.adoptEncoded(b['schema'])) throw new RingkvError('bad_request', 'wide-schema carries no schema this node accepts');
      return { ok: true };
    });
  }

  /** The partition's token and this node's standing as its replica; refuses a table id that is not the live incarnation here. */
  private local(table: string, tableId: Uint8Array, key: Uint8Array): { hi: number; lo: number; shard: number } {
    const { hi, lo, replicas } = this.o.router.replicasOf(key);
    if (!replicas.some((r) => r.local)) throw new RingkvError('not_owner', `node ${this.o.router.selfId} is not a replica of this partition in its ring view`);
    const live = this.o.wide.get(table);
    if (!live) throw new RingkvError('unavailable', `table ${table} is not a live wide-column table on node ${this.o.router.selfId} (its schema has not arrived, or the table was dropped)`);
    if (!Buffer.from(tableId.buffer, tableId.byteOffset, tableId.byteLength).equals(Buffer.from(live.id, 'hex'))) {
      throw new RingkvError('conflict', `table ${table}: the write names another incarnation than node ${this.o.router.selfId}'s live one (dropped and re-created?)`);
    }
    return { hi, lo, shard: this.o.shards.shardOf(hi) };
  }

  /** A partition mutation arriving for this node's replica (a coordinator's or a replayed hint's). */
  async applyWrite(b: WideWriteBody): Promise<number> {
    const { hi, lo, shard } = this.local(b.table, b.tableId, b.key);
    if (!Array.isArray(b.entries) || b.entries.length === 0 || b.entries.length > MAX_CELL_WRITE_ENTRIES) throw new RingkvError('bad_request', `a wide-write carries 1 to ${MAX_CELL_WRITE_ENTRIES} entries`);
    for (const e of b.entries) {
      if (!e || !(e.suffix instanceof Uint8Array) || !(e.record instanceof Uint8Array)) throw new RingkvError('bad_request', 'wide-write entries need suffix and record bytes');
      try {
        cellKindOf(e.record);
      } catch (err) {
        throw new RingkvError('bad_request', `wide-write: ${(err as Error).message}`);
      }
    }
    const r = await this.o.shards.submit(shard, { op: 'cell-write', hi, lo, body: packCellWrite(b.tableId, b.key, b.entries) });
    if (!r.ok) throw shardError(r);
    invariant('repair' in r && r.repair.kind === 'cell-write', 'a cell-write answered with something else');
    return r.repair.changed;
  }

  /** One slice page of this node's replica of a partition. */
  async applySlice(b: WideSliceBody): Promise<SlicePage> {
    const { hi, lo, shard } = this.local(b.table, b.tableId, b.key);
    if (!Array.isArray(b.ranges) || b.ranges.length > 10_000) throw new RingkvError('bad_request', 'slice ranges must be an array of at most 10000');
    const rowLimit = Math.min(Number(b.rowLimit) | 0, SLICE_LIMITS.maxRowsPerPage);
    const byteLimit = Math.min(Number(b.byteLimit) | 0, SLICE_LIMITS.maxPageBytes);
    if (rowLimit < 1 || byteLimit < 1) throw new RingkvError('bad_request', 'slice limits must be positive');
    for (const x of b.ranges) if (!x || !(x.start instanceof Uint8Array) || !(x.end instanceof Uint8Array)) throw new RingkvError('bad_request', 'slice ranges need start and end bytes');
    const r = await this.o.shards.submit(shard, { op: 'slice', hi, lo, body: packSlice(b.tableId, b.key, b.after, b.ranges), reverse: b.reverse, rowLimit, byteLimit, withDeletions: b.withDeletions });
    if (!r.ok) throw shardError(r);
    invariant('repair' in r && r.repair.kind === 'slice', 'a slice answered with something else');
    const p = r.repair.page;
    return { deletions: p.deletions === null ? null : unpackEntries(p.deletions), entries: unpackEntries(p.entries), next: p.next };
  }

  /** Write a partition mutation to one replica (this node's shard, or a peer's). */
  write(r: Replica, b: WideWriteBody, timeoutMs: number): Promise<number> {
    if (r.local) return this.applyWrite(b);
    return this.o.cluster.request(r.nodeId, wideWriteMessage(b), timeoutMs).then((x) => Number((x as { changed?: unknown }).changed) || 0);
  }

  /** One slice page of one replica. */
  async slice(r: Replica, b: WideSliceBody, timeoutMs: number): Promise<SlicePage> {
    if (r.local) return this.applySlice(b);
    const page = (await this.o.cluster.request(r.nodeId, { t: 'wide-slice', ...b }, timeoutMs)) as Partial<SlicePage> | null;
    return checkSlicePage(page);
  }

  /** Push a DDL's schema (encoded) to one node; resolves when that node has merged it. */
  async pushSchema(nodeId: string, schema: string, timeoutMs: number): Promise<void> {
    await this.o.cluster.request(nodeId, { t: 'wide-schema', schema }, timeoutMs);
  }
}

/** A peer's slice page, checked for shape before the merge trusts it. */
export function checkSlicePage(p: Partial<SlicePage> | null): SlicePage {
  const entries = (list: unknown, what: string): StoredEntry[] => {
    if (!Array.isArray(list)) throw new RingkvError('internal', `slice page ${what} is not a list`);
    for (const e of list as Array<Partial<StoredEntry> | null>) {
      if (!e || !(e.suffix instanceof Uint8Array) || !(e.record instanceof Uint8Array)) throw new RingkvError('internal', `slice page ${what} entry without suffix and record bytes`);
    }
    return list as StoredEntry[];
  };
  if (p === null || typeof p !== 'object') throw new RingkvError('internal', 'slice page is not an object');
  const next = p.next ?? null;
  if (next !== null && !(next instanceof Uint8Array)) throw new RingkvError('internal', 'slice page cursor is not bytes');
  return { deletions: p.deletions === null || p.deletions === undefined ? null : entries(p.deletions, 'deletions'), entries: entries(p.entries, 'entries'), next };
}
