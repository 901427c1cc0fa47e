/**
 * Outbound side of the peer transport: one link (connection + bounded queue) per peer address,
 * with request ids, deadlines, reconnects with backoff, and the client side of the handshake.
 */
import net, { type Socket } from 'node:net';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from '../net/frames.js';
import { corkForIteration } from '../net/reply-writer.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';
import type { Logger } from '../log/logger.js';
import { clientHandshake, errMessage, isRecord, KEEPALIVE_MS, noop, type HandshakeResult } from './handshake.js';

/** One outbound link, as `stats()` reports it. */
export interface PeerStats {
  address: string;
  id?: string;
  connected: boolean;
  /** Accepted but not yet written to the socket (connecting, or the socket is not draining). */
  queued: number;
  /** Written, waiting for the response. */
  inFlight: number;
  /** Encoded bytes of the queued requests (bounded by MAX_QUEUED_BYTES_PER_PEER). */
  queuedBytes: number;
}

/** Distinct peer addresses we keep links for; a cluster is far smaller, so hitting this is a caller bug. */
export const MAX_PEER_LINKS = 4096;
/**
 * Bytes of encoded requests waiting for the socket to drain. The count bound alone would allow
 * 10_000 x 16 MiB; this caps memory when a peer stops reading. A single frame is always admitted into
 * an empty queue so a legal large request can never be refused for size alone.
 */
const MAX_QUEUED_BYTES_PER_PEER = 64 * 1024 * 1024;
const BACKOFF_INITIAL_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** Request ids stay inside int32 so every msgpack implementation reads them back as plain integers. */
const MAX_REQUEST_ID = 0x7fffffff;

/** Every ErrorCode, as a Record so adding a code to errors.ts without updating this fails to compile. */
const KNOWN_ERROR_CODES: Record<ErrorCode, true> = {
  bad_request: true,
  not_found: true,
  too_large: true,
  unavailable: true,
  timeout: true,
  overloaded: true,
  not_owner: true,
  conflict: true,
  internal: true,
  unauthorized: true,
};

export function isRequestId(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= MAX_REQUEST_ID;
}

function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.hasOwn(KNOWN_ERROR_CODES, x);
}

interface Pending {
  readonly id: number;
  /** Encoded frame until it is written; dropped then (and on settle) so memory follows the socket. */
  frame: Buffer | null;
  frameBytes: number;
  written: boolean;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
  resolve: (v: unknown) => void;
  reject: (e: RingkvError) => void;
}

type LinkState = 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed';

/** What a link needs from its transport (kept narrow so the link can't reach into unrelated state). */
export interface LinkContext {
  readonly selfId: string;
  readonly secret: string;
  readonly clusterName: string;
  readonly log: Logger;
  readonly maxFrameBytes: number;
  readonly maxQueued: number;
  readonly connectTimeoutMs: number;
  isBlocked(nodeId: string): boolean;
  isClosing(): boolean;
  countFrameIn(): void;
  countFrameOut(): void;
  authFailure(remote: string, reason: string): void;
  badFrame(remote: string, reason: string): void;
}

export class PeerLink {
  private state: LinkState = 'idle';
  peerId: string | undefined;
  private socket: Socket | null = null;
  private decoder: FrameDecoder | null = null;
  /** False after socket.write() returned false, until 'drain': we stop writing and let the queue absorb. */
  private writable = false;
  private readonly pending = new Map<number, Pending>();
  /** FIFO of requests not yet written; settled entries are skipped and compacted away lazily. */
  private queue: Array<Pending | undefined> = [];
  private qHead = 0;
  private queued = 0;
  private queuedBytes = 0;
  private inFlight = 0;
  private nextId = 1;
  private backoffMs = BACKOFF_INITIAL_MS;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectAt = 0;
  private lastError = '';
  /** Generation of the current socket: callbacks from a socket we already gave up on compare and bail. */
  private gen = 0;

  constructor(
    readonly address: string,
    private readonly host: string,
    private readonly port: number,
    private readonly ctx: LinkContext,
  ) {}

  private describe(): string {
    return this.peerId !== undefined ? `node ${this.peerId} at ${this.address}` : `peer ${this.address}`;
  }

  private details(): Record<string, unknown> {
    return this.peerId !== undefined ? { peer: this.address, nodeId: this.peerId } : { peer: this.address };
  }

  private cutError(): RingkvError {
    return new RingkvError('unavailable', `${this.describe()}: link cut by fault injection`, this.details());
  }

