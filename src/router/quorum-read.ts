/**
 * The skeleton every coordinated read shares (version reads in router.ts, CRDT reads in
 * crdt-read.ts): ask the N targets, answer once R replied, then, once every replica answered or the
 * deadline passed, repair the stale ones (read repair). With `readRepair: blocking` the answer waits
 * for that repair; a replica that never answers then delays the answer to the deadline, not past it,
 * and a read that has its R replies by then still succeeds.
 *
 * A subclass says how to read one replica, what a reply adds to the read (`accept`), what the
 * answer is (`result`), and how to repair (`repair`).
 */
import type { NodeConfig } from '../config/config.js';
import type { RingkvError } from '../util/errors.js';
import type { ResolvedConsistency } from './consistency.js';
import { QuorumTracker } from './quorum.js';
import type { ConsistencyReport, Done, Replica, RouterCounters } from './types.js';

/** What a read coordination needs of the router. */
export interface QuorumReadPorts {
  counters: RouterCounters;
  isUp(r: Replica): boolean;
  quorumError(kind: 'read' | 'write', t: QuorumTracker, cons: ResolvedConsistency, timedOut: boolean): RingkvError;
}

/** The consistency a request's answer reports. */
export function consistencyReport(cons: ResolvedConsistency, replied: number): ConsistencyReport {
  const r: ConsistencyReport = { n: cons.n, required: cons.required, replied };
  if (cons.clamped) r.clamped = cons.clamped;
  return r;
}

export abstract class QuorumReadCoordination<V, T> {
  protected readonly tracker: QuorumTracker;
  private outstanding: number;
  /** Replies taken into the read. */
  private accepted = 0;
  private answered = false;
  private finished = false;
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;

  constructor(
    private readonly ports: QuorumReadPorts,
    protected readonly cons: ResolvedConsistency,
    private readonly targets: readonly Replica[],
    protected readonly timeoutMs: number,
    private readonly repairMode: NodeConfig['readRepair'],
    private readonly done: Done<T>,
  ) {
    this.tracker = new QuorumTracker(cons.n, cons.required);
    this.outstanding = targets.length;
  }

  /** Read one replica; `cb` once with its value (null: it holds none). */
  protected abstract readReplica(r: Replica, timeoutMs: number, cb: (err: Error | null, value: V | null) => void): void;
  /** Take one replica's reply into the read; false counts it as a failed replica. */
  protected abstract accept(r: Replica, value: V | null): boolean;
  /** The answer from the replies accepted (may throw: answered as the error). */
  protected abstract result(consistency: ConsistencyReport): T;
  /** Send what the read found to the replicas that lack it, within `timeoutMs`. */
  protected abstract repair(timeoutMs: number): Promise<void>;

  start(): void {
    this.deadline = Date.now() + this.timeoutMs;
    this.timer = setTimeout(() => this.onDeadline(), this.timeoutMs);
    for (const r of this.targets) {
      if (!this.ports.isUp(r)) {
        this.onReply(r, false);
        continue;
      }
      this.readReplica(r, this.timeoutMs, (err, value) => this.onReply(r, err === null && this.accept(r, value)));
    }
  }

  private onReply(_r: Replica, ok: boolean): void {
    if (this.finished) return;
    if (ok) this.accepted++;
    const s = ok ? this.tracker.ack() : this.tracker.fail();
    this.outstanding--;
    if (s === 'failed') this.answer();
    else if (s === 'succeeded' && this.repairMode !== 'blocking') this.answer();
    if (this.outstanding === 0) this.allIn();
  }

  private onDeadline(): void {
    if (this.finished) return;
    if (!this.answered && this.tracker.acknowledged < this.cons.required) this.ports.counters.timeouts++;
    this.allIn();
  }

  /** Every replica answered, or the deadline passed: repair what we heard from, then finish. */
  private allIn(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    // One reply has nothing to repair: no async repair (and no promise) at all. A blocking repair
    // holds the answer, which must not outlive the read's deadline.
    const repairing = this.repairMode !== 'off' && this.accepted > 1 && this.tracker.acknowledged >= this.cons.required ? this.repair(this.repairMode === 'blocking' ? Math.max(1, this.deadline - Date.now()) : this.timeoutMs) : null;
    if (repairing && this.repairMode === 'blocking') void repairing.then(() => this.answer());
    else this.answer();
  }

  private answer(): void {
    if (this.answered) return;
    const ok = this.tracker.acknowledged >= this.cons.required;
    if (!ok && this.tracker.state === 'pending' && !this.finished) return;
    this.answered = true;
    if (!ok) {
      this.done(this.ports.quorumError('read', this.tracker, this.cons, this.tracker.state === 'pending'), undefined);
      return;
    }
    let result: T;
    try {
      result = this.result(consistencyReport(this.cons, this.tracker.acknowledged));
    } catch (e) {
      this.done(e instanceof Error ? e : new Error(String(e)), undefined);
      return;
    }
    this.done(null, result);
  }
}
