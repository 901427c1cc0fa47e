/**
 * The ring table: the current layout in a SharedArrayBuffer, written by the main thread and read
 * by the main thread and every shard worker without copying or messaging.
 *
 * Buffer = header + two halves. The writer fills the inactive half, then flips `active`. A seqlock
 * (counter odd while a publish is in progress) lets readers detect that a publish overlapped their
 * read — with only two halves, a slow reader could otherwise still be reading half A when the writer
 * reuses A for the publication after next — and retry.
 *
 * Every cross-thread access to shared words goes through Atomics: JS has no standalone fences, and
 * only atomic (sequentially consistent) accesses make the seqlock argument hold under the JS memory
 * model (with plain loads, e.g. on arm64, the data reads may be reordered after the closing seq
 * check). The atomic stores cost only on the rare publish; the atomic loads roughly double a worker
 * lookup, so the writer's own thread (the router) takes a plain-load path, see lookupOnWriterThread.
 *
 * Runtime imports are limited to ../util/errors.js on purpose: the table is loaded into worker
 * threads (and the unit test transpiles it for a real Worker).
 */
import type { RingLayout } from './builder.js';
import type { Token } from './hash.js';
import { invariant } from '../util/errors.js';

/**
 * Capacity, fixed at creation: 2,048 owning nodes and 32,768 tokens (2,048 x 16 vnodes), twice the
 * 1,000-node x 16-vnode rings the table must hold. Why a fixed size rather than a buffer grown on
 * demand: growing means publishing a new SharedArrayBuffer that every worker must adopt between
 * two lookups (a second handshake on top of the seqlock, and a window where a worker reads a stale
 * table that no longer matches the router's), while the fixed table costs 1.4 MB per process
 * (2 x (32 + 18 x MAX_TOKENS + MAX_NODES + 16 x MAX_PENDING_RANGES) bytes) and lookups cost the same at any capacity (they
 * read only the published token count). A membership beyond it is refused when the ring is built
 * (Cluster.rebuildRing keeps the previous ring and logs why).
 */
export const MAX_TOKENS = 32_768;
export const MAX_REPLICAS = 5;
export const MAX_NODES = 2_048;
/** Tokens one node may own (config `vnodes` and gossip validation use the same bound). */
export const MAX_VNODES_PER_NODE = 256;
/**
 * Token intervals this node stores beyond its preference lists while a range movement is under way
 * (it is a pending replica of them: src/streaming/pending.ts). A join takes ~vnodes x replicas
 * ranges, split further where the current and future rings' boundaries interleave; adjacent pieces
 * are merged before publishing.
 */
export const MAX_PENDING_RANGES = 8_192;

export const enum Liveness {
  Unknown = 0,
  Up = 1,
  Down = 2,
}

/** A ring range (start, end] by position: start = token[pos - 1] (wrapping), end = token[pos]. */
export interface RingRange {
  pos: number;
  startHi: number;
  startLo: number;
  endHi: number;
  endLo: number;
}

/**
 * A range this node stores, with the position's preference list (node indexes). Every local shard
 * holds its own keys of every such range (src/storage/placement.ts): the shard of a key is a
 * function of its token, not of the range.
 */
export interface SelfRange extends RingRange {
  replicas: number[];
}

const HEADER_BYTES = 16;
const META_BYTES = 32;
const TOKEN_HI_OFF = META_BYTES;
const TOKEN_LO_OFF = TOKEN_HI_OFF + 4 * MAX_TOKENS;
const PREF_OFF = TOKEN_LO_OFF + 4 * MAX_TOKENS;
const LIVE_OFF = PREF_OFF + 2 * MAX_TOKENS * MAX_REPLICAS;
/** Pending token intervals: 4 uint32 words each (low hi, low lo, high hi, high lo), inclusive, sorted. */
const PENDING_OFF = Math.ceil((LIVE_OFF + MAX_NODES) / 4) * 4;
/** Rounded up to 8 so each half (and every field in it) stays aligned. */
const HALF_BYTES = Math.ceil((PENDING_OFF + 16 * MAX_PENDING_RANGES) / 8) * 8;
const TOTAL_BYTES = HEADER_BYTES + 2 * HALF_BYTES;
const MAGIC = 0x524b5433; // "RKT3": bump when the layout below changes (3: pending intervals)

