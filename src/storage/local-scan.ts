/**
 * A node's answer to a scan of one token segment, from the pages of its shards.
 *
 * Placement deals fine token pieces round-robin to the shards (placement.ts), so any segment's keys
 * are spread over every shard, each shard's in storage-key order. The node asks every shard for a
 * page after the same cursor and merges them here. A shard whose page is not finished has examined
 * its keys only up to its `next`; past the smallest such `next` another shard may still hold keys
 * that sort before rows we have, so the merged page stops there (exactly like the coordinator's
 * merge of replica pages, without the reconciliation: shards hold disjoint keys).
 *
 * Pure: no I/O. Used by ShardPool.scan (the router's local replica and the peer-scan answer).
 */
import { invariant } from '../util/errors.js';

export interface ShardScanPage {
  /** Ascending storage keys. */
  rows: Array<{ key: Uint8Array; record: Uint8Array }>;
  /** Where the page stopped (the last key examined), or null: this shard finished the segment. */
  next: Uint8Array | null;
}

/**
 * Merge the shards' pages of one segment into the node's page: at most `limit` rows, ascending,
 * each at or before every unfinished shard's cursor; `next` is where the node's next page resumes
 * (null: every shard finished and every row is in this page).
 */
export function mergeShardScanPages(pages: readonly ShardScanPage[], limit: number): ShardScanPage {
  invariant(Number.isInteger(limit) && limit >= 1, `merge limit ${limit} must be a positive integer`);
  let bound: Uint8Array | null = null;
  for (const p of pages) if (p.next !== null && (bound === null || Buffer.compare(p.next, bound) < 0)) bound = p.next;
  const rows: Array<{ key: Uint8Array; record: Uint8Array }> = [];
  for (const p of pages) for (const r of p.rows) if (bound === null || Buffer.compare(r.key, bound) <= 0) rows.push(r);
  rows.sort((x, y) => Buffer.compare(x.key, y.key));
  for (let i = 1; i < rows.length; i++) invariant(Buffer.compare(rows[i - 1]!.key, rows[i]!.key) < 0, 'two shards returned the same storage key');
  if (rows.length > limit) {
    rows.length = limit;
    return { rows, next: rows[limit - 1]!.key };
  }
  return { rows, next: bound };
}
