/**
 * Reply-byte accounting for connections that pipeline requests (IPC socket, peer port, HTTP).
 *
 * A request's reply costs memory from the moment it starts (its result is being gathered) until
 * the reply has left the process (handed to the kernel). A client that pipelines reads and never
 * reads its socket would otherwise make the node hold every reply it asked for. So each connection
 * has an account, and the node one budget over all accounts:
 *
 * - `reserved`: for each request in flight, an estimate of its reply (the caller reserves it when
 *   the request starts and gives it back when the request finishes);
 * - `held`: bytes of replies produced and not yet drained to the kernel (written to the socket's
 *   buffer, or waiting in a batch for its other items).
 *
 * A request may start while the connection's reserved + held + the new reservation stays within
 * `maxReplyBytesPerConnection` and the node's total within `maxReplyBytesTotal`; a connection with
 * nothing outstanding may always start one (so any single reply, however large, makes progress).
 * The caller stops reading a connection whose requests cannot start (its socket is not draining),
 * and the kernel's socket buffer then pushes back on the client.
 *
 * Reservations are estimates: the size of a read is unknown until it is done. The estimate starts
 * pessimistic (the caller passes the largest ordinary reply, e.g. one value of `maxValueBytes`)
 * and follows the connection's replies: it jumps to any larger reply and decays by 1/8 per smaller
 * one, so a connection of small replies soon gets its full pipeline depth. A finished reply that
 * does not fit (`fits`) while the connection holds others may be dropped and its request run again
 * later by callers whose request is a read; that makes the held bytes a hard bound even when the
 * estimate was wrong.
 *
 * Pure bookkeeping: no sockets, no timers. The one callback (`onUnblocked`) tells a connection that
 * was refused for the node-wide total that bytes were released.
 */
import { invariant } from '../util/errors.js';

export interface ReplyLimits {
  /** Reply bytes one connection may have outstanding (reserved for requests in flight + held). */
  maxReplyBytesPerConnection: number;
  /** The same, summed over every connection of the node. */
  maxReplyBytesTotal: number;
}

export const DEFAULT_REPLY_LIMITS: Readonly<ReplyLimits> = Object.freeze({
  maxReplyBytesPerConnection: 16 * 1024 * 1024,
  maxReplyBytesTotal: 256 * 1024 * 1024,
});

/** The estimate never goes below this: a reply always has some framing. */
export const MIN_REPLY_ESTIMATE_BYTES = 64;

export interface ReplyBudgetStats {
  /** Bytes of replies produced and not yet drained, over all connections. */
  heldBytes: number;
  /** Bytes reserved for requests in flight, over all connections. */
  reservedBytes: number;
  /** Open accounts (connections). */
  connections: number;
  /** Connections at their own bound: a read of their estimated reply size could not start (reading paused). */
  connectionsAtLimit: number;
  /** Finished replies dropped for not fitting, their requests run again later. */
  rerunsOverBudget: number;
  maxReplyBytesPerConnection: number;
  maxReplyBytesTotal: number;
}

export function checkReplyLimits(l: ReplyLimits): void {
  for (const [k, v] of Object.entries(l)) {
    invariant(Number.isSafeInteger(v) && v >= 1, `${k} must be a positive integer, got ${String(v)}`);
  }
}

export class ReplyBudget {
  held = 0;
  reserved = 0;
  rerunsOverBudget = 0;
  readonly limits: Readonly<ReplyLimits>;
  private readonly accounts = new Set<ReplyAccount>();
  /** Accounts refused for the node-wide total; told (once) when bytes are released. */
  private readonly blocked = new Set<ReplyAccount>();

  constructor(limits: ReplyLimits = DEFAULT_REPLY_LIMITS) {
    checkReplyLimits(limits);
    this.limits = Object.freeze({ ...limits });
  }

  /**
   * A new connection's account. `initialEstimateBytes`: what a reply is assumed to cost before the
   * connection has shown its sizes. `onUnblocked` runs when the node-wide total frees after this
   * account was refused for it.
   */
  open(initialEstimateBytes: number, onUnblocked?: () => void): ReplyAccount {
    const a = new ReplyAccount(this, Math.max(MIN_REPLY_ESTIMATE_BYTES, Math.ceil(initialEstimateBytes)), onUnblocked);
    this.accounts.add(a);
    return a;
  }

  get outstanding(): number {
    return this.held + this.reserved;
  }

  stats(): ReplyBudgetStats {
    let atLimit = 0;
    for (const a of this.accounts) if (a.atLimit) atLimit++;
    return {
      heldBytes: this.held,
      reservedBytes: this.reserved,
      connections: this.accounts.size,
      connectionsAtLimit: atLimit,
      rerunsOverBudget: this.rerunsOverBudget,
      maxReplyBytesPerConnection: this.limits.maxReplyBytesPerConnection,
      maxReplyBytesTotal: this.limits.maxReplyBytesTotal,
    };
  }

