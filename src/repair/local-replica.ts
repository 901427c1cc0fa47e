/**
 * The replica side of anti-entropy (riak_core's split: the vnode side apart from the coordinator):
 * this node's Merkle trees, key listings, fetches and merged writes, read from and written to the
 * local shards through their mailboxes (so repair never races a write to the same key), and the
 * peer services that answer another node's repair session with them.
 */
import type { Cluster } from '../cluster/cluster.js';
import { MerkleTree, type Hash64 } from '../merkle/index.js';
import type { TableMode } from '../config/config.js';
import { tokenToHex } from '../ring/hash.js';
import type { RingTable, SelfRange } from '../ring/table.js';
import { MIN_STORAGE_KEY_BYTES, TABLE_ID_BYTES } from '../storage/keys.js';
import { localShardOf } from '../storage/placement.js';
import { validateRecord } from '../storage/records.js';
import { REPAIR_LIMITS, type LeafCursor, type RangeRef, type RepairResult } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { asKeys, asObj, asRangeRef, hex, NotReady, refOf, sameRef, type GcReport, type NodeLeafCursor, type NodeLeafPage, type RangeInfo } from './protocol.js';

/** Shard calls one node-level leaf-keys page may make (a table filter can leave shard pages short). */
const LEAF_PAGE_SHARD_CALLS = 8;

const SHARD_CODES: Record<string, ErrorCode> = { not_owner: 'not_owner', bad_request: 'bad_request', range_unknown: 'conflict', overloaded: 'overloaded', unavailable: 'unavailable' };

async function shardCall<K extends RepairResult['kind']>(shards: ShardPool, shard: number, kind: K, op: Parameters<ShardPool['submit']>[1]): Promise<Extract<RepairResult, { kind: K }>> {
  const r = await shards.submit(shard, op);
  if (!r.ok) throw new RingkvError(SHARD_CODES[r.code] ?? 'internal', `shard ${shard}: ${r.message}`);
  invariant('repair' in r && r.repair.kind === kind, `shard ${shard} answered ${kind} with something else`);
  return r.repair as Extract<RepairResult, { kind: K }>;
}

export interface LocalReplicaDeps {
  cluster: Pick<Cluster, 'selfId' | 'currentLayout' | 'registerService'>;
  shards: ShardPool;
  ring: RingTable;
}

export class LocalReplica {
  constructor(private readonly d: LocalReplicaDeps) {
    const c = d.cluster;
    c.registerService('repair-roots', (b) => this.onRoots(b));
    c.registerService('repair-nodes', (b) => this.onNodes(b));
    c.registerService('repair-keys', (b) => this.onKeys(b));
    c.registerService('repair-fetch', (b) => this.onFetch(b));
    c.registerService('repair-push', (b) => this.onPush(b));
  }

  // ----------------------------------------------------------------------------------------------
  // Local views

  allShards<T>(f: (shard: number) => Promise<T>): Promise<T[]> {
    return Promise.all(Array.from({ length: this.d.shards.size }, (_, s) => f(s)));
  }

  /**
   * The node's root of every range: the XOR of its shards' roots. A range is ready only when every
   * shard has a built tree of it with the same bounds (a shard that has not seen the newest ring yet
   * makes it not ready, never a wrong root).
   */
  async localRoots(): Promise<Map<number, { root: Hash64; ready: boolean; ref: RangeRef }>> {
    const acc = new Map<number, { root: Hash64; ready: boolean; ref: RangeRef; shards: number }>();
    const all = await this.allShards((s) => shardCall(this.d.shards, s, 'merkle-roots', { op: 'merkle-roots' }));
    for (const r of all) {
      for (const x of r.ranges) {
        const cur = acc.get(x.pos);
        if (cur === undefined) {
          acc.set(x.pos, { root: { hi: x.hi, lo: x.lo }, ready: x.ready, ref: refOf(x), shards: 1 });
          continue;
        }
        cur.root = { hi: (cur.root.hi ^ x.hi) >>> 0, lo: (cur.root.lo ^ x.lo) >>> 0 };
        cur.ready = cur.ready && x.ready && sameRef(cur.ref, x);
        cur.shards++;
      }
    }
    const out = new Map<number, { root: Hash64; ready: boolean; ref: RangeRef }>();
    for (const [pos, v] of acc) out.set(pos, { root: v.root, ready: v.ready && v.shards === all.length, ref: v.ref });
    return out;
  }