  stats(): PeerStats {
    const s: PeerStats = {
      address: this.address,
      connected: this.state === 'ready',
      queued: this.queued,
      inFlight: this.inFlight,
      queuedBytes: this.queuedBytes,
    };
    if (this.peerId !== undefined) s.id = this.peerId;
    return s;
  }

  request(body: unknown, timeoutMs: number): Promise<unknown> {
    if (this.state === 'closed' || this.ctx.isClosing()) {
      return Promise.reject(new RingkvError('unavailable', 'peer transport is closed', this.details()));
    }
    if (this.peerId !== undefined && this.ctx.isBlocked(this.peerId)) return Promise.reject(this.cutError());
    if (this.state === 'backoff') {
      // Fail fast rather than park the request: a quorum coordinator wants to hear "down" now, not at its deadline.
      const wait = Math.max(0, this.reconnectAt - Date.now());
      return Promise.reject(
        new RingkvError(
          'unavailable',
          `${this.describe()} is unreachable (${this.lastError || 'connection failed'}); next reconnect attempt in ${wait} ms`,
          this.details(),
        ),
      );
    }
    if (this.pending.size >= this.ctx.maxQueued) {
      return Promise.reject(
        new RingkvError(
          'overloaded',
          `too many requests queued or in flight to ${this.describe()} (limit ${this.ctx.maxQueued})`,
          this.details(),
        ),
      );
    }
    const id = this.allocId();
    let frame: Buffer;
    try {
      frame = encodeFrame({ t: 'req', id, body });
    } catch (e) {
      return Promise.reject(new RingkvError('bad_request', `request body cannot be encoded: ${errMessage(e)}`));
    }
    const payloadBytes = frame.length - FRAME_HEADER_BYTES;
    if (payloadBytes > this.ctx.maxFrameBytes) {
      // The receiver would drop the whole connection for it, taking everyone else's requests down too.
      return Promise.reject(
        new RingkvError('too_large', `request of ${payloadBytes} bytes exceeds the frame limit of ${this.ctx.maxFrameBytes}`),
      );
    }
    if (this.queuedBytes > 0 && this.queuedBytes + frame.length > MAX_QUEUED_BYTES_PER_PEER) {
      return Promise.reject(
        new RingkvError(
          'overloaded',
          `${this.queuedBytes} bytes already waiting to be sent to ${this.describe()} (limit ${MAX_QUEUED_BYTES_PER_PEER})`,
          this.details(),
        ),
      );
    }
    return new Promise<unknown>((resolve, reject) => {
      const p: Pending = {
        id,
        frame,
        frameBytes: frame.length,
        written: false,
        settled: false,
        timer: undefined,
        resolve,
        reject,
      };
      p.timer = setTimeout(() => this.expire(p, timeoutMs), timeoutMs);
      this.pending.set(id, p);
      this.queue.push(p);
      this.queued++;
      this.queuedBytes += frame.length;
      if (this.state === 'idle') this.connect();
      else if (this.state === 'ready') this.flush();
    });
  }

  private allocId(): number {
    // Among pending.size + 1 consecutive ids at least one is free, so this ends within that many steps.
    for (let i = 0; i <= this.pending.size; i++) {
      const id = this.nextId;
      this.nextId = id >= MAX_REQUEST_ID ? 1 : id + 1;
      if (!this.pending.has(id)) return id;
    }
    throw new Error('invariant violated: no free request id');
  }

  /** Removes a request from every count. The caller resolves or rejects it. */
  private settle(p: Pending): void {
    invariant(!p.settled, `request ${p.id} settled twice`);
    p.settled = true;
    clearTimeout(p.timer);
    this.pending.delete(p.id);
    if (p.written) {
      this.inFlight--;
    } else {
      this.queued--;
      this.queuedBytes -= p.frameBytes;
      p.frame = null;
    }
    invariant(this.inFlight >= 0 && this.queued >= 0 && this.queuedBytes >= 0, 'link counters went negative');
    invariant(this.pending.size === this.inFlight + this.queued, 'pending map disagrees with counters');
  }

  private expire(p: Pending, timeoutMs: number): void {
    if (p.settled) return;
    const where = p.written ? 'waiting for the response' : `still queued, link ${this.state}`;
    this.settle(p);
    p.reject(new RingkvError('timeout', `request to ${this.describe()} timed out after ${timeoutMs} ms (${where})`, this.details()));
    this.compactQueue();
  }

