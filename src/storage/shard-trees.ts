/**
 * A shard's Merkle trees: one per ring range this node stores, over the shard's own keys of it
 * (the node's tree of a range is the XOR of its shards' trees). Kept equal to "digest of every
 * stored record" by `update` after each committed change, and rebuilt in bounded chunks by a
 * background scan when the ring gives the node a range whose bounds it had no tree for.
 *
 * Worker-safe and free of I/O: the ring view and the column-family reads are ports, so this is
 * unit-tested without a worker or RocksDB; the shard actor schedules the scan steps.
 */
import { MerkleTree, RangeLeafIndex, type Hash64 } from '../merkle/index.js';
import { tokenRangeBounds, type KeyBounds } from './keys.js';
import type { RangeRef } from './shard-protocol.js';
import { invariant } from '../util/errors.js';

export interface RangeTree {
  ref: RangeRef;
  start: Hash64;
  end: Hash64;
  tree: MerkleTree;
  /** leafIndex over (start, end] at the trees' depth, without BigInt (the write path's per-key step). */
  leaves: RangeLeafIndex;
  /** The range's storage-key intervals, in key order (two when the range wraps). */
  bounds: KeyBounds[];
  /** Rebuild progress: done, or scanning bounds[interval] after `cursor` (null: from its start). */
  done: boolean;
  interval: number;
  cursor: Buffer | null;
}

/** What the trees read of the ring (RingTable satisfies it). */
export interface TreeRingView {
  readonly version: number;
  /** The ranges this node stores, in position order. */
  localRanges(): RangeRef[];
}

export interface TreeScanPorts {
  /** Up to `limit` (key, record) rows of `bounds` after `after` (null: from its start), flattened. */
  readChunk(bounds: KeyBounds, after: Buffer | null, limit: number): Buffer[];
  /** The digest of a stored record (the term a key contributes to its leaf). */
  digest(record: Buffer): Hash64;
}

function boundsId(r: RangeRef): string {
  return `${r.startHi}:${r.startLo}:${r.endHi}:${r.endLo}`;
}

function cmpToken(ahi: number, alo: number, bhi: number, blo: number): number {
  return ahi !== bhi ? (ahi < bhi ? -1 : 1) : alo !== blo ? (alo < blo ? -1 : 1) : 0;
}

/** Is token (hi, lo) in the range (start, end]? A range whose start equals its end is the whole ring. */
export function inRange(r: RangeRef, hi: number, lo: number): boolean {
  const se = cmpToken(r.startHi, r.startLo, r.endHi, r.endLo);
  if (se === 0) return true; // a 1-token ring: the whole ring
  const afterStart = cmpToken(hi, lo, r.startHi, r.startLo) > 0;
  const upToEnd = cmpToken(hi, lo, r.endHi, r.endLo) <= 0;
  return se < 0 ? afterStart && upToEnd : afterStart || upToEnd;
}

export class ShardTrees {
  /** Sorted by position, i.e. by end token (ranges are disjoint). */
  private list: RangeTree[] = [];
  private byPos = new Map<number, RangeTree>();
  private seenVersion = -1;
  /** Rebuilds started (a ring change that brought ranges without a tree). */
  rebuilds = 0;

  constructor(
    private readonly depth: number,
    private readonly ring: TreeRingView,
  ) {}

  /** The ring version the trees were last laid out for. */
  get ringVersion(): number {
    return this.seenVersion;
  }

  get all(): readonly RangeTree[] {
    return this.list;
  }

  /** Is a rebuild scan still to run? */
  get rebuilding(): boolean {
    return this.list.some((t) => !t.done);
  }

  /** The tree of the range at `pos`, if its bounds are still `ref`'s. */
  get(ref: RangeRef): RangeTree | undefined {
    const rt = ref && typeof ref === 'object' ? this.byPos.get(ref.pos) : undefined;
    return rt && boundsId(rt.ref) === boundsId(ref) ? rt : undefined;
  }

