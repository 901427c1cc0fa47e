/**
 * Pure decisions for sloppy quorum and hinted handoff (no I/O, no clocks read here).
 */
import type { RingLayout } from '../ring/builder.js';
import type { QuorumMode } from '../config/config.js';

/**
 * Nodes clockwise from ring position `pos` (the key's position), distinct, skipping `exclude`
 * (the key's own replicas): the extended preference list Dynamo's sloppy quorum draws from.
 */
export function clockwiseFallbacks(layout: RingLayout, pos: number, exclude: ReadonlySet<string>, limit: number): string[] {
  const out: string[] = [];
  const seen = new Set<string>(exclude);
  const T = layout.tokens.length;
  for (let k = 0; k < T && out.length < limit; k++) {
    const id = layout.nodeIds[layout.owner[(pos + k) % T]!]!;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(id);
  }
  return out;
}

export interface HintPlacement {
  /** The replica that missed the write. */
  target: string;
  /** Node that holds the hint: a distinct healthy fallback, or `null` = the coordinator itself. */
  holder: string | null;
  /** Whether this hinted write counts toward W. */
  counts: boolean;
}

/**
 * Choose where each missed replica's hint lives. Each down replica gets its own healthy fallback
 * (the next node clockwise that isn't a replica), as in Dynamo; with no fallback left (e.g. 3 nodes,
 * N=3) the coordinator keeps the hint, as Cassandra does. A hint on a distinct fallback counts
 * toward W under `sloppy` quorum; under `strict` only `ANY` counts hints (and then any hint counts).
 */
export function placeHints(
  missed: readonly string[],
  fallbacks: readonly string[],
  isUp: (id: string) => boolean,
  quorum: QuorumMode,
  any: boolean,
): HintPlacement[] {
  const free = fallbacks.filter(isUp);
  return missed.map((target) => {
    const holder = free.shift() ?? null;
    const counts = any || (quorum === 'sloppy' && holder !== null);
    return { target, holder, counts };
  });
}

export function isExpired(createdAtMs: number, nowMs: number, windowMs: number): boolean {
  return nowMs - createdAtMs > windowMs;
}

/** Token bucket for hint replay, so a returning node is not flooded. */
export class ReplayThrottle {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    nowMs: number,
  ) {
    if (!(perSecond > 0 && burst >= 1)) throw new Error('invariant violated: throttle needs a positive rate and burst');
    this.tokens = burst;
    this.last = nowMs;
  }

  /** How many of `want` may go now (0..want); consumes them. */
  take(want: number, nowMs: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((nowMs - this.last) * this.perSecond) / 1000);
    this.last = nowMs;
    const n = Math.min(want, Math.floor(this.tokens));
    this.tokens -= n;
    return n;
  }

  /** Milliseconds until at least one token is available. */
  waitMs(nowMs: number): number {
    const t = Math.min(this.burst, this.tokens + ((nowMs - this.last) * this.perSecond) / 1000);
    return t >= 1 ? 0 : Math.ceil(((1 - t) * 1000) / this.perSecond);
  }
}

/**
 * How many hints of a replay window may be deleted: the leading run of settled ones (delivered, or
 * dropped as expired), in seq order. A hint after the first failure stays stored even when it was
 * delivered — it is re-sent on the next pass, which is harmless (versions merge idempotently) —
 * so a failure never deletes later hints while an earlier one remains.
 */
export function settledPrefix(settled: readonly boolean[]): number {
  let k = 0;
  while (k < settled.length && settled[k]) k++;
  return k;
}

/** Hints sent concurrently per replay window (and the throttle's burst): about 100 ms of the rate, 1..100. */
export function replayWindow(perSecond: number, maxWindow = 100): number {
  return Math.max(1, Math.min(maxWindow, Math.floor(perSecond / 10)));
}

/** Hints per second over a pass that started at `startedAt` and ran until `untilMs`. */
export function replayRate(sent: number, startedAt: number, untilMs: number): number {
  return sent > 0 ? Math.round((sent * 1000) / Math.max(1, untilMs - startedAt)) : 0;
}