/**
 * Byte layout of the buffer, for code that reads it without this class (e.g. a plain-JS worker).
 * Header int32 slots: H_SEQ (seqlock counter), H_ACTIVE (0/1), H_VERSION (publication count),
 * H_MAGIC. Half h starts at HEADER_BYTES + h * HALF_BYTES; inside it, the META int32 slots are
 * M_TOKEN_COUNT, M_REPLICAS, M_SELF (-1 = not in ring), M_NODE_COUNT, M_PENDING_COUNT, then uint32
 * token hi words, uint32 lo words, uint16 pref [pos * replicas + r], uint8 liveness per node, and
 * the pending intervals (4 uint32 words each).
 */
export const RING_TABLE_LAYOUT = Object.freeze({
  MAGIC,
  H_SEQ: 0,
  H_ACTIVE: 1,
  H_VERSION: 2,
  H_MAGIC: 3,
  HEADER_BYTES,
  M_TOKEN_COUNT: 0,
  M_REPLICAS: 1,
  M_SELF: 2,
  M_NODE_COUNT: 3,
  M_PENDING_COUNT: 4,
  META_OFF: 0,
  TOKEN_HI_OFF,
  TOKEN_LO_OFF,
  PREF_OFF,
  LIVE_OFF,
  PENDING_OFF,
  HALF_BYTES,
  TOTAL_BYTES,
  MAX_TOKENS,
  MAX_REPLICAS,
  MAX_NODES,
} as const);

/** Why `layout` does not fit a ring table (too many tokens or owning nodes), or null when it does. */
export function ringTableCapacityError(layout: Pick<RingLayout, 'tokens' | 'nodeIds'>): string | null {
  if (layout.tokens.length > MAX_TOKENS) return `the ring has ${layout.tokens.length} tokens; the ring table holds at most ${MAX_TOKENS}`;
  if (layout.nodeIds.length > MAX_NODES) return `the ring has ${layout.nodeIds.length} owning nodes; the ring table holds at most ${MAX_NODES}`;
  return null;
}

const H_SEQ = 0;
const H_ACTIVE = 1;
const H_VERSION = 2;
const H_MAGIC = 3;
const M_TOKEN_COUNT = 0;
const M_REPLICAS = 1;
const M_SELF = 2;
const M_NODE_COUNT = 3;
const M_PENDING_COUNT = 4;
const MAX_U32 = 0xffffffff;
/**
 * A publish takes well under a millisecond; a reader spinning this long means the writer died
 * mid-publish (impossible short of a crash, given the try/finally in publish) — fail loudly.
 */
const MAX_SPINS = 50_000_000;

function spinLimit(): never {
  throw new Error('ring table: seqlock stayed odd too long (writer died mid-publish?)');
}

export class RingTable {
  readonly buffer: SharedArrayBuffer;
  private readonly i32: Int32Array;
  private readonly u32: Uint32Array;
  private readonly u16: Uint16Array;
  private readonly u8: Uint8Array;
  /** Only the instance that created the buffer may publish: the seqlock assumes a single writer. */
  private readonly writable: boolean;

  private constructor(buffer: SharedArrayBuffer, writable: boolean) {
    this.buffer = buffer;
    this.i32 = new Int32Array(buffer);
    this.u32 = new Uint32Array(buffer);
    this.u16 = new Uint16Array(buffer);
    this.u8 = new Uint8Array(buffer);
    this.writable = writable;
  }

  static create(): RingTable {
    const t = new RingTable(new SharedArrayBuffer(TOTAL_BYTES), true);
    for (let h = 0; h < 2; h++) Atomics.store(t.i32, ((HEADER_BYTES + h * HALF_BYTES) >> 2) + M_SELF, -1);
    Atomics.store(t.i32, H_MAGIC, MAGIC);
    return t;
  }

  static attach(buffer: SharedArrayBuffer): RingTable {
    if (!(buffer instanceof SharedArrayBuffer)) throw new Error('RingTable.attach: expected a SharedArrayBuffer');
    if (buffer.byteLength !== TOTAL_BYTES) {
      throw new Error(`RingTable.attach: buffer is ${buffer.byteLength} bytes, expected ${TOTAL_BYTES} (layout mismatch)`);
    }
    const t = new RingTable(buffer, false);
    const magic = Atomics.load(t.i32, H_MAGIC);
    if (magic !== MAGIC) throw new Error(`RingTable.attach: bad magic 0x${(magic >>> 0).toString(16)}, not a ring table`);
    return t;
  }

