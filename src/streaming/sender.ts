/**
 * The source side of range streaming (riak_core's handoff sender): a page of this node's stored
 * records of every table in a token range, from every local shard after the same cursor, merged in
 * storage-key order (local-scan.ts: a range's keys are spread over the shards by placement), as a
 * checksummed batch naming each table's conflict mode.
 */
import type { TableMode } from '../config/config.js';
import type { TableRegistry } from '../router/tables.js';
import { mergeShardScanPages } from '../storage/local-scan.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import { encodeBatch, type StreamRow, type WireBatch } from './batch.js';
import type { WireRange } from './messages.js';

export interface RangePageOut {
  rows: StreamRow[];
  next: Uint8Array | null;
}

/** One node-level page: each shard gets 1/S of the byte and row budgets (at least one row each). */
export async function readRangePage(shards: ShardPool, range: WireRange, after: Uint8Array | null, maxBytes: number, maxRows: number): Promise<RangePageOut> {
  const n = shards.size;
  const perBytes = Math.max(1, Math.floor(maxBytes / n));
  const perRows = Math.max(1, Math.floor(maxRows / n));
  const pages = await Promise.all(
    Array.from({ length: n }, async (_, shard) => {
      const res = await shards.submit(shard, { op: 'stream-page', ...range, after, limit: perRows, maxBytes: perBytes });
      if (!res.ok) throw new RingkvError(res.code as ErrorCode, `shard ${shard}: ${res.message}`);
      invariant('repair' in res && res.repair.kind === 'stream-page', `shard ${shard} answered a stream page with something else`);
      return { rows: res.repair.rows, next: res.repair.next };
    }),
  );
  return mergeShardScanPages(pages, maxRows);
}

/** The conflict mode of every table among the rows, as this node knows it (unknown tables left out). */
export function tableModesOf(rows: readonly StreamRow[], tables: TableRegistry): Array<[string, TableMode]> {
  const ids = new Set<string>();
  for (const r of rows) ids.add(Buffer.from(r.key.buffer, r.key.byteOffset + 8, 16).toString('hex'));
  const out: Array<[string, TableMode]> = [];
  for (const id of ids) {
    const def = tables.byId(id);
    if (def) out.push([id, def.conflicts]);
  }
  return out;
}

/** A page as a batch for the wire. */
export async function fetchBatch(shards: ShardPool, tables: TableRegistry, range: WireRange, after: Uint8Array | null, maxBytes: number, maxRows: number): Promise<{ batch: WireBatch; rows: StreamRow[]; next: Uint8Array | null }> {
  const page = await readRangePage(shards, range, after, maxBytes, maxRows);
  return { batch: encodeBatch(page.rows, tableModesOf(page.rows, tables)), rows: page.rows, next: page.next };
}
