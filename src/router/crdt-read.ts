/**
 * One coordinated CRDT read: ask the key's N target replicas for their states, answer once R
 * replied with the join of what they hold (no siblings, ever), then, once every replica answered or
 * the deadline passed, send the join to the replicas whose state differs from it (read repair,
 * per `readRepair`: async, blocking or off), each of which joins it with what it holds.
 */
import { readEncoded, type CrdtValue } from '../crdt/index.js';
import { mergeStored } from '../storage/merge.js';
import { RingkvError } from '../util/errors.js';
import type { NodeConfig } from '../config/config.js';
import type { ResolvedConsistency } from './consistency.js';
import type { CrdtDeps, CrdtReplicaIo } from './crdt-replicas.js';
import { QuorumTracker } from './quorum.js';
import type { ConsistencyReport, Done, Replica } from './router.js';

export interface CrdtReadResult {
  /** False when no replica that answered holds the key; `value` is then the type's empty value. */
  found: boolean;
  value: CrdtValue;
  /** The token a later remove/disable passes back (sets, flags, maps). */
  context?: string;
  /** Bytes of the joined state as stored (what the key costs on each replica). */
  bytes: number;
  consistency: ConsistencyReport;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a === b || (a.length === b.length && Buffer.compare(a, b) === 0);
}

/** The answer for a joined state (null: nobody holds the key). */
export function crdtReadResult(io: CrdtReplicaIo, joined: Uint8Array | null, consistency: ConsistencyReport): CrdtReadResult {
  const { value, context } = readEncoded(io.table.type!, joined ?? undefined);
  const out: CrdtReadResult = { found: joined !== null, value, bytes: joined?.length ?? 0, consistency };
  if (context !== undefined) out.context = context;
  return out;
}

export class CrdtReadCoordination {
  private readonly tracker: QuorumTracker;
  private readonly replies: Array<{ replica: Replica; state: Uint8Array | null }> = [];
  private joined: Uint8Array | null = null;
  private outstanding: number;
  private answered = false;
  private finished = false;
  private timer: NodeJS.Timeout | undefined;
  private deadline = 0;

  constructor(
    private readonly d: CrdtDeps,
    private readonly io: CrdtReplicaIo,
    private readonly cons: ResolvedConsistency,
    private readonly targets: readonly Replica[],
    private readonly timeoutMs: number,
    private readonly repairMode: NodeConfig['readRepair'],
    private readonly done: Done<CrdtReadResult>,
  ) {
    this.tracker = new QuorumTracker(cons.n, cons.required);
    this.outstanding = targets.length;
  }

  start(): void {
    this.deadline = Date.now() + this.timeoutMs;
    this.timer = setTimeout(() => this.onDeadline(), this.timeoutMs);
    for (const r of this.targets) {
      if (!this.d.router.isReplicaUp(r)) {
        this.onReply(r, new RingkvError('unavailable', `${r.nodeId} is down`), null);
        continue;
      }
      this.io.read(r, this.timeoutMs, (err, state) => this.onReply(r, err, state));
    }
  }

  private onReply(r: Replica, err: Error | null, state: Uint8Array | null): void {
    if (this.finished) return;
    this.outstanding--;
    let ok = err === null;
    if (ok && state !== null) {
      try {
        this.joined = this.joined === null ? state : mergeStored('crdt', this.joined, state, 1).bytes;
      } catch (e) {
        // A state that does not decode (or is of another type) counts as a failed replica.
        this.io.log.warn({ err: String(e), replica: r.nodeId }, 'undecodable crdt state from a replica');
        ok = false;
      }
    }
    if (ok) this.replies.push({ replica: r, state });
    const s = ok ? this.tracker.ack() : this.tracker.fail();
    if (s === 'failed' || (s === 'succeeded' && this.repairMode !== 'blocking')) this.answer();
    if (this.outstanding === 0) this.allIn();
  }

  private onDeadline(): void {
    if (this.finished) return;
    if (!this.answered && this.tracker.acknowledged < this.cons.required) this.d.router.counters.timeouts++;
    this.allIn();
  }

  private allIn(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    const repairing = this.repairMode !== 'off' && this.tracker.acknowledged >= this.cons.required ? this.readRepair() : null;
    if (repairing && this.repairMode === 'blocking') void repairing.then(() => this.answer());
    else this.answer();
  }

  private answer(): void {
    if (this.answered) return;
    const ok = this.tracker.acknowledged >= this.cons.required;
    if (!ok && this.tracker.state === 'pending' && !this.finished) return;
    this.answered = true;
    if (!ok) return this.done(this.d.router.quorumError('read', this.tracker, this.cons, this.tracker.state === 'pending'), undefined);
    const consistency: ConsistencyReport = { n: this.cons.n, required: this.cons.required, replied: this.tracker.acknowledged };
    if (this.cons.clamped) consistency.clamped = this.cons.clamped;
    let result: CrdtReadResult;
    try {
      result = crdtReadResult(this.io, this.joined, consistency);
    } catch (e) {
      return this.done(new RingkvError('internal', `cannot read the joined state: ${(e as Error).message}`), undefined);
    }
    this.done(null, result);
  }

  private async readRepair(): Promise<void> {
    const joined = this.joined;
    if (joined === null || this.replies.length < 2) return;
    const timeoutMs = this.repairMode === 'blocking' ? Math.max(1, this.deadline - Date.now()) : this.timeoutMs;
    await Promise.all(
      this.replies
        .filter((x) => !sameBytes(x.state, joined))
        .map(
          (x) =>
            new Promise<void>((resolve) => {
              this.d.router.counters.readRepairs++;
              this.io.write(x.replica, joined, timeoutMs, (err) => {
                if (err) this.io.log.debug({ err: String(err), replica: x.replica.nodeId }, 'crdt read repair write failed');
                resolve();
              });
            }),
        ),
    );
  }
}
