/**
 * The client's public option and result types (what `RingkvClient` methods take and answer).
 */
import type { ConsistencyLevel, ConsistencyReport, IpcKey } from '../api/ipc-protocol.js';

/**
 * Where to connect: the node's local IPC socket, or peer-port addresses (HOST:PORT) authenticated
 * with the cluster secret (default: the development secret of nodes started without one, which
 * listen on loopback only).
 */
export type ConnectTarget = { socket: string } | { hosts: string[]; secret?: string };

export interface ClientOptions {
  /** Default per-request deadline in ms (default 5000). */
  timeoutMs?: number;
  /** Deadline for opening a connection in ms (default 2000). */
  connectTimeoutMs?: number;
  /** Requests (batch items count individually) outstanding per connection (default 1024). */
  maxPendingPerConnection?: number;
  /** Requests allowed to wait for a free slot per connection before `overloaded` (default 4 x maxPending). */
  maxQueuedPerConnection?: number;
  /** Connections per node (default 1; pipelining makes one enough for most loads). */
  connectionsPerNode?: number;
  /** Route each key to one of its replicas (default true). Off: everything goes to the seed(s). */
  tokenAware?: boolean;
  /** Items per batch frame sent to a node (default 1000); larger batches are split. */
  maxBatchItems?: number;
  /** Largest reply frame accepted (default 64 MiB). */
  maxReplyFrameBytes?: number;
  /** Re-fetch the ring this often even without an `rv` mismatch, to learn liveness changes (default 30000; 0 = never). */
  ringRefreshMs?: number;
  /** Identifies this client to the peer port (hosts mode; default client-<pid>-<random>). */
  clientId?: string;
  /**
   * Coalesce single put/get/delete calls made in the same tick into batch frames (default true):
   * one frame, one server-side decode and one reply for all of them, instead of one each. Calls
   * keep their own results and errors; only a frame-level failure (a lost connection) fails all of
   * the calls that shared the frame.
   */
  autoBatch?: boolean;
}

export interface ConsistencyOptions {
  consistency?: ConsistencyLevel;
  /** Replicas to involve (1..5; default the table's n). */
  n?: number;
  timeoutMs?: number;
}
export interface PutOptions extends ConsistencyOptions {
  context?: string;
  w?: number;
  /** Seconds until the value expires: reads then find the key absent; the sweep purges it gc grace later. */
  ttl?: number;
}
export interface GetOptions extends ConsistencyOptions {
  r?: number;
}
export interface ScanOptions extends ConsistencyOptions {
  /** Replies required per ring range (1..n). */
  r?: number;
  /** Start strictly after the start key's token. */
  exclusive?: boolean;
}

/** Where a scan starts: a key's token, or the `pagingState` of the previous page. */
export type ScanFrom = IpcKey | { pagingState: string };
export interface DeleteOptions extends ConsistencyOptions {
  context?: string;
  w?: number;
}

export interface WriteResult {
  context: string;
  consistency: ConsistencyReport;
}
export interface GetResult {
  found: boolean;
  /** The value, when exactly one live version exists. */
  value?: Buffer;
  /** Concurrent versions (2+), when writes conflicted: resolve, then put with `context`. */
  siblings?: Buffer[];
  context: string;
  consistency: ConsistencyReport;
}

/** A scan row: a live key and what `get` would answer for it (`found` is always true). */
export interface ScanRow extends Omit<GetResult, 'consistency'> {
  key: Buffer;
}
export interface ScanResult {
  rows: ScanRow[];
  /** The server's reply byte bound stopped the scan before `limit` rows. */
  truncated: boolean;
  /** The scan has walked its whole turn of the ring: there is no next page. */
  endOfRing: boolean;
  /** The next page: `scan(table, { pagingState }, limit)`. Absent exactly when `endOfRing`. */
  pagingState?: string;
  consistency: ConsistencyReport;
}

export type ClientBatchItem =
  | ({ op: 'put'; table: string; key: IpcKey; value: Uint8Array | string } & PutOptions)
  | ({ op: 'get'; table: string; key: IpcKey } & GetOptions)
  | ({ op: 'del'; table: string; key: IpcKey } & DeleteOptions);

/** A table definition's settings (`createTable`). */
export interface TableSettings {
  conflicts?: 'vclock' | 'lww' | 'crdt';
  /** With conflicts `crdt`: the type every key of the table holds. */
  type?: 'counter' | 'set' | 'map' | 'register' | 'flag';
  n?: number;
  quorum?: 'sloppy' | 'strict';
}
