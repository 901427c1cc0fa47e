/**
 * One coordinated CRDT update (issue 14, docs/crdt.md "Integration"), as a state machine driven by
 * replica callbacks, like WriteCoordination in router.ts:
 *
 *  1. the operation is applied at ONE replica, the coordinating replica: this node's own shard when
 *     it is a replica of the key (else the first up replica), inside the shard actor, so the
 *     read-modify-write of the key's state is in mailbox order and the actor (node id +
 *     incarnation) only ever extends its own dots on its own stored state;
 *  2. the resulting STATE goes to the other replicas (a replica write each replica joins with what
 *     it holds) and, for down replicas, into hints carrying the state;
 *  3. the answer goes out once W replicas (the coordinating one included) hold the state.
 *
 * Failures at step 1 that say the operation was not applied (a refusal, `crdt.maxActors` reached on
 * that replica's state, overload) move on to the next up replica; a precondition `context_ahead`
 * first catches the coordinating replica up (the other replicas' states joined into it) and retries
 * there once. A failure whose outcome is unknown (a lost answer) is never retried anywhere: the
 * client gets `timeout` / `unavailable` with `details.outcome = "unknown"` (and `applied: true` when
 * the coordinating replica applied it but fewer than W replicas confirmed), because a resent
 * increment would count twice.
 */
import { encodeApplyRequest } from '../storage/crdt-shard.js';
import { hasRemovals, readEncoded, type CrdtValue, type ParsedOp } from '../crdt/index.js';
import { mergeStoredRecords } from '../storage/records.js';
import { RingkvError } from '../util/errors.js';
import type { ResolvedConsistency } from './consistency.js';
import type { ApplyOutcome, CrdtDeps, CrdtKeyIo } from './crdt-replicas.js';
import { QuorumTracker } from './quorum.js';
import { consistencyReport } from './quorum-read.js';
import type { WritePlan } from './router.js';
import type { ConsistencyReport, Done, Replica } from './types.js';

export interface CrdtUpdateResult {
  /** The value of the coordinating replica's new state, and its context for later removes. */
  value: CrdtValue;
  context?: string;
  consistency: ConsistencyReport;
}

/** An outcome error with what the client must know before it retries: whether the update may have been applied. */
function withOutcome(err: RingkvError, outcome: 'unknown' | 'not_applied', applied?: boolean): RingkvError {
  const details: Record<string, unknown> = { ...(err.details ?? {}), outcome };
  if (applied) details['applied'] = true;
  return new RingkvError(err.code, err.message, details);
}

function isMaxActors(err: RingkvError): boolean {
  return err.code === 'too_large' && err.details?.['limit'] === 'crdt.maxActors';
}

function isContextAhead(err: RingkvError): boolean {
  return err.code === 'conflict' && err.details?.['precondition'] === 'context_ahead';
}

export class CrdtUpdateCoordination {
  private readonly tracker: QuorumTracker;
  /** Up replicas that may coordinate, local first; `next` is the one to try after the current. */
  private readonly candidates: readonly Replica[];
  private next = 0;
  private readonly request: Uint8Array;
  private settled = false;
  private applied = false;
  /** An apply request is out and unanswered: until it answers, the outcome is unknown. */
  private applying = false;
  private caughtUp = false;
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;

  constructor(
    private readonly d: Pick<CrdtDeps, 'router' | 'hints'>,
    private readonly io: CrdtKeyIo,
    private readonly parsed: ParsedOp,
    /** The client's operation as it came (remote replicas parse it again). */
    private readonly operation: unknown,
    private readonly cons: ResolvedConsistency,
    private readonly plan: WritePlan,
    private readonly timeoutMs: number,
    private readonly done: Done<CrdtUpdateResult>,
  ) {
    this.tracker = new QuorumTracker(cons.n, cons.required);
    this.candidates = [...plan.up].sort((a, b) => Number(b.local) - Number(a.local));
    this.request = encodeApplyRequest(io.type, parsed);
  }

  start(): void {
    this.deadline = Date.now() + this.timeoutMs;
    this.timer = setTimeout(() => this.onDeadline(), this.timeoutMs);
    this.tryCoordinator();
  }

  private remaining(): number {
    return Math.max(1, this.deadline - Date.now());
  }

  private finish(err: RingkvError | null, result?: CrdtUpdateResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.done(err, result);
  }

  private onDeadline(): void {
    if (this.settled) return;
    this.d.router.counters.timeouts++;
    const err = this.d.router.quorumError('write', this.tracker, this.cons, true);
    // With an apply out and unanswered, the replica may or may not have applied the operation;
    // between attempts (a catch-up read) nothing is applied anywhere.
    this.finish(withOutcome(err, this.applied || this.applying ? 'unknown' : 'not_applied', this.applied));
  }

  private tryCoordinator(): void {
    if (this.settled) return;
    const c = this.candidates[this.next++];
    if (c === undefined) {
      this.d.router.counters.unavailable++;
      return this.finish(withOutcome(new RingkvError('unavailable', `no replica of the key could apply the operation (${this.candidates.length} up replicas tried)`), 'not_applied'));
    }
    this.applying = true;
    this.io.apply(c, this.request, this.operation, this.remaining(), (o) => this.onApplied(c, o));
  }

