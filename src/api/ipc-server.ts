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
 */
import { lstat, unlink } from 'node:fs/promises';
import { chmodSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameError } from '../net/frames.js';
import { ReplyBudget, type ReplyAccount } from '../net/reply-budget.js';
import { ReplyWriter } from '../net/reply-writer.js';
import { tokenToHex } from '../ring/hash.js';
import type { RingLayout } from '../ring/builder.js';
import { parseConsistency, type ConsistencySpec } from '../router/consistency.js';
import type { Done, ReadRequest, ReadResult, Router, ScanResult, WriteRequest, WriteResult } from '../router/router.js';
import { SCAN_LIMITS } from '../router/scan.js';
import { validateTableName } from '../router/tables.js';
import { asRingkvError, badRequest, invariant, RingkvError, type ErrorCode } from '../util/errors.js';
import {
  IPC_PROTOCOL_VERSION,
  MAX_REQUEST_ID,
  type BatchItemResult,
  type ErrorReply,
  type GetOk,
  type IpcLimits,
  type RingInfo,
  type ScanOk,
  type ScanRowOk,
  type WriteOk,
} from './ipc-protocol.js';

export type { RingInfo, IpcLimits };

export interface IpcDeps {
  /** Unix socket path. A stale socket file is removed at start; a live one makes start fail. */
  path: string;
  /** A Pick so protocol tests can pass an in-process fake (see `promiseRouter`). */
  router: IpcRouter;
  ringInfo: () => RingInfo;
  /** Cheap digest for the `rv` of every reply; defaults to `ringInfo().digest` (which builds the whole info). */
  ringDigest?: () => string;
  /** This node's id, reported by `ring` so clients can check they reached the node they meant. */
  nodeId?: string;
  clusterStatus: () => Promise<unknown>;
  limits: IpcLimits & {
    /** Concurrent connections accepted on the socket (default 1024). */
    maxConnections?: number;
  };
  /**
   * Reply-byte bounds (per connection and node-wide), shared with the node's other servers; default:
   * a budget of this server's own with the default limits.
   */
  replies?: ReplyBudget;
  log: Logger;
}

export interface IpcStats {
  connections: number;
  inFlight: number;
  /** Highest in-flight count any single connection reached (bounded by maxInFlightPerConnection). */
  maxInFlightSeen: number;
  /** Request frames accepted (a batch counts once). */
  requests: number;
  /** Connections closed for a malformed, oversized or id-less frame. */
  badFrames: number;
  /** Times a connection was paused for backpressure. */
  pauses: number;
  /** Connections currently paused (in-flight bound reached, work queued, or the client not reading). */
  pausedConnections: number;
  /** Reply bytes of open connections: reserved for units in flight + written and not yet drained. */
  replyBytes: number;
}

export interface IpcServer {
  /** Serve one already-connected socket (the peer port hands over authenticated clients here). */
  handleConnection(socket: Socket, leftover?: Buffer): void;
  stats(): IpcStats;
  close(): Promise<void>;
}

/**
 * What the IPC server needs of the router: the callback forms (no promise per batch item). Scans
 * are optional so protocol fakes need not implement them (a server without one answers
 * `unavailable`).
 */
export type IpcRouter = Pick<Router, 'startWrite' | 'startRead'> & Partial<Pick<Router, 'startScan'>>;

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

// ---------------------------------------------------------------------------------------------
// Request validation

interface KvOp {
  kind: 'put' | 'get' | 'del';
  table: string;
  key: Uint8Array;
  value: Uint8Array;
  context: string | undefined;
  consistency: ConsistencySpec;
  timeoutMs: number | undefined;
}

type Msg = Record<string, unknown>;

