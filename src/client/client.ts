/**
 * The ringkv client for embedding applications (Node.js).
 *
 * It speaks the IPC protocol (docs/ipc-protocol.md) and routes token-aware: it holds the ring
 * (tokens + preference lists), hashes each key itself, and sends the request straight to a replica
 * of that key, so the coordinator stores its copy locally and the request saves a network hop
 * ("zero-hop"). Any node can coordinate any key, so routing is only an optimisation: when the ring is
 * unknown, stale or a replica is unreachable, requests go to the next replica or any live node.
 *
 * Per node it keeps a small pool of pipelined connections, each with a bounded number of pending
 * requests; callers beyond the bound wait (backpressure) in a bounded queue and get an `overloaded`
 * error past that.
 */
import { randomBytes } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { connectAsClient } from '../cluster/transport.js';
import { DEV_SECRET } from '../config/secret.js';
import { encodeFrame, FrameDecoder } from '../net/frames.js';
import { compareTokens, initHasher, tokenFromHex, tokenOf, type Token } from '../ring/hash.js';
import { validateTableName } from '../api/table-name.js';
import { RingkvError, type ErrorCode } from '../util/errors.js';
import { AnyCrdtHandle, CounterHandle, FlagHandle, MapHandle, RegisterHandle, SetHandle, type CrdtReadResult, type CrdtTransport, type CrdtUpdateResult, type CrdtValue } from './crdt.js';
import { QueryRouter, toQueryResult, wireParam, type QueryOptions, type QueryResult } from './query.js';
import {
  isErrorCode,
  type AnyReply,
  type BatchItem,
  type BatchItemResult,
  type ConsistencyLevel,
  type ConsistencyReport,
  type IpcKey,
  type IpcLimits,
  type ItemError,
  type RingInfo,
} from '../api/ipc-protocol.js';

export type { BatchItemResult, ConsistencyLevel, ConsistencyReport, IpcKey, RingInfo, QueryOptions, QueryResult };
export type { CrdtReadOptions, CrdtReadResult, CrdtRemoveOptions, CrdtUpdateOptions, CrdtUpdateResult, CrdtValue, MapValue } from './crdt.js';
export { AnyCrdtHandle, CounterHandle, FlagHandle, MapHandle, RegisterHandle, SetHandle } from './crdt.js';

/**
 * Where to connect: the node's local IPC socket, or peer-port addresses (HOST:PORT) authenticated
 * with the cluster secret (default: the development secret of nodes started without one, which
 * listen on loopback only).
 */
export type ConnectTarget = { socket: string } | { hosts: string[]; secret?: string };

export interface ClientOptions {
  /** Default per-request deadline in ms (default 5000). */
  timeoutMs?: number;
  /** Deadline for opening a connection in ms (default 2000). */
  connectTimeoutMs?: number;
  /** Requests (batch items count individually) outstanding per connection (default 1024). */
  maxPendingPerConnection?: number;
  /** Requests allowed to wait for a free slot per connection before `overloaded` (default 4 x maxPending). */
  maxQueuedPerConnection?: number;
  /** Connections per node (default 1; pipelining makes one enough for most loads). */
  connectionsPerNode?: number;
  /** Route each key to one of its replicas (default true). Off: everything goes to the seed(s). */
  tokenAware?: boolean;
  /** Items per batch frame sent to a node (default 1000); larger batches are split. */
  maxBatchItems?: number;
  /** Largest reply frame accepted (default 64 MiB). */
  maxReplyFrameBytes?: number;
  /** Re-fetch the ring this often even without an `rv` mismatch, to learn liveness changes (default 30000; 0 = never). */
  ringRefreshMs?: number;
  /** Identifies this client to the peer port (hosts mode; default client-<pid>-<random>). */
  clientId?: string;
  /**
   * Coalesce single put/get/delete calls made in the same tick into batch frames (default true):
   * one frame, one server-side decode and one reply for all of them, instead of one each. Calls
   * keep their own results and errors; only a frame-level failure (a lost connection) fails all of
   * the calls that shared the frame.
   */
  autoBatch?: boolean;
}

export interface ConsistencyOptions {
  consistency?: ConsistencyLevel;
  /** Replicas to involve (1..5; default the table's n). */
  n?: number;
  timeoutMs?: number;
}
export interface PutOptions extends ConsistencyOptions {
  context?: string;
  w?: number;
  /** Seconds until the value expires: reads then find the key absent; the sweep purges it gc grace later. */
  ttl?: number;
}
export interface GetOptions extends ConsistencyOptions {
  r?: number;
}
export interface ScanOptions extends ConsistencyOptions {
  /** Replies required per ring range (1..n). */
  r?: number;
  /** Start strictly after the start key's token. */
  exclusive?: boolean;
}

/** Where a scan starts: a key's token, or the `pagingState` of the previous page. */
export type ScanFrom = IpcKey | { pagingState: string };
export interface DeleteOptions extends ConsistencyOptions {
  context?: string;
  w?: number;
}

export interface WriteResult {
  context: string;
  consistency: ConsistencyReport;
}
export interface GetResult {
  found: boolean;
  /** The value, when exactly one live version exists. */
  value?: Buffer;
  /** Concurrent versions (2+), when writes conflicted: resolve, then put with `context`. */
  siblings?: Buffer[];
  context: string;
  consistency: ConsistencyReport;
}

/** A scan row: a live key and what `get` would answer for it (`found` is always true). */
export interface ScanRow extends Omit<GetResult, 'consistency'> {
  key: Buffer;
}
export interface ScanResult {
  rows: ScanRow[];
  /** The server's reply byte bound stopped the scan before `limit` rows. */
  truncated: boolean;
  /** The scan has walked its whole turn of the ring: there is no next page. */
  endOfRing: boolean;
  /** The next page: `scan(table, { pagingState }, limit)`. Absent exactly when `endOfRing`. */
  pagingState?: string;
  consistency: ConsistencyReport;
}

