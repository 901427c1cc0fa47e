/**
 * The socket edge of reply-byte accounting (src/net/reply-budget.ts): writes reply frames to a
 * socket, holds their bytes on the connection's account, and releases them as the socket hands them
 * to the kernel (the write callback), so the account always knows what is waiting in the process.
 */
import type { Socket } from 'node:net';
import type { ReplyAccount } from './reply-budget.js';

const corked = new WeakSet<Socket>();

/**
 * Coalesce every frame written to `socket` in this tick into one writev: without it each request
 * and each response was its own syscall (15% of a cluster node's CPU under YCSB A, measured).
 */
export function corkForTick(socket: Socket): void {
  if (corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  process.nextTick(() => {
    corked.delete(socket);
    if (!socket.destroyed) socket.uncork();
  });
}

export class ReplyWriter {
  /** Sizes of the frames written and not yet called back, in write order (callbacks come in order). */
  private sizes: number[] = [];
  private head = 0;
  private readonly written = (err?: Error | null): void => {
    const n = this.sizes[this.head]!;
    this.head++;
    if (this.head === this.sizes.length) {
      this.sizes = [];
      this.head = 0;
    }
    // After the connection closed the account ignores this (what it held was dropped with it).
    this.account.release(n);
    // A failed write means the socket is going away: start nothing more for it.
    if (!err) this.onDrained();
  };

  constructor(
    private readonly socket: Socket,
    private readonly account: ReplyAccount,
    /** Runs after bytes were drained: the connection may start requests again. */
    private readonly onDrained: () => void,
  ) {}

  /** Write one frame, corked with the rest of this tick's frames. */
  write(frame: Buffer): void {
    this.account.hold(frame.length);
    this.sizes.push(frame.length);
    corkForTick(this.socket);
    this.socket.write(frame, this.written);
  }
}
