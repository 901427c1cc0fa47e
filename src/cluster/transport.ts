import net, { type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame } from '../net/frames.js';
import { ReplyBudget } from '../net/reply-budget.js';
import { DEFAULT_HANDSHAKE_POOL_LIMITS, HandshakePool } from './handshake-pool.js';
import { RingkvError, asRingkvError, invariant } from '../util/errors.js';
import type { Logger } from '../log/logger.js';
import {
  computeMac,
  DEFAULT_CLUSTER_NAME,
  errMessage,
  HANDSHAKE_MAX_FRAME_BYTES,
  isNodeId,
  KEEPALIVE_MS,
  MAX_NODE_ID_CHARS,
  NONCE_BYTES,
  parseAddress,
  takeFrame,
  type DenialReason,
  verifyHello,
} from './handshake.js';
import { MAX_PEER_LINKS, PeerLink, type LinkContext, type PeerStats } from './peer-link.js';
import { InboundPeer, type InboundContext, type PeerHandler } from './inbound.js';

export type { PeerStats } from './peer-link.js';

export { connectAsClient, DEFAULT_CLUSTER_NAME, type DenialReason, type HandshakeDenial } from './handshake.js';

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

export type { PeerHandler, PeerRequestContext } from './inbound.js';

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

/** An unauthenticated socket gets this long to finish the handshake, so idle probes can't hold slots. */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 2000;
const DEFAULT_MAX_AUTHENTICATED_CONNECTIONS = 1024;
const DEFAULT_MAX_QUEUED_PER_PEER = 10_000;
const DEFAULT_CONNECT_TIMEOUT_MS = 2000;

const DEFAULT_INITIAL_REPLY_ESTIMATE_BYTES = 1024 * 1024;

export class PeerTransport {
  private readonly selfId: string;
  private readonly secret: string;
  private readonly clusterName: string;
  private readonly onClient: ((socket: Socket, firstBytes: Buffer) => void) | undefined;
  private readonly log: Logger;
  private readonly maxFrameBytes: number;
  private readonly maxQueuedPerPeer: number;
  private readonly connectTimeoutMs: number;
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
  private readonly inboundCtx: InboundContext;

  private constructor(opts: PeerTransportOptions) {
    this.selfId = opts.selfId;
    this.secret = opts.secret;
    this.clusterName = opts.clusterName ?? DEFAULT_CLUSTER_NAME;
    this.onClient = opts.onClient;
    this.log = opts.log.child({ component: 'peer-transport' });
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxQueuedPerPeer = opts.maxQueuedPerPeer ?? DEFAULT_MAX_QUEUED_PER_PEER;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
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
    this.inboundCtx = {
      selfId: this.selfId,
      handler: opts.handler,
      log: this.log,
      maxFrameBytes: this.maxFrameBytes,
      maxInFlight: this.maxQueuedPerPeer,
      replies: opts.replies ?? new ReplyBudget(),
      initialReplyEstimateBytes: opts.initialReplyEstimateBytes ?? DEFAULT_INITIAL_REPLY_ESTIMATE_BYTES,
      countFrameIn: () => void this.framesIn++,
      countFrameOut: () => void this.framesOut++,
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
      const v = verifyHello(next.msg, { secret: this.secret, serverNonce, clusterName: this.clusterName, selfId: this.selfId });
      if (!v.ok) {
        this.authFailure(remote, v.logReason);
        deny('unauthorized', v.message, v.reason);
        return;
      }
      const { hello, nodeId } = v;
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
    const conn = new InboundPeer(nodeId, remote, socket, leftover, this.inboundCtx);
    this.inbound.add(conn);
    socket.once('close', () => this.inbound.delete(conn));
    this.log.debug({ remote, nodeId }, 'peer authenticated');
    for (const link of this.links.values()) if (link.peerId === nodeId) link.peerIsBack();
  }
}