export type ClientBatchItem =
  | ({ op: 'put'; table: string; key: IpcKey; value: Uint8Array | string } & PutOptions)
  | ({ op: 'get'; table: string; key: IpcKey } & GetOptions)
  | ({ op: 'del'; table: string; key: IpcKey } & DeleteOptions);

// ---------------------------------------------------------------------------------------------
// Ring math

/**
 * The client's copy of the ring: the same lookup the coordinator does (src/ring/table.ts), over the
 * `ring` reply. token = xxh64(key bytes, seed 0); position = first token >= it, wrapping to 0; the
 * replicas are that position's preference list.
 */
export class ClientRing {
  readonly digest: string;
  readonly nodes: RingInfo['nodes'];
  readonly replicas: number;
  private readonly tokens: Token[];
  private readonly pref: Uint16Array;

  constructor(readonly info: RingInfo) {
    const bad = (why: string): RingkvError => new RingkvError('internal', `server sent an invalid ring: ${why}`);
    if (!info || typeof info.digest !== 'string' || !Array.isArray(info.tokens) || !Array.isArray(info.pref) || !Array.isArray(info.nodes)) {
      throw bad('missing digest, tokens, pref or nodes');
    }
    const r = info.replicas;
    if (!Number.isInteger(r) || r < 0 || (info.tokens.length > 0 && r < 1)) throw bad(`replicas=${String(r)}`);
    if (info.pref.length !== info.tokens.length * r) throw bad(`pref has ${info.pref.length} entries, expected ${info.tokens.length * r}`);
    this.tokens = info.tokens.map((t) => {
      try {
        return tokenFromHex(t);
      } catch {
        throw bad(`token ${JSON.stringify(t)}`);
      }
    });
    for (let i = 1; i < this.tokens.length; i++) if (compareTokens(this.tokens[i - 1]!, this.tokens[i]!) >= 0) throw bad('tokens are not strictly ascending');
    for (const p of info.pref) if (!Number.isInteger(p) || p < 0 || p >= info.nodes.length) throw bad(`pref names node ${String(p)} of ${info.nodes.length}`);
    this.pref = Uint16Array.from(info.pref);
    this.digest = info.digest;
    this.nodes = info.nodes;
    this.replicas = r;
  }

  get size(): number {
    return this.tokens.length;
  }

  /** First position whose token is >= t, or 0 past the last token (the ring wraps). */
  positionOf(t: Token): number {
    const tokens = this.tokens;
    let lo = 0;
    let hi = tokens.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compareTokens(tokens[mid]!, t) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo === tokens.length ? 0 : lo;
  }

  /** Node indexes (into `nodes`) of the key's replicas, in preference order; [] for an empty ring. */
  replicasFor(key: IpcKey): number[] {
    if (this.tokens.length === 0) return [];
    const pos = this.positionOf(tokenOf(key));
    return Array.from(this.pref.subarray(pos * this.replicas, (pos + 1) * this.replicas));
  }

  /** The key's preference list as a view (no copy): node indexes, best first. */
  replicaView(key: IpcKey): Uint16Array {
    if (this.tokens.length === 0) return new Uint16Array(0);
    const pos = this.positionOf(tokenOf(key));
    return this.pref.subarray(pos * this.replicas, (pos + 1) * this.replicas);
  }
}

// ---------------------------------------------------------------------------------------------
// One pipelined connection

/** The request never reached the socket: safe to send elsewhere. */
class NotSentError extends RingkvError {}
/** The request was written but the connection closed before its reply: a write may have happened. */
class ConnectionLostError extends RingkvError {}
/** The request was written but no reply came by its deadline: a write may have happened. */
class ReplyTimeoutError extends RingkvError {}

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

