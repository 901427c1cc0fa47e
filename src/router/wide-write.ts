/**
 * Coordination of a wide-column write (INSERT, UPDATE, DELETE): a statement's plan holds, per
 * partition, the entries to merge (src/wide/planner.ts). Each partition's entries go to its N
 * replicas as ONE multi-key write (`wide-write` / the shard's `cell-write`), and the partition is
 * written once W of them acknowledged. No read-before-write and no coordinating replica: each
 * replica merges each key with the cell rule, which is commutative, so replicas converge
 * whatever order the writes, hints and repairs reach them in.
 *
 * A replica that is down, or fails, gets a hint on this node (Cassandra: the coordinator stores
 * it); hints count toward W only for ANY (strict quorum, as Cassandra). While a range movement is
 * under way the partition's pending replicas get every write as well, never counted toward W. Partitions of one
 * statement (an IN on the partition key) are written concurrently and independently: the
 * statement succeeds when every partition reached W (like an unlogged batch, a failure may leave
 * some partitions written).
 */
import type { NodeConfig } from '../config/config.js';
import type { HintSink } from '../hints/protocol.js';
import type { Logger } from '../log/logger.js';
import { RingkvError } from '../util/errors.js';
import type { PartitionWrite, WritePlan } from '../wide/planner.js';
import { resolveConsistency, type ConsistencySpec, type ResolvedConsistency } from './consistency.js';
import { QuorumTracker } from './quorum.js';
import type { Router } from './router.js';
import type { Replica } from './types.js';
import type { WideReplicas } from './wide-replicas.js';
import type { WideWriteBody } from './wide-protocol.js';

export const WIDE_WRITE_LIMITS = Object.freeze({
  /** Entry bytes (suffixes + records) of one statement: IN lists multiply a value, this bounds the product (413 past it). */
  maxStatementBytes: 8 * 1024 * 1024,
});

export interface WideCoordinatorDeps {
  router: Router;
  replicas: WideReplicas;
  hints: HintSink | undefined;
  config: NodeConfig;
  log: Logger;
}

/** The table a coordination works on: its name, storage id and replication factor. */
export interface WideTarget {
  name: string;
  tableId: Uint8Array;
  n: number;
}

/** Milliseconds left before `deadline` (at least 1, so a call still gets a bound). */
export function remainingMs(deadline: number): number {
  return Math.max(1, deadline - Date.now());
}

/** Replicas to ask first: the local one, then the others in preference order. */
export function localFirst(rs: readonly Replica[]): Replica[] {
  return [...rs].sort((a, b) => Number(b.local) - Number(a.local));
}

export function quorumError(kind: 'read' | 'write', acks: number, cons: ResolvedConsistency, timedOut: boolean, detail = ''): RingkvError {
  const what = kind === 'read' ? 'replies' : 'acks';
  return new RingkvError(
    timedOut ? 'timeout' : 'unavailable',
    `${kind} quorum not met: ${acks} of ${cons.n} replicas answered, ${cons.required} ${what} required${timedOut ? ' (deadline passed)' : ''}${detail}`,
    { n: cons.n, required: cons.required, replied: acks },
  );
}

/** Write every partition of a plan with the statement's consistency, by `deadline`. */
export async function coordinateWidePlan(d: WideCoordinatorDeps, t: WideTarget, plan: WritePlan, spec: ConsistencySpec, deadline: number): Promise<void> {
  let bytes = 0;
  for (const p of plan.partitions) for (const e of p.entries) bytes += e.suffix.length + e.record.length;
  if (bytes > WIDE_WRITE_LIMITS.maxStatementBytes) {
    throw new RingkvError('too_large', `the statement writes ${bytes} bytes of cells, more than the ${WIDE_WRITE_LIMITS.maxStatementBytes} one statement may (IN lists multiply its values)`);
  }
  const results = await Promise.allSettled(plan.partitions.map((p) => writePartition(d, t, p, spec, deadline)));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason instanceof Error ? failed.reason : new Error(String(failed.reason));
}

async function writePartition(d: WideCoordinatorDeps, t: WideTarget, p: PartitionWrite, spec: ConsistencySpec, deadline: number): Promise<void> {
  const route = d.router.replicasOf(p.partitionKey);
  const cons = resolveConsistency(spec, 'write', t.n, route.replicas.length);
  if (cons.n === 0) throw new RingkvError('unavailable', 'the ring has no nodes owning tokens yet');
  const targets = route.replicas.slice(0, cons.n);
  const up = localFirst(targets.filter((r) => d.router.isUp(r)));
  const down = targets.filter((r) => !d.router.isUp(r));
  const hintCredit = cons.any && d.hints ? down.length : 0;
  if (up.length + hintCredit < cons.required) {
    throw new RingkvError(
      'unavailable',
      `write quorum not met: ${up.length} of ${cons.n} replicas are up, ${cons.required} acks required (down: ${down.map((r) => r.nodeId).join(', ')}); nothing was written`,
      { n: cons.n, required: cons.required, up: up.length },
    );
  }
  const body: WideWriteBody = { table: t.name, tableId: t.tableId, key: p.partitionKey, entries: p.entries };
  const hint = async (r: Replica): Promise<boolean> => {
    if (!d.hints) return false;
    try {
      const stored = await d.hints.hint(null, { target: r.nodeId, table: t.name, mode: 'cell', tableId: t.tableId, key: p.partitionKey, entries: p.entries }, remainingMs(deadline));
      return stored && cons.any;
    } catch (e) {
      d.log.debug({ err: String(e), target: r.nodeId }, 'wide-column hint store failed');
      return false;
    }
  };
  const outcomes: Array<Promise<boolean>> = [
    ...up.map((r) =>
      d.replicas.write(r, body, remainingMs(deadline)).then(
        () => true,
        (e: unknown) => {
          d.log.debug({ err: String(e), replica: r.nodeId }, 'wide-column replica write failed');
          return hint(r);
        },
      ),
    ),
    ...down.map((r) => hint(r)),
  ];
  // Pending replicas (a range movement under way: the ones that will hold the partition) get the
  // write too, for the N the request asked for before any clamp; their acks never count toward W.
  for (const r of d.router.pendingReplicasOf(route.hi, route.lo, cons.clamped?.requested.n ?? cons.n)) {
    if (!d.router.pendingUp(r)) void hint(r);
    else d.replicas.write(r, body, remainingMs(deadline)).catch(() => hint(r));
  }
  await awaitQuorum('write', cons, outcomes, deadline);
}

/**
 * Resolve once `cons.required` of the outcomes are true; reject as soon as that became impossible,
 * or at the deadline. The rest run on in the background.
 */
export function awaitQuorum(kind: 'read' | 'write', cons: ResolvedConsistency, outcomes: ReadonlyArray<Promise<boolean>>, deadline: number): Promise<number> {
  const t = new QuorumTracker(outcomes.length, Math.min(cons.required, outcomes.length));
  return new Promise<number>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      reject(quorumError(kind, t.acknowledged, cons, true));
    }, remainingMs(deadline));
    const check = (s: ReturnType<QuorumTracker['ack']>): void => {
      if (settled || s === 'pending') return;
      settled = true;
      clearTimeout(timer);
      if (s === 'succeeded' && t.acknowledged >= cons.required) resolve(t.acknowledged);
      else reject(quorumError(kind, t.acknowledged, cons, false, ` (${t.failed} failed or down)`));
    };
    if (t.state !== 'pending') check(t.state);
    for (const o of outcomes) o.then((ok) => check(ok ? t.ack() : t.fail()), () => check(t.fail()));
  });
}
