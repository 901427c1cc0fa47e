/**
 * A unit of IPC work (what one accepted request, or one batch item, becomes on its connection) and
 * how it runs: handed to the router, the CRDT coordinator, the table registry or the query service
 * (IpcDeps), its outcome delivered to a sink (the connection, src/api/ipc-connection.ts). Which
 * units are reads, what a unit reserves on its connection's reply account, and its reply's
 * encoding (src/api/ipc-outcome.ts) follow from its kind.
 *
 * The dispatch is per op (hot): it allocates exactly what the connection allocated when it ran
 * units inline (the router's request and its callback), and the sink is the connection itself.
 */
import type { WriteRequest } from '../router/router.js';
import { RingkvError } from '../util/errors.js';
import type { BatchRun } from './ipc-batch.js';
import type { CrdtGetParsed, CrdtUpdateParsed, DefineTableParsed } from './ipc-crdt.js';
import { IPC_PROTOCOL_VERSION, type GetOk, type IpcLimits, type ScanOk, type WriteOk } from './ipc-protocol.js';
import { getOk, scanOk } from './ipc-replies.js';
import type { KvOp, QueryParsed, ScanParsed } from './ipc-request.js';
import type { IpcDeps } from './ipc-server-types.js';

export type Work = (
  | { t: 'crdt_update'; id: number; op: CrdtUpdateParsed }
  | { t: 'crdt_get'; id: number; op: CrdtGetParsed }
  | { t: 'define_table'; id: number; op: DefineTableParsed }
  | { t: 'kv'; id: number; op: KvOp }
  | { t: 'item'; batch: BatchRun; index: number; op: KvOp }
  | { t: 'scan'; id: number; op: ScanParsed }
  | { t: 'ring'; id: number; digest: string | undefined }
  | { t: 'status'; id: number }
  | { t: 'query'; id: number; op: QueryParsed }
) & {
  /** Arrival order on the connection (set when queued): re-runs keep it. */
  seq?: number;
  /** Bytes reserved on the connection's account while the unit runs. */
  reserved?: number;
};

/**
 * A unit's outcome. `{ok: false, err: undefined}` is a batch get past the batch's cut, answered
 * without running.
 */
export type Outcome = { ok: true; value: WriteOk | GetOk | ScanOk | Record<string, unknown> } | { ok: false; err: unknown };

/** Where a unit's outcome goes (the connection): called once per run of a unit. */
export interface WorkSink {
  complete(w: Work, out: Outcome): void;
}

/**
 * What a small reply is reserved at: a write's (a context and a consistency report) or a batch
 * get's that is cut without running (an error and no value). Small and bounded.
 */
export const SMALL_REPLY_RESERVE_BYTES = 1024;

/**
 * Reads may be run again when their finished reply does not fit the connection's reply bytes. A
 * `query` is a read when it is a SELECT; another statement is never run twice, nor is a CRDT
 * update (an increment run twice counts twice).
 */
export function isRead(w: Work): boolean {
  if (w.t === 'query') return w.op.readOnly;
  if (w.t === 'crdt_update' || w.t === 'define_table') return false;
  return w.t === 'kv' || w.t === 'item' ? w.op.kind === 'get' : true;
}

/** The CRDT ops and define_table answer errors with their details (what the client may retry). */
export function withDetails(w: Work): boolean {
  return w.t === 'crdt_update' || w.t === 'crdt_get' || w.t === 'define_table';
}

/** What to reserve on the reply account for a unit's reply while it runs (`estimate`: the account's). */
export function replyReserve(w: Work, estimate: number): number {
  if (w.t === 'item' && !w.batch.asm.shouldRun(w.index)) return SMALL_REPLY_RESERVE_BYTES;
  // An update's reply carries the key's value (a set can be large), though it is never run again.
  if (w.t === 'crdt_update') return estimate;
  return isRead(w) ? estimate : SMALL_REPLY_RESERVE_BYTES;
}

/**
 * Start a unit; its outcome goes to `sink.complete`. The answers this function makes itself (a cut
 * batch get, a missing service, `ring`) are delivered on a microtask, not inside this call.
 */
