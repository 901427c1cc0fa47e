import net, { type Socket } from 'node:net';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  DEFAULT_MAX_FRAME_BYTES,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameError,
  decodePayload,
  encodeFrame,
} from '../net/frames.js';
import { ReplyBudget, type ReplyAccount } from '../net/reply-budget.js';
import { DEFAULT_HANDSHAKE_POOL_LIMITS, HandshakePool } from './handshake-pool.js';
import { corkForTick, ReplyWriter } from '../net/reply-writer.js';
import { RingkvError, asRingkvError, invariant, type ErrorCode } from '../util/errors.js';
import type { Logger } from '../log/logger.js';

/**
 * Peer transport: request/response over TCP between nodes' peer ports.
 *
 * Wire protocol (every message is one frame of src/net/frames.ts):
 *
 *   server -> client  {t:'challenge', nonce: bin32, serverId}
 *   client -> server  {t:'hello', role:'peer'|'client', nodeId, nonce: bin32, cluster?: name,
 *                      mac: HMAC-SHA256(secret, 'client' || serverNonce || utf8(nodeId))}
 *
 * A peer's hello names its cluster (config `cluster.name`); the server refuses a peer of another
 * cluster after checking its MAC, as Cassandra refuses gossip across `cluster_name`s. This guards
 * against misconfiguration (two clusters on one machine sharing a secret, a port reused by another
 * cluster's node), not against attackers: that is the secret's job. Clients need no name.
 *   server -> client  {t:'welcome', mac: HMAC-SHA256(secret, 'server' || clientNonce || utf8(serverId))}
 *                  or {t:'denied', code, message, reason?: 'wrong_cluster'} followed by close
 *
 * The two labels have the same length and both nonces are exactly 32 bytes, so plain concatenation is
 * unambiguous. Each side proves the secret over a nonce the *other* side chose, and the labels differ,
 * so neither a replay nor a reflection of the peer's own MAC is accepted. After the handshake:
 *
 *   {t:'req', id, body}                         (only client -> server on a connection)
 *   {t:'res', id, ok:true, body} | {t:'res', id, ok:false, code, message}   (server -> client)
 *
 * Connections are directional: our requests travel on our outbound connection, theirs on theirs. That
 * keeps each socket's roles fixed and lets a node be reached even if its own dial-out is failing.
 */

export interface PeerRequestContext {
  fromNodeId: string;
}

/** Serves one request from an authenticated peer; throw RingkvError to answer with an error frame. */
export type PeerHandler = (body: unknown, ctx: PeerRequestContext) => Promise<unknown>;

export interface PeerTransportOptions {
  /** This node's id (sent in the handshake). */
  selfId: string;
  /** Cluster secret. */
  secret: string;
  /** Cluster name: peers of another cluster are refused. Default 'ringkv'. */
  clusterName?: string;
  /** Listen address (port 0 allowed; read back via .port). */
  host: string;
  port: number;
  /** Serves requests from authenticated peers. */
  handler: PeerHandler;
  /**
   * A connection that authenticated with role 'client' is handed over here after the handshake, with
   * any bytes already read past it. The socket arrives *paused* so nothing is lost: if the callback
   * attaches a 'data' listener and leaves it paused, the transport resumes it when the callback returns;
   * otherwise the new owner calls `socket.resume()` when ready. Such sockets are still destroyed by close().
   */
  onClient?: (socket: Socket, firstBytes: Buffer) => void;
  log: Logger;
  /** Default 16 MiB. */
  maxFrameBytes?: number;
  /** Requests queued or in flight per peer (default 10_000); past it request() rejects 'overloaded'. */
  maxQueuedPerPeer?: number;
  /** TCP connect + handshake deadline, default 2000 ms. */
  connectTimeoutMs?: number;
  /**
   * Reply-byte bounds for inbound peers (per connection and node-wide), shared with the node's
   * other servers; default: a budget of this transport's own with the default limits.
   */
  replies?: ReplyBudget;
  /** What an inbound request's reply is assumed to cost until the peer has shown its sizes (default 1 MiB). */
  initialReplyEstimateBytes?: number;
  /** An accepted connection must complete the handshake within this, or it is closed (default 2000 ms). */
  handshakeTimeoutMs?: number;
  /**
   * Connections still in the handshake held at once (default 128), and from one source address
   * (default 16). When full, a newcomer evicts the oldest of its own address, or of the busiest one.
   */
  maxUnauthenticatedConnections?: number;
  maxUnauthenticatedPerAddress?: number;
  /** Authenticated connections (peers and clients) accepted at once (default 1024); past it a hello is denied. */
  maxAuthenticatedConnections?: number;
}

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

