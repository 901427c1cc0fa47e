/**
 * Pending replicas (Cassandra's pending ranges): while a movement is under way, a write to a key
 * goes to the key's current replicas *and* to the nodes that will be its replicas once the
 * movement is done but are not yet (their acks do not count toward W). Reads use the current ring
 * only. Built from the current ring and the future ring of each movement under way (the union over
 * movements, so a second movement announced concurrently never removes a target of the first).
 *
 * Built once per ring publication on the main thread; `at` is the router's hot-path lookup and
 * allocates nothing: one binary search over the refined tokens, then a cached list per (position,
 * N). Pure data (no I/O); liveness comes from the caller's `isUp`.
 */
import type { RingLayout } from '../ring/builder.js';
import type { RingRange } from '../ring/table.js';
import type { Token } from '../ring/hash.js';
import { refinedRanges } from './plan.js';
import { invariant } from '../util/errors.js';

/** A pending replica as the router's write fan-out sees it (the router's Replica shape). */
export interface PendingReplica {
  /** Index in the current layout, or -1 for a node outside it (a joining node). */
  readonly nodeIndex: number;
  readonly nodeId: string;
  /** This node. */
  readonly local: boolean;
}

/** What the router needs (src/router/router.ts): the pending replicas of a write, and their liveness. */
export interface PendingReplicas {
  /**
   * The pending replicas of a write of token (hi, lo) to the first `n` replicas (n = the N the
   * request asked for, before any clamp to the ring's size). A shared empty array when none.
   */
  at(hi: number, lo: number, n: number): readonly PendingReplica[];
  isUp(nodeId: string): boolean;
}

/** Largest N a table may have (consistency.ts validates 1..5). */
const MAX_N = 5;
const NONE: readonly PendingReplica[] = Object.freeze([]);

export class PendingTable implements PendingReplicas {
  private readonly hi: Uint32Array;
  private readonly lo: Uint32Array;
  /** lists[pos * MAX_N + (n - 1)]. */
  private readonly lists: Array<readonly PendingReplica[]>;
  /** Ring ranges this node stores as a pending replica (for RingTable.publish). */
  readonly selfRanges: RingRange[] = [];
  /** Refined positions with any pending replica (for status and tests). */
  readonly pendingPositions: number;

  constructor(
    current: RingLayout,
    futures: readonly RingLayout[],
    selfId: string,
    readonly isUp: (nodeId: string) => boolean,
  ) {
    invariant(futures.length > 0, 'a pending table needs at least one future ring');
    // Refine the current ring by every future ring's tokens: refine against each future in turn.
    const perFuture = futures.map((f) => refinedRanges(current, f));
    const ends = new Map<string, Token>();
    for (const rs of perFuture) for (const r of rs) ends.set(`${r.end.hi}:${r.end.lo}`, r.end);
    const tokens = [...ends.values()].sort((a, b) => (a.hi !== b.hi ? a.hi - b.hi : a.lo - b.lo));
    this.hi = Uint32Array.from(tokens, (t) => t.hi);
    this.lo = Uint32Array.from(tokens, (t) => t.lo);
    this.lists = new Array<readonly PendingReplica[]>(tokens.length * MAX_N).fill(NONE);
    const replicaObjects = new Map<string, PendingReplica>();
    const replicaOf = (id: string): PendingReplica => {
      let r = replicaObjects.get(id);
      if (r === undefined) replicaObjects.set(id, (r = Object.freeze({ nodeIndex: current.nodeIds.indexOf(id), nodeId: id, local: id === selfId })));
      return r;
    };
    let withPending = 0;
    tokens.forEach((end, pos) => {
      // The refined range ending at `end` lies inside exactly one refined range of each future.
      const per = perFuture.map((rs) => rs[indexAtOrAfter(rs, end)]!);
      let any = false;
      let selfPending = false;
      for (let n = 1; n <= MAX_N; n++) {
        const ids = new Set<string>();
        for (const r of per) {
          const c = r.current.slice(0, n);
          for (const x of r.future.slice(0, n)) if (!c.includes(x)) ids.add(x);
        }
        if (ids.size > 0) {
          this.lists[pos * MAX_N + n - 1] = Object.freeze([...ids].sort().map(replicaOf));
          any = true;
        }
      }
      for (const r of per) if (r.future.includes(selfId) && !r.current.includes(selfId)) selfPending = true;
      if (any) withPending++;
      if (selfPending) {
        const start = tokens[(pos + tokens.length - 1) % tokens.length]!;
        this.selfRanges.push({ pos, startHi: start.hi, startLo: start.lo, endHi: end.hi, endLo: end.lo });
      }
    });
    this.pendingPositions = withPending;
  }

  at(hi: number, lo: number, n: number): readonly PendingReplica[] {
    const count = this.hi.length;
    if (count === 0) return NONE;
    let a = 0;
    let b = count;
    while (a < b) {
      const m = (a + b) >>> 1;
      const th = this.hi[m]!;
      if (th < hi || (th === hi && this.lo[m]! < lo)) a = m + 1;
      else b = m;
    }
    const pos = a === count ? 0 : a;
    const k = n < 1 ? 1 : n > MAX_N ? MAX_N : n;
    return this.lists[pos * MAX_N + k - 1]!;
  }
}

/** Index of the first range whose end is >= t (ranges sorted by end; wraps to 0). */
function indexAtOrAfter(rs: ReadonlyArray<{ end: Token }>, t: Token): number {
  let a = 0;
  let b = rs.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    const e = rs[m]!.end;
    if (e.hi < t.hi || (e.hi === t.hi && e.lo < t.lo)) a = m + 1;
    else b = m;
  }
  return a === rs.length ? 0 : a;
}