  /** Timed-out entries stay in the FIFO until flushed; compact so a stuck socket can't grow it forever. */
  private compactQueue(): void {
    if (this.queue.length - this.qHead > 2 * this.queued + 64) {
      this.queue = this.queue.slice(this.qHead).filter((p) => p !== undefined && !p.settled);
      this.qHead = 0;
      invariant(this.queue.length === this.queued, 'queue compaction lost or kept the wrong entries');
    }
  }

  private failAll(makeError: (p: Pending) => RingkvError): void {
    const all = [...this.pending.values()];
    for (const p of all) {
      this.settle(p);
      p.reject(makeError(p));
    }
    this.queue = [];
    this.qHead = 0;
    invariant(this.pending.size === 0 && this.queuedBytes === 0, 'failAll left requests behind');
  }

  private flush(): void {
    const socket = this.socket;
    if (this.state !== 'ready' || !socket || socket.destroyed) return;
    while (this.writable && this.qHead < this.queue.length) {
      const p = this.queue[this.qHead];
      this.queue[this.qHead] = undefined;
      this.qHead++;
      if (!p || p.settled) continue;
      const frame = p.frame;
      invariant(frame !== null && !p.written, `queued request ${p.id} has no frame`);
      p.frame = null;
      p.written = true;
      this.queued--;
      this.queuedBytes -= p.frameBytes;
      this.inFlight++;
      this.ctx.countFrameOut();
      corkForIteration(socket);
      if (!socket.write(frame)) this.writable = false;
    }
    if (this.qHead === this.queue.length) {
      this.queue = [];
      this.qHead = 0;
    }
  }

