/**
 * `ringkv cleanup` inside a shard actor (Cassandra's nodetool cleanup): after range movements the
 * old owners still hold data of ranges they gave up; a cleanup run walks the shard's column family
 * in bounded chunks and deletes each record whose token this node no longer replicates for the
 * record's table. The actor runs one chunk per turn (its mailbox keeps draining in between) and
 * deletes each chunk's keys in one batch, patching the Merkle trees of any range that keeps a tree
 * (a range where this node is past the table's N but within the ring's preference list).
 *
 * Worker-safe: no imports with side effects; the actor supplies the ports.
 */
import { MIN_STORAGE_KEY_BYTES } from '../storage/keys.js';
import { isCrdtState } from '../storage/records.js';
import type { CleanupOp, CleanupStats } from '../storage/shard-protocol.js';
import { NOT_STORED, PENDING } from '../ring/table.js';

export interface CleanupPorts {
  /** The next chunk of (key, record) rows of the whole column family after `after`, flattened. */
  readChunk(after: Buffer | null, limit: number): Buffer[];
  /** RingTable.replicaRank of the token. */
  rank(hi: number, lo: number): number;
  /** Delete these (key, stored record) rows in one batch, patching trees and counters. */
  remove(rows: ReadonlyArray<readonly [Buffer, Buffer]>): void;
}

/** Rows examined per chunk (one turn of the actor). */
export const CLEANUP_CHUNK = 2000;

/** Does this node keep the record under `key`? (See CleanupOp.) */
export function keepsKey(key: Buffer, rank: (hi: number, lo: number) => number, nOfTable: ReadonlyMap<string, number>, defaultN: number): boolean {
  if (key.length < MIN_STORAGE_KEY_BYTES) return true; // not a storage key: never ours to judge
  const r = rank(key.readUInt32BE(0), key.readUInt32BE(4));
  if (r === PENDING) return true;
  if (r === NOT_STORED) return false;
  const n = nOfTable.get(key.toString('hex', 8, 24)) ?? defaultN;
  return r < n;
}

export class CleanupRun {
  readonly waiters: number[];
  private readonly nOfTable: Map<string, number>;
  private readonly defaultN: number;
  private cursor: Buffer | null = null;
  private scanned = 0;
  private removed = 0;
  private readonly t0 = performance.now();

  constructor(op: CleanupOp) {
    this.waiters = [op.id];
    this.nOfTable = new Map(op.tables.map((t) => [t.id, t.n]));
    this.defaultN = op.defaultN;
  }

  /** One chunk; true while there is more to examine. */
  step(ports: CleanupPorts): boolean {
    const rows = ports.readChunk(this.cursor, CLEANUP_CHUNK);
    const doomed: Array<readonly [Buffer, Buffer]> = [];
    for (let j = 0; j < rows.length; j += 2) {
      this.scanned++;
      const key = rows[j]!;
      // A CRDT state is kept: this node's actor is in it, and were the node a replica of the key
      // again, it would coordinate updates on its own state; deleted, it would mint dots and
      // counter totals the other replicas already hold, and those updates would be lost.
      if (!keepsKey(key, ports.rank, this.nOfTable, this.defaultN) && !isCrdtState(rows[j + 1]!)) doomed.push([key, rows[j + 1]!]);
    }
    if (rows.length > 0) this.cursor = rows[rows.length - 2]!;
    if (doomed.length > 0) {
      ports.remove(doomed);
      this.removed += doomed.length;
    }
    return rows.length / 2 === CLEANUP_CHUNK;
  }

  stats(): CleanupStats {
    return { scanned: this.scanned, removed: this.removed, durationMs: Math.round(performance.now() - this.t0) };
  }
}
