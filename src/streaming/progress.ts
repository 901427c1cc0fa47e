/**
 * A movement's durable progress (persisted in `meta` by its driver, so a killed and restarted node
 * resumes where it stopped) and the figures reported from it (ranges done / total, keys and bytes
 * streamed, rate, ETA). Pure.
 */
import { tokenFromHex, tokenToBigInt, tokenToHex } from '../ring/hash.js';
import { invariant } from '../util/errors.js';
import type { MovementKind } from './membership.js';
import { rangeWidth, type StreamTask } from './plan.js';
import type { StreamProgress } from '../metrics/progress.js';

export type MovementState =
  /** A join waiting for the other movements to finish before it takes tokens. */
  | 'waiting'
  /** Announced; waiting until every live node has seen it. */
  | 'settling'
  | 'streaming'
  /** Streaming done; flipping the ring (status normal / left). */
  | 'finishing'
  | 'done'
  /** Could not make progress (no live source, a target down); retried until it can, reported meanwhile. */
  | 'stalled'
  /** Gave up (yielded to a concurrent movement, or refused); nothing further happens. */
  | 'failed';

/** A movement that ended (done or failed): nothing more runs for it. */
export function isTerminal(state: MovementState): boolean {
  return state === 'done' || state === 'failed';
}

/** One range task's progress: everything up to `cursor` (a storage key, hex) is on the target. */
export interface TaskProgress {
  start: string;
  end: string;
  target: string;
  sources: string[];
  replicas: string[];
  strict: boolean;
  cursor: string | null;
  done: boolean;
  keys: number;
  bytes: number;
}

export interface SettleReport {
  settled: boolean;
  waitedMs: number;
  /** Live peers that had not confirmed the movement when the wait ended. */
  lagging: string[];
}

export interface MovementRecord {
  id: string;
  kind: MovementKind;
  node: string;
  replaces?: string;
  driver: string;
  state: MovementState;
  startedAt: number;
  updatedAt: number;
  finishedAt?: number;
  tasks: TaskProgress[];
  settle?: SettleReport;
  error?: string;
}

export function taskProgressOf(t: StreamTask): TaskProgress {
  return { start: tokenToHex(t.start), end: tokenToHex(t.end), target: t.target, sources: [...t.sources], replicas: [...t.replicas], strict: t.strict, cursor: null, done: false, keys: 0, bytes: 0 };
}

function taskKey(t: Pick<TaskProgress, 'start' | 'end' | 'target'>): string {
  return `${t.start}:${t.end}:${t.target}`;
}

/**
 * The tasks of a new plan, carrying over the progress of persisted tasks with the same range and
 * target (a restarted driver re-plans from the current view: ranges that did not change resume at
 * their cursor, ranges that did start over). Sources come from the new plan (liveness may differ);
 * a cursor does not depend on the source (storage keys are the same on every node).
 */
export function resumeTasks(planned: readonly StreamTask[], persisted: readonly TaskProgress[]): TaskProgress[] {
  const old = new Map(persisted.map((t) => [taskKey(t), t]));
  return planned.map((p) => {
    const fresh = taskProgressOf(p);
    const o = old.get(taskKey(fresh));
    return o === undefined ? fresh : { ...fresh, cursor: o.cursor, done: o.done, keys: o.keys, bytes: o.bytes };
  });
}

/** Fraction of a task's token span below its cursor (1 when done). */
export function taskFraction(t: TaskProgress): number {
  if (t.done) return 1;
  if (t.cursor === null) return 0;
  invariant(t.cursor.length >= 16, 'a task cursor is a storage key');
  const start = tokenFromHex(t.start);
  const end = tokenFromHex(t.end);
  const at = tokenFromHex(t.cursor.slice(0, 16));
  const w = rangeWidth(start, end);
  const d = (tokenToBigInt(at) - tokenToBigInt(start) + (1n << 64n)) % (1n << 64n);
  return Math.min(1, Number(d) / Number(w));
}