  private onApplied(c: Replica, o: ApplyOutcome): void {
    this.applying = false;
    if (o.ok) {
      // Even past the deadline (the client was told "unknown"): the applied state must spread.
      this.applied = true;
      this.record(true, o.state);
      this.fanOut(c, o.state);
      return;
    }
    if (this.settled) return;
    const err = o.err;
    if (!o.definite) {
      this.d.router.counters.timeouts++;
      this.io.log.debug({ err: err.message, replica: c.nodeId }, 'coordinating replica did not answer a crdt apply');
      return this.finish(withOutcome(new RingkvError(err.code === 'timeout' ? 'timeout' : 'unavailable', `the coordinating replica ${c.nodeId} did not confirm the operation: ${err.message}`), 'unknown'));
    }
    if (isContextAhead(err) && !this.caughtUp && hasRemovals(this.parsed.op)) {
      this.caughtUp = true;
      return this.catchUp(c);
    }
    // Refused here, but another replica may take it: one already an actor of a full state, one not overloaded.
    if (isMaxActors(err) || err.code === 'overloaded' || err.code === 'not_owner' || err.code === 'unavailable') {
      this.io.log.debug({ err: err.message, replica: c.nodeId }, 'replica refused a crdt apply; trying the next');
      if (this.next < this.candidates.length) return this.tryCoordinator();
    }
    this.finish(withOutcome(err, 'not_applied'));
  }

  /**
   * The client's context has seen adds the coordinating replica has not: join the other replicas'
   * states into it, then apply once more. If it is still behind (the replica that had the adds is
   * unreachable), the retry answers `context_ahead` and the client retries later.
   */
  private catchUp(c: Replica): void {
    const others = this.plan.up.filter((r) => r !== c);
    let pending = others.length;
    let joined: Uint8Array | null = null;
    const retry = (): void => {
      if (this.settled) return;
      this.next--; // the same replica again
      this.tryCoordinator();
    };
    if (pending === 0) return retry();
    for (const r of others) {
      this.io.read(r, this.remaining(), (err, state) => {
        if (!err && state !== null) {
          try {
            joined = joined === null ? state : mergeStoredRecords('crdt', joined, state, 1);
          } catch (e) {
            this.io.log.warn({ err: String(e), replica: r.nodeId }, 'undecodable crdt state from a replica');
          }
        }
        if (--pending > 0) return;
        if (joined === null) return retry();
        this.io.write(c, joined, this.remaining(), () => retry());
      });
    }
  }

  /**
   * The coordinating replica's new state to every other target: up ones by replica write, down ones
   * by hint; and to the pending replicas of a range movement, never counted toward W (a down or
   * failing one gets an uncounted hint), so a joining node does not miss what happens meanwhile.
   */
  private fanOut(coordinator: Replica, state: Uint8Array): void {
    for (const r of this.plan.pending) {
      if (!this.d.router.pendingUp(r)) this.pendingHint(r, state);
      else this.io.write(r, state, this.timeoutMs, (err) => err && this.pendingHint(r, state));
    }
    for (const pl of this.plan.placements) this.hint(pl.target, pl.holder, state, pl.counts);
    if (this.plan.placements.length === 0) for (let i = 0; i < this.plan.down.length; i++) this.record(false, state);
    for (const r of this.plan.up) {
      if (r === coordinator) continue;
      this.io.write(r, state, this.timeoutMs, (err) => {
        if (!err) return this.record(true, state);
        // As for version writes: a replica that failed mid-write gets a hint on this node, which
        // counts toward W only for ANY.
        this.io.log.debug({ err: String(err), replica: r.nodeId }, 'crdt replica write failed');
        if (this.d.hints()) this.hint(r.nodeId, null, state, this.cons.any);
        else this.record(false, state);
      });
    }
  }

  private pendingHint(r: Replica, state: Uint8Array): void {
    this.d.router.counters.hintedWrites++;
    this.io.hint(r.nodeId, null, state, this.timeoutMs).catch((e: unknown) => this.io.log.debug({ err: String(e), target: r.nodeId }, 'pending replica crdt hint failed'));
  }

  private hint(target: string, holder: string | null, state: Uint8Array, counts: boolean): void {
    this.d.router.counters.hintedWrites++;
    this.io.hint(target, holder, state, this.timeoutMs).then(
      (stored) => this.record(stored && counts, state),
      (e: unknown) => {
        this.io.log.debug({ err: String(e), target, holder }, 'crdt hint store failed');
        this.record(false, state);
      },
    );
  }

  private record(ok: boolean, state: Uint8Array): void {
    const s = ok ? this.tracker.ack() : this.tracker.fail();
    if (this.settled || s === 'pending') return;
    if (s === 'failed') {
      const err = this.d.router.quorumError('write', this.tracker, this.cons, false);
      return this.finish(withOutcome(err, 'unknown', this.applied));
    }
    let value: { value: CrdtValue; context: string | undefined };
    try {
      value = readEncoded(this.io.type, state);
    } catch (e) {
      return this.finish(new RingkvError('internal', `the coordinating replica returned an undecodable state: ${(e as Error).message}`));
    }
    const result: CrdtUpdateResult = { value: value.value, consistency: consistencyReport(this.cons, this.tracker.acknowledged) };
    if (value.context !== undefined) result.context = value.context;
    this.finish(null, result);
  }
}
