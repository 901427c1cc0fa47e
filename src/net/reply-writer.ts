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
 * A client connection is uncorked at the end of the callback that wrote (`nextTick`): its answers
 * should not wait for the rest of the event-loop iteration.
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

/** Peer sockets corked in this event-loop iteration, uncorked together when its I/O callbacks are done. */
let corkedPeers: Socket[] = [];
let uncorkScheduled = false;

function uncorkPeers(): void {
  const sockets = corkedPeers;
  corkedPeers = [];
  uncorkScheduled = false;
  for (const s of sockets) {
    corked.delete(s);
    if (!s.destroyed) s.uncork();
  }
}

/**
 * `corkForTick` for a peer socket, which carries the frames of many requests at once: uncorked in
 * the check phase (`setImmediate`), after every I/O callback of the iteration ran, so a router that
 * serves many client reads in one iteration sends each peer one writev, not one per read. Measured
 * on a 3-node local cluster under YCSB A (W=2, R=2, 64 clients), 4 alternated pairs: 6,033–6,414
 * ops/s vs 5,268–5,845 with `nextTick`, the nodes' CPU per op 198–220 µs vs 212–239 µs. For client
 * connections the same delay cost more in latency than it saved (single-op rows 0.26–0.27 vs
 * 0.31–0.32 of Redis when every socket did it), so they keep `nextTick`.
 */
export function corkForIteration(socket: Socket): void {
  if (corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  corkedPeers.push(socket);
  if (!uncorkScheduled) {
    uncorkScheduled = true;
    setImmediate(uncorkPeers);
  }
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
    /** How writes are coalesced: per callback (client connections) or per event-loop iteration (peers). */
    private readonly cork: (socket: Socket) => void = corkForTick,
  ) {}

  /** Write one frame, corked with the rest of this tick's frames. */
  write(frame: Buffer): void {
    this.account.hold(frame.length);
    this.sizes.push(frame.length);
    this.cork(this.socket);
    this.socket.write(frame, this.written);
  }
}