export interface TransportStats {
  peers: PeerStats[];
  /** Every frame decoded / encoded on peer connections, handshake frames included. */
  framesIn: number;
  framesOut: number;
  authFailures: number;
  badFrames: number;
  /** Accepted connections still in the handshake. */
  unauthenticated: number;
  /** Authenticated inbound connections (peers and handed-over clients). */
  authenticated: number;
  /** Unauthenticated connections closed to make room for newer ones. */
  evictedUnauthenticated: number;
  /** Handshakes that did not finish within handshakeTimeoutMs. */
  handshakeTimeouts: number;
}

const NONCE_BYTES = 32;
const MAC_BYTES = 32;
/** An unauthenticated socket gets this long to finish the handshake, so idle probes can't hold slots. */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 2000;
const DEFAULT_MAX_AUTHENTICATED_CONNECTIONS = 1024;
export const DEFAULT_CLUSTER_NAME = 'ringkv';

/** Why a server refused a handshake, when the caller may act on it (a `denied` frame's `reason`). */
export type DenialReason = 'wrong_cluster';

/** The details of a RingkvError from a refused handshake. */
export interface HandshakeDenial {
  peer: string;
  /** The server's own words. */
  serverMessage: string;
  reason?: DenialReason;
}

/** Pre-auth frames are tiny (a hello is < 400 bytes): a stranger can't make us buffer megabytes. */
const HANDSHAKE_MAX_FRAME_BYTES = 1024;
const MAX_NODE_ID_CHARS = 256;
/** Distinct peer addresses we keep links for; a cluster is far smaller, so hitting this is a caller bug. */
const MAX_PEER_LINKS = 4096;
/**
 * Bytes of encoded requests waiting for the socket to drain. The count bound alone would allow
 * 10_000 x 16 MiB; this caps memory when a peer stops reading. A single frame is always admitted into
 * an empty queue so a legal large request can never be refused for size alone.
 */
const MAX_QUEUED_BYTES_PER_PEER = 64 * 1024 * 1024;
const BACKOFF_INITIAL_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** Detect half-open peers (power loss, cable pull) without relying on application traffic. */
const KEEPALIVE_MS = 10_000;
/** Request ids stay inside int32 so every msgpack implementation reads them back as plain integers. */
const MAX_REQUEST_ID = 0x7fffffff;
const DEFAULT_MAX_QUEUED_PER_PEER = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 2000;

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

type Msg = Record<string, unknown>;