  /** The self range at `ref.pos`, if our ring agrees on its bounds. */
  selfRange(ref: RangeRef): SelfRange {
    const r = this.d.ring.rangesOfSelf().find((x) => x.pos === ref.pos);
    if (!r || !sameRef(refOf(r), ref)) throw new RingkvError('conflict', `node ${this.d.cluster.selfId} does not store ring range #${ref.pos} in its ring view`);
    return r;
  }

  /** Local shard holding the storage key's token (its placement shard), or -1 when this node is not a replica of it. */
  shardOfKey(key: Uint8Array): number {
    const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    return localShardOf(this.d.ring, b.readUInt32BE(0), b.readUInt32BE(4), this.d.shards.size);
  }

  /** The node's tree of a range: its shards' trees XORed leaf by leaf (NotReady while any is rebuilding). */
  async localTree(ref: RangeRef): Promise<MerkleTree> {
    const snaps = await this.allShards((s) => shardCall(this.d.shards, s, 'merkle-tree', { op: 'merkle-tree', range: ref }));
    if (snaps.some((x) => !x.ready)) throw new NotReady();
    const tree = MerkleTree.deserialize(snaps[0]!.leaves);
    for (let k = 1; k < snaps.length; k++) tree.xorWith(MerkleTree.deserialize(snaps[k]!.leaves));
    return tree;
  }

  /**
   * One page (up to `limit` entries) of the (key, digest) entries of `leaves` of a range on this
   * node: shard 0's keys, then shard 1's, and so on (the caller only builds a set of them).
   */
  async nodeLeafKeys(ref: RangeRef, leaves: number[], table: Uint8Array | undefined, cursor: NodeLeafCursor | null, limit: number): Promise<NodeLeafPage> {
    const shards = this.d.shards.size;
    let shard = cursor?.shard ?? 0;
    if (!Number.isInteger(shard) || shard < 0 || shard >= shards) throw new RingkvError('bad_request', `leaf-keys cursor names shard ${String(shard)} of ${shards}`);
    let c: LeafCursor | null = cursor === null ? null : { interval: cursor.interval, after: cursor.after };
    const entries: NodeLeafPage['entries'] = [];
    for (let calls = 0; shard < shards && entries.length < limit && calls < LEAF_PAGE_SHARD_CALLS; calls++) {
      const page = await shardCall(this.d.shards, shard, 'leaf-keys', { op: 'leaf-keys', range: ref, leaves, table, cursor: c, limit: limit - entries.length });
      if (!page.ready) return { ready: false, entries: [], next: null };
      for (const e of page.entries) entries.push(e);
      if (page.next === null) {
        shard++;
        c = null;
      } else c = page.next;
    }
    return { ready: true, entries, next: shard < shards ? { shard, interval: c?.interval ?? 0, after: c?.after ?? null } : null };
  }

  checkDigest(digest: unknown): void {
    const mine = this.d.cluster.currentLayout().digest;
    if (digest !== mine) throw new RingkvError('conflict', `ring views differ (theirs ${String(digest)}, ours ${mine}); repair waits for gossip to converge`);
  }

  async ranges(): Promise<RangeInfo[]> {
    const layout = this.d.cluster.currentLayout();
    const mine = this.d.ring.rangesOfSelf();
    const roots = await this.localRoots();
    return mine.map((r) => {
      const t = roots.get(r.pos);
      const ok = t !== undefined && sameRef(t.ref, refOf(r));
      return {
        start: tokenToHex({ hi: r.startHi, lo: r.startLo }),
        end: tokenToHex({ hi: r.endHi, lo: r.endLo }),
        replicas: r.replicas.map((i) => layout.nodeIds[i] ?? `#${i}`),
        root: ok ? hex(t.root) : '',
        ready: ok && t.ready,
      };
    });
  }