  /**
   * Adopt a newly published ring: keep the trees of ranges whose bounds did not change (their
   * content is defined by token bounds alone, so they stay exact), start rebuilds for new ranges,
   * drop the rest. True when a rebuild scan is now due.
   */
  checkRing(): boolean {
    const v = this.ring.version;
    if (v === this.seenVersion) return false;
    // Version first: if another publish lands in between, the next check sees a newer version again.
    this.seenVersion = v;
    const ranges = this.ring.localRanges();
    const old = new Map(this.list.map((t) => [boundsId(t.ref), t]));
    this.list = ranges.map((r) => {
      const kept = old.get(boundsId(r));
      if (kept) {
        kept.ref = r;
        return kept;
      }
      return this.newRangeTree(r);
    });
    this.byPos = new Map(this.list.map((t) => [t.ref.pos, t]));
    for (let i = 1; i < this.list.length; i++) invariant(this.list[i - 1]!.ref.pos < this.list[i]!.ref.pos, 'local ranges come in position order');
    if (!this.rebuilding) return false;
    this.rebuilds++;
    return true;
  }

  private newRangeTree(r: RangeRef): RangeTree {
    return {
      ref: r,
      start: { hi: r.startHi, lo: r.startLo },
      end: { hi: r.endHi, lo: r.endLo },
      tree: new MerkleTree(this.depth),
      leaves: new RangeLeafIndex({ hi: r.startHi, lo: r.startLo }, { hi: r.endHi, lo: r.endLo }, this.depth),
      bounds: tokenRangeBounds(r.startHi, r.startLo, r.endHi, r.endLo),
      done: false,
      interval: 0,
      cursor: null,
    };
  }

  /** The tree whose range holds token (hi, lo): the first local range ending at or after it (wrapping). */
  treeOf(hi: number, lo: number): RangeTree | undefined {
    const trees = this.list;
    let a = 0;
    let b = trees.length;
    while (a < b) {
      const m = (a + b) >>> 1;
      const r = trees[m]!.ref;
      if (cmpToken(r.endHi, r.endLo, hi, lo) < 0) a = m + 1;
      else b = m;
    }
    const cand = trees[a === trees.length ? 0 : a];
    return cand && inRange(cand.ref, hi, lo) ? cand : undefined;
  }

  /** Keep the tree equal to "digest of every stored record": called after each committed change. */
  update(key: Buffer, oldDigest: Hash64 | null, newDigest: Hash64 | null): void {
    const hi = key.readUInt32BE(0);
    const lo = key.readUInt32BE(4);
    const rt = this.treeOf(hi, lo);
    // No tree: the key is outside every local range under the current ring (a stale-view write or a
    // ring change mid-turn); the rebuild the new ring triggers accounts for it.
    if (!rt || !scanned(rt, key)) return;
    rt.tree.update(rt.leaves.leafOf(hi, lo), key, oldDigest, newDigest);
  }

  /** One chunk of the rebuild scan of the first unfinished tree; true while a rebuild remains. */
  scanStep(ports: TreeScanPorts, chunk: number): boolean {
    const rt = this.list.find((t) => !t.done);
    if (!rt) return false;
    const rows = ports.readChunk(rt.bounds[rt.interval]!, rt.cursor, chunk);
    for (let j = 0; j < rows.length; j += 2) {
      const key = rows[j]!;
      rt.tree.update(rt.leaves.leafOf(key.readUInt32BE(0), key.readUInt32BE(4)), key, null, ports.digest(rows[j + 1]!));
    }
    if (rows.length / 2 < chunk) {
      rt.interval++;
      rt.cursor = null;
      if (rt.interval >= rt.bounds.length) rt.done = true;
    } else {
      rt.cursor = rows[rows.length - 2]!;
    }
    return this.rebuilding;
  }
}

/** Has the rebuild scan of `rt` already passed `key` (so the tree holds its term)? */
function scanned(rt: RangeTree, key: Buffer): boolean {
  if (rt.done) return true;
  let k = 0;
  while (k < rt.bounds.length - 1) {
    const lt = rt.bounds[k]!.lt;
    if (lt === undefined || Buffer.compare(key, lt) < 0) break;
    k++;
  }
  if (k !== rt.interval) return k < rt.interval;
  return rt.cursor !== null && Buffer.compare(key, rt.cursor) <= 0;
}
