/**
 * The IPC server's dependencies and its face to the node (what ipc-server.ts and the connections
 * share, apart from both so neither imports the other for them).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { ReplyBudget } from '../net/reply-budget.js';
import type { Router } from '../router/router.js';
import type { CrdtCoordinator } from '../router/crdt.js';
import type { TableRegistry } from '../router/tables.js';
import type { IpcLimits, QueryOk, RingInfo } from './ipc-protocol.js';
import type { QueryParsed } from './ipc-request.js';

export interface IpcDeps {
  /** Unix socket path. A stale socket file is removed at start; a live one makes start fail. */
  path: string;
  /** A Pick so protocol tests can pass an in-process fake (see `promiseRouter`). */
  router: IpcRouter;
  /** Convergent data types (crdt_update, crdt_get); absent: those ops answer `unavailable`. */
  crdts?: Pick<CrdtCoordinator, 'startUpdate' | 'startRead'>;
  /** Table definitions (define_table); absent: that op answers `unavailable`. */
  tables?: Pick<TableRegistry, 'define'>;
  ringInfo: () => RingInfo;
  /** Cheap digest for the `rv` of every reply; defaults to `ringInfo().digest` (which builds the whole info). */
  ringDigest?: () => string;
  /** This node's id, reported by `ring` so clients can check they reached the node they meant. */
  nodeId?: string;
  clusterStatus: () => Promise<unknown>;
  /** CQL statements (the `query` op); a server without it answers `unavailable`. */
  query?: (req: QueryParsed) => Promise<QueryOk>;
  limits: IpcLimits & {
    /** Concurrent connections accepted on the socket (default 1024). */
    maxConnections?: number;
  };
  /**
   * Reply-byte bounds (per connection and node-wide), shared with the node's other servers; default:
   * a budget of this server's own with the default limits.
   */
  replies?: ReplyBudget;
  log: Logger;
}

export interface IpcStats {
  connections: number;
  inFlight: number;
  /** Highest in-flight count any single connection reached (bounded by maxInFlightPerConnection). */
  maxInFlightSeen: number;
  /** Request frames accepted (a batch counts once). */
  requests: number;
  /** Connections closed for a malformed, oversized or id-less frame. */
  badFrames: number;
  /** Times a connection was paused for backpressure. */
  pauses: number;
  /** Connections currently paused (in-flight bound reached, work queued, or the client not reading). */
  pausedConnections: number;
  /** Reply bytes of open connections: reserved for units in flight + written and not yet drained. */
  replyBytes: number;
}

export interface IpcServer {
  /** Serve one already-connected socket (the peer port hands over authenticated clients here). */
  handleConnection(socket: Socket, leftover?: Buffer): void;
  stats(): IpcStats;
  close(): Promise<void>;
}

/**
 * What the IPC server needs of the router: the callback forms (no promise per batch item). Scans
 * are optional so protocol fakes need not implement them (a server without one answers
 * `unavailable`).
 */
export type IpcRouter = Pick<Router, 'startWrite' | 'startRead'> & Partial<Pick<Router, 'startScan'>>;