export interface MovementSummary extends Pick<MovementRecord, 'id' | 'kind' | 'node' | 'replaces' | 'driver' | 'state' | 'startedAt' | 'settle' | 'error'> {
  rangesDone: number;
  rangesTotal: number;
  keys: number;
  bytes: number;
  /** Share of the planned token span streamed, 0..1 (weighted by range width). */
  fraction: number;
  keysPerSecond: number;
  bytesPerSecond: number;
  /** Seconds left at the current rate, or null when unknown. */
  etaSeconds: number | null;
  /** Distinct source nodes of the plan. */
  sources: number;
  finishedAt: number | null;
}

/** Streaming since this process (re)started the movement: what the rate is measured over. */
export interface SessionMark {
  sinceMs: number;
  keys: number;
  bytes: number;
}

export function summarize(r: MovementRecord, session: SessionMark | null, nowMs: number): MovementSummary {
  let keys = 0;
  let bytes = 0;
  let done = 0;
  let span = 0;
  let spanDone = 0;
  const sources = new Set<string>();
  for (const t of r.tasks) {
    keys += t.keys;
    bytes += t.bytes;
    if (t.done) done++;
    const w = Number(rangeWidth(tokenFromHex(t.start), tokenFromHex(t.end)));
    span += w;
    spanDone += w * taskFraction(t);
    for (const s of t.sources) sources.add(s);
  }
  const fraction = span > 0 ? spanDone / span : r.state === 'done' ? 1 : 0;
  const secs = session ? Math.max(0.001, (nowMs - session.sinceMs) / 1000) : 0;
  const keysPerSecond = session ? Math.round((keys - session.keys) / secs) : 0;
  const bytesPerSecond = session ? Math.round((bytes - session.bytes) / secs) : 0;
  // ETA from the share of the span streamed in this session (bytes per range are unknown ahead).
  let etaSeconds: number | null = null;
  if (r.state === 'done') etaSeconds = 0;
  else if (session && r.state === 'streaming' && fraction > 0 && fraction < 1) {
    const base = session.bytes > 0 && bytes > 0 ? fraction * (session.bytes / bytes) : 0;
    const progressed = fraction - base;
    if (progressed > 0) etaSeconds = Math.round((secs * (1 - fraction)) / progressed);
  }
  const out: MovementSummary = {
    id: r.id,
    kind: r.kind,
    node: r.node,
    driver: r.driver,
    state: r.state,
    rangesDone: done,
    rangesTotal: r.tasks.length,
    keys,
    bytes,
    fraction: Math.round(fraction * 1e4) / 1e4,
    keysPerSecond,
    bytesPerSecond,
    etaSeconds,
    sources: sources.size,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt ?? null,
  };
  if (r.replaces !== undefined) out.replaces = r.replaces;
  if (r.settle !== undefined) out.settle = r.settle;
  if (r.error !== undefined) out.error = r.error;
  return out;
}

/** Movement kinds as the metrics name their operations. */
const OPERATION: Record<MovementKind, string> = { join: 'join', leave: 'decommission', remove: 'removenode', replace: 'replace' };

/**
 * Record `r`'s streams for the metrics and the dashboard (src/metrics/progress.ts), as node `self`
 * drives them: per peer and direction, what is done and the expected total (bytes extrapolated from
 * the share of the token span done). Empty when nothing streams.
 */
export function streamProgressOf(r: MovementRecord | null, self: string, nowMs: number): StreamProgress[] {
  if (r === null || isTerminal(r.state) || r.tasks.length === 0) return [];
  const byPeer = new Map<string, { peer: string; direction: 'in' | 'out'; tasks: TaskProgress[] }>();
  for (const t of r.tasks) {
    const inbound = t.target === self;
    const peer = inbound ? t.sources.join('+') || '(none)' : t.target;
    const key = `${inbound ? 'in' : 'out'}:${peer}`;
    let g = byPeer.get(key);
    if (!g) byPeer.set(key, (g = { peer, direction: inbound ? 'in' : 'out', tasks: [] }));
    g.tasks.push(t);
  }
  return [...byPeer.values()].map((g) => {
    const s = summarize({ ...r, tasks: g.tasks }, null, nowMs);
    return { id: r.id, operation: OPERATION[r.kind], peer: g.peer, direction: g.direction, bytesDone: s.bytes, bytesTotal: s.fraction > 0 ? Math.round(s.bytes / s.fraction) : 0, rangesDone: s.rangesDone, rangesTotal: s.rangesTotal };
  });
}
