/**
 * Coordinator-side request metrics: count, latency and errors of every request the router
 * coordinates, per operation and consistency level. The router calls `wrap` once per request
 * (see RequestObserver in src/router/router.ts); the completion wrapper records into typed arrays.
 */
import type { ConsistencySpec } from '../router/consistency.js';
import type { Done, RequestObserver, RequestOp } from '../router/router.js';
import { ERROR_CODES, RingkvError, type ErrorCode } from '../util/errors.js';
import { LATENCY_BUCKETS_SECONDS, SlottedHistogram } from './histogram.js';

export const REQUEST_OPS: readonly RequestOp[] = Object.freeze(['read', 'write', 'delete', 'scan']);

const LEVELS = ['ONE', 'TWO', 'QUORUM', 'ALL', 'ANY'] as const;
/** Explicit `r`/`w` counts get their own label (`r=2`); the API bounds them to 1..5. */
const MAX_EXPLICIT = 5;
/** Labels per op: the levels, then r/w=1..5, then "other" (a count outside 1..5 from an internal caller). */
const CONSISTENCY_SLOTS = LEVELS.length + MAX_EXPLICIT + 1;
const OTHER = CONSISTENCY_SLOTS - 1;
const DEFAULT_LEVEL = LEVELS.indexOf('QUORUM');

const CODE_INDEX = new Map<string, number>(ERROR_CODES.map((c, i) => [c, i]));
const INTERNAL = CODE_INDEX.get('internal')!;

function opIndex(op: RequestOp): number {
  switch (op) {
    case 'read':
      return 0;
    case 'write':
      return 1;
    case 'delete':
      return 2;
    case 'scan':
      return 3;
  }
}

/** The consistency label's slot: the level asked for, else the explicit count, else QUORUM (the default). */
function consistencyIndex(op: RequestOp, c: ConsistencySpec): number {
  if (c.level !== undefined) {
    const i = LEVELS.indexOf(c.level);
    return i >= 0 ? i : OTHER;
  }
  const explicit = op === 'read' || op === 'scan' ? c.r : c.w;
  if (explicit === undefined) return DEFAULT_LEVEL;
  return Number.isInteger(explicit) && explicit >= 1 && explicit <= MAX_EXPLICIT ? LEVELS.length + explicit - 1 : OTHER;
}

function consistencyLabel(op: RequestOp, slot: number): string {
  if (slot < LEVELS.length) return LEVELS[slot]!;
  if (slot === OTHER) return 'other';
  return `${op === 'read' || op === 'scan' ? 'r' : 'w'}=${slot - LEVELS.length + 1}`;
}

/** Cumulative totals of one operation over every consistency level (the dashboard's input). */
export interface OpTotals {
  count: number;
  errors: number;
  sum: number;
  /** Non-cumulative counts per LATENCY_BUCKETS_SECONDS bucket, overflow last. */
  buckets: number[];
}

export class RequestMetrics implements RequestObserver {
  readonly latency = new SlottedHistogram(LATENCY_BUCKETS_SECONDS, REQUEST_OPS.length * CONSISTENCY_SLOTS);
  /** Per (op, error code). */
  readonly errors = new Float64Array(REQUEST_OPS.length * ERROR_CODES.length);
  /** Requests started and not yet answered. */
  inFlight = 0;

  wrap<T>(op: RequestOp, consistency: ConsistencySpec, done: Done<T>): Done<T> {
    const o = opIndex(op);
    const slot = o * CONSISTENCY_SLOTS + consistencyIndex(op, consistency);
    const t0 = performance.now();
    this.inFlight++;
    return (err, result) => {
      this.inFlight--;
      this.latency.record(slot, (performance.now() - t0) / 1000);
      if (err) this.errors[o * ERROR_CODES.length + (err instanceof RingkvError ? (CODE_INDEX.get(err.code) ?? INTERNAL) : codeIndexOf(err))]!++;
      done(err, result);
    };
  }

  /** Label sets with at least one request, for the exporter. */
  slotsInUse(): Array<{ slot: number; op: RequestOp; consistency: string }> {
    const out: Array<{ slot: number; op: RequestOp; consistency: string }> = [];
    for (let o = 0; o < REQUEST_OPS.length; o++) {
      for (let c = 0; c < CONSISTENCY_SLOTS; c++) {
        const slot = o * CONSISTENCY_SLOTS + c;
        if (this.latency.totals[slot]! > 0) out.push({ slot, op: REQUEST_OPS[o]!, consistency: consistencyLabel(REQUEST_OPS[o]!, c) });
      }
    }
    return out;
  }

  errorCounts(): Array<{ op: RequestOp; code: ErrorCode; count: number }> {
    const out: Array<{ op: RequestOp; code: ErrorCode; count: number }> = [];
    for (let o = 0; o < REQUEST_OPS.length; o++) {
      for (let k = 0; k < ERROR_CODES.length; k++) {
        const n = this.errors[o * ERROR_CODES.length + k]!;
        if (n > 0) out.push({ op: REQUEST_OPS[o]!, code: ERROR_CODES[k]!, count: n });
      }
    }
    return out;
  }

  /** Cumulative totals per operation, summed over consistency levels. */
  totalsByOp(): Record<RequestOp, OpTotals> {
    const out = {} as Record<RequestOp, OpTotals>;
    const width = LATENCY_BUCKETS_SECONDS.length + 1;
    for (let o = 0; o < REQUEST_OPS.length; o++) {
      const t: OpTotals = { count: 0, errors: 0, sum: 0, buckets: new Array<number>(width).fill(0) };
      for (let c = 0; c < CONSISTENCY_SLOTS; c++) {
        const slot = o * CONSISTENCY_SLOTS + c;
        if (this.latency.totals[slot] === 0) continue;
        t.count += this.latency.totals[slot]!;
        t.sum += this.latency.sums[slot]!;
        const b = this.latency.bucketsOf(slot);
        for (let i = 0; i < width; i++) t.buckets[i]! += b[i]!;
      }
      for (let k = 0; k < ERROR_CODES.length; k++) t.errors += this.errors[o * ERROR_CODES.length + k]!;
      out[REQUEST_OPS[o]!] = t;
    }
    return out;
  }
}

function codeIndexOf(err: Error): number {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? (CODE_INDEX.get(code) ?? INTERNAL) : INTERNAL;
}