  /** Number of completed publications. */
  get version(): number {
    return Atomics.load(this.i32, H_VERSION);
  }

  /**
   * Writer side (the creating instance, main thread): copy `layout` into the inactive half, then
   * flip. Validation and the liveness callback run before the seqlock is taken so a throw cannot
   * leave it odd.
   */
  publish(layout: RingLayout, selfIndex: number, liveness: (nodeId: string) => Liveness, pending: readonly RingRange[] = []): void {
    if (!this.writable) throw new Error('RingTable.publish: this table was attached read-only; only the creating thread publishes');
    const n = layout.tokens.length;
    const r = layout.replicas;
    const nodes = layout.nodeIds.length;
    if (n > MAX_TOKENS) throw new Error(`RingTable.publish: ${n} tokens exceeds MAX_TOKENS=${MAX_TOKENS}`);
    if (nodes > MAX_NODES) throw new Error(`RingTable.publish: ${nodes} nodes exceeds MAX_NODES=${MAX_NODES}`);
    if (!Number.isInteger(r) || r < 0 || r > MAX_REPLICAS) {
      throw new Error(`RingTable.publish: replicas=${String(r)} outside [0, MAX_REPLICAS=${MAX_REPLICAS}]`);
    }
    if (n > 0 && r === 0) throw new Error('RingTable.publish: a non-empty ring needs replicas >= 1');
    if (layout.owner.length !== n || layout.pref.length !== n * r) {
      throw new Error('RingTable.publish: layout arrays do not match tokens x replicas');
    }
    if (!Number.isInteger(selfIndex) || selfIndex < -1 || selfIndex >= nodes) {
      throw new Error(`RingTable.publish: selfIndex=${String(selfIndex)} outside [-1, ${nodes})`);
    }
    for (let j = 0; j < layout.pref.length; j++) {
      if (layout.pref[j]! >= nodes) throw new Error(`RingTable.publish: pref entry ${j} names node ${layout.pref[j]} of ${nodes}`);
    }
    for (let i = 0; i < n; i++) {
      const t = layout.tokens[i]!;
      if (!(t.hi >>> 0 === t.hi && t.lo >>> 0 === t.lo)) throw new Error(`RingTable.publish: token ${i} is not two uint32 words`);
      if (i > 0) {
        const p = layout.tokens[i - 1]!;
        if (p.hi > t.hi || (p.hi === t.hi && p.lo >= t.lo)) throw new Error(`RingTable.publish: tokens not strictly ascending at ${i}`);
      }
    }
    const intervals = toPendingIntervals(pending);
    if (intervals.length > 4 * MAX_PENDING_RANGES) throw new Error(`RingTable.publish: ${intervals.length / 4} pending intervals exceed MAX_PENDING_RANGES=${MAX_PENDING_RANGES}`);
    const live = new Uint8Array(nodes);
    for (let k = 0; k < nodes; k++) {
      const l = liveness(layout.nodeIds[k]!);
      if (l !== Liveness.Unknown && l !== Liveness.Up && l !== Liveness.Down) {
        throw new Error(`RingTable.publish: liveness of ${layout.nodeIds[k]} is ${String(l)}`);
      }
      live[k] = l;
    }

    const { i32, u32, u16, u8 } = this;
    const seq = Atomics.load(i32, H_SEQ);
    invariant((seq & 1) === 0, 'ring table seqlock is even before publish (single writer)');
    Atomics.store(i32, H_SEQ, seq + 1);
    try {
      const half = 1 - Atomics.load(i32, H_ACTIVE);
      const base = HEADER_BYTES + half * HALF_BYTES;
      const meta = base >> 2;
      Atomics.store(i32, meta + M_TOKEN_COUNT, n);
      Atomics.store(i32, meta + M_REPLICAS, r);
      Atomics.store(i32, meta + M_SELF, selfIndex);
      Atomics.store(i32, meta + M_NODE_COUNT, nodes);
      Atomics.store(i32, meta + M_PENDING_COUNT, intervals.length / 4);
      const qB = (base + PENDING_OFF) >> 2;
      for (let j = 0; j < intervals.length; j++) Atomics.store(u32, qB + j, intervals[j]!);
      const hiB = (base + TOKEN_HI_OFF) >> 2;
      const loB = (base + TOKEN_LO_OFF) >> 2;
      for (let i = 0; i < n; i++) {
        const t = layout.tokens[i]!;
        Atomics.store(u32, hiB + i, t.hi);
        Atomics.store(u32, loB + i, t.lo);
      }
      const pB = (base + PREF_OFF) >> 1;
      for (let j = 0; j < n * r; j++) Atomics.store(u16, pB + j, layout.pref[j]!);
      // Clear stale liveness bytes too: indexes past nodeCount must read Unknown.
      const lB = base + LIVE_OFF;
      for (let k = 0; k < MAX_NODES; k++) Atomics.store(u8, lB + k, k < nodes ? live[k]! : Liveness.Unknown);
      Atomics.store(i32, H_ACTIVE, half);
      Atomics.add(i32, H_VERSION, 1);
    } finally {
      // Even on an unexpected throw: the half being written was inactive, so readers stay correct.
      Atomics.store(i32, H_SEQ, seq + 2);
    }
  }

