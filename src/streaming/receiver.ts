/**
 * The target side of range streaming (riak_core's handoff receiver): a batch's records are written
 * through this node's shard actors as `repair-write` ops carrying the stored record bytes, so each
 * is merged with the table's conflict mode into whatever the shard holds (a write that raced the
 * stream is merged, never overwritten), Merkle trees are patched like for any write, and the
 * shard's mailbox bound applies. A key the shard refuses (this node neither replicates nor is a
 * pending replica of its token, in its own ring view) fails the batch: the driver retries it once
 * the views agree, and never counts a batch as applied that was not.
 */
import type { NodeConfig, TableMode } from '../config/config.js';
import { recordFamily } from '../storage/records.js';
import type { TableRegistry } from '../router/tables.js';
import { shardOfStorageKey } from '../storage/placement.js';
import { REPAIR_LIMITS, type RepairWriteEntry } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import type { StreamRow } from './batch.js';

export interface ReceiverDeps {
  shards: ShardPool;
  tables: TableRegistry;
  config: NodeConfig;
}

/** Write the rows; resolves with how many changed what the shards held. */
export async function applyRows(d: ReceiverDeps, rows: readonly StreamRow[], sentModes: ReadonlyMap<string, TableMode>): Promise<{ rows: number; changed: number }> {
  const byShard = new Map<number, RepairWriteEntry[]>();
  for (const r of rows) {
    const id = Buffer.from(r.key.buffer, r.key.byteOffset + 8, 16).toString('hex');
    // This node's definition first (the one its own writes merge with), then the sender's; a table
    // neither knows (a dropped wide-column incarnation, say) merges by the family its bytes show.
    const mode = d.tables.byId(id)?.conflicts ?? sentModes.get(id) ?? (recordFamily(r.record) === 'cell' ? 'cell' : d.config.tables.conflicts);
    const s = shardOfStorageKey(r.key, d.shards.size);
    let l = byShard.get(s);
    if (!l) byShard.set(s, (l = []));
    l.push({ key: r.key, mode, record: r.record });
  }
  let changed = 0;
  let refused = 0;
  await Promise.all(
    [...byShard].map(async ([shard, entries]) => {
      for (let i = 0; i < entries.length; i += REPAIR_LIMITS.maxKeysPerOp) {
        const res = await d.shards.submit(shard, { op: 'repair-write', entries: entries.slice(i, i + REPAIR_LIMITS.maxKeysPerOp) });
        if (!res.ok) throw new RingkvError(res.code as ErrorCode, `shard ${shard}: ${res.message}`);
        invariant('repair' in res && res.repair.kind === 'repair-write', `shard ${shard} answered a stream write with something else`);
        changed += res.repair.changed;
        refused += res.repair.notOwner;
      }
    }),
  );
  if (refused > 0) {
    throw new RingkvError('not_owner', `${refused} of ${rows.length} streamed keys are not this node's to store in its ring view (it has not seen the movement yet?); the batch will be sent again`);
  }
  return { rows: rows.length, changed };
}