  async gc(): Promise<GcReport> {
    const t0 = performance.now();
    const shards = await this.allShards(async (s) => ({ shard: s, ...(await shardCall(this.d.shards, s, 'sweep', { op: 'sweep' })).sweep }));
    return {
      scanned: shards.reduce((a, s) => a + s.scanned, 0),
      purged: shards.reduce((a, s) => a + s.purged, 0),
      durationMs: Math.round(performance.now() - t0),
      shards,
    };
  }

  // ----------------------------------------------------------------------------------------------
  // Peer side: answer another node's session from the local shards.

  async onRoots(b: Record<string, unknown>): Promise<unknown> {
    this.checkDigest(b['digest']);
    const roots = await this.localRoots();
    // Compact rows [pos, hi, lo, ready]: this is all a consistent cluster exchanges.
    return { ranges: [...roots.entries()].map(([pos, r]) => [pos, r.root.hi, r.root.lo, r.ready ? 1 : 0]) };
  }

  async onNodes(b: Record<string, unknown>): Promise<unknown> {
    this.checkDigest(b['digest']);
    const ref = asRangeRef(b['range']);
    this.selfRange(ref);
    const level = b['level'];
    const indexes = b['indexes'];
    if (typeof level !== 'number' || !Array.isArray(indexes) || !indexes.every((i) => typeof i === 'number')) throw new RingkvError('bad_request', 'repair-nodes needs level and indexes');
    const all = await this.allShards((s) => shardCall(this.d.shards, s, 'merkle-nodes', { op: 'merkle-nodes', range: ref, level, indexes: indexes as number[] }));
    // The node's hashes: the XOR of its shards' (tree nodes are XORs, see src/merkle/tree.ts).
    const hashes = all[0]!.hashes.slice();
    for (let k = 1; k < all.length; k++) {
      const h = all[k]!.hashes;
      invariant(h.length === hashes.length, 'shards answered merkle-nodes with different lengths');
      for (let j = 0; j < h.length; j++) hashes[j] = (hashes[j]! ^ h[j]!) >>> 0;
    }
    return { ready: all.every((x) => x.ready), hashes };
  }

  async onKeys(b: Record<string, unknown>): Promise<unknown> {
    this.checkDigest(b['digest']);
    const ref = asRangeRef(b['range']);
    this.selfRange(ref);
    const leaves = b['leaves'];
    if (!Array.isArray(leaves) || !leaves.every((l) => typeof l === 'number')) throw new RingkvError('bad_request', 'repair-keys needs leaves');
    const table = b['table'];
    if (table !== null && table !== undefined && !(table instanceof Uint8Array && table.length === TABLE_ID_BYTES)) {
      throw new RingkvError('bad_request', `repair-keys table must be a ${TABLE_ID_BYTES}-byte table id or null`);
    }
    const c = b['cursor'];
    let cursor: NodeLeafCursor | null = null;
    if (c !== null && c !== undefined) {
      const o = asObj(c, 'cursor');
      const after = o['after'];
      if (typeof o['shard'] !== 'number' || typeof o['interval'] !== 'number' || !(after === null || after instanceof Uint8Array)) throw new RingkvError('bad_request', 'bad repair-keys cursor');
      cursor = { shard: o['shard'], interval: o['interval'], after };
    }
    const res = await this.nodeLeafKeys(ref, leaves as number[], table ?? undefined, cursor, REPAIR_LIMITS.maxLeafKeysPage);
    return { ready: res.ready, entries: res.entries.map((e) => [e.key, e.hi, e.lo]), next: res.next };
  }

