/**
 * Token-range scans of a wide-column table: `SELECT ... WHERE token(pk) > ?`, `SELECT` without a
 * WHERE, and ALLOW FILTERING queries without the partition key. The walk is the key-value scan's
 * (router/scan.ts: ring segments in token order, R replicas per segment, rounds bounded by the
 * smallest unfinished cursor, the shards' `scan` op), with records reconciled by the cell rule,
 * and the reconciled entries turned into rows by ScanRowStream (src/wide/scan-stream.ts).
 *
 * Paging: a page that fills mid-partition resumes there. The next page first reads the rest of
 * that partition as a partition read (it needs the partition's deletions, which lie before its
 * rows in token order), then walks on after the partition's last possible key.
 *
 * Bounded: a page examines at most WIDE_SCAN_LIMITS.maxExaminedEntriesPerPage stored entries;
 * past it (ALLOW FILTERING that filters most rows out, a table of tombstones) the page ends with
 * the rows found so far and a paging state, as Cassandra's filtering pages may.
 */
import { decodeStorageKey, partitionPrefix } from '../storage/keys.js';
import { tokenFromBigInt, tokenToBigInt } from '../ring/hash.js';
import { REPAIR_LIMITS } from '../storage/shard-protocol.js';
import { RingkvError, invariant } from '../util/errors.js';
import { mergeWideRecords } from '../wide/counter-cell.js';
import { TAG_ROW } from '../wide/layout.js';
import { deserializePartitionKey } from '../wide/partition-key.js';
import type { PlannedPartition, SelectPlan } from '../wide/planner.js';
import type { Verdict } from '../wide/results.js';
import { ScanRowStream, type ScanEntry } from '../wide/scan-stream.js';
import { resolveConsistency } from './consistency.js';
import type { Replica } from './types.js';
import { checkScanPage, clipWalk, planScanSegments, scanWalkStart, type ScanPage, type ScanSegment } from './scan.js';
import type { TableDef } from './tables.js';
import { readPartition, type WideReadContext } from './wide-read.js';
import { localFirst, quorumError, remainingMs } from './wide-write.js';

export const WIDE_SCAN_LIMITS = Object.freeze({
  /** Stored entries (cells, markers, tombstones) one scan page examines before it ends early. */
  maxExaminedEntriesPerPage: 200_000,
});

const MAX_TOKEN = (1n << 64n) - 1n;
/** A row key after every row of a partition: resuming after it skips the rest of the partition. */
const PAST_PARTITION_ROWS = Uint8Array.of(TAG_ROW + 1);

export interface ScanResume {
  partitionKey: Uint8Array;
  token: bigint;
  rowKey: Uint8Array;
}

/** Merge one round of replica pages of a segment by the cell rule (counter cells: the join), up to the smallest unfinished cursor. */
export function mergeCellScanPages(pages: readonly ScanPage[]): { rows: Array<{ key: Uint8Array; record: Uint8Array }>; bound: Uint8Array | null } {
  let bound: Uint8Array | null = null;
  for (const p of pages) if (p.next !== null && (bound === null || Buffer.compare(p.next, bound) < 0)) bound = p.next;
  const all: Array<{ key: Uint8Array; record: Uint8Array }> = [];
  for (const p of pages) for (const r of p.rows) if (bound === null || Buffer.compare(r.key, bound) <= 0) all.push(r);
  all.sort((x, y) => Buffer.compare(x.key, y.key));
  const rows: Array<{ key: Uint8Array; record: Uint8Array }> = [];
  for (const r of all) {
    const last = rows[rows.length - 1];
    if (last !== undefined && Buffer.compare(last.key, r.key) === 0) last.record = mergeWideRecords(last.record, r.record);
    else rows.push({ key: r.key, record: r.record });
  }
  return { rows, bound };
}

function scanPage(c: WideReadContext, def: TableDef, r: Replica, seg: ScanSegment, after: Uint8Array | null, limit: number): Promise<ScanPage> {
  return new Promise((resolve, reject) =>
    c.d.router.scanReplica(r, def, seg, after, limit, remainingMs(c.deadline), (err, page) => {
      if (err) return reject(err);
      try {
        resolve(checkScanPage(page, after, limit));
      } catch (e) {
        reject(e as Error);
      }
    }),
  );
}

/**
 * Scan the token range of `plan` (from `resume` when continuing) into the collector. Returns the
 * collector's verdict ('more' when the range ended), or 'budget' when the page ended early.
 */
