import type { Socket } from 'node:net';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from '../net/frames.js';
import type { ReplyAccount, ReplyBudget } from '../net/reply-budget.js';
import { corkForIteration, ReplyWriter } from '../net/reply-writer.js';
import { RingkvError, asRingkvError, invariant } from '../util/errors.js';
import type { Logger } from '../log/logger.js';
import { errMessage, isRecord, type Msg } from './handshake.js';
import { isRequestId } from './peer-link.js';

/** Who sent a peer request: the node id its handshake proved. */
export interface PeerRequestContext {
  fromNodeId: string;
}

/** Serves one request from an authenticated peer; throw RingkvError to answer with an error frame. */
export type PeerHandler = (body: unknown, ctx: PeerRequestContext) => Promise<unknown>;

/** What an inbound connection needs of the transport that accepted it (the server's limits and counters). */
export interface InboundContext {
  readonly selfId: string;
  readonly handler: PeerHandler;
  readonly log: Logger;
  readonly maxFrameBytes: number;
  /** Requests served at once per connection; past it a request is answered 'overloaded'. */
  readonly maxInFlight: number;
  /** Reply bytes, per connection and node-wide. */
  readonly replies: ReplyBudget;
  /** What a reply is assumed to cost until the peer has shown its sizes. */
  readonly initialReplyEstimateBytes: number;
  countFrameIn(): void;
  countFrameOut(): void;
  badFrame(remote: string, reason: string): void;
}

/**
 * One authenticated peer's inbound connection: decodes its request frames, serves them through the
 * handler, and writes the answers, within the connection's reply-byte bound. While requests wait
 * for reply room, or the answers are not being read, the socket is paused: the peer's own bounded
 * queue then fills and it answers 'overloaded' locally instead of us buffering without bound.
 * Connections are directional: only requests arrive here, only answers leave.
 */
export class InboundPeer {
  private readonly decoder: FrameDecoder;
  private inFlight = 0;
  /** Reply bytes of this connection (reserved for requests being served + answers not yet drained). */
  private readonly account: ReplyAccount;
  private readonly writer: ReplyWriter;
  /** Requests decoded but not started, from `waitHead` on: the connection is at its reply-byte bound (reading is paused). */
  private waiting: Array<{ id: number; body: unknown }> = [];
  private waitHead = 0;
  private readonly pump = (): void => this.serveWaiting();

  /** Adopt `socket` after its handshake; `leftover` is what was read past the hello. */
  constructor(
    readonly nodeId: string,
    readonly remote: string,
    readonly socket: Socket,
    leftover: Buffer,
    private readonly ctx: InboundContext,
  ) {
    this.decoder = new FrameDecoder(ctx.maxFrameBytes);
    this.account = ctx.replies.open(ctx.initialReplyEstimateBytes, this.pump);
    this.writer = new ReplyWriter(socket, this.account, this.pump, corkForIteration);
    socket.once('close', () => {
      // Answers not yet drained go with the socket; requests still being served are answered into the void.
      this.waiting = [];
      this.waitHead = 0;
      this.account.close();
    });
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    if (leftover.length > 0) this.onData(leftover);
  }

  private onData(chunk: Buffer): void {
    if (this.socket.destroyed) return;
    let frames: unknown[];
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      this.ctx.badFrame(`node ${this.nodeId} at ${this.remote}`, errMessage(e));
      this.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (this.socket.destroyed) return;
      this.ctx.countFrameIn();
      if (!isRecord(f) || f.t !== 'req' || !isRequestId(f.id)) {
        this.ctx.badFrame(`node ${this.nodeId} at ${this.remote}`, 'expected a request frame');
        this.socket.destroy();
        return;
      }
      this.waiting.push({ id: f.id, body: f.body });
    }
    this.serveWaiting();
  }

  /**
   * Serve waiting requests while the connection's reply bytes allow it; stop reading while any wait
   * or the connection is at its bound (the peer is not reading its answers).
   */
  private serveWaiting(): void {
    const socket = this.socket;
    if (socket.destroyed) return;
    while (this.waitHead < this.waiting.length && this.account.canStart(this.account.estimate)) {
      const r = this.waiting[this.waitHead++]!;
      this.serve(r.id, r.body);
    }
    if (this.waitHead === this.waiting.length) {
      this.waiting = [];
      this.waitHead = 0;
    }
    const hold = this.waitHead < this.waiting.length || this.account.atLimit;
    if (hold && !socket.isPaused()) socket.pause();
    else if (!hold && socket.isPaused()) socket.resume();
  }

  private serve(id: number, body: unknown): void {
    const { ctx } = this;
    if (this.inFlight >= ctx.maxInFlight) {
      this.respond({
        t: 'res',
        id,
        ok: false,
        code: 'overloaded',
        message: `node ${ctx.selfId} already serving ${this.inFlight} requests from ${this.nodeId} (limit ${ctx.maxInFlight})`,
      });
      return;
    }
    this.inFlight++;
    const reserved = this.account.estimate;
    this.account.reserve(reserved);
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(ctx.handler(body, { fromNodeId: this.nodeId }));
    } catch (e) {
      result = Promise.reject(e);
    }
    result
      .then(
        (value): Msg => ({ t: 'res', id, ok: true, body: value }),
        (e: unknown): Msg => {
          const re = asRingkvError(e);
          if (!(e instanceof RingkvError)) ctx.log.warn({ from: this.nodeId, err: errMessage(e) }, 'peer request handler failed');
          return { t: 'res', id, ok: false, code: re.code, message: re.message };
        },
      )
      .then((msg) => {
        this.inFlight--;
        invariant(this.inFlight >= 0, 'inbound in-flight counter went negative');
        this.account.unreserve(reserved);
        this.respond(msg);
        this.serveWaiting();
      })
      .catch((e: unknown) => ctx.log.error({ err: errMessage(e) }, 'failed to answer a peer request'));
  }

  private respond(msg: Msg): void {
    const socket = this.socket;
    // The peer went away (or was cut): its requests already failed on its side, the answer has nowhere to go.
    if (socket.destroyed || !socket.writable) return;
    const maxFrameBytes = this.ctx.maxFrameBytes;
    let frame: Buffer;
    try {
      frame = encodeFrame(msg);
    } catch (e) {
      frame = encodeFrame({ t: 'res', id: msg.id, ok: false, code: 'internal', message: `response cannot be encoded: ${errMessage(e)}` });
    }
    const payloadBytes = frame.length - FRAME_HEADER_BYTES;
    if (payloadBytes > maxFrameBytes) {
      // Sending it would make the peer drop the connection and every other request on it.
      frame = encodeFrame({
        t: 'res',
        id: msg.id,
        ok: false,
        code: 'too_large',
        message: `response of ${payloadBytes} bytes exceeds the frame limit of ${maxFrameBytes}`,
      });
    }
    this.ctx.countFrameOut();
    this.account.observe(frame.length);
    this.writer.write(frame);
  }
}