  /** @internal accounts report every change of their totals here. */
  adjust(heldDelta: number, reservedDelta: number): void {
    this.held += heldDelta;
    this.reserved += reservedDelta;
    invariant(this.held >= 0 && this.reserved >= 0, 'reply budget went negative');
    if ((heldDelta < 0 || reservedDelta < 0) && this.blocked.size > 0 && this.outstanding < this.limits.maxReplyBytesTotal) {
      const waiting = [...this.blocked];
      this.blocked.clear();
      for (const a of waiting) a.unblocked();
    }
  }

  /** @internal */
  block(a: ReplyAccount): void {
    this.blocked.add(a);
  }

  /** @internal */
  forget(a: ReplyAccount): void {
    this.accounts.delete(a);
    this.blocked.delete(a);
  }
}

export class ReplyAccount {
  held = 0;
  reserved = 0;
  closed = false;
  private est: number;

  constructor(
    private readonly budget: ReplyBudget,
    initialEstimate: number,
    private readonly onUnblocked: (() => void) | undefined,
  ) {
    this.est = initialEstimate;
  }

  /** What a reply of this connection is expected to cost (reserve this for a read). */
  get estimate(): number {
    return this.est;
  }

  get outstanding(): number {
    return this.held + this.reserved;
  }

  /**
   * At its own bound: a read of the estimated size could not start now, so the connection should
   * not read more requests until bytes drain.
   */
  get atLimit(): boolean {
    return this.outstanding > 0 && this.outstanding + this.est > this.budget.limits.maxReplyBytesPerConnection;
  }

  /**
   * May a request that reserves `need` bytes start now? `own`: bytes of this account that belong to
   * the request's own group (a batch's other items, held or reserved): they never hold it back,
   * since the group answers as one reply that is bounded elsewhere (the frame limit).
   */
  canStart(need: number, own = 0): boolean {
    if (this.closed) return false;
    invariant(own >= 0 && own <= this.outstanding, 'own bytes exceed the account');
    if (this.outstanding - own === 0) return true;
    if (this.outstanding + need > this.budget.limits.maxReplyBytesPerConnection) return false;
    if (this.budget.outstanding + need > this.budget.limits.maxReplyBytesTotal) {
      this.budget.block(this);
      return false;
    }
    return true;
  }

  reserve(bytes: number): void {
    invariant(bytes >= 0, 'negative reservation');
    if (this.closed) return;
    this.reserved += bytes;
    this.budget.adjust(0, bytes);
  }

  /** Give back a reservation (the request finished, also after close). */
  unreserve(bytes: number): void {
    invariant(bytes >= 0 && bytes <= this.reserved, `unreserve ${bytes} of ${this.reserved}`);
    this.reserved -= bytes;
    this.budget.adjust(0, -bytes);
  }

  /**
   * Should a finished reply of `bytes` be kept? It fits when the connection's held bytes stay within
   * its bound and the node's within the total, or when the connection holds nothing else (`own`:
   * bytes of its own group, as in canStart), so a lone reply always goes out.
   */
  fits(bytes: number, own = 0): boolean {
    if (this.closed) return false;
    if (this.held - own <= 0) return true;
    return this.held + bytes <= this.budget.limits.maxReplyBytesPerConnection && this.budget.held + bytes <= this.budget.limits.maxReplyBytesTotal;
  }

  /** A reply of `bytes` was dropped for not fitting; its request will run again. */
  rerun(): void {
    this.budget.rerunsOverBudget++;
  }

  /** Learn from a finished reply: the estimate jumps up to it, or decays by 1/8 toward it. */
  observe(bytes: number): void {
    const decayed = this.est - (this.est >> 3);
    this.est = Math.max(MIN_REPLY_ESTIMATE_BYTES, Math.ceil(bytes), decayed);
  }

  /** Reply bytes produced (written to the socket, or parked in a batch). */
  hold(bytes: number): void {
    invariant(bytes >= 0, 'negative hold');
    if (this.closed) return;
    this.held += bytes;
    this.budget.adjust(bytes, 0);
  }

  /** Reply bytes drained (handed to the kernel) or merged into another reply. Safe after close. */
  release(bytes: number): void {
    if (this.closed) return;
    invariant(bytes >= 0 && bytes <= this.held, `release ${bytes} of ${this.held}`);
    this.held -= bytes;
    this.budget.adjust(-bytes, 0);
  }

  /**
   * The connection is gone: what it held is dropped with its socket. Requests still in flight keep
   * their reservations until they finish (their results are then dropped, not queued), so the
   * budget counts the memory they still use; `settled` says when nothing is left.
   */
  close(): void {
    if (this.closed) return;
    const held = this.held;
    this.held = 0;
    this.closed = true;
    this.budget.forget(this);
    this.budget.adjust(-held, 0);
  }

  /** Closed and every request it started has finished. */
  get settled(): boolean {
    return this.closed && this.reserved === 0;
  }

  /** @internal called by the budget. */
  unblocked(): void {
    if (!this.closed) this.onUnblocked?.();
  }
}
