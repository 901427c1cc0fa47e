/**
 * Coordination of a wide-column partition read: R replicas of the partition are asked for slice
 * pages (the shard's one-seek `slice` op), the pages are merged cell-wise with mergeSlicePages,
 * the merged entries become live rows (readRows, with the partition's deletions) that the
 * statement's ResultCollector takes until its page or LIMIT is full, and the next round resumes
 * after the merge's bound. One page per replica is in memory at a time: a partition of any width
 * streams through.
 *
 * Read repair: the merge names, per replica, the reconciled entries it lacks (cells, row markers,
 * and deletions of every scope); they are written back to it as one `wide-write` (async by
 * default, awaited with `readRepair: blocking`, skipped with `off`). Purgeable winners are never
 * repaired (slice.ts).
 */
import { RingkvError, invariant } from '../util/errors.js';
import { deletionMapOf, readRows, type DeletionMap } from '../wide/reader.js';
import type { PlannedPartition, SelectPlan } from '../wide/planner.js';
import type { ResultCollector, Verdict } from '../wide/results.js';
import { mergeSlicePages, SLICE_LIMITS, type SlicePage } from '../wide/slice.js';
import { resolveConsistency, type ConsistencySpec } from './consistency.js';
import type { Replica } from './types.js';
import { localFirst, quorumError, remainingMs, type WideCoordinatorDeps, type WideTarget } from './wide-write.js';
import type { WideSliceBody } from './wide-protocol.js';
import type { WideTableSchema } from '../wide/schema.js';

/** What one SELECT's partition reads share. */
export interface WideReadContext {
  d: WideCoordinatorDeps;
  t: WideTarget;
  schema: WideTableSchema;
  plan: SelectPlan;
  collector: ResultCollector;
  spec: ConsistencySpec;
  deadline: number;
  /** The statement's clock (s): liveness of TTL cells is judged at one instant for the whole read. */
  nowSec: number;
  /** Rows the collector can still take on this page (a hint for the slice page size). */
  rowsWanted(): number;
  /** Counted read repairs (entries written back to stale replicas). */
  onRepair(entries: number): void;
}

/**
 * Read one partition into the collector, starting after row `after` (null: from its start). Returns
 * the collector's last verdict, or 'more' when the partition ended.
 */
export async function readPartition(c: WideReadContext, p: PlannedPartition, after: Uint8Array | null): Promise<Verdict> {
  const { d, t, plan } = c;
  if (plan.ranges.length === 0) return 'more'; // the clustering restrictions match nothing
  const route = d.router.replicasOf(p.partitionKey);
  const cons = resolveConsistency(c.spec, 'read', t.n, route.replicas.length);
  if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
  const targets = route.replicas.slice(0, cons.n);
  const up = localFirst(targets.filter((r) => d.router.isUp(r)));
  if (up.length < cons.required) {
    throw new RingkvError('unavailable', `read quorum not met: ${up.length} of ${cons.n} replicas are up, ${cons.required} replies required`, { n: cons.n, required: cons.required, up: up.length });
  }
  const chosen = up.slice(0, cons.required);
  const spares = up.slice(cons.required);
  let failures = targets.length - up.length;
  let deletions: DeletionMap | null = null;
  let cursor = after;
  for (;;) {
    if (Date.now() >= c.deadline) throw quorumError('read', 0, cons, true, ` for partition ${Buffer.from(p.partitionKey).toString('hex').slice(0, 32)}`);
    const greedy = plan.projection.kind === 'count' || plan.filters.length > 0;
    const body: WideSliceBody = {
      table: t.name,
      tableId: t.tableId,
      key: p.partitionKey,
      ranges: plan.ranges,
      reverse: plan.reverse,
      after: cursor,
      rowLimit: greedy ? SLICE_LIMITS.maxRowsPerPage : Math.max(1, Math.min(SLICE_LIMITS.maxRowsPerPage, c.rowsWanted() + 1)),
      byteLimit: SLICE_LIMITS.maxPageBytes,
      withDeletions: deletions === null,
    };
    const askOne = async (slot: number): Promise<SlicePage> => {
      for (;;) {
        const r = chosen[slot]!;
        try {
          return await d.replicas.slice(r, body, remainingMs(c.deadline));
        } catch (e) {
          failures++;
          d.log.debug({ err: String(e), replica: r.nodeId }, 'wide-column replica slice failed');
          const spare = spares.shift();
          if (spare === undefined) {
            const timedOut = e instanceof RingkvError && e.code === 'timeout';
            throw quorumError('read', chosen.length - 1, cons, timedOut, ` (${failures} failed or down; last: ${(e as Error).message})`);
          }
          chosen[slot] = spare;
        }
      }
    };
    const pages = await Promise.all(chosen.map((_, i) => askOne(i)));
    const merged = mergeSlicePages(pages, plan.reverse, c.nowSec, c.schema.gcGraceSeconds);
    if (deletions === null) deletions = deletionMapOf(merged.deletions ?? []);
    await repair(c, p.partitionKey, chosen.slice(), merged.repairs);
    for (const row of readRows(merged.entries, { schema: c.schema, nowSec: c.nowSec, deletions, filters: plan.filters })) {
      const v = c.collector.offer(row);
      if (v !== 'more') return v;
    }
    if (merged.bound === null) return 'more';
    invariant(cursor === null || Buffer.compare(merged.bound, cursor) !== 0, 'a partition read round made no progress');
    cursor = merged.bound;
  }
}

/** Write back what each replica lacked (read repair), per the node's readRepair mode. */
async function repair(c: WideReadContext, key: Uint8Array, replicas: readonly Replica[], repairs: ReadonlyArray<readonly { suffix: Uint8Array; record: Uint8Array }[]>): Promise<void> {
  const mode = c.d.config.readRepair;
  if (mode === 'off' || replicas.length < 2) return;
  const writes: Array<Promise<void>> = [];
  repairs.forEach((entries, i) => {
    if (entries.length === 0) return;
    const r = replicas[i]!;
    c.onRepair(entries.length);
    writes.push(
      c.d.replicas.write(r, { table: c.t.name, tableId: c.t.tableId, key, entries: [...entries] }, remainingMs(c.deadline)).then(
        () => undefined,
        (e: unknown) => c.d.log.debug({ err: String(e), replica: r.nodeId }, 'wide-column read repair failed'),
      ),
    );
  });
  if (mode === 'blocking') await Promise.all(writes);
}
