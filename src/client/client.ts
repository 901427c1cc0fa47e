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
import { resolve as resolvePath } from 'node:path';
import type { AnyReply, BatchItem, BatchItemResult, ConsistencyLevel, ConsistencyReport, IpcKey, IpcLimits, RingInfo } from '../api/ipc-protocol.js';
import { connectAsClient } from '../cluster/handshake.js';
import { DEV_SECRET } from '../config/secret.js';
import { initHasher } from '../ring/hash.js';
import { validateTableName } from '../api/table-name.js';
import { RingkvError } from '../util/errors.js';
import { ClientConnection, ConnectionLostError, ipcDialer, NotSentError, ReplyTimeoutError, type Dialer } from './connection.js';
import { AnyCrdtHandle, CounterHandle, FlagHandle, MapHandle, RegisterHandle, SetHandle, type CrdtReadResult, type CrdtTransport, type CrdtUpdateResult, type CrdtValue } from './crdt.js';
import { QueryRouter, toQueryResult, wireParam, type QueryOptions, type QueryResult } from './query.js';
import { ClientRing } from './ring.js';
import { routeCandidates, type Candidate, type RoutingView } from './routing.js';
import { Coalescer, groupBatchItems, splitFrames } from './batcher.js';
import { BatchRequest, SingleRequest, type FrameEncoder } from './request-frames.js';
import type { ClientBatchItem, ClientOptions, ConnectTarget, DeleteOptions, GetOptions, GetResult, PutOptions, ScanFrom, ScanOptions, ScanResult, TableSettings, WriteResult } from './types.js';
import { asClientError, GET_FIELDS, itemError, itemResultOf, itemToError, keyOf, plain, PUT_FIELDS, QUERY_FIELDS, replyError, SCAN_FIELDS, TABLE_FIELDS, toGetResult, toScanResult, toWriteResult, valueOf, withOpts, writeOf } from './wire.js';

export { ClientRing };
export type * from './types.js';
export type { BatchItemResult, ConsistencyLevel, ConsistencyReport, IpcKey, RingInfo, QueryOptions, QueryResult };
export type { CrdtReadOptions, CrdtReadResult, CrdtRemoveOptions, CrdtUpdateOptions, CrdtUpdateResult, CrdtValue, MapValue } from './crdt.js';
export { AnyCrdtHandle, CounterHandle, FlagHandle, MapHandle, RegisterHandle, SetHandle } from './crdt.js';

// ---------------------------------------------------------------------------------------------
// Endpoints (one node address) and the client

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

