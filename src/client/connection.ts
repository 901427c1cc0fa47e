/**
 * One pipelined connection to a node (IPC socket or authenticated peer port): request ids, a bound
 * on requests in flight with a bounded wait queue behind it (backpressure, then \`overloaded\`),
 * per-request deadlines, and errors that say whether a request may have been applied.
 */
import { createConnection, type Socket } from 'node:net';
import { isErrorCode, type AnyReply, type IpcLimits } from '../api/ipc-protocol.js';
import { encodeFrame, FrameDecoder } from '../net/frames.js';
import { RingkvError, type ErrorCode } from '../util/errors.js';
import { isFrameEncoder, type FrameEncoder } from './request-frames.js';

/** The request never reached the socket: safe to send elsewhere. */
export class NotSentError extends RingkvError {}
/** The request was written but the connection closed before its reply: a write may have happened. */
export class ConnectionLostError extends RingkvError {}
/** The request was written but no reply came by its deadline: a write may have happened. */
export class ReplyTimeoutError extends RingkvError {}

interface Pending {
  resolve: (r: AnyReply) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  cost: number;
}
interface Waiter {
  cost: number;
  go: () => void;
  fail: (e: Error) => void;
  timer: NodeJS.Timeout;
}

const MAX_WIRE_ID = 0xffffffff; // ids wrap within uint32 so they stay 5 bytes or less on the wire

export class ClientConnection {
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private waiters: Waiter[] = [];
  private wHead = 0;
  private used = 0;
  private nextId = 1;
  closed = false;
  /** Filled from the hello (`ring`) reply. */
  nodeId = '';
  limits: IpcLimits | undefined;

  constructor(
    readonly endpoint: string,
    private readonly socket: Socket,
    leftover: Buffer | undefined,
    private readonly maxPending: number,
    private readonly maxQueued: number,
    maxReplyFrameBytes: number,
    private readonly onClosed: (c: ClientConnection) => void,
  ) {
    this.decoder = new FrameDecoder(maxReplyFrameBytes);
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', () => {
      /* reported through 'close' to every pending request */
    });
    // The server ended its side: no reply can follow, so stop sending on this connection now.
    socket.on('end', () => this.fail(new ConnectionLostError('unavailable', `${endpoint} closed the connection before the reply; a write may or may not have been applied`)));
    socket.on('close', () => this.fail(new ConnectionLostError('unavailable', `connection to ${endpoint} closed before the reply; a write may or may not have been applied`)));
    if (leftover && leftover.length > 0) this.onData(leftover);
    socket.resume();
  }

  get inUse(): number {
    return this.used;
  }

  /** Send one request and await its reply (any `ok`). Throws NotSentError if it never left. */
  async request(msg: Record<string, unknown> | FrameEncoder, cost: number, timeoutMs: number): Promise<AnyReply> {
    const c = Math.max(1, Math.min(cost, this.maxPending));
    const started = Date.now();
    await this.acquire(c, timeoutMs);
    if (this.closed) {
      this.release(c);
      throw new NotSentError('unavailable', `connection to ${this.endpoint} is closed`);
    }
    const remaining = Math.max(1, timeoutMs - (Date.now() - started));
    const id = this.allocId();
    const frame = isFrameEncoder(msg) ? msg.encodeFrame(id) : encodeFrame({ id, ...msg });
    const limit = this.limits?.maxFrameBytes;
    if (limit !== undefined && frame.length - 4 > limit) {
      this.release(c);
      throw new RingkvError('too_large', `request frame is ${frame.length - 4} bytes; the server accepts at most ${limit}`);
    }
    return new Promise<AnyReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) {
          this.release(c);
          reject(new ReplyTimeoutError('timeout', `no reply from ${this.endpoint} within ${timeoutMs} ms`));
        }
      }, remaining);
      this.pending.set(id, { resolve, reject, timer, cost: c });
      this.socket.write(frame);
    });
  }

  private allocId(): number {
    // Skip ids still pending after a wrap (only possible with >4G requests on one connection).
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= MAX_WIRE_ID ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
  }

  private acquire(cost: number, timeoutMs: number): Promise<void> {
    if (this.wHead === this.waiters.length && this.used + cost <= this.maxPending) {
      this.used += cost;
      return Promise.resolve();
    }
    if (this.waiters.length - this.wHead >= this.maxQueued) {
      return Promise.reject(
        new RingkvError('overloaded', `client overloaded: ${this.maxPending} requests in flight and ${this.maxQueued} waiting on ${this.endpoint}; slow down or raise maxPendingPerConnection`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        cost,
        go: () => {
          clearTimeout(w.timer);
          resolve();
        },
        fail: (e) => {
          clearTimeout(w.timer);
          reject(e);
        },
        timer: setTimeout(() => {
          const i = this.waiters.indexOf(w, this.wHead);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new NotSentError('timeout', `request waited ${timeoutMs} ms for a free slot on ${this.endpoint} (client overloaded)`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  private release(cost: number): void {
    this.used -= cost;
    while (this.wHead < this.waiters.length) {
      const w = this.waiters[this.wHead]!;
      if (this.used + w.cost > this.maxPending) break;
      this.waiters[this.wHead++] = undefined as unknown as Waiter;
      this.used += w.cost;
      w.go();
    }
    if (this.wHead > 1024 && this.wHead * 2 > this.waiters.length) {
      this.waiters = this.waiters.slice(this.wHead);
      this.wHead = 0;
    }
  }

  private onData(chunk: Buffer): void {
    let msgs: unknown[];
    try {
      msgs = this.decoder.push(chunk);
    } catch (e) {
      this.fail(new ConnectionLostError('internal', `bad frame from ${this.endpoint}: ${(e as Error).message}`));
      return;
    }
    for (const m of msgs) {
      if (typeof m !== 'object' || m === null || Array.isArray(m)) {
        this.fail(new ConnectionLostError('internal', `bad reply from ${this.endpoint}: not a map`));
        return;
      }
      const r = m as AnyReply;
      if (r.id === null || r.id === undefined) {
        // Connection-level error: the server is closing this connection.
        const code: ErrorCode = isErrorCode(r.code) ? r.code : 'internal';
        this.fail(new ConnectionLostError(code, `server closed the connection: ${String(r.message)}`));
        return;
      }
      const p = this.pending.get(Number(r.id));
      if (!p) continue; // timed out earlier
      this.pending.delete(Number(r.id));
      clearTimeout(p.timer);
      this.release(p.cost);
      p.resolve(r);
    }
  }

  private fail(err: RingkvError): void {
    if (!this.closed) {
      this.closed = true;
      this.socket.destroy();
      this.onClosed(this);
    }
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(err);
    }
    const waiting = this.waiters.slice(this.wHead);
    this.waiters = [];
    this.wHead = 0;
    for (const w of waiting) w.fail(new NotSentError('unavailable', `connection to ${this.endpoint} closed`));
    this.used = 0;
  }

  close(): void {
    this.fail(new ConnectionLostError('unavailable', 'client closed'));
  }
}

/** Opens a socket to an endpoint (an IPC path or a peer address), with any bytes read past a handshake. */
export type Dialer = (endpoint: string, timeoutMs: number) => Promise<{ socket: Socket; leftover?: Buffer }>;

/** The dialer for a node's local IPC socket. */
export function ipcDialer(path: string, timeoutMs: number): Promise<{ socket: Socket }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new RingkvError('timeout', `connecting to ${path} took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve({ socket });
    });
    socket.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is the ringkv node running?)' : '';
      reject(new RingkvError('unavailable', `cannot connect to ringkv at ${path}: ${e.code ?? e.message}${hint}`));
    });
  });
}