  /**
   * Writer side: update one node's liveness in the active half. Not covered by the seqlock (a
   * single byte is atomic on its own); it must run on the publishing thread so it cannot race a
   * publish (and the next publish takes liveness from its callback anyway).
   */
  setLiveness(nodeIndex: number, l: Liveness): void {
    if (!this.writable) throw new Error('RingTable.setLiveness: this table was attached read-only');
    if (l !== Liveness.Unknown && l !== Liveness.Up && l !== Liveness.Down) throw new Error(`RingTable.setLiveness: bad liveness ${String(l)}`);
    const base = HEADER_BYTES + Atomics.load(this.i32, H_ACTIVE) * HALF_BYTES;
    const nodes = Atomics.load(this.i32, (base >> 2) + M_NODE_COUNT);
    if (!Number.isInteger(nodeIndex) || nodeIndex < 0 || nodeIndex >= nodes) {
      throw new RangeError(`RingTable.setLiveness: node index ${String(nodeIndex)} outside [0, ${nodes})`);
    }
    Atomics.store(this.u8, base + LIVE_OFF + nodeIndex, l);
  }

  /** Liveness of a node index of the current layout (Unknown for indexes it does not have). */
  liveness(nodeIndex: number): Liveness {
    if (!(nodeIndex >= 0 && nodeIndex < MAX_NODES)) throw new RangeError(`RingTable.liveness: node index ${String(nodeIndex)} outside [0, ${MAX_NODES})`);
    const i32 = this.i32;
    for (let spins = 0; ; spins++) {
      if (spins > MAX_SPINS) spinLimit();
      const s1 = Atomics.load(i32, H_SEQ);
      if ((s1 & 1) !== 0) continue;
      const base = HEADER_BYTES + Atomics.load(i32, H_ACTIVE) * HALF_BYTES;
      const l = Atomics.load(this.u8, base + LIVE_OFF + (nodeIndex | 0));
      if (Atomics.load(i32, H_SEQ) === s1) return l as Liveness;
    }
  }

  private meta(slot: number): number {
    const i32 = this.i32;
    for (let spins = 0; ; spins++) {
      if (spins > MAX_SPINS) spinLimit();
      const s1 = Atomics.load(i32, H_SEQ);
      if ((s1 & 1) !== 0) continue;
      const v = Atomics.load(i32, ((HEADER_BYTES + Atomics.load(i32, H_ACTIVE) * HALF_BYTES) >> 2) + slot);
      if (Atomics.load(i32, H_SEQ) === s1) return v;
    }
  }

  /** This node's index in the published layout, -1 if it owns no tokens. */
  selfIndex(): number {
    return this.meta(M_SELF);
  }

  tokenCount(): number {
    return this.meta(M_TOKEN_COUNT);
  }

  replicaCount(): number {
    return this.meta(M_REPLICAS);
  }