function isMsg(x: unknown): x is Msg {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

// Decoded bins are views into the read chunk and stay so: shards get keys and values copied into
// their wire message, peers into frames, and the hint store detaches what it posts to its worker.
// A view pins its chunk only while its request is in flight (bounded per connection).

function parseKey(v: unknown, limits: IpcLimits): Uint8Array {
  let bytes: Uint8Array;
  if (typeof v === 'string') bytes = Buffer.from(v, 'utf8');
  else if (v instanceof Uint8Array) bytes = v;
  else throw badRequest('key must be a non-empty string or bin', { field: 'key' });
  if (bytes.length === 0) throw badRequest('key must be a non-empty string or bin', { field: 'key' });
  if (bytes.length > limits.maxKeyBytes) {
    throw new RingkvError('too_large', `key is ${bytes.length} bytes; the limit is ${limits.maxKeyBytes}`, { field: 'key' });
  }
  return bytes;
}

function parseValue(v: unknown, limits: IpcLimits): Uint8Array {
  let bytes: Uint8Array;
  if (v instanceof Uint8Array) bytes = v;
  else if (typeof v === 'string') bytes = Buffer.from(v, 'utf8');
  else throw badRequest('value is required: bin (stored byte-exact) or str (stored as UTF-8)', { field: 'value' });
  if (bytes.length > limits.maxValueBytes) {
    throw new RingkvError('too_large', `value is ${bytes.length} bytes; the limit is ${limits.maxValueBytes}`, { field: 'value' });
  }
  return bytes;
}

function parseTimeout(v: unknown, field = 'timeoutMs'): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 600_000) {
    throw badRequest(`${field} must be an integer between 1 and 600000, got ${JSON.stringify(v)}`, { field });
  }
  return v;
}

function parseKvOp(m: Msg, limits: IpcLimits, defaultTimeout: number | undefined): KvOp {
  const op = m['op'];
  if (op !== 'put' && op !== 'get' && op !== 'del') throw badRequest(`op must be put, get or del, got ${JSON.stringify(op)}`, { field: 'op' });
  const table = validateTableName(m['table']);
  const key = parseKey(m['key'], limits);
  const value = op === 'put' ? parseValue(m['value'], limits) : new Uint8Array(0);
  let context: string | undefined;
  if (op !== 'get') {
    const c = m['context'];
    if (c !== undefined && c !== null && typeof c !== 'string') throw badRequest('context must be a string returned by a read', { field: 'context' });
    context = c === null || c === '' ? undefined : c;
  }
  // Only the knob relevant to the op is parsed, so a stray `r` on a put is ignored, not validated.
  const consistency =
    op === 'get'
      ? parseConsistency({ consistency: m['consistency'] ?? undefined, n: m['n'] ?? undefined, r: m['r'] ?? undefined })
      : parseConsistency({ consistency: m['consistency'] ?? undefined, n: m['n'] ?? undefined, w: m['w'] ?? undefined });
  const timeoutMs = parseTimeout(m['timeoutMs']) ?? defaultTimeout;
  return { kind: op, table, key, value, context, consistency, timeoutMs };
}

interface ScanParsed {
  table: string;
  key: Uint8Array;
  limit: number;
  exclusive: boolean;
  consistency: ConsistencySpec;
  timeoutMs: number | undefined;
}

function parseScan(m: Msg, limits: IpcLimits): ScanParsed {
  const table = validateTableName(m['table']);
  const key = parseKey(m['key'], limits);
  const limit = m['limit'];
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > SCAN_LIMITS.maxLimit) {
    throw badRequest(`limit must be an integer between 1 and ${SCAN_LIMITS.maxLimit}, got ${JSON.stringify(limit)}`, { field: 'limit' });
  }
  const ex = m['exclusive'];
  if (ex !== undefined && ex !== null && typeof ex !== 'boolean') throw badRequest('exclusive must be a bool', { field: 'exclusive' });
  const consistency = parseConsistency({ consistency: m['consistency'] ?? undefined, n: m['n'] ?? undefined, r: m['r'] ?? undefined });
  return { table, key, limit, exclusive: ex === true, consistency, timeoutMs: parseTimeout(m['timeoutMs']) };
}

/** Rows as `get` answers a key: `value` for one live version, `siblings` for more; bins untouched. */
function scanOk(res: ScanResult): ScanOk {
  const rows: ScanRowOk[] = res.rows.map((row) => putValues<ScanRowOk>({ key: asBuffer(row.key), context: row.context }, row.values));
  return { rows, truncated: res.truncated, consistency: res.consistency };
}