function isRecord(x: unknown): x is Msg {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

function isBytes(x: unknown, len: number): x is Uint8Array {
  return x instanceof Uint8Array && x.length === len;
}

function isNodeId(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= MAX_NODE_ID_CHARS;
}

function isRequestId(x: unknown): x is number {
  return typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= MAX_REQUEST_ID;
}

function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && Object.hasOwn(KNOWN_ERROR_CODES, x);
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function computeMac(secret: string, label: 'client' | 'server', nonce: Uint8Array, id: string): Buffer {
  return createHmac('sha256', secret).update(label).update(nonce).update(id, 'utf8').digest();
}

function parseAddress(address: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(address) ?? /^([^:\s[\]]+):(\d{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new RingkvError('bad_request', `peer address "${address}" is not host:port`);
  }
  return { host: m[1]!, port };
}

/**
 * Pulls exactly one frame off the front of `buf`, leaving the rest untouched. The handshake can't use
 * FrameDecoder: it needs the bytes *after* the handshake frame verbatim (to hand a client socket over,
 * or to switch to the full-size decoder) and a much smaller size limit.
 */
function takeFrame(buf: Buffer, maxBytes: number): { msg: unknown; rest: Buffer } | null {
  if (buf.length < FRAME_HEADER_BYTES) return null;
  const len = buf.readUInt32BE(0);
  if (len > maxBytes) {
    throw new FrameError('frame_too_large', `handshake frame of ${len} bytes exceeds the limit of ${maxBytes}`);
  }
  const end = FRAME_HEADER_BYTES + len;
  if (buf.length < end) return null;
  let msg: unknown;
  try {
    msg = decodePayload(buf.subarray(FRAME_HEADER_BYTES, end));
  } catch (e) {
    throw new FrameError('malformed_frame', `handshake frame is not valid msgpack: ${errMessage(e)}`);
  }
  return { msg, rest: buf.subarray(end) };
}

function noop(): void {}

interface ClientHandshakeOptions {
  address: string;
  secret: string;
  /** Sent with role 'peer'. */
  clusterName?: string;
  nodeId: string;
  role: 'peer' | 'client';
  timeoutMs: number;
  /** Veto the server as soon as its challenge names it (fault injection); returns the error to fail with. */
  checkServer?: (serverId: string) => RingkvError | undefined;
  /** The server failed to prove it holds the secret. */
  onAuthFailure?: (reason: string) => void;
  onFrameIn?: () => void;
  onFrameOut?: () => void;
}

interface HandshakeResult {
  serverId: string;
  leftover: Buffer;
}

/**
 * Client side of the handshake on a socket that is connecting or connected. Calls `done` exactly once.
 * On success the socket is paused with none of our listeners left, and `done` runs synchronously inside
 * the data callback, so the caller can attach its own listeners before any further event can fire.
 * On failure the socket is destroyed.
 */
function clientHandshake(
  socket: Socket,
  o: ClientHandshakeOptions,
  done: (err: RingkvError | null, res?: HandshakeResult) => void,
): void {
  let acc: Buffer = Buffer.alloc(0);
  let phase: 'challenge' | 'welcome' = 'challenge';
  let clientNonce: Buffer | null = null;
  let serverId = '';
  let finished = false;

  const cleanup = (): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('close', onClose);
  };
  const fail = (err: RingkvError): void => {
    if (finished) return;
    finished = true;
    cleanup();
    // Keep a listener: destroy() may still surface a late error, and an unhandled one would crash the node.
    socket.on('error', noop);
    socket.destroy();
    done(err);
  };
  const unavailable = (message: string): RingkvError => new RingkvError('unavailable', message, { peer: o.address });

  const timer = setTimeout(() => {
    fail(unavailable(`could not connect to and authenticate with ${o.address} within ${o.timeoutMs} ms`));
  }, o.timeoutMs);
  const onError = (e: Error): void => fail(unavailable(`cannot connect to ${o.address}: ${e.message}`));
  const onClose = (): void => fail(unavailable(`connection to ${o.address} closed during the handshake`));

  const onData = (chunk: Buffer): void => {
    if (finished) return;
    acc = acc.length === 0 ? chunk : Buffer.concat([acc, chunk]);
    // Bounded: each pass consumes one frame or returns; the handshake has at most two frames to read.
    for (let frames = 0; frames < 2; frames++) {
      let next: { msg: unknown; rest: Buffer } | null;
      try {
        next = takeFrame(acc, HANDSHAKE_MAX_FRAME_BYTES);
      } catch (e) {
        fail(unavailable(`${o.address} does not speak the ringkv peer protocol: ${errMessage(e)}`));
        return;
      }
      if (!next) return;
      acc = next.rest;
      o.onFrameIn?.();
      const m = next.msg;
      if (isRecord(m) && m.t === 'denied') {
        const code: ErrorCode = m.code === 'unauthorized' ? 'unauthorized' : 'unavailable';
        const why = typeof m.message === 'string' ? m.message.slice(0, 500) : 'no reason given';
        const details: HandshakeDenial = { peer: o.address, serverMessage: why, ...(m.reason === 'wrong_cluster' ? { reason: 'wrong_cluster' as const } : {}) };
        fail(new RingkvError(code, `${o.address} refused the connection: ${why}`, { ...details }));
        return;
      }
      if (phase === 'challenge') {
        if (!isRecord(m) || m.t !== 'challenge' || !isBytes(m.nonce, NONCE_BYTES) || !isNodeId(m.serverId)) {
          fail(unavailable(`${o.address} sent an invalid handshake challenge`));
          return;
        }
        serverId = m.serverId;
        const veto = o.checkServer?.(serverId);
        if (veto) {
          fail(veto);
          return;
        }
        clientNonce = randomBytes(NONCE_BYTES);
        const mac = computeMac(o.secret, 'client', m.nonce, o.nodeId);
        o.onFrameOut?.();
        socket.write(encodeFrame({ t: 'hello', role: o.role, nodeId: o.nodeId, nonce: clientNonce, mac, ...(o.clusterName !== undefined ? { cluster: o.clusterName } : {}) }));
        phase = 'welcome';
        continue;
      }
      invariant(clientNonce !== null, 'client nonce is set before the welcome phase');
      if (!isRecord(m) || m.t !== 'welcome' || !isBytes(m.mac, MAC_BYTES)) {
        fail(unavailable(`${o.address} sent an invalid handshake welcome`));
        return;
      }
      if (!timingSafeEqual(computeMac(o.secret, 'server', clientNonce, serverId), m.mac)) {
        const reason = `node ${serverId} at ${o.address} failed to prove it holds the cluster secret`;
        o.onAuthFailure?.(reason);
        fail(new RingkvError('unauthorized', reason, { peer: o.address }));
        return;
      }
      finished = true;
      cleanup();
      // Paused before our data listener goes, so no byte is emitted into the void before the new owner reads.
      socket.pause();
      done(null, { serverId, leftover: acc });
      return;
    }
    // Two frames consumed without finishing can only mean a third frame pipelined behind the welcome;
    // that is impossible above (the welcome returns), so reaching here is a logic error.
    invariant(false, 'client handshake consumed more than two frames');
  };

  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('close', onClose);
}

/**
 * Client side of the handshake with role 'client', for the client library. The returned socket is
 * authenticated and *paused*: attach listeners, feed `leftover` (bytes already read past the welcome)
 * to your decoder first, then `socket.resume()`. A no-op 'error' listener is left on the socket only
 * so an error in the gap before you attach yours can't crash the process.
 * Rejects RingkvError 'unavailable' (cannot connect, refused, deadline) or 'unauthorized'.
 */
export async function connectAsClient(
  address: string,
  secret: string,
  clientId: string,
  timeoutMs: number,
): Promise<{ socket: Socket; leftover: Buffer }> {
  const { host, port } = parseAddress(address);
  if (secret.length === 0) throw new RingkvError('bad_request', 'the cluster secret must not be empty');
  if (!isNodeId(clientId)) throw new RingkvError('bad_request', `client id must be 1..${MAX_NODE_ID_CHARS} characters`);
  if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) throw new RingkvError('bad_request', `bad timeout ${timeoutMs}`);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);
    clientHandshake(socket, { address, secret, nodeId: clientId, role: 'client', timeoutMs }, (err, res) => {
      if (err || !res) {
        reject(err ?? new RingkvError('internal', 'handshake finished without a result'));
        return;
      }
      socket.on('error', noop);
      resolve({ socket, leftover: res.leftover });
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// Outbound side: one link (connection + queue) per peer address.

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
interface LinkContext {
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

class PeerLink {
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
      corkForTick(socket);
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
    this.gen++;
    this.clearReconnectTimer();
    this.socket?.destroy();
    this.socket = null;
    this.decoder = null;
    this.writable = false;
    this.failAll(() => this.cutError());
    this.state = 'idle';
  }

  shutdown(): void {
    this.gen++;
    this.clearReconnectTimer();
    this.socket?.destroy();
    this.socket = null;
    this.decoder = null;
    this.writable = false;
    this.failAll(() => new RingkvError('unavailable', `peer transport closed; request to ${this.describe()} abandoned`, this.details()));
    this.state = 'closed';
  }
}

// ---------------------------------------------------------------------------------------------------
// Inbound side.

interface InboundPeer {
  readonly nodeId: string;
  readonly remote: string;
  readonly socket: Socket;
  readonly decoder: FrameDecoder;
  inFlight: number;
  /** Reply bytes of this connection (reserved for requests being served + answers not yet drained). */
  readonly account: ReplyAccount;
  readonly writer: ReplyWriter;
  /** Requests decoded but not started: the connection is at its reply-byte bound (reading is paused). */
  waiting: Array<{ id: number; body: unknown }>;
}

const DEFAULT_INITIAL_REPLY_ESTIMATE_BYTES = 1024 * 1024;

export class PeerTransport {
  private readonly selfId: string;
  private readonly secret: string;
  private readonly clusterName: string;
  private readonly handler: PeerHandler;
  private readonly onClient: ((socket: Socket, firstBytes: Buffer) => void) | undefined;
  private readonly log: Logger;
  private readonly maxFrameBytes: number;
  private readonly maxQueuedPerPeer: number;
  private readonly connectTimeoutMs: number;
  private readonly replies: ReplyBudget;
  private readonly initialReplyEstimateBytes: number;
  private readonly server: net.Server;
  private listenPort = 0;
  private closing = false;
  private closed: Promise<void> | null = null;
  private blockedIds = new Set<string>();
  private readonly links = new Map<string, PeerLink>();
  private readonly inbound = new Set<InboundPeer>();
  /** Every accepted socket (handshaking, peer, handed-over client) so close() can end them all. */
  private readonly sockets = new Set<Socket>();
  /** Sockets still in the handshake: their own small pool, so they can never crowd out real peers. */
  private readonly handshakes: HandshakePool<Socket>;
  private readonly handshakeTimeoutMs: number;
  private readonly maxAuthenticated: number;
  private authenticated = 0;
  private evictedUnauthenticated = 0;
  private handshakeTimeouts = 0;
  private framesIn = 0;
  private framesOut = 0;
  private authFailures = 0;
  private badFrames = 0;
  private readonly linkCtx: LinkContext;

  private constructor(opts: PeerTransportOptions) {
    this.selfId = opts.selfId;
    this.secret = opts.secret;
    this.clusterName = opts.clusterName ?? DEFAULT_CLUSTER_NAME;
    this.handler = opts.handler;
    this.onClient = opts.onClient;
    this.log = opts.log.child({ component: 'peer-transport' });
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxQueuedPerPeer = opts.maxQueuedPerPeer ?? DEFAULT_MAX_QUEUED_PER_PEER;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    this.replies = opts.replies ?? new ReplyBudget();
    this.initialReplyEstimateBytes = opts.initialReplyEstimateBytes ?? DEFAULT_INITIAL_REPLY_ESTIMATE_BYTES;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
    this.maxAuthenticated = opts.maxAuthenticatedConnections ?? DEFAULT_MAX_AUTHENTICATED_CONNECTIONS;
    this.handshakes = new HandshakePool<Socket>({
      maxUnauthenticatedConnections: opts.maxUnauthenticatedConnections ?? DEFAULT_HANDSHAKE_POOL_LIMITS.maxUnauthenticatedConnections,
      maxUnauthenticatedPerAddress: opts.maxUnauthenticatedPerAddress ?? DEFAULT_HANDSHAKE_POOL_LIMITS.maxUnauthenticatedPerAddress,
    });
    this.server = net.createServer((socket) => this.onConnection(socket));
    this.linkCtx = {
      selfId: this.selfId,
      secret: this.secret,
      clusterName: this.clusterName,
      log: this.log,
      maxFrameBytes: this.maxFrameBytes,
      maxQueued: this.maxQueuedPerPeer,
      connectTimeoutMs: this.connectTimeoutMs,
      isBlocked: (id) => this.blockedIds.has(id),
      isClosing: () => this.closing,
      countFrameIn: () => void this.framesIn++,
      countFrameOut: () => void this.framesOut++,
      authFailure: (remote, reason) => this.authFailure(remote, reason),
      badFrame: (remote, reason) => this.badFrame(remote, reason),
    };
  }

  static async listen(opts: PeerTransportOptions): Promise<PeerTransport> {
    if (!isNodeId(opts.selfId)) throw new RingkvError('bad_request', `node id must be 1..${MAX_NODE_ID_CHARS} characters`);
    // An empty secret would let anyone who can reach the port join the cluster.
    if (opts.secret.length === 0) throw new RingkvError('bad_request', 'the cluster secret must not be empty');
    const check = (name: string, v: number | undefined, min: number): void => {
      if (v !== undefined && !(Number.isInteger(v) && v >= min)) throw new RingkvError('bad_request', `${name} must be an integer >= ${min}, got ${v}`);
    };
    check('maxFrameBytes', opts.maxFrameBytes, HANDSHAKE_MAX_FRAME_BYTES);
    check('maxQueuedPerPeer', opts.maxQueuedPerPeer, 1);
    check('connectTimeoutMs', opts.connectTimeoutMs, 1);
    check('handshakeTimeoutMs', opts.handshakeTimeoutMs, 1);
    check('maxUnauthenticatedConnections', opts.maxUnauthenticatedConnections, 1);
    check('maxUnauthenticatedPerAddress', opts.maxUnauthenticatedPerAddress, 1);
    check('maxAuthenticatedConnections', opts.maxAuthenticatedConnections, 1);
    if ((opts.maxUnauthenticatedPerAddress ?? 0) > (opts.maxUnauthenticatedConnections ?? DEFAULT_HANDSHAKE_POOL_LIMITS.maxUnauthenticatedConnections)) {
      throw new RingkvError('bad_request', 'maxUnauthenticatedPerAddress must not exceed maxUnauthenticatedConnections');
    }
    const t = new PeerTransport(opts);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => reject(new RingkvError('unavailable', `cannot listen on ${opts.host}:${opts.port}: ${e.message}`));
      t.server.once('error', onError);
      t.server.listen(opts.port, opts.host, () => {
        t.server.off('error', onError);
        resolve();
      });
    });
    const addr = t.server.address();
    invariant(typeof addr === 'object' && addr !== null, 'a listening TCP server has an address');
    t.listenPort = addr.port;
    t.server.on('error', (e) => t.log.error({ err: e }, 'peer listener error'));
    t.log.info({ host: opts.host, port: t.listenPort, node: t.selfId }, 'peer transport listening');
    return t;
  }

  get port(): number {
    return this.listenPort;
  }

  request(address: string, body: unknown, timeoutMs: number): Promise<unknown> {
    if (this.closing) return Promise.reject(new RingkvError('unavailable', `peer transport is closed; cannot reach ${address}`, { peer: address }));
    if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) {
      return Promise.reject(new RingkvError('bad_request', `request timeout must be a positive number of ms, got ${timeoutMs}`));
    }
    let link = this.links.get(address);
    if (!link) {
      let hp: { host: string; port: number };
      try {
        hp = parseAddress(address);
      } catch (e) {
        return Promise.reject(asRingkvError(e));
      }
      if (this.links.size >= MAX_PEER_LINKS) {
        return Promise.reject(new RingkvError('overloaded', `already tracking ${this.links.size} peer addresses; refusing ${address}`));
      }
      link = new PeerLink(address, hp.host, hp.port, this.linkCtx);
      this.links.set(address, link);
    }
    return link.request(body, timeoutMs);
  }

  peerIdOf(address: string): string | undefined {
    return this.links.get(address)?.peerId;
  }

  setBlocked(nodeIds: readonly string[]): void {
    for (const id of nodeIds) invariant(typeof id === 'string', 'blocked node ids are strings');
    this.blockedIds = new Set(nodeIds);
    this.log.warn({ blocked: this.blocked() }, 'fault injection: partition updated');
    for (const link of this.links.values()) {
      if (link.peerId !== undefined && this.blockedIds.has(link.peerId)) link.cut();
    }
    for (const conn of [...this.inbound]) {
      if (this.blockedIds.has(conn.nodeId)) {
        this.inbound.delete(conn);
        conn.socket.destroy();
      }
    }
  }

  blocked(): string[] {
    return [...this.blockedIds].sort();
  }

  stats(): TransportStats {
    return {
      peers: [...this.links.values()].map((l) => l.stats()),
      framesIn: this.framesIn,
      framesOut: this.framesOut,
      authFailures: this.authFailures,
      badFrames: this.badFrames,
      unauthenticated: this.handshakes.size,
      authenticated: this.authenticated,
      evictedUnauthenticated: this.evictedUnauthenticated,
      handshakeTimeouts: this.handshakeTimeouts,
    };
  }

  close(): Promise<void> {
    if (this.closed) return this.closed;
    this.closing = true;
    for (const link of this.links.values()) link.shutdown();
    for (const s of this.sockets) s.destroy();
    this.inbound.clear();
    this.closed = new Promise<void>((resolve) => {
      // close() only calls back once every accepted socket is gone; all were destroyed just above.
      this.server.close(() => resolve());
    });
    this.log.info('peer transport closed');
    return this.closed;
  }

  private authFailure(remote: string, reason: string): void {
    this.authFailures++;
    this.log.warn({ remote, reason }, 'peer authentication failed');
  }

  private badFrame(remote: string, reason: string): void {
    this.badFrames++;
    this.log.warn({ remote, reason }, 'bad frame from peer; closing that connection');
  }

  private onConnection(socket: Socket): void {
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.on('error', (e: Error) => this.log.debug({ remote, err: e.message }, 'peer socket error'));
    if (this.closing) {
      socket.destroy();
      return;
    }
    const source = socket.remoteAddress ?? '?';
    const victim = this.handshakes.admit(source, socket);
    if (victim) {
      // Full: the oldest unauthenticated connection of this address (or of the busiest one) makes room.
      this.evictedUnauthenticated++;
      this.log.debug({ remote, victim: `${victim.remoteAddress ?? '?'}:${victim.remotePort ?? '?'}` }, 'unauthenticated connection pool full; closing its oldest');
      victim.destroy();
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.setNoDelay(true);
    socket.setKeepAlive(true, KEEPALIVE_MS);

    const endHandshake = (): void => {
      this.handshakes.remove(source, socket);
    };
    socket.once('close', endHandshake);

    let rejected = false;
    const timer = setTimeout(() => {
      if (!rejected) {
        this.handshakeTimeouts++;
        this.authFailure(remote, `no valid hello within ${this.handshakeTimeoutMs} ms`);
      }
      socket.destroy();
    }, this.handshakeTimeoutMs);
    socket.once('close', () => clearTimeout(timer));

    // After a denial the handshake timer stays armed: it destroys a peer that never closes its end.
    const deny = (code: 'unauthorized' | 'unavailable', message: string, reason?: DenialReason): void => {
      rejected = true;
      this.framesOut++;
      socket.end(encodeFrame({ t: 'denied', code, message, ...(reason ? { reason } : {}) }));
    };

    const serverNonce = randomBytes(NONCE_BYTES);
    let acc: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      if (rejected) return;
      acc = acc.length === 0 ? chunk : Buffer.concat([acc, chunk]);
      let next: { msg: unknown; rest: Buffer } | null;
      try {
        next = takeFrame(acc, HANDSHAKE_MAX_FRAME_BYTES);
      } catch (e) {
        rejected = true;
        this.badFrame(remote, `before authentication: ${errMessage(e)}`);
        socket.destroy();
        return;
      }
      if (!next) return;
      this.framesIn++;
      const hello = next.msg;
      if (
        !isRecord(hello) ||
        hello.t !== 'hello' ||
        (hello.role !== 'peer' && hello.role !== 'client') ||
        !isNodeId(hello.nodeId) ||
        !isBytes(hello.nonce, NONCE_BYTES) ||
        !isBytes(hello.mac, MAC_BYTES)
      ) {
        this.authFailure(remote, 'malformed hello');
        deny('unauthorized', 'authentication failed: malformed hello');
        return;
      }
      const nodeId = hello.nodeId;
      if (!timingSafeEqual(computeMac(this.secret, 'client', serverNonce, nodeId), hello.mac)) {
        this.authFailure(remote, `bad MAC from a connection claiming to be ${nodeId}`);
        deny('unauthorized', 'authentication failed');
        return;
      }
      if (hello.role === 'peer' && hello['cluster'] !== this.clusterName) {
        const theirs = typeof hello['cluster'] === 'string' ? `"${hello['cluster'].slice(0, 64)}"` : 'no cluster name';
        this.authFailure(remote, `node ${nodeId} belongs to cluster ${theirs}, this node to "${this.clusterName}"`);
        deny('unauthorized', `wrong cluster: node ${this.selfId} is in cluster "${this.clusterName}", the connecting node said ${theirs} (check cluster.name / --cluster-name)`, 'wrong_cluster');
        return;
      }
      if (this.blockedIds.has(nodeId)) {
        this.log.info({ remote, nodeId }, 'refusing connection from a blocked node (fault injection)');
        deny('unavailable', `node ${this.selfId}: link cut by fault injection`);
        return;
      }
      if (hello.role === 'client' && !this.onClient) {
        deny('unavailable', `node ${this.selfId} does not accept client connections on its peer port`);
        return;
      }
      if (this.authenticated >= this.maxAuthenticated) {
        this.log.warn({ remote, nodeId, limit: this.maxAuthenticated }, 'authenticated connection limit reached; refusing a connection');
        deny('unavailable', `node ${this.selfId} already serves ${this.authenticated} authenticated connections (limit ${this.maxAuthenticated}); try again later`);
        return;
      }
      clearTimeout(timer);
      socket.off('data', onData);
      endHandshake();
      this.authenticated++;
      socket.once('close', () => {
        this.authenticated--;
        invariant(this.authenticated >= 0, 'authenticated connection count went negative');
      });
      this.framesOut++;
      socket.write(encodeFrame({ t: 'welcome', mac: computeMac(this.secret, 'server', hello.nonce, this.selfId) }));
      if (hello.role === 'peer') this.adoptInbound(socket, nodeId, remote, next.rest);
      else this.handOver(socket, nodeId, remote, next.rest);
    };
    socket.on('data', onData);
    this.framesOut++;
    socket.write(encodeFrame({ t: 'challenge', nonce: serverNonce, serverId: this.selfId }));
  }

  private handOver(socket: Socket, clientId: string, remote: string, leftover: Buffer): void {
    const onClient = this.onClient;
    invariant(onClient, 'client role is only accepted when onClient is set');
    // Paused before the hand-off: with our data listener gone a flowing socket would drop bytes on the floor.
    socket.pause();
    this.log.debug({ remote, clientId }, 'client authenticated on the peer port; handing over');
    try {
      onClient(socket, leftover);
    } catch (e) {
      this.log.error({ remote, clientId, err: errMessage(e) }, 'client connection handler threw; closing it');
      socket.destroy();
      return;
    }
    if (!socket.destroyed && socket.isPaused() && socket.listenerCount('data') > 0) socket.resume();
  }

  private adoptInbound(socket: Socket, nodeId: string, remote: string, leftover: Buffer): void {
    const pump = (): void => this.pumpInbound(conn);
    const account = this.replies.open(this.initialReplyEstimateBytes, pump);
    const conn: InboundPeer = {
      nodeId,
      remote,
      socket,
      decoder: new FrameDecoder(this.maxFrameBytes),
      inFlight: 0,
      account,
      writer: new ReplyWriter(socket, account, pump),
      waiting: [],
    };
    this.inbound.add(conn);
    socket.once('close', () => {
      this.inbound.delete(conn);
      // Answers not yet drained go with the socket; requests still being served are answered into the void.
      conn.waiting = [];
      conn.account.close();
    });
    socket.on('data', (chunk: Buffer) => this.onInboundData(conn, chunk));
    this.log.debug({ remote, nodeId }, 'peer authenticated');
    if (leftover.length > 0) this.onInboundData(conn, leftover);
    for (const link of this.links.values()) if (link.peerId === nodeId) link.peerIsBack();
  }

  private onInboundData(conn: InboundPeer, chunk: Buffer): void {
    if (conn.socket.destroyed) return;
    let frames: unknown[];
    try {
      frames = conn.decoder.push(chunk);
    } catch (e) {
      this.badFrame(`node ${conn.nodeId} at ${conn.remote}`, errMessage(e));
      conn.socket.destroy();
      return;
    }
    for (const f of frames) {
      if (conn.socket.destroyed) return;
      this.framesIn++;
      if (!isRecord(f) || f.t !== 'req' || !isRequestId(f.id)) {
        this.badFrame(`node ${conn.nodeId} at ${conn.remote}`, 'expected a request frame');
        conn.socket.destroy();
        return;
      }
      conn.waiting.push({ id: f.id, body: f.body });
    }
    this.pumpInbound(conn);
  }

  /**
   * Serve waiting requests while the connection's reply bytes allow it; stop reading while any wait
   * or the connection is at its bound (the peer is not reading its answers). Its own queue then
   * fills and it answers 'overloaded' locally instead of us buffering without bound.
   */
  private pumpInbound(conn: InboundPeer): void {
    const socket = conn.socket;
    if (socket.destroyed) return;
    let served = 0;
    while (served < conn.waiting.length && conn.account.canStart(conn.account.estimate)) {
      const r = conn.waiting[served++]!;
      this.serve(conn, r.id, r.body);
    }
    if (served > 0) conn.waiting = conn.waiting.slice(served);
    const hold = conn.waiting.length > 0 || conn.account.atLimit;
    if (hold && !socket.isPaused()) socket.pause();
    else if (!hold && socket.isPaused()) socket.resume();
  }

  private serve(conn: InboundPeer, id: number, body: unknown): void {
    if (conn.inFlight >= this.maxQueuedPerPeer) {
      this.respond(conn, {
        t: 'res',
        id,
        ok: false,
        code: 'overloaded',
        message: `node ${this.selfId} already serving ${conn.inFlight} requests from ${conn.nodeId} (limit ${this.maxQueuedPerPeer})`,
      });
      return;
    }
    conn.inFlight++;
    const reserved = conn.account.estimate;
    conn.account.reserve(reserved);
    let result: Promise<unknown>;
    try {
      result = Promise.resolve(this.handler(body, { fromNodeId: conn.nodeId }));
    } catch (e) {
      result = Promise.reject(e);
    }
    result
      .then(
        (value): Msg => ({ t: 'res', id, ok: true, body: value }),
        (e: unknown): Msg => {
          const re = asRingkvError(e);
          if (!(e instanceof RingkvError)) this.log.warn({ from: conn.nodeId, err: errMessage(e) }, 'peer request handler failed');
          return { t: 'res', id, ok: false, code: re.code, message: re.message };
        },
      )
      .then((msg) => {
        conn.inFlight--;
        invariant(conn.inFlight >= 0, 'inbound in-flight counter went negative');
        conn.account.unreserve(reserved);
        this.respond(conn, msg);
        this.pumpInbound(conn);
      })
      .catch((e: unknown) => this.log.error({ err: errMessage(e) }, 'failed to answer a peer request'));
  }

  private respond(conn: InboundPeer, msg: Msg): void {
    const socket = conn.socket;
    // The peer went away (or was cut): its requests already failed on its side, the answer has nowhere to go.
    if (socket.destroyed || !socket.writable) return;
    let frame: Buffer;
    try {
      frame = encodeFrame(msg);
    } catch (e) {
      frame = encodeFrame({ t: 'res', id: msg.id, ok: false, code: 'internal', message: `response cannot be encoded: ${errMessage(e)}` });
    }
    const payloadBytes = frame.length - FRAME_HEADER_BYTES;
    if (payloadBytes > this.maxFrameBytes) {
      // Sending it would make the peer drop the connection and every other request on it.
      frame = encodeFrame({
        t: 'res',
        id: msg.id,
        ok: false,
        code: 'too_large',
        message: `response of ${payloadBytes} bytes exceeds the frame limit of ${this.maxFrameBytes}`,
      });
    }
    this.framesOut++;
    conn.account.observe(frame.length);
    conn.writer.write(frame);
  }
}
