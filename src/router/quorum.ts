/**
 * Pure quorum counting for one request: feed it replica outcomes, it says when the request is
 * decided. Succeeds as soon as `required` replicas acknowledged; fails as soon as success became
 * impossible. Stragglers after the decision are still recorded (read repair needs them).
 */
export type QuorumState = 'pending' | 'succeeded' | 'failed';

export class QuorumTracker {
  private acks = 0;
  private fails = 0;
  private decided: QuorumState = 'pending';

  constructor(
    readonly n: number,
    readonly required: number,
  ) {
    if (!(Number.isInteger(n) && Number.isInteger(required) && required >= 0 && required <= n)) {
      throw new Error(`invariant violated: quorum needs 0 <= required <= n, got required=${required} n=${n}`);
    }
    if (required === 0) this.decided = 'succeeded';
  }

  get state(): QuorumState {
    return this.decided;
  }
  get acknowledged(): number {
    return this.acks;
  }
  get failed(): number {
    return this.fails;
  }
  get outstanding(): number {
    return this.n - this.acks - this.fails;
  }

  /** Returns the state after this outcome; transitions out of `pending` happen exactly once. */
  ack(): QuorumState {
    this.acks++;
    this.check();
    return this.decided;
  }

  fail(): QuorumState {
    this.fails++;
    this.check();
    return this.decided;
  }

  private check(): void {
    if (this.acks + this.fails > this.n) throw new Error('invariant violated: more replica outcomes than replicas');
    if (this.decided !== 'pending') return;
    if (this.acks >= this.required) this.decided = 'succeeded';
    else if (this.acks + this.outstanding < this.required) this.decided = 'failed';
  }
}