  /**
   * Hot path, allocation-free: the preference list of the key token (hi, lo). Writes the R node
   * indexes into outNodes (it must have room for R; MAX_REPLICAS is always enough), the position
   * into outPos[0] if given, and returns R (0 for an empty ring). Which local shard of a node holds
   * the key does not depend on the ring: see src/storage/placement.ts.
   */
  lookup(hi: number, lo: number, outNodes: Uint16Array, outPos?: Int32Array): number {
    if (this.writable) return this.lookupOnWriterThread(hi, lo, outNodes, outPos);
    const { i32, u32, u16 } = this;
    for (let spins = 0; ; spins++) {
      if (spins > MAX_SPINS) spinLimit();
      const s1 = Atomics.load(i32, H_SEQ);
      if ((s1 & 1) !== 0) continue;
      const base = HEADER_BYTES + Atomics.load(i32, H_ACTIVE) * HALF_BYTES;
      const meta = base >> 2;
      const n = Atomics.load(i32, meta + M_TOKEN_COUNT);
      const r = Atomics.load(i32, meta + M_REPLICAS);
      let pos = 0;
      if (n > 0) {
        pos = searchWords(u32, (base + TOKEN_HI_OFF) >> 2, (base + TOKEN_LO_OFF) >> 2, n, hi, lo);
        // A torn read can only produce garbage inside the buffer (n, r are always within the
        // MAX_* bounds), and out-of-range typed-array writes are no-ops; the seq check discards it.
        const pB = ((base + PREF_OFF) >> 1) + pos * r;
        for (let k = 0; k < r; k++) outNodes[k] = Atomics.load(u16, pB + k);
      }
      if (Atomics.load(i32, H_SEQ) !== s1) continue;
      if (outNodes.length < r) throw new RangeError(`RingTable.lookup: output array needs room for ${r} replicas (use MAX_REPLICAS)`);
      if (outPos !== undefined) outPos[0] = n > 0 ? pos : -1;
      return n > 0 ? r : 0;
    }
  }

  /**
   * lookup() for the creating instance. Instances cannot cross threads (only the buffer can), so this
   * runs on the writer's own thread and publish() cannot interleave with it: no seqlock is needed
   * and plain loads are safe. Measured (64 nodes x 64 vnodes, R=3, random keys): ~155 ns per lookup
   * versus ~290 ns with Atomics.load on every read, which is what workers pay.
   */
  private lookupOnWriterThread(hi: number, lo: number, outNodes: Uint16Array, outPos?: Int32Array): number {
    const { i32, u32, u16 } = this;
    const base = HEADER_BYTES + i32[H_ACTIVE]! * HALF_BYTES;
    const meta = base >> 2;
    const n = i32[meta + M_TOKEN_COUNT]!;
    const r = i32[meta + M_REPLICAS]!;
    if (n === 0) {
      if (outPos !== undefined) outPos[0] = -1;
      return 0;
    }
    if (outNodes.length < r) throw new RangeError(`RingTable.lookup: output array needs room for ${r} replicas (use MAX_REPLICAS)`);
    const hiB = (base + TOKEN_HI_OFF) >> 2;
    const loB = (base + TOKEN_LO_OFF) >> 2;
    let a = 0;
    let b = n;
    while (a < b) {
      const m = (a + b) >>> 1;
      const th = u32[hiB + m]!;
      if (th < hi || (th === hi && u32[loB + m]! < lo)) a = m + 1;
      else b = m;
    }
    const pos = a === n ? 0 : a;
    const pB = ((base + PREF_OFF) >> 1) + pos * r;
    for (let k = 0; k < r; k++) outNodes[k] = u16[pB + k]!;
    if (outPos !== undefined) outPos[0] = pos;
    return r;
  }

  /**
   * Does this node store token (hi, lo): is it in the token's preference list, or a pending replica
   * of it (a range movement is bringing the token to this node)? Shard workers use it (with the
   * token's placement shard) to reject keys routed to them by a stale view.
   */
  isReplica(hi: number, lo: number): boolean {
    return this.replicaRank(hi, lo) !== NOT_STORED;
  }