/** Valid ids are uint32; a client library may still encode a small id as uint64 (decoded as a BigInt). */
function parseId(v: unknown): number | null {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_REQUEST_ID) return v;
  if (typeof v === 'bigint' && v >= 0n && v <= BigInt(MAX_REQUEST_ID)) return Number(v);
  return null;
}

function errorFields(err: unknown): { code: ErrorCode; message: string; field?: string } {
  const e = asRingkvError(err);
  const field = e.details?.['field'];
  return typeof field === 'string' ? { code: e.code, message: e.message, field } : { code: e.code, message: e.message };
}

// Reply size guard: keep every reply under the frame limit (the client would drop the connection).
// Per-result msgpack overhead beyond the value bytes (field names, consistency report incl. a clamp
// note, bin headers), deliberately generous: the exact check happens after encoding.
const REPLY_OVERHEAD = 160;
const FRAME_HEADROOM = 1024;

function getOk(res: ReadResult): GetOk {
  return putValues<GetOk>({ found: res.values.length > 0, context: res.context, consistency: res.consistency }, res.values);
}

/** A key's live versions as replies carry them: `value` for one, `siblings` for more (bins untouched). */
function putValues<T extends { value?: Buffer; siblings?: Buffer[] }>(out: T, values: ReadResult['values']): T {
  if (values.length === 1) out.value = asBuffer(values[0]!.value);
  else if (values.length > 1) out.siblings = values.map((v) => asBuffer(v.value));
  return out;
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function estimateBytes(r: WriteOk | GetOk | ItemErrorLike): number {
  let n = REPLY_OVERHEAD;
  if ('context' in r) n += r.context.length;
  if ('message' in r) n += r.message.length;
  if ('value' in r && r.value) n += r.value.length;
  if ('siblings' in r && r.siblings) for (const s of r.siblings) n += s.length + 5;
  return n;
}
type ItemErrorLike = { code: ErrorCode; message: string; field?: string };

// ---------------------------------------------------------------------------------------------
// Connections

interface BatchState {
  id: number;
  results: BatchItemResult[];
  pending: number;
  bytes: number;
  /** Reply bytes of this batch on the connection's account: finished items held, running items reserved. */
  held: number;
  reserved: number;
}

type Work = (
  | { t: 'kv'; id: number; op: KvOp }
  | { t: 'item'; batch: BatchState; index: number; op: KvOp }
  | { t: 'scan'; id: number; op: ScanParsed }
  | { t: 'ring'; id: number; digest: string | undefined }
  | { t: 'status'; id: number }
) & {
  /** Bytes reserved on the connection's account while the unit runs. */
  reserved?: number;
};

/** What a write's reply is reserved at (a context and a consistency report: small, bounded). */
const WRITE_REPLY_RESERVE_BYTES = 1024;

/** Reads may be run again when their finished reply does not fit the connection's reply bytes. */
function isRead(w: Work): boolean {
  return w.t === 'kv' || w.t === 'item' ? w.op.kind === 'get' : true;
}

type Outcome = { ok: true; value: WriteOk | GetOk | ScanOk | Record<string, unknown> } | { ok: false; err: unknown };

/** How long a connection we closed for a protocol error may linger draining its last error frame. */
const CLOSE_LINGER_MS = 2000;
/** How long close() waits for in-flight requests to finish before cutting connections. */
const CLOSE_DRAIN_MS = 2000;

class Connection {
  private readonly decoder: FrameDecoder;
  private queue: Array<Work | undefined> = [];
  private qHead = 0;
  inFlight = 0;
  closed = false;
  private readEnded = false;
  private readonly onDataBound = (chunk: Buffer): void => this.onData(chunk);
  private drainWaiter: (() => void) | undefined;
  readonly account: ReplyAccount;
  private readonly writer: ReplyWriter;

  constructor(
    private readonly srv: IpcServerImpl,
    readonly socket: Socket,
  ) {
    this.decoder = new FrameDecoder(srv.limits.maxFrameBytes);
    // Until the connection has shown its reply sizes, assume each read returns a full-size value.
    this.account = srv.replies.open(srv.limits.maxValueBytes + REPLY_OVERHEAD, () => this.pump());
    this.writer = new ReplyWriter(socket, this.account, () => this.pump());
  }

  start(leftover: Buffer | undefined): void {
    const s = this.socket;
    s.on('error', (e: Error) => this.srv.log.debug({ err: e.message }, 'ipc connection error'));
    s.on('close', () => this.onClose());
    s.on('data', this.onDataBound);
    // A client may half-close after its last request: answer everything, then close our side.
    s.on('end', () => {
      this.readEnded = true;
      if (this.decoder.bufferedBytes > 0) {
        // The stream ended inside a frame: a truncated request we can never answer.
        this.srv.badFrames++;
        this.srv.log.warn({ bytes: this.decoder.bufferedBytes }, 'ipc connection ended inside a frame');
      }
      this.pump();
    });
    if (leftover && leftover.length > 0) this.onData(leftover);
    // Start reading (a handed-over socket arrives paused by its previous owner) unless the leftover
    // alone already filled the bound.
    this.updateFlow();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    let msgs: unknown[];
    try {
      msgs = this.decoder.push(chunk);
    } catch (e) {
      const fe = e instanceof FrameError ? e : new FrameError('malformed_frame', String(e));
      this.protocolError(fe.code === 'frame_too_large' ? 'too_large' : 'bad_request', fe.message);
      return;
    }
    for (const m of msgs) {
      this.accept(m);
      if (this.closed) return;
    }
    this.pump();
  }

  /** Validate one request frame: errors answer at once (no router work); valid work is queued. */
  private accept(raw: unknown): void {
    const m = isMsg(raw) ? raw : undefined;
    const id = m ? parseId(m['id']) : null;
    if (!m || id === null) {
      this.protocolError('bad_request', 'every request must be a msgpack map with an unsigned 32-bit integer id');
      return;
    }
    this.srv.requests++;
    const op = m['op'];
    try {
      switch (op) {
        case 'put':
        case 'get':
        case 'del':
          this.enqueue({ t: 'kv', id, op: parseKvOp(m, this.srv.limits, undefined) });
          return;
        case 'scan':
          this.enqueue({ t: 'scan', id, op: parseScan(m, this.srv.limits) });
          return;
        case 'batch':
          this.acceptBatch(id, m);
          return;
        case 'ring': {
          const d = m['digest'];
          this.enqueue({ t: 'ring', id, digest: typeof d === 'string' ? d : undefined });
          return;
        }
        case 'status':
          this.enqueue({ t: 'status', id });
          return;
        default:
          throw badRequest(`op must be one of put, get, del, scan, batch, ring, status; got ${JSON.stringify(op)}`, { field: 'op' });
      }
    } catch (e) {
      this.reply({ id, ok: false, ...errorFields(e), rv: this.srv.digest() } satisfies ErrorReply);
    }
  }

  private acceptBatch(id: number, m: Msg): void {
    const items = m['items'];
    if (!Array.isArray(items)) throw badRequest('items must be an array of {op: put|get|del, ...}', { field: 'items' });
    const timeout = parseTimeout(m['timeoutMs']);
    const batch: BatchState = { id, results: new Array<BatchItemResult>(items.length), pending: 0, bytes: REPLY_OVERHEAD, held: 0, reserved: 0 };
    const valid: Array<{ index: number; op: KvOp }> = [];
    for (let i = 0; i < items.length; i++) {
      const it: unknown = items[i];
      try {
        if (!isMsg(it)) throw badRequest('each batch item must be a map {op: put|get|del, ...}', { field: 'op' });
        valid.push({ index: i, op: parseKvOp(it, this.srv.limits, timeout) });
      } catch (e) {
        const r: BatchItemResult = { ok: false, ...errorFields(e) };
        batch.results[i] = r;
        batch.bytes += estimateBytes(r);
      }
    }
    batch.pending = valid.length;
    if (valid.length === 0) {
      this.replyBatch(batch);
      return;
    }
    for (const v of valid) this.enqueue({ t: 'item', batch, index: v.index, op: v.op });
  }

  private enqueue(w: Work): void {
    this.queue.push(w);
  }

  /**
   * Start queued work while under the in-flight bound and the reply bytes allow it (the client keeps
   * up with its replies). A batch's own items never hold each other back: the batch answers as one
   * frame, bounded by the frame limit.
   */
  pump(): void {
    const max = this.srv.limits.maxInFlightPerConnection;
    while (!this.closed && !this.socket.destroyed && this.inFlight < max && this.qHead < this.queue.length) {
      const w = this.queue[this.qHead]!;
      const need = isRead(w) ? this.account.estimate : WRITE_REPLY_RESERVE_BYTES;
      if (!this.account.canStart(need, w.t === 'item' ? w.batch.held + w.batch.reserved : 0)) break;
      this.queue[this.qHead++] = undefined;
      w.reserved = need;
      this.account.reserve(need);
      if (w.t === 'item') w.batch.reserved += need;
      this.inFlight++;
      this.srv.inFlight++;
      if (this.inFlight > this.srv.maxInFlightSeen) this.srv.maxInFlightSeen = this.inFlight;
      this.run(w);
    }
    if (this.qHead === this.queue.length) {
      this.queue = [];
      this.qHead = 0;
    }
    this.updateFlow();
    if (this.inFlight === 0) {
      this.drainWaiter?.();
      if (this.readEnded && this.qHead === this.queue.length && !this.closed) {
        this.shutdown();
        this.socket.end();
      }
    }
  }

  /**
   * Pause or resume reading. Uses the socket's own paused state rather than a flag of ours: a
   * handed-over socket's previous owner may resume it behind our back, and the next data event
   * then simply pauses it again.
   */
  private updateFlow(): void {
    if (this.closed) return;
    const full = this.inFlight >= this.srv.limits.maxInFlightPerConnection || this.qHead < this.queue.length || this.account.atLimit || this.srv.closing;
    const paused = this.socket.isPaused();
    if (full && !paused) {
      this.srv.pauses++;
      this.socket.pause();
    } else if (!full && paused) {
      this.socket.resume();
    }
  }

  get isPaused(): boolean {
    return !this.closed && this.socket.isPaused();
  }

  private run(w: Work): void {
    const router = this.srv.deps.router;
    switch (w.t) {
      case 'kv':
      case 'item': {
        const op = w.op;
        if (op.kind === 'get') {
          router.startRead({ table: op.table, key: op.key, consistency: op.consistency, timeoutMs: op.timeoutMs }, (err, r) =>
            this.complete(w, err ? { ok: false, err } : { ok: true, value: getOk(r!) }),
          );
          return;
        }
        const req: WriteRequest = {
          table: op.table,
          key: op.key,
          value: op.value,
          tombstone: op.kind === 'del',
          context: op.context,
          consistency: op.consistency,
          timeoutMs: op.timeoutMs,
        };
        router.startWrite(req, (err, r) => this.complete(w, err ? { ok: false, err } : { ok: true, value: { context: r!.context, consistency: r!.consistency } satisfies WriteOk }));
        return;
      }
      case 'scan': {
        const op = w.op;
        if (!router.startScan) {
          queueMicrotask(() => this.complete(w, { ok: false, err: new RingkvError('unavailable', 'this server does not serve scans') }));
          return;
        }
        router.startScan(
          { table: op.table, startKey: op.key, exclusive: op.exclusive, limit: op.limit, consistency: op.consistency, timeoutMs: op.timeoutMs },
          (err, r) => this.complete(w, err ? { ok: false, err } : { ok: true, value: scanOk(r!) }),
        );
        return;
      }
      case 'ring': {
        let value: Record<string, unknown>;
        try {
          const info = this.srv.deps.ringInfo();
          const base = { protocol: IPC_PROTOCOL_VERSION, node: this.srv.deps.nodeId ?? '', limits: this.srv.publicLimits };
          value = w.digest === info.digest ? { ...base, unchanged: true } : { ...base, ring: info };
        } catch (err) {
          queueMicrotask(() => this.complete(w, { ok: false, err }));
          return;
        }
        queueMicrotask(() => this.complete(w, { ok: true, value }));
        return;
      }
      case 'status':
        this.srv.deps.clusterStatus().then(
          (status) => this.complete(w, { ok: true, value: { status } }),
          (err: unknown) => this.complete(w, { ok: false, err }),
        );
    }
  }

  private complete(w: Work, out: Outcome): void {
    this.inFlight--;
    this.srv.inFlight--;
    const reserved = w.reserved ?? 0;
    this.account.unreserve(reserved);
    if (w.t === 'item') w.batch.reserved -= reserved;
    if (!out.ok) {
      const f = errorFields(out.err);
      if (f.code === 'internal') this.srv.log.error({ err: out.err }, 'ipc request failed');
    }
    // A closed connection's results are dropped here, not queued.
    if (!this.closed) {
      if (w.t === 'item') this.completeItem(w, out);
      else {
        const frame = this.encodeReply(this.outcomeMessage(w.id, out));
        if (isRead(w)) this.account.observe(frame.length);
        if (isRead(w) && !this.account.fits(frame.length)) this.runAgain(w);
        else this.send(frame);
      }
    }
    this.pump();
  }

  /**
   * A read whose reply does not fit the connection's reply bytes (the client holds others it has
   * not read): drop the result and run the read again, first in line, once there is room.
   */
  private runAgain(w: Work): void {
    this.account.rerun();
    if (this.qHead > 0) this.queue[--this.qHead] = w;
    else this.queue.unshift(w);
  }

  private completeItem(w: Work & { t: 'item' }, out: Outcome): void {
    const b = w.batch;
    let r: BatchItemResult = out.ok ? ({ ok: true, ...(out.value as WriteOk | GetOk) } as BatchItemResult) : { ok: false, ...errorFields(out.err) };
    let size = estimateBytes(r as WriteOk | GetOk | ItemErrorLike);
    if (isRead(w)) {
      this.account.observe(size);
      if (!this.account.fits(size, b.held)) {
        this.runAgain(w);
        return;
      }
    }
    const index = w.index;
    if (b.bytes + size > this.srv.replyBudget) {
      r = {
        ok: false,
        code: 'too_large',
        message: `the batch reply would exceed the ${this.srv.limits.maxFrameBytes}-byte frame limit; read this key in a separate request`,
      };
      size = estimateBytes(r);
    }
    b.bytes += size;
    b.held += size;
    this.account.hold(size);
    b.results[index] = r;
    if (--b.pending === 0) this.replyBatch(b);
  }

  private replyBatch(b: BatchState): void {
    // The items' bytes become the batch frame's.
    this.account.release(b.held);
    b.held = 0;
    this.reply({ id: b.id, ok: true, results: b.results, rv: this.srv.digest() });
  }

  private outcomeMessage(id: number, out: Outcome): Record<string, unknown> {
    if (!out.ok) return { id, ok: false, ...errorFields(out.err), rv: this.srv.digest() } satisfies ErrorReply;
    const v = out.value;
    if ('found' in v && estimateBytes(v as GetOk) > this.srv.replyBudget) {
      const g = v as GetOk;
      return {
        id,
        ok: false,
        code: 'too_large',
        message: `the reply (${g.siblings ? `${g.siblings.length} siblings` : 'one value'}) exceeds the ${this.srv.limits.maxFrameBytes}-byte frame limit`,
        rv: this.srv.digest(),
      } satisfies ErrorReply;
    }
    return { id, ok: true, ...v, rv: this.srv.digest() };
  }

  private reply(msg: Record<string, unknown>): void {
    this.send(this.encodeReply(msg));
  }

  private send(frame: Buffer): void {
    if (this.closed || !this.socket.writable) return;
    this.writer.write(frame);
  }

  private encodeReply(msg: Record<string, unknown>): Buffer {
    let frame = encodeFrame(msg);
    if (frame.length - FRAME_HEADER_BYTES > this.srv.limits.maxFrameBytes) {
      // The size estimates above should prevent this; never send a frame the client must reject.
      frame = encodeFrame({
        id: msg['id'] as number,
        ok: false,
        code: 'too_large',
        message: `the reply is ${frame.length - FRAME_HEADER_BYTES} bytes, over the ${this.srv.limits.maxFrameBytes}-byte frame limit; request fewer items`,
        rv: this.srv.digest(),
      } satisfies ErrorReply);
    }
    return frame;
  }

  /**
   * A frame we cannot trust: tell the client why (id nil), stop reading, and close this connection
   * only. Queued work is dropped; requests already at the router finish but are not answered.
   */
  private protocolError(code: ErrorCode, message: string): void {
    if (this.closed) return;
    this.srv.badFrames++;
    this.srv.log.warn({ code, message }, 'closing ipc connection after a bad frame');
    this.socket.removeListener('data', this.onDataBound);
    const frame = encodeFrame({ id: null, ok: false, code, message } satisfies ErrorReply);
    this.shutdown();
    this.socket.end(frame);
    const t = setTimeout(() => this.socket.destroy(), CLOSE_LINGER_MS);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
  }

  /** Stop processing: no more reads, drop queued work and the replies not yet drained. */
  private shutdown(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.qHead = 0;
    this.account.close();
    this.socket.pause();
    this.srv.forget(this);
  }

  private onClose(): void {
    this.shutdown();
    this.drainWaiter?.();
  }

  /** Used by IpcServer.close: stop reading and resolve once in-flight work is answered (or closed). */
  drain(): Promise<void> {
    this.updateFlow();
    if (this.inFlight === 0 || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.drainWaiter = resolve;
    });
  }
}

