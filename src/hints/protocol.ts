/**
 * The API of the hints actor (workers/hints.ts), the sole owner of the `hints` column family, and
 * what it stores. A hint is a replica write held for a node that was down or unreachable.
 */
import type { MessagePort } from 'node:worker_threads';
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
  /** The control channel's worker end: the actor exposes its HintsApi on it with comlink (transferred). */
  control: MessagePort;
}

/**
 * Exact stored-hint counts after an op, for the targets it touched (`full`: every target, absent
 * = 0); 0 means the target has none left. `serial` numbers the answers in mailbox order: the main
 * thread applies them in that order (and asserts it), which keeps its copy of the counts exact.
 */
export interface HintCounts {
  serial: number;
  counts: Record<string, number>;
  full?: true;
}

/**
 * The hints actor's API (workers/hints.ts), exposed with comlink on its control channel and called
 * by HintStore on the main thread: typed calls instead of hand-written ids and reply routing.
 *
 * Mailbox order: a call does not run when its message arrives; it joins the actor's one queue, and
 * one drain per event-loop turn runs the queued ops in order, synchronously, then commits their
 * writes in one WriteBatch and only then answers them. comlink delivers the calls in order on the
 * one port and invokes each method synchronously on arrival, so queue order is call order; no
 * method may await before it enqueues (an async gap there would let a later call slip in ahead).
 * Answers are settled in queue order after the commit, so they arrive in that order too.
 */
export interface HintsApi {
  /**
   * Store hints durably, in order (HintStore sends one turn's stores as one call). `stored[i]`:
   * true, false when the per-target bound refused hint i, or why it failed (it changed nothing).
   */
  store(hints: Hint[]): Promise<HintCounts & { stored: Array<boolean | string> }>;
  /** Up to `limit` hints of `target`, first (lowest seq) first; sees every write queued before it. */
  list(target: string, limit: number): Promise<StoredHint[]>;
  /** Delete these seqs of `target`; only the ones that still exist are removed (and counted) and returned. */
  delete(target: string, seqs: number[]): Promise<HintCounts & { removedSeqs: number[] }>;
  /**
   * Drop hints created before `olderThan`, reading at most `budget` stored hints in this one op
   * (the mailbox keeps draining between ops); `more`: the budget ran out before every target was checked.
   */
  expire(olderThan: number, budget: number): Promise<HintCounts & { removed: number; more: boolean }>;
  /** Every target's count (`full`). The first call after start answers once the actor has read them. */
  counts(): Promise<HintCounts>;
  /** Answered after every op queued before it is committed; the actor then closes its channel and exits. */
  close(): Promise<void>;
}

/**
 * What a coordinator needs of hinted handoff: store a hint for a down replica, on `holder` (another
 * node) or, with null, here. Resolves with whether it was stored. The HintService implements it;
 * coordinators depend on this, not on the service (which depends on the cluster).
 */
export interface HintSink {
  hint(holder: string | null, h: Omit<KvHint, 'createdAt'> | Omit<CrdtHint, 'createdAt'> | Omit<CellHint, 'createdAt'>, timeoutMs: number): Promise<boolean>;
}
