/**
 * Anti-entropy repair (design §7): compare this node's Merkle trees with each other replica's,
 * descend only into differing subtrees, exchange (key, digest) lists of differing leaves only, then
 * fetch both sides' versions of the keys that differ, merge them with the table's conflict mode, and
 * write the merge to whichever side lacks it.
 *
 * Where the work runs: trees live in the shard actors (built and patched there, see workers/shard.ts);
 * this main-thread service only moves hashes, key lists and the versions of differing keys, and
 * runs the merges for those keys.
 *
 * Node-level trees: every local shard keeps a tree of its own keys of each range this node stores,
 * over the range's leaf boundaries (a key's shard is a function of its token, placement.ts, so a
 * range's keys are spread over all shards). Tree nodes are XORs of their entries, so the node's
 * tree of a range is the XOR of its shards' trees at every level: roots and node hashes are XORed
 * across shards here, and nodes with different shard counts compare equal when they hold equal
 * data. Key listings walk the shards one after the other; fetches and writes go to each key's shard. A peer's questions are answered from its shards through the same
 * mailboxes as client traffic, so repair can never race a write to the same key.
 *
 * Every message and page is bounded (REPAIR_LIMITS); a session walks ranges with bounded
 * concurrency; only one session runs at a time on a node.
 */
import type { NodeConfig, TableMode } from '../config/config.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Logger } from '../log/logger.js';
import { logEvent } from '../log/events.js';
import { MerkleTree, diffTrees, initMerkle, type Hash64 } from '../merkle/index.js';
import { encodePayload } from '../net/frames.js';
import type { RingLayout } from '../ring/builder.js';
import { tokenToHex } from '../ring/hash.js';
import type { RingTable, SelfRange } from '../ring/table.js';
import type { Router } from '../router/router.js';
import { tableIdBytes, type TableRegistry } from '../router/tables.js';
import { MIN_STORAGE_KEY_BYTES, TABLE_ID_BYTES } from '../storage/keys.js';
import { localShardOf } from '../storage/placement.js';
import { REPAIR_LIMITS, type LeafCursor, type RangeRef, type RepairResult, type SweepStats } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { validateRecord } from '../storage/records.js';
import { batchBySize, diffKeyDigests, planKeyRepairs, type KeyDigest, type KeyState, type RepairPolicy } from './plan.js';

export interface RepairReport {
  /** The table whose keys were streamed, or null for all tables. */
  table: string | null;
  /** Peers whose trees were compared. */
  peers: string[];
  /** (range, peer) pairs whose roots were compared. */
  rangesCompared: number;
  rangesDiffered: number;
  /** Pairs left out: a tree mid-rebuild, a peer down, or a peer with another ring view. */
  rangesSkipped: number;
  /** Tree node pairs compared (an identical range costs 1: its root). */
  hashesCompared: number;
  /** Keys whose (key, digest) entries were compared (in differing leaves only). */
  keysCompared: number;
  /** Keys whose merged versions were written to a peer / to this node. */
  keysSent: number;
  keysReceived: number;
  /** Keys left alone: unknown table, or tombstones past the grace period on one side only. */
  keysSkipped: number;
  /** msgpack bytes of every request this session sent / of every answer it received. */
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  /** The first few failures (bounded), for operators. */
  errors: string[];
}

export interface RangeInfo {
  start: string;
  end: string;
  replicas: string[];
  root: string;
  /** False while the tree is rebuilt after a start or a ring change. */
  ready: boolean;
}

export interface GcReport {
  scanned: number;
  purged: number;
  durationMs: number;
  shards: Array<SweepStats & { shard: number }>;
}

/** Where the running repair session is, and how the last one ended (dashboard, metrics). */
export interface RepairProgress {
  running: boolean;
  /** Wall-clock ms the running (or last) session started; null if none ran yet. */
  startedAt: number | null;
  /** (range, peer) pairs the running (or last) session planned, and how many it has finished. */
  pairsTotal: number;
  pairsDone: number;
  /** Sessions finished since start, and those that failed as a whole. */
  sessions: number;
  failedSessions: number;
  /** The last finished session's report (null before the first). */
  last: RepairReport | null;
  /** Sums over every finished session since start. */
  totals: { keysSent: number; keysReceived: number; bytesSent: number; bytesReceived: number; rangesDiffered: number };
}

