/**
 * Messages between the main thread and the hints actor (workers/hints.ts), the sole owner of the
 * `hints` column family. A hint is a replica write held for a node that was down or unreachable.
 */
import type { ConflictMode, Durability } from '../config/config.js';
import type { Version } from '../versions/index.js';

export interface Hint {
  /** Node the write was meant for. */
  target: string;
  table: string;
  tableId: number;
  mode: ConflictMode;
  key: Uint8Array;
  versions: Version[];
  /** Wall-clock ms when the hint was stored (for maxHintWindowMs expiry). */
  createdAt: number;
}

export interface StoredHint extends Hint {
  /** Per-target sequence number: replay is in this (arrival) order. */
  seq: number;
}

export interface HintsWorkerData {
  handle: bigint;
  durability: Durability;
  /** Bound on stored hints per target; past it a new hint is refused (anti-entropy covers the rest). */
  maxHintsPerTarget: number;
}

export type HintsRequest =
  | { id: number; op: 'store'; hint: Hint }
  | { id: number; op: 'list'; target: string; limit: number }
  | { id: number; op: 'delete'; target: string; seqs: number[] }
  | { id: number; op: 'expire'; olderThan: number }
  | { id: number; op: 'counts' };

export type HintsResult =
  | { id: number; ok: true; stored?: boolean; hints?: StoredHint[]; removed?: number; counts?: Record<string, number> }
  | { id: number; ok: false; code: string; message: string };

export type ToHints = { t: 'ops'; ops: HintsRequest[] } | { t: 'close' };
export type FromHints = { t: 'ready'; counts: Record<string, number> } | { t: 'replies'; replies: HintsResult[] } | { t: 'closed' };
