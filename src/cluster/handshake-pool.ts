/**
 * The pool of unauthenticated peer-port connections (those still in the handshake). Small and
 * bounded, in total and per source address, and it never refuses a newcomer: when it is full, the
 * newcomer takes the place of the oldest connection of its own address (if that address is at its
 * bound), or else of the oldest of the address holding the most. A real peer completes its
 * handshake within a round trip, so idle connections, however many and however fresh, cannot keep
 * it out: they only evict each other, and an address holding few connections (a real peer's) is
 * never the busiest. What remains is a connection flood from the peer's own address that
 * reconnects faster than the peer's round trip (16 evictions by default), a rate attack we leave
 * to the host's firewall.
 *
 * Pure bookkeeping: the caller destroys what `admit` evicts and calls `remove` on close.
 */
import { invariant } from '../util/errors.js';

export interface HandshakePoolLimits {
  /** Unauthenticated connections held at once. */
  maxUnauthenticatedConnections: number;
  /** Of those, from one source address. */
  maxUnauthenticatedPerAddress: number;
}


export const DEFAULT_HANDSHAKE_POOL_LIMITS: Readonly<HandshakePoolLimits> = Object.freeze({
  maxUnauthenticatedConnections: 128,
  maxUnauthenticatedPerAddress: 16,
});

export class HandshakePool<T> {
  /** Per address, its connections oldest first. */
  private readonly byAddress = new Map<string, T[]>();
  private total = 0;

  constructor(readonly limits: Readonly<HandshakePoolLimits> = DEFAULT_HANDSHAKE_POOL_LIMITS) {
    invariant(Number.isInteger(limits.maxUnauthenticatedConnections) && limits.maxUnauthenticatedConnections >= 1, 'maxUnauthenticatedConnections must be >= 1');
    invariant(
      Number.isInteger(limits.maxUnauthenticatedPerAddress) && limits.maxUnauthenticatedPerAddress >= 1 && limits.maxUnauthenticatedPerAddress <= limits.maxUnauthenticatedConnections,
      'maxUnauthenticatedPerAddress must be in [1, maxUnauthenticatedConnections]',
    );
  }

  get size(): number {
    return this.total;
  }

  countOf(address: string): number {
    return this.byAddress.get(address)?.length ?? 0;
  }

  /** Add `item` from `address`; returns the connection evicted to make room (the caller closes it), if any. */
  admit(address: string, item: T): T | undefined {
    let evicted: T | undefined;
    if (this.countOf(address) >= this.limits.maxUnauthenticatedPerAddress) evicted = this.evictOldest(address);
    else if (this.total >= this.limits.maxUnauthenticatedConnections) evicted = this.evictOldest(this.busiestAddress());
    const list = this.byAddress.get(address);
    if (list) list.push(item);
    else this.byAddress.set(address, [item]);
    this.total++;
    invariant(this.total <= this.limits.maxUnauthenticatedConnections, 'handshake pool over its bound');
    return evicted;
  }

  /** `item` finished its handshake or closed. Removing an item that is not there is a no-op. */
  remove(address: string, item: T): boolean {
    const list = this.byAddress.get(address);
    const i = list ? list.indexOf(item) : -1;
    if (!list || i < 0) return false;
    list.splice(i, 1);
    if (list.length === 0) this.byAddress.delete(address);
    this.total--;
    return true;
  }

  private evictOldest(address: string): T {
    const list = this.byAddress.get(address);
    invariant(list && list.length > 0, 'evicting from an empty address');
    const victim = list.shift()!;
    if (list.length === 0) this.byAddress.delete(address);
    this.total--;
    return victim;
  }

  private busiestAddress(): string {
    let best: string | undefined;
    let most = 0;
    for (const [a, list] of this.byAddress) {
      if (list.length > most) {
        most = list.length;
        best = a;
      }
    }
    invariant(best !== undefined, 'a full pool has an address');
    return best;
  }
}