export interface RepairService {
  /** Where the running session is, and how the last one ended. */
  progress(): RepairProgress;
  /** Run a repair session now (waits for a running one first); `table` limits which keys stream. */
  runSession(opts?: { table?: string | undefined }): Promise<RepairReport>;
  /** Every range this node stores, with its replicas and this node's Merkle root. */
  ranges(): Promise<RangeInfo[]>;
  /** Run the tombstone sweep on every shard now. */
  gc(): Promise<GcReport>;
  stop(): void;
}

export interface RepairDeps {
  cluster: Cluster;
  shards: ShardPool;
  /**
   * Unused for now: repaired versions go to shards by storage key (`repair-write`, batched), which
   * needs neither table names nor a message per key as `router.applyReplicaWrite` would.
   */
  router: Router;
  tables: TableRegistry;
  ring: RingTable;
  config: NodeConfig;
  log: Logger;
  /** A table's own gc grace by storage id (hex), when it sets one (wide-column tables); else config.gcGraceSeconds. */
  gcGraceOf?: (tableId: string) => number | undefined;
}

/** Peer messages of the repair protocol (answered by the peer's RepairService). */
export type RepairPeerMessage =
  | { t: 'repair-roots'; digest: string }
  | { t: 'repair-nodes'; digest: string; range: RangeRef; level: number; indexes: number[] }
  | { t: 'repair-keys'; digest: string; range: RangeRef; leaves: number[]; table: Uint8Array | null; cursor: NodeLeafCursor | null }
  | { t: 'repair-fetch'; keys: Uint8Array[] }
  | { t: 'repair-push'; entries: Array<{ key: Uint8Array; mode: TableMode; record: Uint8Array }> };

/**
 * Where a listing of some leaves' keys stopped on a node: the shard being listed (they are walked
 * in order 0..S-1) and that shard's own cursor.
 */
export interface NodeLeafCursor extends LeafCursor {
  shard: number;
}

/** One node-level page of (key, digest) entries of some leaves. */
interface NodeLeafPage {
  ready: boolean;
  entries: Array<{ key: Uint8Array; hi: number; lo: number }>;
  next: NodeLeafCursor | null;
}

const PEER_TIMEOUT_MS = 30_000;
/** Shard calls one node-level leaf-keys page may make (a table filter can leave shard pages short). */
const LEAF_PAGE_SHARD_CALLS = 8;
/** Differing ranges repaired at once per peer (each is a chain of round trips). */
const RANGE_CONCURRENCY = 4;
/** Leaves whose keys are listed and repaired together: bounds the key lists held in memory. */
const LEAVES_PER_ROUND = 64;
/** Sessions allowed to wait for the running one; more callers are told to retry. */
const MAX_WAITING_SESSIONS = 4;
const MAX_REPORTED_ERRORS = 20;
/** How long a session waits for this node's trees to finish a rebuild before skipping them. */
const LOCAL_READY_WAIT_MS = 30_000;

class NotReady extends Error {}

function hex(h: Hash64): string {
  return h.hi.toString(16).padStart(8, '0') + h.lo.toString(16).padStart(8, '0');
}

function refOf(r: RangeRef): RangeRef {
  return { pos: r.pos, startHi: r.startHi, startLo: r.startLo, endHi: r.endHi, endLo: r.endLo };
}

function sameRef(a: RangeRef, b: RangeRef): boolean {
  return a.pos === b.pos && a.startHi === b.startHi && a.startLo === b.startLo && a.endHi === b.endHi && a.endLo === b.endLo;
}

const SHARD_CODES: Record<string, ErrorCode> = { not_owner: 'not_owner', bad_request: 'bad_request', range_unknown: 'conflict', overloaded: 'overloaded', unavailable: 'unavailable' };

async function shardCall<K extends RepairResult['kind']>(shards: ShardPool, shard: number, kind: K, op: Parameters<ShardPool['submit']>[1]): Promise<Extract<RepairResult, { kind: K }>> {
  const r = await shards.submit(shard, op);
  if (!r.ok) throw new RingkvError(SHARD_CODES[r.code] ?? 'internal', `shard ${shard}: ${r.message}`);
  invariant('repair' in r && r.repair.kind === kind, `shard ${shard} answered ${kind} with something else`);
  return r.repair as Extract<RepairResult, { kind: K }>;
}

