/**
 * A shard's read-only control queries: Merkle roots, trees and node hashes, a leaf's (key, digest)
 * pages for repair, token-range scan pages, range-streaming pages and key fetches. Each is bounded
 * (REPAIR_LIMITS); bad input throws OpError with the code the router maps. Over ports (reads,
 * digests, the trees), so the queries are unit-testable without a worker; the shard actor answers
 * them in mailbox order.
 */
import type { Hash64 } from '../merkle/index.js';
import { leafTokenRuns } from '../repair/plan.js';
import { invariant } from '../util/errors.js';
import { asBuffer } from '../util/bytes.js';
import { storageKeyHasTable, TABLE_ID_BYTES, tokenRangeBounds, type KeyBounds } from './keys.js';
import { pageRange } from './range-page.js';
import { REPAIR_LIMITS, type FetchKeysOp, type LeafCursor, type LeafKeysOp, type MerkleNodesOp, type RangeRef, type RepairResult, type ScanOp, type StreamPageOp } from './shard-protocol.js';
import type { RangeTree, ShardTrees } from './shard-trees.js';

/** A shard op refused: `code` is the shard's error code (not_owner, bad_request, range_unknown, ...). */
export class OpError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ShardQueryPorts {
  /** Up to `limit` (key, record) rows of `bounds` after `after` (null: from its start), flattened. */
  readChunk(bounds: KeyBounds, after: Buffer | null, limit: number): Buffer[];
  /** The stored records of `keys` (undefined: absent). */
  getMany(keys: Buffer[]): Array<Buffer | undefined>;
  /** The digest of a stored record. */
  digest(record: Buffer): Hash64;
}

export class ShardQueries {
  constructor(
    private readonly shard: number,
    private readonly depth: number,
    private readonly trees: ShardTrees,
    private readonly ports: ShardQueryPorts,
  ) {}

