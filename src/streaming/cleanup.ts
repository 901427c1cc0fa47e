/**
 * `ringkv cleanup` on one node: every shard deletes the records of ranges this node no longer
 * replicates (src/streaming/shard-cleanup.ts runs in the shard actors), and the node reports how
 * many it examined and removed.
 */
import type { TableDef } from '../router/tables.js';
import type { CleanupStats } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';

export interface CleanupReport {
  scanned: number;
  removed: number;
  durationMs: number;
  shards: Array<CleanupStats & { shard: number }>;
}

export async function runCleanup(shards: ShardPool, tables: readonly TableDef[], defaultN: number): Promise<CleanupReport> {
  const t0 = performance.now();
  const op = { op: 'cleanup' as const, tables: tables.map((t) => ({ id: t.id, n: t.n })), defaultN };
  const per = await Promise.all(
    Array.from({ length: shards.size }, async (_, shard) => {
      const res = await shards.submit(shard, op);
      if (!res.ok) throw new RingkvError(res.code as ErrorCode, `shard ${shard}: ${res.message}`);
      invariant('repair' in res && res.repair.kind === 'cleanup', `shard ${shard} answered a cleanup with something else`);
      return { shard, ...res.repair.cleanup };
    }),
  );
  return {
    scanned: per.reduce((a, s) => a + s.scanned, 0),
    removed: per.reduce((a, s) => a + s.removed, 0),
    durationMs: Math.round(performance.now() - t0),
    shards: per,
  };
}