class IpcServerImpl implements IpcServer {
  inFlight = 0;
  maxInFlightSeen = 0;
  requests = 0;
  badFrames = 0;
  pauses = 0;
  closing = false;
  readonly log: Logger;
  readonly replies: ReplyBudget;
  readonly limits: IpcLimits;
  readonly publicLimits: IpcLimits;
  /** Estimated reply bytes allowed, leaving room for msgpack framing the estimate does not count. */
  readonly replyBudget: number;
  private readonly conns = new Set<Connection>();
  server: Server | undefined;

  constructor(readonly deps: IpcDeps) {
    this.log = deps.log;
    const l = deps.limits;
    for (const [k, v] of Object.entries({ maxKeyBytes: l.maxKeyBytes, maxValueBytes: l.maxValueBytes, maxFrameBytes: l.maxFrameBytes, maxInFlightPerConnection: l.maxInFlightPerConnection })) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`ipc limits.${k} must be a positive integer, got ${String(v)}`);
    }
    this.limits = { maxKeyBytes: l.maxKeyBytes, maxValueBytes: l.maxValueBytes, maxFrameBytes: l.maxFrameBytes, maxInFlightPerConnection: l.maxInFlightPerConnection };
    this.publicLimits = Object.freeze({ ...this.limits });
    this.replyBudget = l.maxFrameBytes - Math.min(FRAME_HEADROOM, l.maxFrameBytes >> 2);
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

/** Is something accepting connections on this socket path? */
function probeSocket(path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path });
    const t = setTimeout(() => {
      s.destroy();
      resolve(true); // it exists and did not refuse: assume a live but busy owner
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      s.destroy();
      if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') resolve(false);
      else if (e.code === 'EAGAIN') resolve(true); // backlog full: very much alive
      else reject(e);
    });
  });
}

/** Remove a stale socket file left by a crashed node; refuse if a live server still answers on it. */
async function claimSocketPath(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isSocket()) throw new RingkvError('conflict', `${path} exists and is not a socket; refusing to replace it`);
  if (await probeSocket(path, 1000)) throw new RingkvError('conflict', `another ringkv node owns ${path}`);
  try {
    await unlink(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

// sun_path is 108 bytes on Linux (104 on macOS) including the terminating NUL.
const MAX_SOCKET_PATH_BYTES = process.platform === 'linux' ? 107 : 103;

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