function asObj(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw new RingkvError('bad_request', `${what} must be an object`);
  return x as Record<string, unknown>;
}

function asRangeRef(x: unknown): RangeRef {
  const o = asObj(x, 'range');
  const r = { pos: o['pos'], startHi: o['startHi'], startLo: o['startLo'], endHi: o['endHi'], endLo: o['endLo'] };
  for (const [k, v] of Object.entries(r)) {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RingkvError('bad_request', `range.${k} must be a uint32`);
  }
  return r as RangeRef;
}

function asKeys(x: unknown, what: string): Uint8Array[] {
  if (!Array.isArray(x) || x.length > REPAIR_LIMITS.maxKeysPerOp) throw new RingkvError('bad_request', `${what} must be an array of at most ${REPAIR_LIMITS.maxKeysPerOp} keys`);
  for (const k of x) if (!(k instanceof Uint8Array) || k.length < MIN_STORAGE_KEY_BYTES) throw new RingkvError('bad_request', `${what}: every key must be a storage key (bytes)`);
  return x as Uint8Array[];
}

class RepairServiceImpl implements RepairService {
  private running: Promise<RepairReport> | null = null;
  private readonly prog: RepairProgress = {
    running: false,
    startedAt: null,
    pairsTotal: 0,
    pairsDone: 0,
    sessions: 0,
    failedSessions: 0,
    last: null,
    totals: { keysSent: 0, keysReceived: 0, bytesSent: 0, bytesReceived: 0, rangesDiffered: 0 },
  };
  private waiting = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly d: RepairDeps) {
    const c = d.cluster;
    c.registerService('repair-roots', (b) => this.onRoots(b));
    c.registerService('repair-nodes', (b) => this.onNodes(b));
    c.registerService('repair-keys', (b) => this.onKeys(b));
    c.registerService('repair-fetch', (b) => this.onFetch(b));
    c.registerService('repair-push', (b) => this.onPush(b));
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Periodic sessions, jittered ±20% so the nodes of a cluster do not all repair at once. */
  private schedule(): void {
    const every = this.d.config.antiEntropyIntervalMs;
    if (every <= 0 || this.stopped) return;
    const delay = Math.round(every * (0.8 + 0.4 * Math.random()));
    this.timer = setTimeout(() => {
      // A periodic run never queues behind an on-demand one: it simply waits for the next period.
      const run = this.running ? Promise.resolve() : this.runSession({}, 'periodic').then(() => undefined);
      run.catch((e: unknown) => this.d.log.warn({ err: String(e) }, 'periodic repair session failed')).finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  progress(): RepairProgress {
    return { ...this.prog, totals: { ...this.prog.totals } };
  }

  async runSession(opts: { table?: string | undefined } = {}, trigger: 'periodic' | 'on-demand' = 'on-demand'): Promise<RepairReport> {
    while (this.running) {
      if (this.waiting >= MAX_WAITING_SESSIONS) throw new RingkvError('overloaded', 'a repair session is running and others are already waiting; retry later');
      this.waiting++;
      try {
        await this.running.catch(() => undefined);
      } finally {
        this.waiting--;
      }
    }
    const p = this.session(opts.table);
    this.running = p;
    Object.assign(this.prog, { running: true, startedAt: Date.now(), pairsTotal: 0, pairsDone: 0 });
    try {
      const r = await p;
      this.finished(r, trigger);
      return r;
    } catch (e) {
      this.prog.failedSessions++;
      logEvent(this.d.log, 'repair.session', { trigger, table: opts.table ?? null, failed: true, error: e instanceof Error ? e.message : String(e) });
      throw e;
    } finally {
      this.running = null;
      this.prog.running = false;
    }
  }

  private finished(r: RepairReport, trigger: string): void {
    const p = this.prog;
    p.sessions++;
    p.last = r;
    p.totals.keysSent += r.keysSent;
    p.totals.keysReceived += r.keysReceived;
    p.totals.bytesSent += r.bytesSent;
    p.totals.bytesReceived += r.bytesReceived;
    p.totals.rangesDiffered += r.rangesDiffered;
    logEvent(this.d.log, 'repair.session', {
      trigger,
      table: r.table,
      peers: r.peers,
      rangesCompared: r.rangesCompared,
      rangesDiffered: r.rangesDiffered,
      rangesSkipped: r.rangesSkipped,
      keysSent: r.keysSent,
      keysReceived: r.keysReceived,
      bytesSent: r.bytesSent,
      bytesReceived: r.bytesReceived,
      ms: r.durationMs,
      errors: r.errors.length,
    });
  }

  // ----------------------------------------------------------------------------------------------
  // Local views

  private allShards<T>(f: (shard: number) => Promise<T>): Promise<T[]> {
    return Promise.all(Array.from({ length: this.d.shards.size }, (_, s) => f(s)));
  }

  /**
   * The node's root of every range: the XOR of its shards' roots. A range is ready only when every
   * shard has a built tree of it with the same bounds (a shard that has not seen the newest ring yet
   * makes it not ready, never a wrong root).
   */
  private async localRoots(): Promise<Map<number, { root: Hash64; ready: boolean; ref: RangeRef }>> {
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
  private selfRange(ref: RangeRef): SelfRange {
    const r = this.d.ring.rangesOfSelf().find((x) => x.pos === ref.pos);
    if (!r || !sameRef(refOf(r), ref)) throw new RingkvError('conflict', `node ${this.d.cluster.selfId} does not store ring range #${ref.pos} in its ring view`);
    return r;
  }

  /** Local shard holding the storage key's token (its placement shard), or -1 when this node is not a replica of it. */
  private shardOfKey(key: Uint8Array): number {
    const b = Buffer.from(key.buffer, key.byteOffset, key.byteLength);
    return localShardOf(this.d.ring, b.readUInt32BE(0), b.readUInt32BE(4), this.d.shards.size);
  }

  /** The node's tree of a range: its shards' trees XORed leaf by leaf (NotReady while any is rebuilding). */
  private async localTree(ref: RangeRef): Promise<MerkleTree> {
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
  private async nodeLeafKeys(ref: RangeRef, leaves: number[], table: Uint8Array | undefined, cursor: NodeLeafCursor | null, limit: number): Promise<NodeLeafPage> {
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

  private checkDigest(digest: unknown): void {
    const mine = this.d.cluster.currentLayout().digest;
    if (digest !== mine) throw new RingkvError('conflict', `ring views differ (theirs ${String(digest)}, ours ${mine}); repair waits for gossip to converge`);
  }

  /** Replication factor repair maintains: the largest table N (never more than the ring's replicas). */
  private replicationFactor(layout: RingLayout): number {
    let n = this.d.config.tables.n;
    for (const t of this.d.tables.all()) n = Math.max(n, t.n);
    return Math.max(1, Math.min(n, layout.replicas));
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
    const shards = await Promise.all(
      Array.from({ length: this.d.shards.size }, async (_, s) => ({ shard: s, ...(await shardCall(this.d.shards, s, 'sweep', { op: 'sweep' })).sweep })),
    );
    return {
      scanned: shards.reduce((a, s) => a + s.scanned, 0),
      purged: shards.reduce((a, s) => a + s.purged, 0),
      durationMs: Math.round(performance.now() - t0),
      shards,
    };
  }

  // ----------------------------------------------------------------------------------------------
  // Peer side: answer another node's session from the local shards.

  private async onRoots(b: Record<string, unknown>): Promise<unknown> {
    this.checkDigest(b['digest']);
    const roots = await this.localRoots();
    // Compact rows [pos, hi, lo, ready]: this is all a consistent cluster exchanges.
    return { ranges: [...roots.entries()].map(([pos, r]) => [pos, r.root.hi, r.root.lo, r.ready ? 1 : 0]) };
  }

  private async onNodes(b: Record<string, unknown>): Promise<unknown> {
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

  private async onKeys(b: Record<string, unknown>): Promise<unknown> {
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

  private async onFetch(b: Record<string, unknown>): Promise<unknown> {
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

  private async onPush(b: Record<string, unknown>): Promise<unknown> {
    const entries = b['entries'];
    if (!Array.isArray(entries) || entries.length > REPAIR_LIMITS.maxKeysPerOp) throw new RingkvError('bad_request', `repair-push takes at most ${REPAIR_LIMITS.maxKeysPerOp} entries`);
    const decoded = entries.map((e: unknown) => {
      const o = asObj(e, 'repair-push entry');
      const key = o['key'];
      const mode = o['mode'];
      const record = o['record'];
      if (!(key instanceof Uint8Array) || key.length < MIN_STORAGE_KEY_BYTES) throw new RingkvError('bad_request', 'repair-push entry needs a storage key');
      if (mode !== 'vclock' && mode !== 'lww' && mode !== 'crdt' && mode !== 'cell') throw new RingkvError('bad_request', 'repair-push entry mode must be vclock, lww, crdt or cell');
      if (!(record instanceof Uint8Array)) throw new RingkvError('bad_request', 'repair-push entry needs a record');
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
  private async fetchLocal(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | null | undefined>> {
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

  private async writeLocal(entries: ReadonlyArray<{ key: Uint8Array; mode: TableMode; record: Uint8Array }>): Promise<{ changed: number; notOwner: number }> {
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

  // ----------------------------------------------------------------------------------------------
  // Session

  private async session(table: string | undefined): Promise<RepairReport> {
    const t0 = performance.now();
    await initMerkle();
    const def = table === undefined ? undefined : this.d.tables.get(table);
    if (table !== undefined && !def) throw new RingkvError('not_found', `table ${table} does not exist`);
    const report: RepairReport = {
      table: table ?? null,
      peers: [],
      rangesCompared: 0,
      rangesDiffered: 0,
      rangesSkipped: 0,
      hashesCompared: 0,
      keysCompared: 0,
      keysSent: 0,
      keysReceived: 0,
      keysSkipped: 0,
      bytesSent: 0,
      bytesReceived: 0,
      durationMs: 0,
      errors: [],
    };
    const fail = (what: string, e: unknown): void => {
      if (report.errors.length < MAX_REPORTED_ERRORS) report.errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    };

    let roots = await this.localRoots();
    const readyBy = Date.now() + LOCAL_READY_WAIT_MS;
    while ([...roots.values()].some((r) => !r.ready) && Date.now() < readyBy) {
      await new Promise((r) => setTimeout(r, 50));
      roots = await this.localRoots();
    }
    // Read in one synchronous step so the layout (node ids) and the ring table agree.
    const layout = this.d.cluster.currentLayout();
    const mine = this.d.ring.rangesOfSelf();
    const selfIdx = this.d.ring.selfIndex();
    const rf = this.replicationFactor(layout);
    const work = new Map<string, Array<{ range: SelfRange; selfPos: number; peerPos: number }>>();
    for (const r of mine) {
      const selfPos = r.replicas.indexOf(selfIdx);
      if (selfPos < 0 || selfPos >= rf) continue; // a spare copy past every table's N: not ours to keep in sync
      for (let k = 0; k < Math.min(rf, r.replicas.length); k++) {
        if (k === selfPos) continue;
        const peer = layout.nodeIds[r.replicas[k]!];
        invariant(peer !== undefined, 'ring range names a node outside the layout');
        let l = work.get(peer);
        if (!l) work.set(peer, (l = []));
        l.push({ range: r, selfPos, peerPos: k });
      }
    }

    const prog = this.prog;
    for (const items of work.values()) prog.pairsTotal += items.length;
    for (const [peer, items] of [...work].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const pairsBefore = prog.pairsDone;
      if (!this.d.cluster.isUp(peer)) {
        prog.pairsDone += items.length;
        report.rangesSkipped += items.length;
        fail(peer, new Error('down'));
        continue;
      }
      let theirs: Map<number, { root: Hash64; ready: boolean }>;
      try {
        const res = asObj(await this.call(report, peer, { t: 'repair-roots', digest: layout.digest }), 'repair-roots answer');
        theirs = new Map();
        for (const row of res['ranges'] as unknown[]) {
          const [pos, hi, lo, ready] = row as [number, number, number, number];
          theirs.set(pos, { root: { hi, lo }, ready: ready === 1 });
        }
      } catch (e) {
        prog.pairsDone += items.length;
        report.rangesSkipped += items.length;
        fail(peer, e);
        continue;
      }
      report.peers.push(peer);
      const differing: Array<{ range: SelfRange; selfPos: number; peerPos: number; theirRoot: Hash64 }> = [];
      for (const it of items) {
        const a = roots.get(it.range.pos);
        const b = theirs.get(it.range.pos);
        if (!a || !b || !a.ready || !b.ready || !sameRef(a.ref, refOf(it.range))) {
          report.rangesSkipped++;
          continue;
        }
        report.rangesCompared++;
        report.hashesCompared++;
        if (a.root.hi === b.root.hi && a.root.lo === b.root.lo) continue;
        report.rangesDiffered++;
        differing.push({ ...it, theirRoot: b.root });
      }
      // Equal and skipped pairs are done now; each differing one when its repair ends.
      prog.pairsDone += items.length - differing.length;
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(RANGE_CONCURRENCY, differing.length) }, async () => {
          while (next < differing.length) {
            const it = differing[next++]!;
            try {
              await this.repairRange(report, peer, layout.digest, it, def ? tableIdBytes(def) : null);
            } catch (e) {
              if (e instanceof NotReady) report.rangesSkipped++;
              else fail(`${peer} range #${it.range.pos}`, e);
            }
            prog.pairsDone++;
          }
        }),
      );
      invariant(prog.pairsDone === pairsBefore + items.length, 'repair progress counts every (range, peer) pair once');
    }
    report.durationMs = Math.round(performance.now() - t0);
    return report;
  }

  /** One peer request, counted in the report's byte totals. */
  private async call(report: RepairReport, peer: string, body: RepairPeerMessage): Promise<unknown> {
    report.bytesSent += encodePayload(body).length;
    const reply = await this.d.cluster.request(peer, body, PEER_TIMEOUT_MS);
    report.bytesReceived += encodePayload(reply).length;
    return reply;
  }

  private async repairRange(
    report: RepairReport,
    peer: string,
    digest: string,
    it: { range: SelfRange; selfPos: number; peerPos: number; theirRoot: Hash64 },
    table: Uint8Array | null,
  ): Promise<void> {
    const ref = refOf(it.range);
    const local = await this.localTree(ref);
    const { leaves, hashesCompared } = await diffTrees(local, async (level, indexes) => {
      // The roots were just exchanged: no round trip for level 0.
      if (level === 0) return [it.theirRoot];
      const res = asObj(await this.call(report, peer, { t: 'repair-nodes', digest, range: ref, level, indexes }), 'repair-nodes answer');
      if (res['ready'] !== true) throw new NotReady();
      const flat = res['hashes'] as number[];
      const out: Hash64[] = [];
      for (let k = 0; k + 1 < flat.length; k += 2) out.push({ hi: flat[k]!, lo: flat[k + 1]! });
      return out;
    });
    report.hashesCompared += hashesCompared - 1; // the root pair is already counted
    const tableOf = (id: string): { mode: TableMode; n: number } | undefined => {
      const t = this.d.tables.byId(id);
      return t ? { mode: t.conflicts, n: t.n } : undefined;
    };
    const policy: RepairPolicy = {
      modeOf: (id) => tableOf(id)?.mode,
      localMayStore: (id) => it.selfPos < (tableOf(id)?.n ?? Infinity),
      remoteMayStore: (id) => it.peerPos < (tableOf(id)?.n ?? Infinity),
      graceSecondsOf: (id) => this.d.gcGraceOf?.(id) ?? this.d.config.gcGraceSeconds,
      maxSiblings: this.d.config.maxSiblings,
      nowMs: Date.now(),
    };
    for (let i = 0; i < leaves.length; i += LEAVES_PER_ROUND) {
      const group = leaves.slice(i, i + LEAVES_PER_ROUND);
      const [localList, remoteList] = await Promise.all([this.listLocal(ref, group, table), this.listRemote(report, peer, digest, ref, group, table)]);
      const diff = diffKeyDigests(localList, remoteList);
      report.keysCompared += diff.compared;
      const items: Array<{ key: Uint8Array; local: boolean; remote: boolean }> = [
        ...diff.both.map((key) => ({ key, local: true, remote: true })),
        ...diff.onlyLocal.map((key) => ({ key, local: true, remote: false })),
        ...diff.onlyRemote.map((key) => ({ key, local: false, remote: true })),
      ];
      for (let j = 0; j < items.length; j += REPAIR_LIMITS.maxKeysPerOp) {
        await this.repairKeys(report, peer, items.slice(j, j + REPAIR_LIMITS.maxKeysPerOp), policy);
      }
    }
  }

  private async listLocal(range: RangeRef, leaves: number[], table: Uint8Array | null): Promise<KeyDigest[]> {
    const out: KeyDigest[] = [];
    let cursor: NodeLeafCursor | null = null;
    for (;;) {
      const page: NodeLeafPage = await this.nodeLeafKeys(range, leaves, table ?? undefined, cursor, REPAIR_LIMITS.maxLeafKeysPage);
      if (!page.ready) throw new NotReady();
      for (const e of page.entries) out.push(e);
      if (page.next === null) return out;
      cursor = page.next;
    }
  }

  private async listRemote(report: RepairReport, peer: string, digest: string, range: RangeRef, leaves: number[], table: Uint8Array | null): Promise<KeyDigest[]> {
    const out: KeyDigest[] = [];
    let cursor: NodeLeafCursor | null = null;
    for (;;) {
      const res = asObj(await this.call(report, peer, { t: 'repair-keys', digest, range, leaves, table, cursor }), 'repair-keys answer');
      if (res['ready'] !== true) throw new NotReady();
      for (const row of res['entries'] as unknown[]) {
        const [key, hi, lo] = row as [Uint8Array, number, number];
        out.push({ key, hi, lo });
      }
      const next = res['next'] as NodeLeafCursor | null;
      if (next === null) return out;
      cursor = next;
    }
  }

  /** Fetch what each side holds for these keys, plan, and write the merges where they are missing. */
  private async repairKeys(report: RepairReport, peer: string, items: ReadonlyArray<{ key: Uint8Array; local: boolean; remote: boolean }>, policy: RepairPolicy): Promise<void> {
    const localKeys = items.filter((x) => x.local).map((x) => x.key);
    const remoteKeys = items.filter((x) => x.remote).map((x) => x.key);
    const [localRecs, remoteRecs] = await Promise.all([this.fetchAllLocal(localKeys), this.fetchAllRemote(report, peer, remoteKeys)]);
    const states: KeyState[] = [];
    let li = 0;
    let ri = 0;
    for (const x of items) {
      states.push({ key: x.key, local: x.local ? (localRecs[li++] ?? null) : null, remote: x.remote ? (remoteRecs[ri++] ?? null) : null });
    }
    const plan = planKeyRepairs(states, policy);
    report.keysSkipped += plan.unknownTable + plan.purgeable;
    for (let i = 0; i < plan.toLocal.length; i += REPAIR_LIMITS.maxKeysPerOp) {
      await this.writeLocal(plan.toLocal.slice(i, i + REPAIR_LIMITS.maxKeysPerOp));
    }
    report.keysReceived += plan.toLocal.length;
    const pushes = plan.toRemote.map((a) => ({ key: a.key, mode: a.mode, record: a.record }));
    for (const batch of batchBySize(pushes, (p) => p.record.length + p.key.length, REPAIR_LIMITS.maxKeysPerOp, REPAIR_LIMITS.maxFetchBytes)) {
      await this.call(report, peer, { t: 'repair-push', entries: batch });
      report.keysSent += batch.length;
    }
  }

  private async fetchAllLocal(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | null>> {
    const out: Array<Uint8Array | null> = [];
    while (out.length < keys.length) {
      const recs = await this.fetchLocal(keys.slice(out.length));
      let k = 0;
      while (k < recs.length && recs[k] !== undefined) out.push(recs[k++] ?? null);
      invariant(k > 0, 'a local fetch made no progress');
    }
    return out;
  }

  private async fetchAllRemote(report: RepairReport, peer: string, keys: readonly Uint8Array[]): Promise<Array<Uint8Array | null>> {
    const out: Array<Uint8Array | null> = [];
    while (out.length < keys.length) {
      const res = asObj(await this.call(report, peer, { t: 'repair-fetch', keys: keys.slice(out.length) }), 'repair-fetch answer');
      const answered = res['answered'];
      const records = res['records'] as Array<Uint8Array | null>;
      if (typeof answered !== 'number' || answered < 1 || !Array.isArray(records) || records.length !== answered) {
        throw new RingkvError('internal', `peer ${peer} answered repair-fetch without progress`);
      }
      for (const r of records) out.push(r ?? null);
    }
    return out;
  }
}

export function startRepairService(deps: RepairDeps): RepairService {
  // Hashing on this thread (diffing a local tree snapshot) needs the wasm module; sessions await it too.
  void initMerkle().catch((e: unknown) => deps.log.error({ err: String(e) }, 'cannot load the Merkle hash module'));
  return new RepairServiceImpl(deps);
}