class ClientConnection {
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
  async request(msg: Record<string, unknown>, cost: number, timeoutMs: number): Promise<AnyReply> {
    const c = Math.max(1, Math.min(cost, this.maxPending));
    const started = Date.now();
    await this.acquire(c, timeoutMs);
    if (this.closed) {
      this.release(c);
      throw new NotSentError('unavailable', `connection to ${this.endpoint} is closed`);
    }
    const remaining = Math.max(1, timeoutMs - (Date.now() - started));
    const id = this.allocId();
    const frame = encodeFrame({ id, ...msg });
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

// ---------------------------------------------------------------------------------------------
// Endpoints (one node address) and the client

type Dialer = (endpoint: string, timeoutMs: number) => Promise<{ socket: Socket; leftover?: Buffer }>;

interface Endpoint {
  conns: Array<ClientConnection | undefined>;
  connecting: Array<Promise<ClientConnection> | undefined>;
  rr: number;
  /** Skip this endpoint for routing until then (connection failures back off exponentially). */
  downUntil: number;
  backoffMs: number;
  nodeId: string | undefined;
}

interface Resolved {
  timeoutMs: number;
  connectTimeoutMs: number;
  maxPending: number;
  maxQueued: number;
  connectionsPerNode: number;
  tokenAware: boolean;
  maxBatchItems: number;
  maxReplyFrameBytes: number;
  ringRefreshMs: number;
  autoBatch: boolean;
}

const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 5000;
const MIN_RING_REFRESH_GAP_MS = 250;
/** Client-side deadline beyond a forwarded server deadline, so the server's own timeout error arrives first. */
const DEADLINE_GRACE_MS = 200;

function posInt(v: number | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  if (!Number.isInteger(v) || v < 0) throw new RingkvError('bad_request', `${name} must be a non-negative integer, got ${String(v)}`, { field: name });
  return v;
}

function ipcDialer(path: string, timeoutMs: number): Promise<{ socket: Socket }> {
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

function keyOf(key: IpcKey): IpcKey {
  if (typeof key === 'string') {
    if (key.length === 0) throw new RingkvError('bad_request', 'key must be a non-empty string or byte array', { field: 'key' });
    return key;
  }
  if (key instanceof Uint8Array) {
    if (key.length === 0) throw new RingkvError('bad_request', 'key must be a non-empty string or byte array', { field: 'key' });
    // msgpackr encodes Buffers and plain Uint8Arrays alike as bin.
    return key;
  }
  throw new RingkvError('bad_request', 'key must be a non-empty string or byte array', { field: 'key' });
}

function valueOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  throw new RingkvError('bad_request', 'value must be a Uint8Array or a string', { field: 'value' });
}

function keyBytesLength(key: IpcKey): number {
  return typeof key === 'string' ? Buffer.byteLength(key) : key.length;
}

/** Copy the defined optional fields only (msgpack would send `undefined` as nil). */
function withOpts(msg: Record<string, unknown>, opts: object, fields: readonly string[]): Record<string, unknown> {
  const o = opts as Record<string, unknown>;
  for (const f of fields) if (o[f] !== undefined) msg[f] = o[f];
  return msg;
}
const PUT_FIELDS = ['context', 'w', 'n', 'consistency', 'timeoutMs', 'ttl'] as const;
const QUERY_FIELDS = ['consistency', 'pageSize', 'pagingState', 'timeoutMs'] as const;
const GET_FIELDS = ['r', 'n', 'consistency', 'timeoutMs'] as const;
const SCAN_FIELDS = ['r', 'n', 'consistency', 'timeoutMs', 'exclusive'] as const;
const TABLE_FIELDS = ['conflicts', 'type', 'n', 'quorum'] as const;

/** A table definition's settings (`createTable`). */
export interface TableSettings {
  conflicts?: 'vclock' | 'lww' | 'crdt';
  /** With conflicts `crdt`: the type every key of the table holds. */
  type?: 'counter' | 'set' | 'map' | 'register' | 'flag';
  n?: number;
  quorum?: 'sloppy' | 'strict';
}

/**
 * A failed reply as an error. `details` carries `field` for validation errors, and for a `get` too
 * large for one frame its `context`, `siblings` (nil where left out), `omitted` and `sizes`: a put
 * with that context resolves the key.
 */
function replyError(r: AnyReply | ItemError): RingkvError {
  const code: ErrorCode = isErrorCode(r.code) ? r.code : 'internal';
  const x = r as Record<string, unknown>;
  const details: Record<string, unknown> = {};
  for (const k of ['field', 'context', 'siblings', 'omitted', 'sizes']) if (x[k] !== undefined) details[k] = x[k];
  // crdt_update / crdt_get / define_table errors carry theirs (precondition, limit, outcome).
  const d = x['details'];
  if (typeof d === 'object' && d !== null && !Array.isArray(d)) Object.assign(details, d);
  return new RingkvError(code, typeof r.message === 'string' ? r.message : 'request failed', Object.keys(details).length > 0 ? details : undefined);
}

function toGetResult(r: Record<string, unknown>): GetResult {
  return withValues<GetResult>({ found: r['found'] === true, context: String(r['context'] ?? ''), consistency: r['consistency'] as ConsistencyReport }, r);
}

/** Copy a reply's `value` / `siblings` (whichever it has) onto `out`. */
function withValues<T extends { value?: Buffer; siblings?: Buffer[] }>(out: T, r: Record<string, unknown>): T {
  if (r['value'] !== undefined) out.value = r['value'] as Buffer;
  if (r['siblings'] !== undefined) out.siblings = r['siblings'] as Buffer[];
  return out;
}

function toScanResult(r: Record<string, unknown>): ScanResult {
  const raw = r['rows'];
  if (!Array.isArray(raw)) throw new RingkvError('internal', 'scan reply without rows');
  const rows = raw.map((x: Record<string, unknown>) => withValues<ScanRow>({ key: x['key'] as Buffer, found: true, context: String(x['context'] ?? '') }, x));
  const out: ScanResult = { rows, truncated: r['truncated'] === true, endOfRing: r['endOfRing'] === true, consistency: r['consistency'] as ConsistencyReport };
  if (typeof r['pagingState'] === 'string') out.pagingState = r['pagingState'];
  return out;
}

function toWriteResult(r: Record<string, unknown>): WriteResult {
  return { context: String(r['context'] ?? ''), consistency: r['consistency'] as ConsistencyReport };
}

export class RingkvClient {
  private ringState: ClientRing | undefined;
  private readonly endpoints = new Map<string, Endpoint>();
  private refreshing: Promise<void> | undefined;
  private lastRefresh = 0;
  private refreshTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** Set from the first hello: the server's limits (frame size drives batch splitting). */
  private serverLimits: IpcLimits | undefined;
  /** Partition key columns of the wide-column tables seen so far, for routing statements. */
  private readonly queries = new QueryRouter();

  private constructor(
    private readonly cfg: Resolved,
    private readonly dial: Dialer,
    private readonly seeds: string[],
    private readonly mode: 'ipc' | 'peer',
  ) {}

  /**
   * Connect to a node and fetch the ring. `{ socket }`: the node's IPC socket path on this machine
   * (other replicas are reached through their `ipc` paths from the ring). `{ hosts }`: peer-port
   * addresses HOST:PORT; replicas are reached through their `peer` addresses from the ring.
   */
  static async connect(target: ConnectTarget, opts: ClientOptions = {}): Promise<RingkvClient> {
    const cfg: Resolved = {
      timeoutMs: posInt(opts.timeoutMs, 5000, 'timeoutMs') || 5000,
      connectTimeoutMs: posInt(opts.connectTimeoutMs, 2000, 'connectTimeoutMs') || 2000,
      maxPending: posInt(opts.maxPendingPerConnection, 1024, 'maxPendingPerConnection') || 1,
      maxQueued: 0,
      connectionsPerNode: posInt(opts.connectionsPerNode, 1, 'connectionsPerNode') || 1,
      tokenAware: opts.tokenAware ?? true,
      maxBatchItems: posInt(opts.maxBatchItems, 1000, 'maxBatchItems') || 1,
      maxReplyFrameBytes: posInt(opts.maxReplyFrameBytes, 64 * 1024 * 1024, 'maxReplyFrameBytes') || 64 * 1024 * 1024,
      ringRefreshMs: posInt(opts.ringRefreshMs, 30_000, 'ringRefreshMs'),
      autoBatch: opts.autoBatch ?? true,
    };
    cfg.maxQueued = posInt(opts.maxQueuedPerConnection, 4 * cfg.maxPending, 'maxQueuedPerConnection');
    await initHasher();
    let client: RingkvClient;
    if ('socket' in target) {
      if (typeof target.socket !== 'string' || target.socket.length === 0) throw new RingkvError('bad_request', 'socket must be a non-empty path', { field: 'socket' });
      // Absolute, like the `ipc` paths in the ring, so the seed and its ring entry share one pool.
      client = new RingkvClient(cfg, ipcDialer, [resolvePath(target.socket)], 'ipc');
    } else if ('hosts' in target) {
      const hosts = target.hosts;
      if (!Array.isArray(hosts) || hosts.length === 0 || hosts.some((h) => typeof h !== 'string' || h.length === 0)) {
        throw new RingkvError('bad_request', 'hosts must be a non-empty array of HOST:PORT peer addresses', { field: 'hosts' });
      }
      const secret = target.secret ?? DEV_SECRET;
      const clientId = opts.clientId ?? `client-${process.pid}-${randomBytes(4).toString('hex')}`;
      const dial: Dialer = (ep, timeoutMs) => connectAsClient(ep, secret, clientId, timeoutMs);
      client = new RingkvClient(cfg, dial, [...hosts], 'peer');
    } else {
      throw new RingkvError('bad_request', 'connect target must be { socket } or { hosts }');
    }
    await client.bootstrap();
    return client;
  }

  private async bootstrap(): Promise<void> {
    const errors: string[] = [];
    for (const seed of this.seeds) {
      try {
        await this.connection(seed, undefined);
        if (this.cfg.ringRefreshMs > 0) {
          this.refreshTimer = setInterval(() => void this.refreshRing(undefined).catch(() => undefined), this.cfg.ringRefreshMs);
          this.refreshTimer.unref();
        }
        return;
      } catch (e) {
        errors.push((e as Error).message);
      }
    }
    this.shutdown();
    throw new RingkvError('unavailable', errors.join('; '));
  }

  /** The ring this client routes with (undefined before the first fetch). */
  get currentRing(): ClientRing | undefined {
    return this.ringState;
  }

  private endpoint(ep: string): Endpoint {
    let e = this.endpoints.get(ep);
    if (!e) {
      e = { conns: [], connecting: [], rr: 0, downUntil: 0, backoffMs: 0, nodeId: undefined };
      this.endpoints.set(ep, e);
    }
    return e;
  }

  /** A live pooled connection to `ep` (round-robin), opening one if needed. */
  private connection(ep: string, expectNode: string | undefined): Promise<ClientConnection> {
    if (this.closed) return Promise.reject(new NotSentError('unavailable', 'client is closed'));
    const e = this.endpoint(ep);
    const slot = e.rr++ % this.cfg.connectionsPerNode;
    const c = e.conns[slot];
    if (c && !c.closed) return Promise.resolve(c);
    let p = e.connecting[slot];
    if (!p) {
      p = this.open(ep, e, slot, expectNode).finally(() => {
        e.connecting[slot] = undefined;
      });
      e.connecting[slot] = p;
    }
    return p;
  }

  private async open(ep: string, e: Endpoint, slot: number, expectNode: string | undefined): Promise<ClientConnection> {
    let conn: ClientConnection | undefined;
    try {
      const { socket, leftover } = await this.dial(ep, this.cfg.connectTimeoutMs);
      conn = new ClientConnection(ep, socket, leftover, this.cfg.maxPending, this.cfg.maxQueued, this.cfg.maxReplyFrameBytes, (closed) => {
        if (e.conns[slot] === closed) e.conns[slot] = undefined;
      });
      // Hello: learn who answered and their limits; the ring comes along only if ours is stale.
      const hello = await conn.request({ op: 'ring', digest: this.ringState?.digest ?? '' }, 1, this.cfg.connectTimeoutMs);
      if (!hello.ok) throw replyError(hello);
      const node = typeof hello['node'] === 'string' ? hello['node'] : '';
      if (expectNode !== undefined && node !== '' && node !== expectNode) {
        // The same socket path on this machine belongs to another node (e.g. the ring lists a remote
        // node's path): never treat it as that replica.
        throw new RingkvError('unavailable', `${ep} is served by node ${node}, not ${expectNode}`);
      }
      conn.nodeId = node;
      conn.limits = hello['limits'] as IpcLimits | undefined;
      this.serverLimits ??= conn.limits;
      if (hello['ring'] !== undefined) this.adoptRing(hello['ring'] as RingInfo);
      e.nodeId = node || e.nodeId;
      e.conns[slot] = conn;
      e.backoffMs = 0;
      e.downUntil = 0;
      return conn;
    } catch (err) {
      conn?.close();
      e.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, e.backoffMs * 2));
      e.downUntil = Date.now() + e.backoffMs;
      const re = err instanceof RingkvError ? err : new RingkvError('unavailable', String(err));
      throw new NotSentError(re.code, re.message);
    }
  }

