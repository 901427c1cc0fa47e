import { badRequest } from '../util/errors.js';

export type ConsistencyLevel = 'ONE' | 'TWO' | 'QUORUM' | 'ALL' | 'ANY';
export const LEVELS: readonly ConsistencyLevel[] = ['ONE', 'TWO', 'QUORUM', 'ALL', 'ANY'];

/** What a request asked for: a level, or explicit numbers (either may be absent). */
export interface ConsistencySpec {
  level?: ConsistencyLevel;
  n?: number;
  r?: number;
  w?: number;
}

/** What the coordinator will do, after applying table defaults and the ring size. */
export interface ResolvedConsistency {
  n: number;
  /** Replies (reads) or acks (writes) required. */
  required: number;
  /** ANY: a hinted write counts toward the quorum even under strict quorum. */
  any: boolean;
  /** Set when the request asked for more replicas than the ring has distinct nodes. */
  clamped?: { requested: { n: number; required: number }; ringReplicas: number };
}

function levelCount(level: ConsistencyLevel, n: number): number {
  switch (level) {
    case 'ONE':
    case 'ANY':
      return 1;
    case 'TWO':
      return 2;
    case 'QUORUM':
      return Math.floor(n / 2) + 1;
    case 'ALL':
      return n;
  }
}

function positiveInt(v: unknown, name: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 5) throw badRequest(`${name} must be an integer between 1 and 5, got ${JSON.stringify(v)}`, { field: name });
  return n;
}

/** The spec of a request that names no consistency (the table's defaults): shared by the hot IPC path, so frozen. */
export const NO_CONSISTENCY: ConsistencySpec = Object.freeze({});

/** Parse `consistency`, `n`, `r`, `w` from query strings or request bodies. */
export function parseConsistency(q: { consistency?: unknown; n?: unknown; r?: unknown; w?: unknown }): ConsistencySpec {
  const spec: ConsistencySpec = {};
  if (q.consistency !== undefined && q.consistency !== '') {
    const lv = String(q.consistency).toUpperCase();
    if (!LEVELS.includes(lv as ConsistencyLevel)) {
      throw badRequest(`consistency must be one of ${LEVELS.join(', ')}, got ${JSON.stringify(q.consistency)}`, { field: 'consistency' });
    }
    spec.level = lv as ConsistencyLevel;
  }
  const n = positiveInt(q.n, 'n');
  const r = positiveInt(q.r, 'r');
  const w = positiveInt(q.w, 'w');
  if (n !== undefined) spec.n = n;
  if (r !== undefined) spec.r = r;
  if (w !== undefined) spec.w = w;
  return spec;
}

/**
 * `parseConsistency` for one kind of request, refusing the knob of the other kind (`r` on a write,
 * `w` on a read) instead of ignoring it: a client that asked for more replicas than it would get
 * should hear so. The HTTP routes use it (the IPC protocol refuses foreign fields as it decodes).
 */
export function parseConsistencyFor(q: { consistency?: unknown; n?: unknown; r?: unknown; w?: unknown }, kind: 'read' | 'write'): ConsistencySpec {
  if (kind === 'write' && q.r !== undefined) throw badRequest('r applies to reads; a write takes w (or consistency)', { field: 'r' });
  if (kind === 'read' && q.w !== undefined) throw badRequest('w applies to writes; a read takes r (or consistency)', { field: 'w' });
  return parseConsistency(q);
}

/**
 * Resolve a request's consistency for a read or a write. `1 ≤ r,w ≤ n` is validated against the
 * requested n; then n and the requirement are clamped to the ring's distinct replica count (on a
 * one-node ring N=3 becomes 1), and the clamp is reported so the response can show it.
 */
export function resolveConsistency(
  spec: ConsistencySpec,
  kind: 'read' | 'write',
  tableN: number,
  ringReplicas: number,
  defaultLevel: ConsistencyLevel = 'QUORUM',
): ResolvedConsistency {
  const n = spec.n ?? tableN;
  const explicit = kind === 'read' ? spec.r : spec.w;
  if (spec.level === 'ANY' && kind === 'read') throw badRequest('consistency ANY applies to writes only', { field: 'consistency' });
  if (explicit !== undefined && spec.level !== undefined) {
    throw badRequest(`give either consistency or ${kind === 'read' ? 'r' : 'w'}, not both`, { field: 'consistency' });
  }
  const required = explicit ?? levelCount(spec.level ?? defaultLevel, n);
  if (required > n) {
    throw badRequest(`${kind === 'read' ? 'r' : 'w'}=${required} exceeds n=${n}`, { field: kind === 'read' ? 'r' : 'w' });
  }
  const any = spec.level === 'ANY';
  if (ringReplicas >= n) return { n, required, any };
  const cn = Math.max(ringReplicas, 0);
  return { n: cn, required: Math.min(required, cn), any, clamped: { requested: { n, required }, ringReplicas } };
}
