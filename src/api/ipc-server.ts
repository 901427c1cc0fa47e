/**
 * The IPC server: length-prefixed msgpack frames over a local Unix socket (and, through
 * `handleConnection`, over authenticated peer-port connections). It is the "embedding" API: a
 * process on the same machine talks to the node without HTTP/JSON overhead, pipelines many
 * requests per connection, and stores binary values untouched. See docs/ipc-protocol.md.
 *
 * Flow control per connection: decoded requests become work units (a batch item is one unit) in a
 * queue; a unit starts when fewer than `maxInFlightPerConnection` are at the router and the
 * connection's reply bytes allow it (src/net/reply-budget.ts: estimates reserved for units in
 * flight + replies written and not yet drained, bounded by `maxReplyBytesPerConnection` and the
 * node-wide total). While units are queued or the connection is at its byte bound, the socket is
 * paused, so the kernel's buffer fills and the client's writes block. The queue therefore never
 * holds more than what was decoded from the data already read when the pause began (at most one
 * read chunk plus one frame). A read whose finished reply does not fit is dropped and run again
 * once the client has drained what it holds; a closed connection's replies are dropped.
 *
 * This file is the server (connections, stats, close, the listener); one connection's machinery is
 * ipc-connection.ts, the dependency types ipc-server-types.ts, claiming the socket path
 * ipc-socket-path.ts, and the codec ipc-request.ts / ipc-fast-decode.ts / ipc-replies.ts.
 */
import { chmodSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import { ReplyBudget } from '../net/reply-budget.js';
import { tokenToHex } from '../ring/hash.js';
import type { RingLayout } from '../ring/builder.js';
import type { Done, ReadRequest, ReadResult, WriteRequest, WriteResult } from '../router/router.js';
import { invariant, RingkvError } from '../util/errors.js';
import { DEFAULT_MAX_BATCH_ITEMS, type IpcLimits, type RingInfo } from './ipc-protocol.js';
import { replyBudgetOf } from './ipc-replies.js';
import { CLOSE_DRAIN_MS, Connection } from './ipc-connection.js';
import { claimSocketPath, MAX_SOCKET_PATH_BYTES } from './ipc-socket-path.js';
import type { IpcDeps, IpcRouter, IpcServer, IpcStats } from './ipc-server-types.js';

export type { IpcDeps, IpcRouter, IpcServer, IpcStats } from './ipc-server-types.js';

export type { RingInfo, IpcLimits };

/** Adapt promise-returning write/read functions (test fakes) to IpcRouter. */
export function promiseRouter(r: { write(req: WriteRequest): Promise<WriteResult>; read(req: ReadRequest): Promise<ReadResult> }): IpcRouter {
  const settle = <T>(p: Promise<T>, done: Done<T>): void => void p.then((v) => done(null, v), (e: unknown) => done(e instanceof Error ? e : new Error(String(e)), undefined));
  return {
    startWrite: (req, done) => settle(r.write(req), done),
    startRead: (req, done) => settle(r.read(req), done),
  };
}

/** Build the `ring` payload from a layout (the node passes this as `ringInfo`). */
export function ringInfoFromLayout(
  layout: RingLayout,
  version: number,
  node: (id: string, index: number) => { peer: string; http: string; ipc: string; up: boolean },
): RingInfo {
  return {
    digest: layout.digest,
    version,
    nodes: layout.nodeIds.map((id, i) => ({ id, ...node(id, i) })),
    tokens: layout.tokens.map(tokenToHex),
    replicas: layout.replicas,
    pref: Array.from(layout.pref),
  };
}

export class IpcServerImpl implements IpcServer {
  inFlight = 0;
  maxInFlightSeen = 0;
  requests = 0;
  badFrames = 0;
  pauses = 0;
  closing = false;
  readonly log: Logger;
  readonly replies: ReplyBudget;
  readonly limits: IpcLimits;
  readonly publicLimits: Required<IpcLimits>;
  readonly maxBatchItems: number;
  /** Estimated reply bytes allowed, leaving room for msgpack framing the estimate does not count. */
  readonly replyBudget: number;
  private readonly conns = new Set<Connection>();
  server: Server | undefined;

  constructor(readonly deps: IpcDeps) {
    this.log = deps.log;
    const l = deps.limits;
    const limits: Required<IpcLimits> = {
      maxKeyBytes: l.maxKeyBytes,
      maxValueBytes: l.maxValueBytes,
      maxFrameBytes: l.maxFrameBytes,
      maxInFlightPerConnection: l.maxInFlightPerConnection,
      maxBatchItems: l.maxBatchItems ?? DEFAULT_MAX_BATCH_ITEMS,
    };
    for (const [k, v] of Object.entries(limits)) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`ipc limits.${k} must be a positive integer, got ${String(v)}`);
    }
    this.limits = limits;
    this.maxBatchItems = limits.maxBatchItems;
    this.publicLimits = Object.freeze({ ...limits });
    this.replyBudget = replyBudgetOf(l.maxFrameBytes);
    this.replies = deps.replies ?? new ReplyBudget();
  }

  digest(): string {
    return this.deps.ringDigest ? this.deps.ringDigest() : this.deps.ringInfo().digest;
  }

  handleConnection(socket: Socket, leftover?: Buffer): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const c = new Connection(this, socket);
    this.conns.add(c);
    c.start(leftover);
  }

  forget(c: Connection): void {
    this.conns.delete(c);
  }

  stats(): IpcStats {
    return {
      connections: this.conns.size,
      inFlight: this.inFlight,
      maxInFlightSeen: this.maxInFlightSeen,
      requests: this.requests,
      badFrames: this.badFrames,
      pauses: this.pauses,
      pausedConnections: [...this.conns].filter((c) => c.isPaused).length,
      replyBytes: [...this.conns].reduce((n, c) => n + c.account.outstanding, 0),
    };
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const listening = this.server ? new Promise<void>((r) => this.server!.close(() => r())) : Promise.resolve();
    // Let requests already at the router be answered (bounded wait), then cut every connection.
    const conns = [...this.conns];
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(conns.map((c) => c.drain())),
      new Promise<void>((r) => {
        timer = setTimeout(r, CLOSE_DRAIN_MS);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    for (const c of conns) c.socket.destroy();
    await listening;
  }
}

/**
 * The socket path, claimed and listening, before the node can serve it. A node binds its IPC path
 * first thing at startup, so a second node pointed at a path a live node owns stops before it
 * opens ports, joins gossip or allocates tokens. Connections that arrive before `serve` wait
 * (paused) and are then served.
 */
export interface IpcListener {
  readonly path: string;
  serve(deps: Omit<IpcDeps, 'path'>): IpcServer;
  /** Give the path up without serving (startup failed). */
  close(): Promise<void>;
}

export async function listenIpc(path: string): Promise<IpcListener> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES) {
    throw new RingkvError('bad_request', `ipc socket path is ${Buffer.byteLength(path)} bytes; Unix sockets allow at most ${MAX_SOCKET_PATH_BYTES}: ${path}`);
  }
  await claimSocketPath(path);
  let impl: IpcServerImpl | undefined;
  /** Bounded: past it, early connections are refused rather than parked. */
  const early: Socket[] = [];
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (sock) => {
    if (impl) return impl.handleConnection(sock);
    if (early.length >= 64) return void sock.destroy();
    early.push(sock);
  });
  server.maxConnections = 1024;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      // Two nodes racing for the same path: the loser sees EADDRINUSE after the winner bound it.
      if (e.code === 'EADDRINUSE') reject(new RingkvError('conflict', `another ringkv node owns ${path}`));
      else reject(e);
    });
    server.listen(path, () => resolve());
  });
  // The socket is unauthenticated: only this user's processes may connect.
  chmodSync(path, 0o600);
  return {
    path,
    serve(deps) {
      invariant(impl === undefined, 'ipc listener served twice');
      impl = new IpcServerImpl({ ...deps, path });
      server.maxConnections = deps.limits.maxConnections ?? 1024;
      server.on('error', (e) => deps.log.error({ err: e }, 'ipc server error'));
      impl.server = server;
      deps.log.info({ path }, 'ipc socket listening');
      for (const sock of early.splice(0)) if (!sock.destroyed) impl.handleConnection(sock);
      return impl;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const sock of early.splice(0)) sock.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Claim, bind and serve in one step (tests and tools; the node uses listenIpc + serve). */
export async function startIpcServer(deps: IpcDeps): Promise<IpcServer> {
  const listener = await listenIpc(deps.path);
  try {
    return listener.serve(deps);
  } catch (e) {
    await listener.close();
    throw e;
  }
}