export async function scanTokenRange(c: WideReadContext, def: TableDef, plan: SelectPlan, resume: ScanResume | null): Promise<Verdict | 'budget'> {
  const { d, collector } = c;
  const layout = d.router.currentLayout;
  if (layout.tokens.length === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
  const range = plan.tokenRange ?? {};
  // CQL token order is the ring's (ring = cql + 2^63): one ascending interval [lo, hi], no wrap.
  let lo = range.start === undefined ? 0n : range.start.inclusive ? range.start.token : range.start.token + 1n;
  const hi = range.end === undefined ? MAX_TOKEN : range.end.inclusive ? range.end.token : range.end.token - 1n;
  if (lo > MAX_TOKEN || hi < 0n || lo > hi) return 'more';
  let firstCursor: Uint8Array | null = null;
  if (resume !== null) {
    if (resume.token < lo || resume.token > hi) throw new RingkvError('bad_request', 'invalid paging state (pass back the x-ringkv-paging-state of the same query)', { field: 'pagingState' });
    let values;
    try {
      values = deserializePartitionKey(c.schema.partitionKey, resume.partitionKey);
    } catch {
      throw new RingkvError('bad_request', 'invalid paging state (pass back the x-ringkv-paging-state of the same query)', { field: 'pagingState' });
    }
    const p: PlannedPartition = { partitionKey: resume.partitionKey, values };
    if (collector.beginPartition(p, resume.token)) {
      const v = await readPartition(c, p, resume.rowKey);
      if (v === 'pageDone' || v === 'done') return v;
    }
    lo = resume.token;
    const t = tokenFromBigInt(lo);
    // After the resumed partition's last possible key (its entries all sort below prefix ‖ FF).
    firstCursor = Buffer.concat([partitionPrefix(t.hi, t.lo, c.t.tableId, resume.partitionKey), Uint8Array.of(0xff)]);
  }
  const from = tokenFromBigInt(lo);
  const segments = clipWalk(planScanSegments(layout.tokens, from, false), scanWalkStart(from, false), tokenFromBigInt(hi));
  const stream = new ScanRowStream({ schema: c.schema, nowSec: c.nowSec, ranges: plan.ranges, filters: plan.filters, partitionFilters: plan.partitionFilters });
  const bounded = plan.projection.kind !== 'count';
  let examined = 0;
  /** The partition being read (a bounded page stops after it, or after its last row examined). */
  let current: { p: PlannedPartition; token: bigint } | null = null;
  for (let s = 0; s < segments.length; s++) {
    const seg = segments[s]!;
    const cons = resolveConsistency(c.spec, 'read', c.t.n, layout.replicas);
    const targets = d.router.replicasOfPos(layout, seg.pos).slice(0, cons.n);
    const up = localFirst(targets.filter((r) => d.router.isUp(r)));
    if (up.length < cons.required) throw new RingkvError('unavailable', `scan quorum not met for the range at ring position ${seg.pos}: ${up.length} of ${cons.n} replicas are up, ${cons.required} replies required`);
    const chosen = up.slice(0, cons.required);
    const spares = up.slice(cons.required);
    let cursor = s === 0 ? firstCursor : null;
    for (;;) {
      if (Date.now() >= c.deadline) throw quorumError('read', 0, cons, true, ` in the scan's range at ring position ${seg.pos}`);
      const after = cursor;
      const askOne = async (slot: number): Promise<ScanPage> => {
        for (;;) {
          const r = chosen[slot]!;
          try {
            return await scanPage(c, def, r, seg, after, REPAIR_LIMITS.maxScanPage);
          } catch (e) {
            d.log.debug({ err: String(e), replica: r.nodeId }, 'wide-column replica scan failed');
            const spare = spares.shift();
            if (spare === undefined) throw quorumError('read', chosen.length - 1, cons, e instanceof RingkvError && e.code === 'timeout', ` in the scan's range at ring position ${seg.pos} (last: ${(e as Error).message})`);
            chosen[slot] = spare;
          }
        }
      };
      const merged = mergeCellScanPages(await Promise.all(chosen.map((_, i) => askOne(i))));
      examined += merged.rows.length;
      const entries: ScanEntry[] = merged.rows.map((r) => {
        const k = decodeStorageKey(r.key);
        return { token: tokenToBigInt({ hi: k.tokenHi, lo: k.tokenLo }), partitionKey: k.partitionKey, suffix: k.clustering, record: r.record };
      });
      const over = (): boolean => bounded && examined > WIDE_SCAN_LIMITS.maxExaminedEntriesPerPage;
      for (const ev of stream.push(entries, merged.bound === null)) {
        if (ev.t === 'partition') {
          if (over() && current !== null) {
            collector.stopAt(current.p, current.token, PAST_PARTITION_ROWS);
            return 'budget';
          }
          current = { p: { partitionKey: ev.partitionKey, values: ev.values }, token: ev.token };
          if (!ev.matches || !collector.beginPartition(current.p, ev.token)) stream.skipPartition();
          continue;
        }
        invariant(current !== null, 'a scan row comes after its partition');
        if (ev.row !== null) {
          const v = collector.offer(ev.row);
          if (v === 'pageDone' || v === 'done') return v;
          if (v === 'partitionDone') stream.skipPartition();
        }
        if (over()) {
          collector.stopAt(current.p, current.token, ev.rowKey);
          return 'budget';
        }
      }
      if (merged.bound === null) break;
      invariant(cursor === null || Buffer.compare(merged.bound, cursor) > 0, 'a scan round made no progress');
      cursor = merged.bound;
    }
  }
  return 'more';
}
