/**
 * The streaming planner: which token ranges a range movement must copy, to which node, from which
 * nodes. A pure function of (current ring, future ring, replication factors in use, liveness).
 *
 * Ranges are those of the *refined* ring: the union of both rings' tokens, so that every refined
 * range has one preference list now and one after the movement. A node `g` gains a refined range
 * for a table of replication factor N when it is in the future list's first N entries but not in
 * the current list's first N (Cassandra's pending ranges, per N: with 4 nodes and N = 3 the ring
 * lists 4 replicas, and the 4th copy is no table's).
 *
 * Sources are chosen for consistency, not just spread (Cassandra's strict consistent range
 * movement): when exactly one current replica gives the range up to `g` and it is up, `g` streams
 * from that replica alone. Any key acknowledged by W of the current replicas is then held by W of
 * the future ones: the loser's copy moves to `g`, the others stay. Streaming from another replica
 * instead could copy from one that missed the write, and an R = 2 read could then see only copies
 * without it. When the loser is down (removenode, replace, or a dead source), there is no single
 * source with that property, so `g` streams from every live current replica and the receiver
 * merges them (versions merge idempotently): at least one live current replica holds each write
 * acknowledged by W = N - 1 or more. With several factors in use, a task streams from the union of
 * each factor's choice.
 */
import type { RingLayout } from '../ring/builder.js';
import { positionOf } from '../ring/builder.js';
import { compareTokens, tokenToBigInt, type Token } from '../ring/hash.js';
import { invariant } from '../util/errors.js';

const TWO64 = 1n << 64n;

export interface RefinedRange {
  /** Exclusive start; start == end is the whole ring (a ring with one token). */
  start: Token;
  end: Token;
  /** Preference list (node ids) now and after the movement; empty for an empty ring. */
  current: readonly string[];
  future: readonly string[];
}

export interface StreamTask {
  start: Token;
  end: Token;
  target: string;
  /** Where to stream from: the replica that gives the range up (strict), or every live current replica. */
  sources: string[];
  /** Every current replica of the range but the target: the fallbacks when a source dies. */
  replicas: string[];
  /** True when `sources` is the single replica that loses the range to the target. */
  strict: boolean;
}

export interface PlanInput {
  current: RingLayout;
  future: RingLayout;
  /** Replication factors of the tables in use (the default included), each 1..5. */
  factors: readonly number[];
  isUp: (nodeId: string) => boolean;
}

function prefAt(l: RingLayout, t: Token): string[] {
  if (l.tokens.length === 0) return [];
  const pos = positionOf(l, t);
  const out: string[] = [];
  for (let k = 0; k < l.replicas; k++) out.push(l.nodeIds[l.pref[pos * l.replicas + k]!]!);
  return out;
}

/** Sorted union of two sorted token lists. */
function unionTokens(a: readonly Token[], b: readonly Token[]): Token[] {
  const out: Token[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const c = i >= a.length ? 1 : j >= b.length ? -1 : compareTokens(a[i]!, b[j]!);
    const t = c <= 0 ? a[i]! : b[j]!;
    if (c <= 0) i++;
    if (c >= 0) j++;
    out.push(t);
  }
  return out;
}

/** The refined ranges of two rings, in token order (range i ends at the i-th union token). */
export function refinedRanges(current: RingLayout, future: RingLayout): RefinedRange[] {
  const toks = unionTokens(current.tokens, future.tokens);
  return toks.map((end, i) => ({
    start: toks[(i + toks.length - 1) % toks.length]!,
    end,
    current: prefAt(current, end),
    future: prefAt(future, end),
  }));
}

/** Width of the range (start, end] in tokens (the whole ring when start == end). */
export function rangeWidth(start: Token, end: Token): bigint {
  const w = (tokenToBigInt(end) - tokenToBigInt(start) + TWO64) % TWO64;
  return w === 0n ? TWO64 : w;
}

/** The distinct replication factors, ascending, each clamped to 1..5. */
export function replicationFactors(ns: Iterable<number>): number[] {
  const set = new Set<number>();
  for (const n of ns) if (Number.isInteger(n) && n >= 1) set.add(Math.min(n, 5));
  return [...set].sort((a, b) => a - b);
}

/**
 * What a gainer needs for one N: the one replica that gives the range up to it (when there is
 * exactly one gainer and one loser), or else every current replica of the first N.
 */