  private adoptRing(info: RingInfo): void {
    this.ringState = new ClientRing(info);
    this.lastRefresh = Date.now();
  }

  private endpointOf(node: RingInfo['nodes'][number]): string {
    return this.mode === 'ipc' ? node.ipc : node.peer;
  }

  /**
   * Where to send a request for `key`, best first: its up, reachable replicas in preference order,
   * then its other replicas, then any node we know (every node can coordinate every key).
   */
  private route(key: IpcKey | undefined): Array<{ ep: string; node: string | undefined }> {
    const out: Array<{ ep: string; node: string | undefined }> = [];
    const seen = new Set<string>();
    const add = (ep: string, node: string | undefined): void => {
      if (ep && !seen.has(ep)) {
        seen.add(ep);
        out.push({ ep, node });
      }
    };
    const now = Date.now();
    const ring = this.ringState;
    const later: Array<{ ep: string; node: string }> = [];
    if (key !== undefined && ring && this.cfg.tokenAware && ring.size > 0) {
      for (const idx of ring.replicasFor(key)) {
        const n = ring.nodes[idx]!;
        const ep = this.endpointOf(n);
        if (!ep) continue;
        const e = this.endpoints.get(ep);
        if (n.up && !(e && e.downUntil > now)) add(ep, n.id);
        else later.push({ ep, node: n.id });
      }
    }
    const fallbacks: Array<{ ep: string; node: string | undefined }> = [];
    for (const [ep, e] of this.endpoints) {
      if (e.conns.some((c) => c && !c.closed)) add(ep, e.nodeId);
      else fallbacks.push({ ep, node: e.nodeId });
    }
    for (const s of this.seeds) add(s, this.endpoints.get(s)?.nodeId);
    for (const l of later) add(l.ep, l.node);
    for (const f of fallbacks) if (!(this.endpoints.get(f.ep)!.downUntil > now)) add(f.ep, f.node);
    return out;
  }

