/**
 * The peer-port handshake (see the protocol in transport.ts): constants, message checks, the MAC,
 * pre-auth framing, and its client side, shared by the outbound peer links and the client library
 * (`connectAsClient`). The server side lives with the inbound connections in transport.ts.
 */
import net, { type Socket } from 'node:net';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { FRAME_HEADER_BYTES, FrameError, decodePayload, encodeFrame } from '../net/frames.js';
import { RingkvError, invariant, type ErrorCode } from '../util/errors.js';

export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
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
export const HANDSHAKE_MAX_FRAME_BYTES = 1024;
export const MAX_NODE_ID_CHARS = 256;
/** Detect half-open peers (power loss, cable pull) without relying on application traffic. */
export const KEEPALIVE_MS = 10_000;

export type Msg = Record<string, unknown>;

export function isRecord(x: unknown): x is Msg {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

export function isBytes(x: unknown, len: number): x is Uint8Array {
  return x instanceof Uint8Array && x.length === len;
}

export function isNodeId(x: unknown): x is string {
  return typeof x === 'string' && x.length > 0 && x.length <= MAX_NODE_ID_CHARS;
}

export function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export function computeMac(secret: string, label: 'client' | 'server', nonce: Uint8Array, id: string): Buffer {
  return createHmac('sha256', secret).update(label).update(nonce).update(id, 'utf8').digest();
}

export function parseAddress(address: string): { host: string; port: number } {
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
export function takeFrame(buf: Buffer, maxBytes: number): { msg: unknown; rest: Buffer } | null {
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

/** A hello that passed the server's checks. */
export interface VerifiedHello {
  ok: true;
  hello: { role: 'peer' | 'client'; nodeId: string; nonce: Uint8Array; mac: Uint8Array };
  nodeId: string;
}
/** A hello refused: what to tell the connecting side, and what to log. */
export interface RefusedHello {
  ok: false;
  message: string;
  logReason: string;
  reason?: DenialReason;
}

/**
 * Server side of the handshake, pure: check a hello frame against the challenge this server sent
 * (`serverNonce`) — its shape, its MAC over that nonce (constant-time), and for a peer its cluster
 * name. What the transport decides from its own state (blocked links, connection limits) is not here.
 */
export function verifyHello(msg: unknown, o: { secret: string; serverNonce: Uint8Array; clusterName: string; selfId: string }): VerifiedHello | RefusedHello {
  if (!isRecord(msg) || msg.t !== 'hello' || (msg.role !== 'peer' && msg.role !== 'client') || !isNodeId(msg.nodeId) || !isBytes(msg.nonce, NONCE_BYTES) || !isBytes(msg.mac, MAC_BYTES)) {
    return { ok: false, message: 'authentication failed: malformed hello', logReason: 'malformed hello' };
  }
  const nodeId = msg.nodeId;
  if (!timingSafeEqual(computeMac(o.secret, 'client', o.serverNonce, nodeId), msg.mac)) {
    return { ok: false, message: 'authentication failed', logReason: `bad MAC from a connection claiming to be ${nodeId}` };
  }
  if (msg.role === 'peer' && msg['cluster'] !== o.clusterName) {
    const theirs = typeof msg['cluster'] === 'string' ? `"${msg['cluster'].slice(0, 64)}"` : 'no cluster name';
    return {
      ok: false,
      message: `wrong cluster: node ${o.selfId} is in cluster "${o.clusterName}", the connecting node said ${theirs} (check cluster.name / --cluster-name)`,
      logReason: `node ${nodeId} belongs to cluster ${theirs}, this node to "${o.clusterName}"`,
      reason: 'wrong_cluster',
    };
  }
  return { ok: true, hello: { role: msg.role, nodeId, nonce: msg.nonce, mac: msg.mac }, nodeId };
}

export function noop(): void {}

export interface ClientHandshakeOptions {
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

export interface HandshakeResult {
  serverId: string;
  leftover: Buffer;
}

/**
 * Client side of the handshake on a socket that is connecting or connected. Calls `done` exactly once.
 * On success the socket is paused with none of our listeners left, and `done` runs synchronously inside
 * the data callback, so the caller can attach its own listeners before any further event can fire.
 * On failure the socket is destroyed.
 */
export function clientHandshake(
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