interface Need {
  loser: string | null;
  replicas: readonly string[];
}

/** One (refined range, gainer): what it needs per N in use. Depends on the rings only, not on liveness. */
interface Gain {
  start: Token;
  end: Token;
  target: string;
  needs: Need[];
  replicas: string[];
  /** Equal shapes stream alike: adjacent gains with one shape merge into one task. */
  shape: string;
}

/**
 * Every (refined range, gaining node) with its sources, adjacent ranges that need the same merged.
 * Task boundaries depend on the two rings only (never on liveness), so a driver that restarts and
 * plans again finds the same tasks and resumes each at its cursor; sources follow liveness.
 */
export function planStreams(input: PlanInput): StreamTask[] {
  const factors = replicationFactors(input.factors);
  invariant(factors.length > 0, 'a plan needs at least one replication factor');
  const maxN = factors[factors.length - 1]!;
  const gains: Gain[] = [];
  for (const r of refinedRanges(input.current, input.future)) {
    const byTarget = new Map<string, Gain>();
    for (const n of factors) {
      const c = r.current.slice(0, n);
      const f = r.future.slice(0, n);
      const gainers = f.filter((x) => !c.includes(x));
      const losers = c.filter((x) => !f.includes(x));
      for (const g of gainers) {
        let acc = byTarget.get(g);
        if (acc === undefined) byTarget.set(g, (acc = { start: r.start, end: r.end, target: g, needs: [], replicas: r.current.slice(0, maxN).filter((x) => x !== g).sort(), shape: '' }));
        acc.needs.push({ loser: gainers.length === 1 && losers.length === 1 ? losers[0]! : null, replicas: c.filter((x) => x !== g) });
      }
    }
    for (const g of [...byTarget.values()].sort((a, b) => (a.target < b.target ? -1 : 1))) {
      g.shape = JSON.stringify([g.replicas, g.needs]);
      gains.push(g);
    }
  }
  return coalesce(gains).map((g) => {
    const sources = new Set<string>();
    let strict = true;
    for (const need of g.needs) {
      if (need.loser !== null && input.isUp(need.loser)) sources.add(need.loser);
      else {
        strict = false;
        for (const x of need.replicas) if (input.isUp(x)) sources.add(x);
      }
    }
    const list = [...sources].sort();
    return { start: g.start, end: g.end, target: g.target, sources: list, replicas: g.replicas, strict: strict && list.length === 1 };
  });
}

/**
 * Merge each gain into an earlier one for the same target that ends where it starts and needs the
 * same (fewer, longer tasks: one cursor each). Gains come in range order.
 */
function coalesce(gains: Gain[]): Gain[] {
  const open = new Map<string, Gain>();
  const out: Gain[] = [];
  for (const g of gains) {
    const prev = open.get(g.target);
    if (
      prev !== undefined &&
      compareTokens(prev.end, g.start) === 0 &&
      compareTokens(prev.start, prev.end) !== 0 &&
      prev.shape === g.shape &&
      // Never grow a task to the whole ring (start == end would mean that, ambiguously).
      compareTokens(prev.start, g.end) !== 0
    ) {
      prev.end = g.end;
      continue;
    }
    const copy = { ...g };
    open.set(g.target, copy);
    out.push(copy);
  }
  return out;
}

export interface PlanStats {
  /** Ranges (tasks) planned. */
  tasks: number;
  /** Fraction of the ring planned per target (each target counted once per range). */
  gainedFraction: Record<string, number>;
  /** Ring fraction streamed in total: width x sources, summed (what crosses the network). */
  streamedFraction: number;
  /** Ring fraction each source streams. */
  perSource: Record<string, number>;
}

export function planStats(tasks: readonly StreamTask[]): PlanStats {
  const gained: Record<string, number> = {};
  const perSource: Record<string, number> = {};
  let streamed = 0;
  for (const t of tasks) {
    const f = Number(rangeWidth(t.start, t.end)) / 2 ** 64;
    gained[t.target] = (gained[t.target] ?? 0) + f;
    for (const s of t.sources) perSource[s] = (perSource[s] ?? 0) + f;
    streamed += f * t.sources.length;
  }
  return { tasks: tasks.length, gainedFraction: gained, streamedFraction: streamed, perSource };
}