  private connect(): void {
    invariant(this.state === 'idle' || this.state === 'backoff', `connect() from state ${this.state}`);
    this.clearReconnectTimer();
    this.state = 'connecting';
    const gen = ++this.gen;
    const socket = net.connect({ host: this.host, port: this.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    this.socket = socket;
    clientHandshake(
      socket,
      {
        address: this.address,
        secret: this.ctx.secret,
        clusterName: this.ctx.clusterName,
        nodeId: this.ctx.selfId,
        role: 'peer',
        timeoutMs: this.ctx.connectTimeoutMs,
        checkServer: (serverId) => {
          if (!this.ctx.isBlocked(serverId)) return undefined;
          this.peerId = serverId;
          return this.cutError();
        },
        onAuthFailure: (reason) => this.ctx.authFailure(this.address, reason),
        onFrameIn: () => this.ctx.countFrameIn(),
        onFrameOut: () => this.ctx.countFrameOut(),
      },
      (err, res) => {
        if (gen !== this.gen) {
          // Superseded (cut by fault injection or transport closed) while handshaking.
          if (!err) {
            socket.on('error', noop);
            socket.destroy();
          }
          return;
        }
        if (err || !res) this.onConnectFailed(err ?? new RingkvError('internal', 'handshake finished without a result'));
        else this.onConnected(socket, gen, res);
      },
    );
  }

  private onConnectFailed(err: RingkvError): void {
    this.socket = null;
    const firstFailure = this.lastError === '';
    this.lastError = err.message;
    // One warning per outage; the retries behind it (every <= 5 s) would otherwise flood the log.
    if (firstFailure) this.ctx.log.warn({ peer: this.address, nodeId: this.peerId, code: err.code, err: err.message }, 'cannot reach peer');
    else this.ctx.log.debug({ peer: this.address, err: err.message }, 'peer still unreachable');
    // The handshake's own details (a denial's reason) travel with it to every failed request.
    this.failAll(() => new RingkvError(err.code, err.message, { ...err.details, ...this.details() }));
    this.scheduleReconnect();
  }

  private onConnected(socket: Socket, gen: number, res: HandshakeResult): void {
    if (this.ctx.isBlocked(res.serverId)) {
      // Blocked between the challenge and the welcome.
      this.peerId = res.serverId;
      this.cut();
      socket.destroy();
      return;
    }
    if (this.peerId !== undefined && this.peerId !== res.serverId) {
      this.ctx.log.warn({ peer: this.address, was: this.peerId, now: res.serverId }, 'peer address is now served by a different node');
    }
    this.peerId = res.serverId;
    this.state = 'ready';
    this.backoffMs = BACKOFF_INITIAL_MS;
    this.lastError = '';
    this.writable = true;
    this.decoder = new FrameDecoder(this.ctx.maxFrameBytes);
    socket.on('data', (chunk: Buffer) => this.onData(gen, chunk));
    socket.on('drain', () => {
      if (gen !== this.gen) return;
      this.writable = true;
      this.flush();
    });
    socket.on('error', (e: Error) => this.lose(gen, e.message));
    socket.on('close', () => this.lose(gen, 'connection closed'));
    this.ctx.log.info({ peer: this.address, nodeId: this.peerId }, 'connected to peer');
    if (res.leftover.length > 0) this.onData(gen, res.leftover);
    if (gen !== this.gen) return;
    socket.resume();
    this.flush();
  }

  private onData(gen: number, chunk: Buffer): void {
    const decoder = this.decoder;
    if (gen !== this.gen || !decoder) return;
    let frames: unknown[];
    try {
      frames = decoder.push(chunk);
    } catch (e) {
      this.ctx.badFrame(`${this.describe()}`, errMessage(e));
      this.lose(gen, `bad frame: ${errMessage(e)}`);
      return;
    }
    for (const f of frames) {
      if (gen !== this.gen) return;
      this.ctx.countFrameIn();
      if (!isRecord(f) || f.t !== 'res' || !isRequestId(f.id) || typeof f.ok !== 'boolean') {
        this.ctx.badFrame(this.describe(), 'expected a response frame');
        this.lose(gen, 'protocol violation: expected a response frame');
        return;
      }
      const p = this.pending.get(f.id);
      if (!p) {
        // The request already timed out; its late answer is simply dropped.
        continue;
      }
      if (!p.written) {
        this.ctx.badFrame(this.describe(), `response to request ${f.id} that was never sent`);
        this.lose(gen, 'protocol violation: response to an unsent request');
        return;
      }
      this.settle(p);
      if (f.ok) {
        p.resolve(f.body);
      } else {
        const message = typeof f.message === 'string' ? f.message : `${this.describe()} answered with an error but no message`;
        if (isErrorCode(f.code)) p.reject(new RingkvError(f.code, message, this.details()));
        else p.reject(new RingkvError('internal', `${message} (unknown error code ${String(f.code)} from ${this.describe()})`, this.details()));
      }
    }
  }

  /** The established connection is gone: fail everything at once (not at each deadline) and retry later. */
  private lose(gen: number, reason: string): void {
    if (gen !== this.gen || this.state !== 'ready') return;
    this.gen++;
    const socket = this.socket;
    this.socket = null;
    this.decoder = null;
    this.writable = false;
    socket?.destroy();
    this.lastError = reason;
    this.ctx.log.warn({ peer: this.address, nodeId: this.peerId, reason, failed: this.pending.size }, 'peer connection lost');
    this.failAll(() => new RingkvError('unavailable', `connection to ${this.describe()} lost (${reason})`, this.details()));
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    this.clearReconnectTimer();
    if (this.ctx.isClosing()) {
      this.state = 'closed';
      return;
    }
    if (this.peerId !== undefined && this.ctx.isBlocked(this.peerId)) {
      // No point dialing a partitioned peer; the next request after unblocking connects lazily.
      this.state = 'idle';
      return;
    }
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, BACKOFF_MAX_MS);
    this.state = 'backoff';
    this.reconnectAt = Date.now() + delay;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.state === 'backoff') this.connect();
    }, delay);
    // A pending redial must not keep an otherwise finished process alive.
    this.reconnectTimer.unref();
  }

  private clearReconnectTimer(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  /** The peer just authenticated to us, so it is up: skip the rest of the backoff. */
  peerIsBack(): void {
    if (this.state !== 'backoff') return;
    this.backoffMs = BACKOFF_INITIAL_MS;
    this.connect();
  }

  /** Fault injection: drop the connection and everything on it; stay idle until asked again. */
  cut(): void {
    if (this.state === 'closed') return;
    this.drop(() => this.cutError(), 'idle');
  }

  shutdown(): void {
    this.drop(() => new RingkvError('unavailable', `peer transport closed; request to ${this.describe()} abandoned`, this.details()), 'closed');
  }

  /** Drop the connection and fail everything on it with `err`; the link then rests in `state`. */
  private drop(err: () => RingkvError, state: 'idle' | 'closed'): void {
    this.gen++;
    this.clearReconnectTimer();
    this.socket?.destroy();
    this.socket = null;
    this.decoder = null;
    this.writable = false;
    this.failAll(err);
    this.state = state;
  }
}
