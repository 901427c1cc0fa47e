/**
 * Messages between the main thread and the hints actor (workers/hints.ts), the sole owner of the
 * `hints` column family. A hint is a replica write held for a node that was down or unreachable.
 */
import type { ConflictMode, Durability } from '../config/config.js';
import type { Version } from '../versions/index.js';

/**
 * A key-value write held for a node. It names its table by name only: the table id is a function
 * of the name (tableIdOf) and is derived again at replay. So hints stored by storage format 1
 * (whose values still carry a 32-bit `tableId`, ignored now) replay unchanged, and the `hints`
 * family needs no migration.
 */
export interface KvHint {
  /** Node the write was meant for. */
  target: string;
  table: string;
  mode: ConflictMode;
  key: Uint8Array;
  versions: Version[];
  /** Wall-clock ms when the hint was stored (for maxHintWindowMs expiry). */
  createdAt: number;
}

/**
 * A crdt table's write held for a node: the key's CRDT state, replayed as a replica write the
 * target joins with what it holds. A state is a join-semilattice element, so a stale, duplicated or
 * reordered replay is harmless.
 */
export interface CrdtHint {
  target: string;
  table: string;
  mode: 'crdt';
  key: Uint8Array;
  state: Uint8Array;
  createdAt: number;
}

/**
 * A wide-column partition mutation held for a node: the cell records of one partition, replayed
 * as one `wide-write` (the same merge, in any order). It carries its table's storage id: a
 * wide-column table's id names one incarnation, so a hint never lands in a table re-created
 * under the same name after a DROP (the target refuses an id it does not know as live).
 */
export interface CellHint {
  target: string;
  table: string;
  mode: 'cell';
  tableId: Uint8Array;
  /** The serialized partition key (its token places the write). */
  key: Uint8Array;
  entries: Array<{ suffix: Uint8Array; record: Uint8Array }>;
  createdAt: number;
}

export type Hint = KvHint | CrdtHint | CellHint;

/** A stored hint with its per-target sequence number: replay is in this (arrival) order. */
export type StoredHint = Hint & { seq: number };

export interface HintsWorkerData {
  handle: bigint;
  durability: Durability;
  /** Bound on stored hints per target; past it a new hint is refused (anti-entropy covers the rest). */
  maxHintsPerTarget: number;
}

export type HintsRequest =
  | { id: number; op: 'store'; hint: Hint }
  | { id: number; op: 'list'; target: string; limit: number }
  /** Delete these seqs of `target`; only the ones that still exist are removed (and counted). */
  | { id: number; op: 'delete'; target: string; seqs: number[] }
  /**
   * Drop hints created before `olderThan`, reading at most `budget` stored hints in this one op
   * (the actor's mailbox keeps draining between ops); `more` in the reply says another op is needed.
   */
  | { id: number; op: 'expire'; olderThan: number; budget: number }
  | { id: number; op: 'counts' };

export interface HintsOk {
  id: number;
  ok: true;
  stored?: boolean;
  hints?: StoredHint[];
  removed?: number;
  /** `delete`: the seqs that existed and were removed (an expiry may have taken the others). */
  removedSeqs?: number[];
  /** `expire`: true when the budget ran out before every target was checked. */
  more?: boolean;
  /**
   * Exact stored-hint counts after this op, for the targets it touched (`counts`: every target);
   * 0 means the target has none left. Replies arrive in mailbox order, so applying them in order
   * keeps the main thread's copy exact.
   */
  counts?: Record<string, number>;
  /** `counts` op: the counts above are every target's (absent = 0), not only the touched ones. */
  full?: boolean;
}

export type HintsResult = HintsOk | { id: number; ok: false; code: string; message: string };

export type ToHints = { t: 'ops'; ops: HintsRequest[] } | { t: 'close' };
export type FromHints = { t: 'ready'; counts: Record<string, number> } | { t: 'replies'; replies: HintsResult[] } | { t: 'closed' };

/**
 * What a coordinator needs of hinted handoff: store a hint for a down replica, on `holder` (another
 * node) or, with null, here. Resolves with whether it was stored. The HintService implements it;
 * coordinators depend on this, not on the service (which depends on the cluster).
 */
export interface HintSink {
  hint(holder: string | null, h: Omit<KvHint, 'createdAt'> | Omit<CrdtHint, 'createdAt'> | Omit<CellHint, 'createdAt'>, timeoutMs: number): Promise<boolean>;
}