  /**
   * This node's index in the preference list of token (hi, lo) (0 = the owner); PENDING when it is
   * only a pending replica of the token; NOT_STORED when neither. Cleanup compares the rank with
   * each table's N.
   */
  replicaRank(hi: number, lo: number): number {
    const { i32, u32, u16 } = this;
    for (let spins = 0; ; spins++) {
      if (spins > MAX_SPINS) spinLimit();
      const s1 = Atomics.load(i32, H_SEQ);
      if ((s1 & 1) !== 0) continue;
      const base = HEADER_BYTES + Atomics.load(i32, H_ACTIVE) * HALF_BYTES;
      const meta = base >> 2;
      const n = Atomics.load(i32, meta + M_TOKEN_COUNT);
      const r = Atomics.load(i32, meta + M_REPLICAS);
      const self = Atomics.load(i32, meta + M_SELF);
      let rank = NOT_STORED;
      if (n > 0 && self >= 0) {
        const pos = searchWords(u32, (base + TOKEN_HI_OFF) >> 2, (base + TOKEN_LO_OFF) >> 2, n, hi, lo);
        const pB = ((base + PREF_OFF) >> 1) + pos * r;
        for (let k = 0; k < r && rank === NOT_STORED; k++) if (Atomics.load(u16, pB + k) === self) rank = k;
      }
      if (rank === NOT_STORED) {
        const q = Atomics.load(i32, meta + M_PENDING_COUNT);
        // A torn read is discarded by the seq check below (q is bounded by MAX_PENDING_RANGES when whole).
        if (q > 0 && q <= MAX_PENDING_RANGES && inIntervals(u32, (base + PENDING_OFF) >> 2, q, hi, lo)) rank = PENDING;
      }
      if (Atomics.load(i32, H_SEQ) === s1) return rank;
    }
  }

  /** Pending intervals published with the current layout, as inclusive [low, high] token pairs (tests, status). */
  pendingIntervals(): Array<{ low: Token; high: Token }> {
    const { i32, u32 } = this;
    for (let spins = 0; ; spins++) {
      if (spins > MAX_SPINS) spinLimit();
      const s1 = Atomics.load(i32, H_SEQ);
      if ((s1 & 1) !== 0) continue;
      const base = HEADER_BYTES + Atomics.load(i32, H_ACTIVE) * HALF_BYTES;
      const q = Math.min(Atomics.load(i32, (base >> 2) + M_PENDING_COUNT), MAX_PENDING_RANGES);
      const qB = (base + PENDING_OFF) >> 2;
      const out: Array<{ low: Token; high: Token }> = [];
      for (let k = 0; k < q; k++) {
        out.push({ low: { hi: Atomics.load(u32, qB + 4 * k), lo: Atomics.load(u32, qB + 4 * k + 1) }, high: { hi: Atomics.load(u32, qB + 4 * k + 2), lo: Atomics.load(u32, qB + 4 * k + 3) } });
      }
      if (Atomics.load(i32, H_SEQ) === s1) return out;
    }
  }

  /**
   * The ring ranges this node stores: positions whose preference list holds self. Range `pos` is
   * (tokens[pos-1], tokens[pos]] (pos 0 wraps to the last token); on a 1-token ring start == end,
   * meaning the whole ring. Every shard worker keeps one Merkle tree per entry over its own keys of
   * the range. Read under the seqlock, so the answer is one publication's view; callers that cache
   * it compare `version` (read before this call) to notice a newer publication.
   */
  localRanges(): RingRange[] {
    return this.rangesOfSelf().map(({ pos, startHi, startLo, endHi, endLo }) => ({ pos, startHi, startLo, endHi, endLo }));
  }

  /**
   * Every range this node stores, with its whole preference list (node indexes, in order): the
   * main thread's view for anti-entropy. Allocation happens inside the retry loop; a torn pass is
   * discarded.
   */
  rangesOfSelf(): SelfRange[] {
    const { i32, u32, u16 } = this;
    for (let spins = 0; ; spins++) {
      if (spins > MAX_SPINS) spinLimit();
      const s1 = Atomics.load(i32, H_SEQ);
      if ((s1 & 1) !== 0) continue;
      const base = HEADER_BYTES + Atomics.load(i32, H_ACTIVE) * HALF_BYTES;
      const meta = base >> 2;
      const n = Atomics.load(i32, meta + M_TOKEN_COUNT);
      const r = Atomics.load(i32, meta + M_REPLICAS);
      const self = Atomics.load(i32, meta + M_SELF);
      const out: SelfRange[] = [];
      if (n > 0 && self >= 0) {
        const hiB = (base + TOKEN_HI_OFF) >> 2;
        const loB = (base + TOKEN_LO_OFF) >> 2;
        for (let pos = 0; pos < n; pos++) {
          const pB = ((base + PREF_OFF) >> 1) + pos * r;
          let mine = false;
          const replicas: number[] = new Array<number>(r);
          for (let k = 0; k < r; k++) {
            replicas[k] = Atomics.load(u16, pB + k);
            if (replicas[k] === self) mine = true;
          }
          if (!mine) continue;
          const prev = pos === 0 ? n - 1 : pos - 1;
          out.push({
            pos,
            startHi: Atomics.load(u32, hiB + prev),
            startLo: Atomics.load(u32, loB + prev),
            endHi: Atomics.load(u32, hiB + pos),
            endLo: Atomics.load(u32, loB + pos),
            replicas,
          });
        }
      }
      if (Atomics.load(i32, H_SEQ) === s1) return out;
    }
  }
}

