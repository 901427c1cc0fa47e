/**
 * The router's shared vocabulary: the types every coordination (key-value, scan, CRDT, wide-column)
 * and the router itself speak. A leaf module, so the coordinations can live in their own files
 * without importing router.ts (which imports them): no import circle.
 */
import type { ResolvedConsistency } from './consistency.js';

/** A completion callback: exactly one of (error) or (null, result). */
export type Done<T> = (err: Error | null, result: T | undefined) => void;

/** A replica of a key. On this node, the key's shard follows from its token (ShardPool picks it). */
export interface Replica {
  nodeIndex: number;
  nodeId: string;
  local: boolean;
}

/** No replicas: one shared empty list (no array per op where a plan has none). */
export const NO_REPLICAS: readonly Replica[] = [];

export interface ConsistencyReport {
  n: number;
  required: number;
  replied: number;
  clamped?: ResolvedConsistency['clamped'];
}

export interface RouterCounters {
  coordinatedWrites: number;
  coordinatedReads: number;
  coordinatedScans: number;
  replicaWrites: number;
  replicaReads: number;
  readRepairs: number;
  unavailable: number;
  timeouts: number;
  hintedWrites: number;
  /** Coordinations started and not answered yet (a gauge; it returns to 0 when the node is idle). */
  coordinationsInFlight: number;
  /** Coordinations the deadline backstop had to answer (a bug when non-zero; see coordinations.ts). */
  overdueCoordinations: number;
}
