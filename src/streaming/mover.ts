/**
 * The mover: runs a movement's range tasks (plan.ts) to completion, at the edge (fetches and
 * applies go through ports: local shards or peer messages).
 *
 * One cursor per task. A round fetches the next page after the cursor from every source of the
 * task (one for a strict task), keeps the rows up to the smallest unfinished source's cursor (past
 * it, another source may still hold keys that sort earlier), applies them to the target, and only
 * then moves the cursor there: everything at or before a task's cursor is on the target, whichever
 * sources it came from. Storage keys are the same on every node, so when a source dies mid-range
 * the task continues from its cursor on the other replicas (for a strict task: on every live
 * current replica, merged, since no single other replica is known to hold every acknowledged key).
 *
 * Up to STREAM_LIMITS.streamTasksInFlightMax tasks run at once, preferring tasks whose sources are
 * idle (a join pulls from many nodes in parallel); each source is throttled by its own token bucket
 * (`streamThroughputMiBs`). A task that can make no progress (no live source, target refusing) for
 * `stallTimeoutMs` stops the run with StallError; the manager reports it and retries later.
 */
import type { TableMode } from '../config/config.js';
import { logEvent } from '../log/events.js';
import type { Logger } from '../log/logger.js';
import { tokenFromHex } from '../ring/hash.js';
import { STREAM_LIMITS, type StreamRow } from './batch.js';
import type { WireRange } from './messages.js';
import type { TaskProgress } from './progress.js';
import type { ByteThrottle } from './throttle.js';

export interface FetchedPage {
  rows: StreamRow[];
  tables: ReadonlyMap<string, TableMode>;
  next: Uint8Array | null;
}

export interface MoverPorts {
  fetch(source: string, range: WireRange, after: Uint8Array | null, maxBytes: number, maxRows: number): Promise<FetchedPage>;
  apply(target: string, rows: readonly StreamRow[], tables: ReadonlyMap<string, TableMode>): Promise<void>;
  isUp(nodeId: string): boolean;
  throttle(source: string): ByteThrottle;
  /** After each applied batch (the manager persists and reports, throttled). */
  progressed(task: TaskProgress): void;
  /** True once the run must stop (node shutting down). */
  stopped(): boolean;
  sleep(ms: number): Promise<void>;
  now(): number;
  log: Logger;
}

export class StallError extends Error {}
export class StoppedError extends Error {}

/** Consecutive failures of one source before a task drops it even though it looks up. */
const SOURCE_FAILURES_MAX = 3;
const RETRY_BASE_MS = 200;
const RETRY_MAX_MS = 2000;

function rangeOf(t: TaskProgress): WireRange {
  const s = tokenFromHex(t.start);
  const e = tokenFromHex(t.end);
  return { startHi: s.hi, startLo: s.lo, endHi: e.hi, endLo: e.lo };
}

/**
 * Merge the sources' pages of one round: rows up to the smallest unfinished source's cursor, in key
 * order (two sources' copies of one key both go: the target merges them), and where the task
 * resumes (null: every source finished and every row is here).
 */
export function mergeSourcePages(pages: ReadonlyArray<{ rows: readonly StreamRow[]; next: Uint8Array | null }>): { rows: StreamRow[]; next: Uint8Array | null } {
  let bound: Uint8Array | null = null;
  for (const p of pages) if (p.next !== null && (bound === null || Buffer.compare(p.next, bound) < 0)) bound = p.next;
  const rows: StreamRow[] = [];
  for (const p of pages) for (const r of p.rows) if (bound === null || Buffer.compare(r.key, bound) <= 0) rows.push(r);
  rows.sort((x, y) => Buffer.compare(x.key, y.key));
  return { rows, next: bound };
}

/** Run every task not done yet; resolves when all are, rejects with StallError / StoppedError. */
export async function runTasks(tasks: TaskProgress[], ports: MoverPorts, stallTimeoutMs: number): Promise<void> {
  const queue = tasks.filter((t) => !t.done);
  const busy = new Map<string, number>();
  let failure: Error | null = null;
  const pick = (): TaskProgress | undefined => {
    if (queue.length === 0) return undefined;
    let i = queue.findIndex((t) => t.sources.every((s) => (busy.get(s) ?? 0) === 0));
    if (i < 0) i = 0;
    return queue.splice(i, 1)[0];
  };
  const worker = async (): Promise<void> => {
    for (;;) {
      if (failure !== null) return;
      const t = pick();
      if (t === undefined) return;
      const held = [...t.sources];
      for (const s of held) busy.set(s, (busy.get(s) ?? 0) + 1);
      try {
        await runTask(t, ports, stallTimeoutMs);
      } catch (e) {
        failure ??= e instanceof Error ? e : new Error(String(e));
        return;
      } finally {
        for (const s of held) busy.set(s, (busy.get(s) ?? 1) - 1);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(STREAM_LIMITS.streamTasksInFlightMax, queue.length) }, worker));
  if (failure !== null) throw failure;
}