export function runWork(w: Work, deps: IpcDeps, publicLimits: Required<IpcLimits>, sink: WorkSink): void {
  const router = deps.router;
  switch (w.t) {
    case 'kv':
    case 'item': {
      const op = w.op;
      if (w.t === 'item' && !w.batch.asm.shouldRun(w.index)) {
        // A get past the point where the batch reply is full: answered without running.
        queueMicrotask(() => sink.complete(w, { ok: false, err: undefined }));
        return;
      }
      if (op.kind === 'get') {
        router.startRead({ table: op.table, key: op.key, consistency: op.consistency, timeoutMs: op.timeoutMs }, (err, r) =>
          sink.complete(w, err ? { ok: false, err } : { ok: true, value: getOk(r!) }),
        );
        return;
      }
      // A KvOp is a WriteRequest as it is (no copy per op); a WriteResult is exactly a WriteOk
      // (context, consistency): passed on as it is.
      router.startWrite(op satisfies WriteRequest, (err, r) => sink.complete(w, err ? { ok: false, err } : { ok: true, value: r! satisfies WriteOk }));
      return;
    }
    case 'scan': {
      const op = w.op;
      if (!router.startScan) {
        queueMicrotask(() => sink.complete(w, { ok: false, err: new RingkvError('unavailable', 'this server does not serve scans') }));
        return;
      }
      const from = 'pagingState' in op.from ? { pagingState: op.from.pagingState } : { startKey: op.from.key, exclusive: op.from.exclusive };
      router.startScan({ table: op.table, ...from, limit: op.limit, consistency: op.consistency, timeoutMs: op.timeoutMs }, (err, r) =>
        sink.complete(w, err ? { ok: false, err } : { ok: true, value: scanOk(r!) }),
      );
      return;
    }
    case 'ring': {
      let value: Record<string, unknown>;
      try {
        const info = deps.ringInfo();
        const base = { protocol: IPC_PROTOCOL_VERSION, node: deps.nodeId ?? '', limits: publicLimits };
        value = w.digest === info.digest ? { ...base, unchanged: true } : { ...base, ring: info };
      } catch (err) {
        queueMicrotask(() => sink.complete(w, { ok: false, err }));
        return;
      }
      queueMicrotask(() => sink.complete(w, { ok: true, value }));
      return;
    }
    case 'status':
      deps.clusterStatus().then(
        (status) => sink.complete(w, { ok: true, value: { status } }),
        (err: unknown) => sink.complete(w, { ok: false, err }),
      );
      return;
    case 'query': {
      const q = deps.query;
      if (!q) {
        queueMicrotask(() => sink.complete(w, { ok: false, err: new RingkvError('unavailable', 'this server does not serve CQL queries') }));
        return;
      }
      q(w.op).then(
        (value) => sink.complete(w, { ok: true, value: value as unknown as Record<string, unknown> }),
        (err: unknown) => sink.complete(w, { ok: false, err }),
      );
      return;
    }
    case 'crdt_update':
    case 'crdt_get':
    case 'define_table':
      return runCrdtWork(deps, w, (out) => sink.complete(w, out));
  }
}

/** Run a crdt_update, crdt_get or define_table; `complete` gets the outcome (never inside this call). */
function runCrdtWork(deps: IpcDeps, w: Extract<Work, { t: 'crdt_update' | 'crdt_get' | 'define_table' }>, complete: (out: Outcome) => void): void {
  const fail = (err: unknown): void => queueMicrotask(() => complete({ ok: false, err }));
  if (w.t === 'define_table') {
    if (!deps.tables) return fail(new RingkvError('unavailable', 'this server does not define tables'));
    let table: Record<string, unknown>;
    try {
      table = { ...deps.tables.define(w.op.table, w.op.settings, true) };
    } catch (err) {
      return fail(err);
    }
    return void queueMicrotask(() => complete({ ok: true, value: { table } }));
  }
  const crdts = deps.crdts;
  if (!crdts) return fail(new RingkvError('unavailable', 'this server does not serve convergent data types'));
  if (w.t === 'crdt_update') {
    const u = w.op;
    crdts.startUpdate({ table: u.table, key: u.key, operation: u.operation, consistency: u.consistency, timeoutMs: u.timeoutMs }, (err, r) =>
      complete(err ? { ok: false, err } : { ok: true, value: { ...r! } }),
    );
    return;
  }
  const g = w.op;
  crdts.startRead({ table: g.table, key: g.key, consistency: g.consistency, timeoutMs: g.timeoutMs }, (err, r) => complete(err ? { ok: false, err } : { ok: true, value: { ...r! } }));
}
