/**
 * The key-value coordinator's requests and results (what the router's write/read take and answer).
 * Apart from types.ts, which the client library also imports: these name server-side versions.
 */
import type { Version } from '../versions/index.js';
import type { ConsistencySpec } from './consistency.js';
import type { ConsistencyReport, Replica } from './types.js';

export interface WriteRequest {
  table: string;
  key: Uint8Array;
  /** Value bytes; ignored for deletes. */
  value: Uint8Array;
  tombstone: boolean;
  context?: string | undefined;
  consistency: ConsistencySpec;
  timeoutMs?: number | undefined;
  /** Seconds until the value expires (absent or 0: never); not with a tombstone. */
  ttlSeconds?: number | undefined;
}

export interface WriteResult {
  context: string;
  consistency: ConsistencyReport;
}

export interface ReadRequest {
  table: string;
  key: Uint8Array;
  consistency: ConsistencySpec;
  timeoutMs?: number | undefined;
}

export interface ReadResult {
  /** Live (non-deleted) versions after reconciliation: 0 = absent or deleted, >1 = siblings. */
  values: Version[];
  context: string;
  consistency: ConsistencyReport;
}

/** A key's token words, ring position and replicas (in preference order). */
export interface KeyRoute {
  hi: number;
  lo: number;
  pos: number;
  replicas: readonly Replica[];
}