  async onFetch(b: Record<string, unknown>): Promise<unknown> {
    const keys = asKeys(b['keys'], 'repair-fetch keys');
    const records = await this.fetchLocal(keys);
    let bytes = 0;
    let answered = 0;
    // The whole answer stays under the byte budget (at least one record); the caller asks again.
    while (answered < records.length) {
      const r = records[answered];
      if (r === undefined || (answered > 0 && bytes + (r?.length ?? 0) > REPAIR_LIMITS.maxFetchBytes)) break;
      bytes += r?.length ?? 0;
      answered++;
    }
    return { answered, records: records.slice(0, answered) };
  }

  async onPush(b: Record<string, unknown>): Promise<unknown> {
    const entries = b['entries'];
    if (!Array.isArray(entries) || entries.length > REPAIR_LIMITS.maxKeysPerOp) throw new RingkvError('bad_request', `repair-push takes at most ${REPAIR_LIMITS.maxKeysPerOp} entries`);
    const decoded = (entries as unknown[]).map((e: unknown) => {
      const o = asObj(e, 'repair-push entry');
      const key = o['key'];
      const mode = o['mode'];
      const record = o['record'];
      if (!(key instanceof Uint8Array) || key.length < MIN_STORAGE_KEY_BYTES) throw new RingkvError('bad_request', 'repair-push entry needs a storage key');
      if (mode !== 'vclock' && mode !== 'lww' && mode !== 'crdt' && mode !== 'cell') throw new RingkvError('bad_request', 'repair-push entry mode must be vclock, lww, crdt or cell');
      if (!(record instanceof Uint8Array)) throw new RingkvError('bad_request', 'repair-push entry needs a record');
      // Checked here, before any shard writes: the entries go to several shards, and a bad one must
      // refuse the whole push (each shard checks its own part again at its boundary).
      try {
        validateRecord(mode, record);
      } catch (err) {
        throw new RingkvError('bad_request', `repair-push: ${(err as Error).message}`);
      }
      return { key, mode: mode as TableMode, record };
    });
    const { changed, notOwner } = await this.writeLocal(decoded);
    return { changed, notOwner };
  }

  /** Records of `keys` from the local shards, in order; undefined = not answered (byte budget). */
  async fetchLocal(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | null | undefined>> {
    const out = new Array<Uint8Array | null | undefined>(keys.length).fill(null);
    const byShard = new Map<number, number[]>();
    keys.forEach((k, i) => {
      const s = this.shardOfKey(k);
      if (s < 0) return; // not a replica here: absent
      let l = byShard.get(s);
      if (!l) byShard.set(s, (l = []));
      l.push(i);
    });
    await Promise.all(
      [...byShard].map(async ([shard, idx]) => {
        const res = await shardCall(this.d.shards, shard, 'fetch-keys', { op: 'fetch-keys', keys: idx.map((i) => keys[i]!) });
        idx.forEach((i, j) => (out[i] = j < res.answered ? res.records[j]! : undefined));
      }),
    );
    return out;
  }

  async writeLocal(entries: ReadonlyArray<{ key: Uint8Array; mode: TableMode; record: Uint8Array }>): Promise<{ changed: number; notOwner: number }> {
    let changed = 0;
    let notOwner = 0;
    const byShard = new Map<number, Array<{ key: Uint8Array; mode: TableMode; record: Uint8Array }>>();
    for (const e of entries) {
      const s = this.shardOfKey(e.key);
      if (s < 0) {
        notOwner++;
        continue;
      }
      let l = byShard.get(s);
      if (!l) byShard.set(s, (l = []));
      l.push({ key: e.key, mode: e.mode, record: e.record });
    }
    await Promise.all(
      [...byShard].map(async ([shard, list]) => {
        const res = await shardCall(this.d.shards, shard, 'repair-write', { op: 'repair-write', entries: list });
        changed += res.changed;
        notOwner += res.notOwner;
      }),
    );
    return { changed, notOwner };
  }
}
