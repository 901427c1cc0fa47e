/**
 * Counter columns of wide-column tables (`UPDATE t SET views = views + 1 WHERE ...`): each counter
 * cell a statement touches is one update of the convergent counter of crdt tables, coordinated by
 * the same state machine (crdt-write.ts CrdtUpdateCoordination):
 *
 *  1. the increment is applied at ONE replica of the partition (this node's when it is one, else
 *     the first up replica, `wide-counter` peer message), in that replica's shard actor, under its
 *     actor id (node id + incarnation), at the cell's storage key (the partition's key ‖ the cell
 *     suffix; the shard wire's crdt apply with a suffix);
 *  2. the cell's resulting counter STATE goes to the other replicas as an ordinary partition
 *     mutation (`wide-write` / the shard's cell-write with one entry), and into hints for the down
 *     ones, where it merges by the counter's join (wide/counter-cell.ts);
 *  3. the cell is written once W replicas hold the state.
 *
 * Reads, read repair, anti-entropy, hints and range streaming need nothing of their own: a counter
 * cell is a record of the table like any other, merged by the join wherever records merge.
 *
 * An increment whose outcome is unknown (the coordinating replica's answer lost) is never resent:
 * the statement fails with `details.outcome = "unknown"` (a resent increment would count twice).
 * The cells of one statement (an IN list, several counter columns) are independent updates, run
 * concurrently: like a Cassandra counter batch, a failure may leave some of them applied.
 */
import { parseOp } from '../crdt/index.js';
import type { HintSink } from '../hints/protocol.js';
import type { Logger } from '../log/logger.js';
import { badRequest, RingkvError } from '../util/errors.js';
import type { CounterUpdate } from '../wide/planner.js';
import { resolveConsistency, type ConsistencySpec } from './consistency.js';
import { applyOutcomeOf, type ApplyOutcome, type CrdtDeps, type CrdtKeyIo } from './crdt-replicas.js';
import { CrdtUpdateCoordination, type CrdtUpdateResult } from './crdt-write.js';
import type { Replica } from './types.js';
import type { TableDef } from './tables.js';
import type { WideReplicas } from './wide-replicas.js';
import type { WideCounterBody } from './wide-protocol.js';
import { remainingMs, type WideCoordinatorDeps, type WideTarget } from './wide-write.js';

export const WIDE_COUNTER_LIMITS = Object.freeze({
  /** Counter cells one statement may increment (each is a coordinated update; 413 past it). */
  maxCellsPerStatement: 1000,
});

const MAX_DELTA = BigInt(Number.MAX_SAFE_INTEGER);

/** A counter cell's replica I/O: the apply at one replica, the state to the others. */
export class WideCounterIo implements CrdtKeyIo {
  readonly type = 'counter' as const;
  private readonly body: WideCounterBody;

  constructor(
    private readonly replicas: WideReplicas,
    private readonly hints: HintSink | undefined,
    readonly log: Logger,
    private readonly t: WideTarget,
    u: CounterUpdate,
    delta: number,
  ) {
    this.body = { table: t.name, tableId: t.tableId, key: u.partitionKey, suffix: u.suffix, delta };
  }

  apply(r: Replica, request: Uint8Array, _operation: unknown, timeoutMs: number, cb: (o: ApplyOutcome) => void): void {
    if (r.local) return this.replicas.applyCounter(this.body, request, cb);
    applyOutcomeOf(r.nodeId, this.replicas.requestCounter(r.nodeId, this.body, timeoutMs), cb);
  }

  write(r: Replica, state: Uint8Array, timeoutMs: number, cb: (err: Error | null) => void): void {
    this.replicas.write(r, this.mutation(state), timeoutMs).then(
      () => cb(null),
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
    );
  }

  /** Not needed: a catch-up read only serves operations with removals, which counters have none of. */
  read(_r: Replica, _timeoutMs: number, cb: (err: Error | null, state: Uint8Array | null) => void): void {
    queueMicrotask(() => cb(new RingkvError('internal', 'a counter cell is never read back by its update'), null));
  }

  hint(target: string, holder: string | null, state: Uint8Array, timeoutMs: number): Promise<boolean> {
    if (!this.hints) return Promise.resolve(false);
    const m = this.mutation(state);
    return this.hints.hint(holder, { target, table: m.table, mode: 'cell', tableId: m.tableId, key: m.key, entries: m.entries }, timeoutMs);
  }

  private mutation(state: Uint8Array): { table: string; tableId: Uint8Array; key: Uint8Array; entries: Array<{ suffix: Uint8Array; record: Uint8Array }> } {
    return { table: this.t.name, tableId: this.t.tableId, key: this.body.key, entries: [{ suffix: this.body.suffix, record: state }] };
  }
}

/** Increment every counter cell of a statement with its consistency, by `deadline`. */
export async function coordinateCounterUpdates(d: WideCoordinatorDeps, t: WideTarget, def: TableDef, planned: readonly CounterUpdate[], spec: ConsistencySpec, deadline: number): Promise<void> {
  // IN lists are sets (Cassandra): a cell named twice (`day IN (1, 1)`) is incremented once.
  const seen = new Set<string>();
  const updates = planned.filter((u) => {
    const id = `${Buffer.from(u.partitionKey).toString('hex')}/${Buffer.from(u.suffix).toString('hex')}`;
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
  if (updates.length > WIDE_COUNTER_LIMITS.maxCellsPerStatement) {
    throw new RingkvError('too_large', `the statement increments ${updates.length} counter cells, more than the ${WIDE_COUNTER_LIMITS.maxCellsPerStatement} one statement may (IN lists multiply them)`);
  }
  // Validated in full before anything is sent: a bad increment changes nothing anywhere.
  const ops = updates.map((u) => {
    // The counter is exact within ±(2^53 − 1) (src/crdt/counter.ts), not Cassandra's wrapping 64 bits.
    if (u.delta > MAX_DELTA || u.delta < -MAX_DELTA) throw badRequest(`the increment of counter column ${u.column} must be within ±(2^53 − 1), got ${u.delta}`, { column: u.column });
    return { u, parsed: parseOp('counter', { increment: u.delta }, d.config.crdt) };
  });
  const crdt: Pick<CrdtDeps, 'router' | 'hints'> = { router: d.router, hints: () => d.hints };
  const results = await Promise.allSettled(
    ops.map(
      ({ u, parsed }) =>
        new Promise<CrdtUpdateResult>((resolve, reject) => {
          const route = d.router.replicasOf(u.partitionKey);
          const cons = resolveConsistency(spec, 'write', t.n, route.replicas.length);
          if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
          const plan = d.router.planWrite(route, def, cons);
          d.router.counters.coordinatedWrites++;
          const delta = parsed.op.type === 'counter' ? parsed.op.increment : 0;
          const io = new WideCounterIo(d.replicas, d.hints, d.log, t, u, delta);
          new CrdtUpdateCoordination(crdt, io, parsed, undefined, cons, plan, remainingMs(deadline), (err, r) => (err ? reject(err) : resolve(r!))).start();
        }),
    ),
  );
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
}