  /** The tree of `range`, or range_unknown when this shard's ring view has no tree of those bounds. */
  treeFor(range: RangeRef): RangeTree {
    const rt = this.trees.get(range);
    if (!rt) throw new OpError('range_unknown', `shard ${this.shard} keeps no Merkle tree for ring range ${range ? `#${range.pos}` : '?'} (ring views differ?)`);
    return rt;
  }

  /** Every tree's root, with its range and whether its rebuild is done. */
  merkleRoots(): RepairResult {
    return {
      kind: 'merkle-roots',
      depth: this.depth,
      ringVersion: this.trees.ringVersion,
      ranges: this.trees.all.map((t) => ({ ...t.ref, ...t.tree.root(), ready: t.done })),
    };
  }

  /** The leaf hashes of `range`'s tree. */
  merkleTree(range: RangeRef): RepairResult {
    const rt = this.treeFor(range);
    return { kind: 'merkle-tree', ready: rt.done, leaves: rt.tree.serialize() };
  }

  merkleNodes(op: MerkleNodesOp): RepairResult {
    const rt = this.treeFor(op.range);
    if (!Number.isInteger(op.level) || op.level < 0 || op.level > this.depth) throw new OpError('bad_request', `level ${op.level} outside [0, ${this.depth}]`);
    if (!Array.isArray(op.indexes) || op.indexes.length > 2 ** op.level) throw new OpError('bad_request', 'indexes must be an array no longer than the level');
    let hashes: Hash64[];
    try {
      hashes = rt.tree.nodes(op.level, op.indexes);
    } catch (e) {
      throw new OpError('bad_request', (e as Error).message);
    }
    const flat = new Array<number>(2 * hashes.length);
    for (let k = 0; k < hashes.length; k++) {
      flat[2 * k] = hashes[k]!.hi;
      flat[2 * k + 1] = hashes[k]!.lo;
    }
    return { kind: 'merkle-nodes', ready: rt.done, hashes: flat };
  }

  /**
   * One page of (key, digest) for the keys in `leaves`, walking the leaves' key intervals in order.
   * The scan per call is bounded (4 pages' worth) even when a table filter skips most keys.
   */
  leafKeys(op: LeafKeysOp): RepairResult {
    const rt = this.treeFor(op.range);
    if (!rt.done) return { kind: 'leaf-keys', ready: false, entries: [], next: null };
    let runs;
    try {
      runs = leafTokenRuns(rt.start, rt.end, this.depth, op.leaves);
    } catch (e) {
      throw new OpError('bad_request', (e as Error).message);
    }
    const wanted = new Set(op.leaves);
    const intervals: KeyBounds[] = runs.flatMap((r) => tokenRangeBounds(r.start.hi, r.start.lo, r.end.hi, r.end.lo));
    const limit = Math.max(1, Math.min(op.limit | 0, REPAIR_LIMITS.maxLeafKeysPage));
    const table = op.table ?? null;
    if (table !== null && !(table instanceof Uint8Array && table.length === TABLE_ID_BYTES)) throw new OpError('bad_request', `leaf-keys table must be a ${TABLE_ID_BYTES}-byte table id`);
    const budget = 4 * limit;
    let iv = op.cursor ? op.cursor.interval : 0;
    let after: Buffer | null = op.cursor?.after ? Buffer.from(op.cursor.after) : null;
    if (!Number.isInteger(iv) || iv < 0) throw new OpError('bad_request', 'bad leaf-keys cursor');
    const entries: Array<{ key: Uint8Array; hi: number; lo: number }> = [];
    let seen = 0;
    while (iv < intervals.length && entries.length < limit && seen < budget) {
      const want = Math.min(limit - entries.length, budget - seen);
      const rows = this.ports.readChunk(intervals[iv]!, after, want);
      for (let j = 0; j < rows.length; j += 2) {
        const key = rows[j]!;
        seen++;
        after = key;
        if (table !== null && !storageKeyHasTable(key, table)) continue;
        const leaf = rt.leaves.leafOf(key.readUInt32BE(0), key.readUInt32BE(4));
        invariant(wanted.has(leaf), `leaf-keys listed a key of leaf ${leaf}, which was not asked for`);
        const d = this.ports.digest(rows[j + 1]!);
        entries.push({ key, hi: d.hi, lo: d.lo });
      }
      if (rows.length / 2 < want) {
        iv++;
        after = null;
      }
    }
    const next: LeafCursor | null = iv < intervals.length ? { interval: iv, after } : null;
    return { kind: 'leaf-keys', ready: true, entries, next };
  }

  private checkRangeWords(op: { startHi: number; startLo: number; endHi: number; endLo: number }, what: string): void {
    for (const v of [op.startHi, op.startLo, op.endHi, op.endLo]) if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new OpError('bad_request', `${what} bounds must be uint32 words`);
  }

  /** One page of a token-range scan of one table (see ScanOp). */
  scan(op: ScanOp): RepairResult {
    this.checkRangeWords(op, 'scan');
    if (!(op.table instanceof Uint8Array) || op.table.length !== TABLE_ID_BYTES) throw new OpError('bad_request', `scan table must be a ${TABLE_ID_BYTES}-byte table id`);
    const limit = Math.max(1, Math.min(op.limit | 0, REPAIR_LIMITS.maxScanPage));
    const maxBytes = Math.max(1, Math.min(op.maxBytes ?? REPAIR_LIMITS.maxFetchBytes, REPAIR_LIMITS.maxFetchBytes));
    const page = pageRange(this.ports.readChunk, { ...op, limit, maxBytes, table: op.table });
    return { kind: 'scan', rows: page.rows, next: page.next };
  }

  /** One page of every table's rows of a token range, for range streaming (see StreamPageOp). */
  streamPage(op: StreamPageOp): RepairResult {
    this.checkRangeWords(op, 'stream-page');
    if (op.after !== null && !(op.after instanceof Uint8Array)) throw new OpError('bad_request', 'stream-page cursor must be bytes or null');
    const limit = Math.max(1, Math.min(op.limit | 0, REPAIR_LIMITS.maxStreamPage));
    const maxBytes = Math.max(1, Math.min(op.maxBytes | 0, REPAIR_LIMITS.maxFetchBytes));
    const page = pageRange(this.ports.readChunk, { ...op, limit, maxBytes, table: null });
    return { kind: 'stream-page', rows: page.rows, next: page.next };
  }

  fetchKeys(op: FetchKeysOp): RepairResult {
    if (!Array.isArray(op.keys) || op.keys.length > REPAIR_LIMITS.maxKeysPerOp) {
      throw new OpError('bad_request', `fetch-keys takes at most ${REPAIR_LIMITS.maxKeysPerOp} keys`);
    }
    const raw = op.keys.length > 0 ? this.ports.getMany(op.keys.map(asBuffer)) : [];
    const records: Array<Uint8Array | null> = [];
    let bytes = 0;
    for (const r of raw) {
      // At least one record per call, or a single huge value could never be fetched.
      if (records.length > 0 && r !== undefined && bytes + r.length > REPAIR_LIMITS.maxFetchBytes) break;
      records.push(r ?? null);
      bytes += r?.length ?? 0;
    }
    return { kind: 'fetch-keys', answered: records.length, records };
  }
}
