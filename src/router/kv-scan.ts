/**
 * Starting a key-value range scan (the coordinator's side of src/router/scan.ts): validate the
 * request, decode the paging state or place the walk's start, plan the ring segments of the
 * walk's one turn under the current layout, and run a ScanCoordination over them; the answer
 * carries the paging state of its continuation. Scans never create tables: an unknown table
 * scans with the defaults and finds no rows.
 */
import type { NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { RingLayout } from '../ring/builder.js';
import { tokenOf, type Token } from '../ring/hash.js';
import { encodeStorageKey } from '../storage/keys.js';
import { RingkvError } from '../util/errors.js';
import { resolveConsistency } from './consistency.js';
import {
  SCAN_LIMITS,
  ScanCoordination,
  clipWalk,
  decodePagingState,
  encodePagingState,
  planScanSegments,
  scanWalkStart,
  type ScanPage,
  type ScanPorts,
  type ScanRequest,
  type ScanResult,
  type ScanSegment,
} from './scan.js';
import type { KvTableDef } from './kv-coordination.js';
import { tableIdBytes, type TableDef } from './tables.js';
import type { Done, Replica, RouterCounters } from './types.js';

/** What starting a scan reads of the router (one object for the router's life). */
export interface KvScanDeps {
  counters: RouterCounters;
  config: NodeConfig;
  log: Logger;
  /** The ring layout the router routes by now. */
  layout(): RingLayout;
  /** The key-value table of a name (its defaults when not created; wide-column and crdt refused). */
  kvTable(name: string): KvTableDef;
  replicasOfPos(layout: RingLayout, pos: number): readonly Replica[];
  isUp(r: Replica): boolean;
  scanReplica(r: Replica, table: TableDef, seg: ScanSegment, after: Uint8Array | null, limit: number, timeoutMs: number, cb: (err: Error | null, page: ScanPage | null) => void): void;
}

/**
 * Start scan `req` (deadline `timeoutMs`); `done` runs exactly once, never inside this call. R is
 * resolved like a read's (`r` / level, clamped on small rings).
 */
export function startKvScan(d: KvScanDeps, req: ScanRequest, timeoutMs: number, done: Done<ScanResult>): void {
  let c: ScanCoordination<Replica>;
  try {
    const limit = req.limit;
    if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > SCAN_LIMITS.maxLimit) {
      throw new RingkvError('bad_request', `limit must be an integer between 1 and ${SCAN_LIMITS.maxLimit}, got ${JSON.stringify(limit)}`, { field: 'limit' });
    }
    const table = d.kvTable(req.table);
    // Where the walk starts, where its one turn of the ring ends, and (continuing) the cursor.
    let walk: { from: Token; exclusive: boolean; end: Token; after: Uint8Array | null };
    if (req.pagingState !== undefined) {
      if (req.startKey !== undefined) throw new RingkvError('bad_request', 'give either a start key or a pagingState, not both', { field: 'pagingState' });
      const ps = decodePagingState(req.pagingState, d.config.limits.maxKeyBytes);
      const t = tokenOf(ps.lastKey);
      walk = { from: t, exclusive: false, end: ps.walkEnd, after: encodeStorageKey(t.hi, t.lo, tableIdBytes(table), ps.lastKey) };
    } else {
      if (!(req.startKey instanceof Uint8Array) || req.startKey.length === 0) throw new RingkvError('bad_request', 'a scan needs a non-empty start key', { field: 'key' });
      const from = tokenOf(req.startKey);
      const exclusive = req.exclusive === true;
      walk = { from, exclusive, end: scanWalkStart(from, exclusive), after: null };
    }
    const layout = d.layout();
    const cons = resolveConsistency(req.consistency, 'read', table.n, layout.tokens.length > 0 ? layout.replicas : 0);
    if (cons.n === 0 || layout.tokens.length === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
    const segments = clipWalk(planScanSegments(layout.tokens, walk.from, walk.exclusive), scanWalkStart(walk.from, walk.exclusive), walk.end);
    const { end } = walk;
    const answer: Done<ScanResult> = (err, r) => {
      // The continuation: after the last row, up to where this scan's turn of the ring ends.
      if (r && !r.endOfRing) r.pagingState = encodePagingState(end, r.rows[r.rows.length - 1]!.key);
      done(err, r);
    };
    d.counters.coordinatedScans++;
    const ports: ScanPorts<Replica> = {
      log: () => d.log,
      maxSiblings: () => d.config.maxSiblings,
      // Positions are of the layout this scan planned with; a publish mid-scan is caught by the
      // replicas, which check the segment against their own ring view.
      replicasAt: (pos) => d.replicasOfPos(layout, pos),
      isUp: (r) => d.isUp(r),
      scanReplica: (r, seg, after, lim, ms, cb) => d.scanReplica(r, table, seg, after, lim, ms, cb),
      onUnavailable: (timedOut) => {
        d.counters.unavailable++;
        if (timedOut) d.counters.timeouts++;
      },
    };
    c = new ScanCoordination(ports, table.conflicts, segments, cons, limit, timeoutMs, answer, walk.after);
  } catch (e) {
    return void queueMicrotask(() => done(e as Error, undefined));
  }
  c.start();
}