/** Failed get results of items sent alone (their `too_large` is already the answer of a read alone). */
const SENT_ALONE = new WeakSet<BatchItemResult>();

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
  /** Single-key put/get/del of one tick, sent as one batch (`autoBatch`). */
  private readonly coalescer = new Coalescer((items, timeoutMs) => this.batch(items, timeoutMs === undefined ? {} : { timeoutMs }));

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

  private readonly endpointOf = (node: RingInfo['nodes'][number]): string => (this.mode === 'ipc' ? node.ipc : node.peer);

  /** Where to send a request for `key`, best first (the pure policy in routing.ts). */
  private route(key: IpcKey | undefined): Candidate[] {
    return routeCandidates(this.routingView(), key);
  }

  /** The routing policy's view of this client: one object, its ring and clock refreshed per use (no allocation per request). */
  private view: RoutingView | undefined;

  private routingView(): RoutingView {
    const v = (this.view ??= { ring: undefined, tokenAware: this.cfg.tokenAware, endpointOf: this.endpointOf, endpoints: this.endpoints, seeds: this.seeds, now: 0 });
    v.ring = this.ringState;
    v.now = Date.now();
    return v;
  }

  /**
   * Send to the first candidate that works. A request that was never written moves on to the next
   * candidate; one that was written and lost its connection is retried only if `idempotent`
   * (a blind write re-sent could create a sibling).
   */
  private async exec(
    candidates: Candidate[],
    msg: Record<string, unknown> | FrameEncoder,
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
        const err = asClientError(e);
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
    if (this.cfg.autoBatch) return writeOf(await this.coalescer.add(withOpts({ op: 'put', table, key, value }, opts, PUT_FIELDS), opts.timeoutMs));
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
      const r = await this.coalescer.add(withOpts({ op: 'get', table, key }, opts, GET_FIELDS), opts.timeoutMs);
      if (!r.ok) {
        // Too large for a shared batch reply: read it alone (fits, or fails with the details above),
        // unless it was read alone already.
        if (r.code === 'too_large' && !SENT_ALONE.has(r)) return this.getAlone(table, key, opts);
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
    if (this.cfg.autoBatch) return writeOf(await this.coalescer.add(withOpts({ op: 'del', table, key }, opts, PUT_FIELDS), opts.timeoutMs));
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

  /**
   * Many operations at once; one result per item, in order. Items are grouped by the replica they
   * route to and sent as pipelined batch frames (split by count and size). Failures are per item:
   * a frame that fails as a whole (timeout, lost connection) fails each of its items.
   */
  async batch(items: ClientBatchItem[], opts: { timeoutMs?: number } = {}): Promise<BatchItemResult[]> {
    if (!Array.isArray(items)) throw new RingkvError('bad_request', 'items must be an array', { field: 'items' });
    const results = new Array<BatchItemResult>(items.length);
    const view = this.routingView();
    const groups = groupBatchItems(items, view, results);
    // Keep each frame well under the server's frame limit (half leaves room for msgpack overhead).
    const maxBytes = Math.floor((this.serverLimits?.maxFrameBytes ?? 16 * 1024 * 1024) / 2);
    const maxItems = Math.min(this.cfg.maxBatchItems, this.serverLimits?.maxBatchItems ?? Infinity);
    const timeoutMs = this.deadlineOf(opts);
    const sends: Array<Promise<void>> = [];
    for (const g of groups.values()) {
      for (const [start, end] of splitFrames(g.wire, maxItems, maxBytes)) {
        if (end - start === 1) {
          sends.push(this.sendAlone(g.wire[start]!, g.cands, opts.timeoutMs, timeoutMs).then((r) => void (results[g.idx[start]!] = r)));
          continue;
        }
        const req = new BatchRequest(g.wire, start, end, opts.timeoutMs);
        const idx = g.idx;
        sends.push(
          this.exec(g.cands, req, req.length, timeoutMs, g.readOnly).then(
            (r) => {
              const res = r['results'];
              if (!r.ok || !Array.isArray(res) || res.length !== req.length) {
                const err = r.ok ? new RingkvError('internal', 'batch reply has the wrong number of results') : replyError(r);
                for (let j = start; j < end; j++) results[idx[j]!] = itemError(err);
                return;
              }
              for (let j = start; j < end; j++) results[idx[j]!] = itemResultOf(g.wire[j]!.op, res[j - start] as Record<string, unknown>);
            },
            (e: unknown) => {
              const err = asClientError(e);
              for (let j = start; j < end; j++) results[idx[j]!] = itemError(err);
            },
          ),
        );
      }
    }
    await Promise.all(sends);
    return results;
  }

  /**
   * One batch item sent as its own op (a frame of one item): its result as the batch would give it.
   * A get's failure is marked SENT_ALONE: a `too_large` there is already the answer of a read alone.
   */
  private async sendAlone(item: BatchItem, cands: Candidate[], itemTimeoutMs: number | undefined, timeoutMs: number): Promise<BatchItemResult> {
    let res: BatchItemResult;
    try {
      res = itemResultOf(item.op, await this.exec(cands, new SingleRequest(item, itemTimeoutMs), 1, timeoutMs, item.op === 'get'));
    } catch (e) {
      res = itemError(asClientError(e));
    }
    if (!res.ok && item.op === 'get') SENT_ALONE.add(res);
    return res;
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