  /**
   * Send to the first candidate that works. A request that was never written moves on to the next
   * candidate; one that was written and lost its connection is retried only if `idempotent`
   * (a blind write re-sent could create a sibling).
   */
  private async exec(
    candidates: Array<{ ep: string; node: string | undefined }>,
    msg: Record<string, unknown>,
    cost: number,
    timeoutMs: number,
    idempotent: boolean,
  ): Promise<AnyReply> {
    const deadline = Date.now() + timeoutMs;
    let last: RingkvError | undefined;
    for (const cand of candidates) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      let conn: ClientConnection;
      try {
        conn = await this.connection(cand.ep, cand.node);
      } catch (e) {
        last = e as RingkvError;
        continue;
      }
      try {
        const reply = await conn.request(msg, cost, deadline - Date.now());
        this.noteRv(reply.rv, conn);
        return reply;
      } catch (e) {
        const err = e instanceof RingkvError ? e : new RingkvError('internal', String(e));
        if (err instanceof NotSentError || (idempotent && err instanceof ConnectionLostError)) {
          last = err;
          continue;
        }
        // A write that left and got no answer may or may not have been applied: say so.
        if (!idempotent && (err instanceof ConnectionLostError || err instanceof ReplyTimeoutError)) throw plain(err, { outcome: 'unknown' });
        throw plain(err);
      }
    }
    if (last && last.code === 'timeout') throw plain(last);
    throw new RingkvError('unavailable', `no ringkv node could take the request${last ? `: ${last.message}` : ''}`);
  }

  /** A reply's ring digest differs from ours: fetch the new ring (single flight, rate limited). */
  private noteRv(rv: unknown, conn: ClientConnection): void {
    if (typeof rv !== 'string' || !this.ringState || rv === this.ringState.digest) return;
    if (this.refreshing || Date.now() - this.lastRefresh < MIN_RING_REFRESH_GAP_MS) return;
    void this.refreshRing(conn).catch(() => undefined);
  }

  private refreshRing(conn: ClientConnection | undefined): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.refreshing ??= (async () => {
      try {
        this.lastRefresh = Date.now();
        const msg = { op: 'ring', digest: this.ringState?.digest ?? '' };
        const reply = conn && !conn.closed ? await conn.request(msg, 1, this.cfg.timeoutMs) : await this.exec(this.route(undefined), msg, 1, this.cfg.timeoutMs, true);
        if (reply.ok && reply['ring'] !== undefined) this.adoptRing(reply['ring'] as RingInfo);
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private deadlineOf(o: { timeoutMs?: number | undefined }): number {
    return o.timeoutMs !== undefined ? o.timeoutMs + DEADLINE_GRACE_MS : this.cfg.timeoutMs;
  }

  async put(table: string, key: IpcKey, value: Uint8Array | string, opts: PutOptions = {}): Promise<WriteResult> {
    if (this.cfg.autoBatch) return writeOf(await this.coalesced({ ...opts, op: 'put', table, key, value }, opts.timeoutMs));
    const k = keyOf(key);
    const msg = withOpts({ op: 'put', table: validateTableName(table), key: k, value: valueOf(value) }, opts, PUT_FIELDS);
    const r = await this.exec(this.route(k), msg, 1, this.deadlineOf(opts), false);
    if (!r.ok) throw replyError(r);
    return toWriteResult(r);
  }

  /**
   * A key's value or siblings. A key whose siblings do not fit in one reply frame fails with
   * `too_large`, and the error's `details` carry its `context` (a put with it resolves the key),
   * the `siblings` that fit (null where left out), `omitted` and `sizes`.
   */
  async get(table: string, key: IpcKey, opts: GetOptions = {}): Promise<GetResult> {
    if (this.cfg.autoBatch) {
      const r = await this.coalesced({ ...opts, op: 'get', table, key }, opts.timeoutMs);
      if (!r.ok) {
        // Too large for a shared batch reply: read it alone (fits, or fails with the details above).
        if (r.code === 'too_large') return this.getAlone(table, key, opts);
        throw itemToError(r);
      }
      const { ok: _ok, ...g } = r as BatchItemResult & { ok: true };
      return g as unknown as GetResult;
    }
    return this.getAlone(table, key, opts);
  }

  private async getAlone(table: string, key: IpcKey, opts: GetOptions): Promise<GetResult> {
    const k = keyOf(key);
    const msg = withOpts({ op: 'get', table: validateTableName(table), key: k }, opts, GET_FIELDS);
    const r = await this.exec(this.route(k), msg, 1, this.deadlineOf(opts), true);
    if (!r.ok) throw replyError(r);
    return toGetResult(r);
  }

  /**
   * Up to `limit` (1..1000) live rows in token order, starting at `from`'s token (inclusive;
   * exclusive with `opts.exclusive`), wrapping the ring at most once. Sent to a replica of the
   * start key (its first range is then local to the coordinator); never coalesced into batches.
   * To page: pass the reply's `pagingState` as `from` ({ pagingState }) until `endOfRing`; the
   * pages then cover one turn of the ring from the first start, each key once.
   */
  async scan(table: string, from: ScanFrom, limit: number, opts: ScanOptions = {}): Promise<ScanResult> {
    let msg: Record<string, unknown>;
    let routeKey: IpcKey | undefined;
    if (typeof from === 'object' && !(from instanceof Uint8Array) && from !== null && 'pagingState' in from) {
      if (typeof from.pagingState !== 'string' || from.pagingState === '') throw new RingkvError('bad_request', 'pagingState must be the string a scan returned', { field: 'pagingState' });
      msg = withOpts({ op: 'scan', table: validateTableName(table), pagingState: from.pagingState, limit }, opts, SCAN_FIELDS);
    } else {
      routeKey = keyOf(from);
      msg = withOpts({ op: 'scan', table: validateTableName(table), key: routeKey, limit }, opts, SCAN_FIELDS);
    }
    const r = await this.exec(this.route(routeKey), msg, 1, this.deadlineOf(opts), true);
    if (!r.ok) throw replyError(r);
    return toScanResult(r);
  }

  async delete(table: string, key: IpcKey, opts: DeleteOptions = {}): Promise<WriteResult> {
    if (this.cfg.autoBatch) return writeOf(await this.coalesced({ ...opts, op: 'del', table, key }, opts.timeoutMs));
    const k = keyOf(key);
    const msg = withOpts({ op: 'del', table: validateTableName(table), key: k }, opts, PUT_FIELDS);
    const r = await this.exec(this.route(k), msg, 1, this.deadlineOf(opts), false);
    if (!r.ok) throw replyError(r);
    return toWriteResult(r);
  }

  /**
   * One CQL statement (as `POST /api/v1/query`): a SELECT's page of rows, or `applied` for any other
   * statement. `params` fill the `?` markers in order (a bigint beyond 2^53 goes as decimal text, a
   * Date as epoch milliseconds). A statement naming one partition by `=` on every partition key
   * column goes to a replica of that partition once the client knows the table's key (from an
   * earlier reply). SELECTs are retried on another node when a connection is lost; writes are not.
   */
  async query(cql: string, params?: readonly unknown[], opts: QueryOptions = {}): Promise<QueryResult> {
    if (typeof cql !== 'string' || cql.trim() === '') throw new RingkvError('bad_request', 'query must be a non-empty CQL statement', { field: 'query' });
    const p = params ?? [];
    const key = this.queries.partitionKeyOf(cql, p);
    const msg = withOpts({ op: 'query', query: cql, ...(params !== undefined ? { params: p.map(wireParam) } : {}) }, opts, QUERY_FIELDS);
    const idempotent = /^\s*select\b/i.test(cql);
    const r = await this.exec(this.route(key), msg, 1, this.deadlineOf(opts), idempotent);
    if (!r.ok) throw replyError(r);
    this.queries.learn(r['routing']);
    return toQueryResult(r);
  }

  /** Every page of a SELECT, in order (each page a `query` call continuing from the last one's paging state). */
  async *queryPages(cql: string, params?: readonly unknown[], opts: QueryOptions = {}): AsyncGenerator<QueryResult, void, undefined> {
    let pagingState = opts.pagingState;
    for (;;) {
      const page = await this.query(cql, params, pagingState === undefined ? opts : { ...opts, pagingState });
      yield page;
      if (page.pagingState === undefined) return;
      pagingState = page.pagingState;
    }
  }

  /** Calls waiting for this tick's coalesced batch, per timeoutMs (undefined: the default). */
  private coalescing = new Map<number | undefined, Array<{ item: ClientBatchItem; resolve: (r: BatchItemResult) => void }>>();
  private coalesceScheduled = false;

  private coalesced(item: ClientBatchItem, timeoutMs: number | undefined): Promise<BatchItemResult> {
    return new Promise((resolve) => {
      let q = this.coalescing.get(timeoutMs);
      if (!q) this.coalescing.set(timeoutMs, (q = []));
      q.push({ item, resolve });
      if (!this.coalesceScheduled) {
        this.coalesceScheduled = true;
        queueMicrotask(() => this.flushCoalesced());
      }
    });
  }

  private flushCoalesced(): void {
    this.coalesceScheduled = false;
    const all = this.coalescing;
    this.coalescing = new Map();
    for (const [timeoutMs, q] of all) {
      const items = q.map((x) => x.item);
      this.batch(items, timeoutMs === undefined ? {} : { timeoutMs }).then(
        (rs) => q.forEach((x, i) => x.resolve(rs[i]!)),
        (e: unknown) => {
          const err = e instanceof RingkvError ? e : new RingkvError('internal', String(e));
          for (const x of q) x.resolve(itemError(err));
        },
      );
    }
  }

  /**
   * The endpoint a key's request goes to first (its first up, reachable replica), without building
   * the whole candidate list: batches group items by it and only build the list once per group.
   */
  private primaryOf(key: IpcKey): string | undefined {
    const ring = this.ringState;
    if (!ring || !this.cfg.tokenAware || ring.size === 0) return undefined;
    const now = Date.now();
    const view = ring.replicaView(key);
    for (let i = 0; i < view.length; i++) {
      const n = ring.nodes[view[i]!]!;
      if (!n.up) continue;
      const ep = this.endpointOf(n);
      if (!ep) continue;
      const e = this.endpoints.get(ep);
      if (e && e.downUntil > now) continue;
      return ep;
    }
    return undefined;
  }

  /**
   * Many operations at once; one result per item, in order. Items are grouped by the replica they
   * route to and sent as pipelined batch frames (split by count and size). Failures are per item:
   * a frame that fails as a whole (timeout, lost connection) fails each of its items.
   */
  async batch(items: ClientBatchItem[], opts: { timeoutMs?: number } = {}): Promise<BatchItemResult[]> {
    if (!Array.isArray(items)) throw new RingkvError('bad_request', 'items must be an array', { field: 'items' });
    const results = new Array<BatchItemResult>(items.length);
    const groups = new Map<string, { cands: Array<{ ep: string; node: string | undefined }>; idx: number[]; wire: BatchItem[]; readOnly: boolean }>();
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      try {
        const k = keyOf(it.key);
        let wire: Record<string, unknown>;
        if (it.op === 'put') wire = withOpts({ op: 'put', table: validateTableName(it.table), key: k, value: valueOf(it.value) }, it, PUT_FIELDS);
        else if (it.op === 'get') wire = withOpts({ op: 'get', table: validateTableName(it.table), key: k }, it, GET_FIELDS);
        else if (it.op === 'del') wire = withOpts({ op: 'del', table: validateTableName(it.table), key: k }, it, PUT_FIELDS);
        else throw new RingkvError('bad_request', `op must be put, get or del, got ${JSON.stringify((it as { op?: unknown }).op)}`, { field: 'op' });
        // Group by the first endpoint; the whole candidate list (for failover) is built once per
        // group, from its first key: any node can coordinate any key.
        const primary = this.primaryOf(k);
        let g = primary !== undefined ? groups.get(primary) : undefined;
        if (!g) {
          const cands = this.route(k);
          const gk = cands[0]?.ep ?? '';
          g = groups.get(gk);
          if (!g) groups.set(gk, (g = { cands, idx: [], wire: [], readOnly: true }));
        }
        g.idx.push(i);
        g.wire.push(wire as unknown as BatchItem);
        if (it.op !== 'get') g.readOnly = false;
      } catch (e) {
        const err = e instanceof RingkvError ? e : new RingkvError('bad_request', String(e));
        results[i] = itemError(err);
      }
    }
    // Keep each frame well under the server's frame limit (half leaves room for msgpack overhead).
    const maxBytes = Math.floor((this.serverLimits?.maxFrameBytes ?? 16 * 1024 * 1024) / 2);
    const maxItems = Math.min(this.cfg.maxBatchItems, this.serverLimits?.maxBatchItems ?? Infinity);
    const timeoutMs = this.deadlineOf(opts);
    const sends: Array<Promise<void>> = [];
    for (const g of groups.values()) {
      let start = 0;
      while (start < g.wire.length) {
        let end = start;
        let bytes = 0;
        while (end < g.wire.length && end - start < maxItems) {
          const w = g.wire[end]!;
          const sz = 64 + keyBytesLength(w.key) + (w.op === 'put' ? (w.value as Uint8Array).length : 0) + (('context' in w && w.context?.length) || 0);
          if (end > start && bytes + sz > maxBytes) break;
          bytes += sz;
          end++;
        }
        const idx = g.idx.slice(start, end);
        const wire = g.wire.slice(start, end);
        const msg: Record<string, unknown> = { op: 'batch', items: wire };
        if (opts.timeoutMs !== undefined) msg['timeoutMs'] = opts.timeoutMs;
        sends.push(
          this.exec(g.cands, msg, wire.length, timeoutMs, g.readOnly).then(
            (r) => {
              const res = r['results'];
              if (!r.ok || !Array.isArray(res) || res.length !== idx.length) {
                const err = r.ok ? new RingkvError('internal', 'batch reply has the wrong number of results') : replyError(r);
                for (const i of idx) results[i] = itemError(err);
                return;
              }
              for (let j = 0; j < idx.length; j++) {
                const x = res[j] as Record<string, unknown>;
                results[idx[j]!] = x['ok'] === true ? ({ ok: true, ...(wire[j]!.op === 'get' ? toGetResult(x) : toWriteResult(x)) } as BatchItemResult) : itemError(replyError(x as AnyReply));
              }
            },
            (e: unknown) => {
              const err = e instanceof RingkvError ? e : new RingkvError('internal', String(e));
              for (const i of idx) results[i] = itemError(err);
            },
          ),
        );
        start = end;
      }
    }
    await Promise.all(sends);
    return results;
  }

  /**
   * Define a table (create it, or change its n / quorum), as `PUT /api/v1/tables/{t}` does:
   * `createTable('likes', { conflicts: 'crdt', type: 'counter' })`. Answers the definition.
   */
  async createTable(table: string, settings: TableSettings = {}): Promise<Record<string, unknown>> {
    const msg = withOpts({ op: 'define_table', table: validateTableName(table) }, settings, TABLE_FIELDS);
    const r = await this.exec(this.route(undefined), msg, 1, this.cfg.timeoutMs, true);
    if (!r.ok) throw replyError(r);
    return r['table'] as Record<string, unknown>;
  }

  /** A key of any `crdt` table, updated with operations in their JSON shape (what the HTTP API takes). */
  crdt(table: string, key: IpcKey): AnyCrdtHandle {
    return new AnyCrdtHandle(this.crdtTransport, validateTableName(table), keyOf(key));
  }

  /** A PN-counter key of a `crdt` table of type counter. */
  counter(table: string, key: IpcKey): CounterHandle {
    return new CounterHandle(this.crdtTransport, validateTableName(table), keyOf(key));
  }

  /** An add-wins set key of a `crdt` table of type set. */
  set(table: string, key: IpcKey): SetHandle {
    return new SetHandle(this.crdtTransport, validateTableName(table), keyOf(key));
  }

  /** A map key of a `crdt` table of type map. */
  map(table: string, key: IpcKey): MapHandle {
    return new MapHandle(this.crdtTransport, validateTableName(table), keyOf(key));
  }

  /** A last-write-wins register key of a `crdt` table of type register. */
  register(table: string, key: IpcKey): RegisterHandle {
    return new RegisterHandle(this.crdtTransport, validateTableName(table), keyOf(key));
  }

  /** An enable-wins flag key of a `crdt` table of type flag. */
  flag(table: string, key: IpcKey): FlagHandle {
    return new FlagHandle(this.crdtTransport, validateTableName(table), keyOf(key));
  }

  /**
   * CRDT requests go to a replica of the key one frame each (not coalesced into batches), and an
   * update is never resent once it left (`idempotent` false): see src/client/crdt.ts.
   */
  private readonly crdtTransport: CrdtTransport = {
    crdtUpdate: async (table, key, operation, opts) => {
      const msg = withOpts({ op: 'crdt_update', table, key, operation }, opts, PUT_FIELDS);
      const r = await this.exec(this.route(key), msg, 1, this.deadlineOf(opts), false);
      if (!r.ok) throw replyError(r);
      const out: CrdtUpdateResult = { value: r['value'] as CrdtValue, consistency: r['consistency'] as ConsistencyReport };
      if (typeof r['context'] === 'string') out.context = r['context'];
      return out;
    },
    crdtGet: async (table, key, opts) => {
      const msg = withOpts({ op: 'crdt_get', table, key }, opts, GET_FIELDS);
      const r = await this.exec(this.route(key), msg, 1, this.deadlineOf(opts), true);
      if (!r.ok) throw replyError(r);
      const out: CrdtReadResult = { found: r['found'] === true, value: r['value'] as CrdtValue, bytes: Number(r['bytes'] ?? 0), consistency: r['consistency'] as ConsistencyReport };
      if (typeof r['context'] === 'string') out.context = r['context'];
      return out;
    },
  };

  /** Fetch the ring from a node now (also updates the routing copy). */
  async ring(): Promise<RingInfo> {
    const r = await this.exec(this.route(undefined), { op: 'ring' }, 1, this.cfg.timeoutMs, true);
    if (!r.ok) throw replyError(r);
    const info = r['ring'] as RingInfo;
    this.adoptRing(info);
    return info;
  }

  /** The answering node's cluster status (same document as GET /api/v1/cluster). */
  async status(): Promise<unknown> {
    const r = await this.exec(this.route(undefined), { op: 'status' }, 1, this.cfg.timeoutMs, true);
    if (!r.ok) throw replyError(r);
    return r['status'];
  }

  /** Close every connection; pending requests fail with `unavailable`. */
  async close(): Promise<void> {
    this.shutdown();
  }

  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    for (const e of this.endpoints.values()) for (const c of e.conns) c?.close();
    this.endpoints.clear();
  }

  /** Connections currently open (for tests and metrics). */
  connectionCount(): number {
    let n = 0;
    for (const e of this.endpoints.values()) for (const c of e.conns) if (c && !c.closed) n++;
    return n;
  }
}

function itemToError(r: BatchItemResult & { ok: false }): RingkvError {
  return replyError(r);
}

function writeOf(r: BatchItemResult): WriteResult {
  if (!r.ok) throw itemToError(r);
  const w = r as BatchItemResult & { ok: true } & WriteResult;
  return { context: w.context, consistency: w.consistency };
}

/** An error as a batch item result; its details (field, a too-large get's context, ...) ride along. */
function itemError(e: RingkvError): BatchItemResult {
  return { ...(e.details ?? {}), ok: false, code: e.code, message: e.message } as BatchItemResult;
}

/** Internal marker subclasses must not leak to callers (they compare `instanceof RingkvError` only). */
function plain(e: RingkvError, extra?: Record<string, unknown>): RingkvError {
  if (e.constructor === RingkvError && extra === undefined) return e;
  return new RingkvError(e.code, e.message, extra === undefined ? e.details : { ...(e.details ?? {}), ...extra });
}