/** replicaRank: the node stores the token only as a pending replica of a range movement. */
export const PENDING = -2;
/** replicaRank: the node does not store the token. */
export const NOT_STORED = -1;

function cmpWords(ahi: number, alo: number, bhi: number, blo: number): number {
  return ahi !== bhi ? (ahi < bhi ? -1 : 1) : alo !== blo ? (alo < blo ? -1 : 1) : 0;
}

/**
 * Ring ranges (start, end] as sorted, disjoint, merged inclusive intervals [low, high], flattened
 * to 4 uint32 words each. A wrapping range becomes two intervals; start == end is the whole ring.
 */
export function toPendingIntervals(ranges: readonly RingRange[]): number[] {
  const pieces: Array<[number, number, number, number]> = [];
  for (const r of ranges) {
    for (const w of [r.startHi, r.startLo, r.endHi, r.endLo]) if (!(w >>> 0 === w)) throw new Error('pending range bounds must be uint32 words');
    const c = cmpWords(r.startHi, r.startLo, r.endHi, r.endLo);
    if (c === 0) {
      pieces.push([0, 0, MAX_U32, MAX_U32]);
      continue;
    }
    // low = start + 1 (with carry); start = max has no successor: that piece is empty.
    const startIsMax = r.startHi === MAX_U32 && r.startLo === MAX_U32;
    const lowHi = r.startLo === MAX_U32 ? r.startHi + 1 : r.startHi;
    const lowLo = r.startLo === MAX_U32 ? 0 : r.startLo + 1;
    if (c < 0) pieces.push([lowHi, lowLo, r.endHi, r.endLo]);
    else {
      pieces.push([0, 0, r.endHi, r.endLo]);
      if (!startIsMax) pieces.push([lowHi, lowLo, MAX_U32, MAX_U32]);
    }
  }
  pieces.sort((a, b) => cmpWords(a[0], a[1], b[0], b[1]));
  const out: number[] = [];
  for (const p of pieces) {
    const n = out.length;
    if (n > 0) {
      // Merge when p starts at or right after the previous high (adjacent token intervals join).
      const ph = out[n - 2]!;
      const pl = out[n - 1]!;
      const nextHi = pl === MAX_U32 ? ph + 1 : ph;
      const nextLo = pl === MAX_U32 ? 0 : pl + 1;
      if ((ph === MAX_U32 && pl === MAX_U32) || cmpWords(p[0], p[1], nextHi, nextLo) <= 0) {
        if (cmpWords(p[2], p[3], ph, pl) > 0) {
          out[n - 2] = p[2];
          out[n - 1] = p[3];
        }
        continue;
      }
    }
    out.push(p[0], p[1], p[2], p[3]);
  }
  return out;
}

/** Is (hi, lo) inside one of the q sorted inclusive intervals at word offset qB? Binary search. */
function inIntervals(u32: Uint32Array, qB: number, q: number, hi: number, lo: number): boolean {
  // The last interval whose low is <= (hi, lo).
  let a = 0;
  let b = q;
  while (a < b) {
    const m = (a + b) >>> 1;
    if (cmpWords(Atomics.load(u32, qB + 4 * m), Atomics.load(u32, qB + 4 * m + 1), hi, lo) <= 0) a = m + 1;
    else b = m;
  }
  if (a === 0) return false;
  const k = a - 1;
  return cmpWords(hi, lo, Atomics.load(u32, qB + 4 * k + 2), Atomics.load(u32, qB + 4 * k + 3)) <= 0;
}

/** First i in [0, n) with token[i] >= (hi, lo), or 0 when none (wrap). Tokens are hi/lo word arrays. */
function searchWords(u32: Uint32Array, hiB: number, loB: number, n: number, hi: number, lo: number): number {
  let a = 0;
  let b = n;
  while (a < b) {
    const m = (a + b) >>> 1;
    const th = Atomics.load(u32, hiB + m);
    if (th < hi || (th === hi && Atomics.load(u32, loB + m) < lo)) a = m + 1;
    else b = m;
  }
  return a === n ? 0 : a;
}