/** Stream one task to its end. */
async function runTask(t: TaskProgress, ports: MoverPorts, stallTimeoutMs: number): Promise<void> {
  const range = rangeOf(t);
  const failures = new Map<string, number>();
  let lastProgress = ports.now();
  let attempt = 0;
  while (!t.done) {
    if (ports.stopped()) throw new StoppedError('the node is stopping');
    const live = t.sources.filter((s) => ports.isUp(s));
    if (live.length < t.sources.length) {
      const lost = t.sources.filter((s) => !live.includes(s));
      dropSources(t, lost, ports, 'down');
      continue;
    }
    if (t.sources.length === 0) {
      if (ports.now() - lastProgress > stallTimeoutMs) throw new StallError(`range (${t.start}, ${t.end}] to ${t.target}: no live replica to stream from for ${Math.round(stallTimeoutMs / 1000)} s`);
      await ports.sleep(1000);
      refillSources(t, ports);
      continue;
    }
    const sources = [...t.sources];
    const after = t.cursor === null ? null : Buffer.from(t.cursor, 'hex');
    const perBytes = Math.max(1, Math.floor(STREAM_LIMITS.streamBatchBytesMax / sources.length));
    const perRows = Math.max(1, Math.floor(STREAM_LIMITS.streamBatchRowsMax / sources.length));
    const results = await Promise.allSettled(
      sources.map(async (s) => {
        const th = ports.throttle(s);
        const wait = th.waitMs(ports.now());
        if (wait > 0) await ports.sleep(wait);
        const page = await ports.fetch(s, range, after, perBytes, perRows);
        th.consume(page.rows.reduce((a, r) => a + r.key.length + r.record.length, 0), ports.now());
        return page;
      }),
    );
    const failed: string[] = [];
    results.forEach((r, i) => {
      const s = sources[i]!;
      if (r.status === 'fulfilled') failures.delete(s);
      else {
        failures.set(s, (failures.get(s) ?? 0) + 1);
        failed.push(s);
        ports.log.debug({ source: s, err: String(r.reason), range: `${t.start}:${t.end}` }, 'stream fetch failed');
      }
    });
    if (failed.length > 0) {
      const give = failed.filter((s) => !ports.isUp(s) || (failures.get(s) ?? 0) >= SOURCE_FAILURES_MAX);
      if (give.length > 0) dropSources(t, give, ports, 'failing');
      await backoff(ports, ++attempt, lastProgress, stallTimeoutMs, t);
      continue;
    }
    const pages = results.map((r) => (r as PromiseFulfilledResult<FetchedPage>).value);
    const merged = mergeSourcePages(pages);
    const tables = new Map<string, TableMode>();
    for (const p of pages) for (const [id, m] of p.tables) tables.set(id, m);
    if (merged.rows.length > 0) {
      try {
        await ports.apply(t.target, merged.rows, tables);
      } catch (e) {
        ports.log.debug({ target: t.target, err: String(e) }, 'stream apply failed; retrying');
        await backoff(ports, ++attempt, lastProgress, stallTimeoutMs, t);
        continue;
      }
    }
    attempt = 0;
    lastProgress = ports.now();
    t.keys += merged.rows.length;
    t.bytes += merged.rows.reduce((a, r) => a + r.key.length + r.record.length, 0);
    if (merged.next === null) t.done = true;
    else t.cursor = Buffer.from(merged.next).toString('hex');
    ports.progressed(t);
  }
}

async function backoff(ports: MoverPorts, attempt: number, lastProgress: number, stallTimeoutMs: number, t: TaskProgress): Promise<void> {
  if (ports.now() - lastProgress > stallTimeoutMs) throw new StallError(`range (${t.start}, ${t.end}] to ${t.target}: no progress for ${Math.round(stallTimeoutMs / 1000)} s`);
  await ports.sleep(Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(attempt, 4)));
}

/**
 * Stop streaming from `lost`. A strict task (streaming from the one replica that loses the range)
 * switches to every other live current replica from its cursor on; a multi-source task keeps the
 * rest, and refills from the replicas when none is left.
 */
function dropSources(t: TaskProgress, lost: readonly string[], ports: MoverPorts, why: string): void {
  const wasStrict = t.strict;
  t.sources = t.sources.filter((s) => !lost.includes(s));
  t.strict = false;
  if (wasStrict || t.sources.length === 0) refillSources(t, ports, lost);
  // Continuing from the cursor on the other replicas.
  logEvent(ports.log, 'range.source-lost', { range: `${t.start}:${t.end}`, to: t.target, lost, why, from: t.sources, cursor: t.cursor });
}

function refillSources(t: TaskProgress, ports: MoverPorts, exclude: readonly string[] = []): void {
  const live = t.replicas.filter((r) => r !== t.target && !exclude.includes(r) && ports.isUp(r));
  for (const r of live) if (!t.sources.includes(r)) t.sources.push(r);
  t.sources.sort();
}
