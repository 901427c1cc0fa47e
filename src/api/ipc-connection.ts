/**
 * One IPC connection: frames in, work units through the router with per-connection flow control
 * (in-flight bound, reply-byte account, pauses), batches fanned out and assembled in item order,
 * replies out, and its lifecycle (half-close, failing on an untrusted frame, drain on close).
 * The flow-control rules are described in ipc-server.ts; the server owns the connections.
 */
import { type Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import { encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameError } from '../net/frames.js';
import { ReplyBudget, type ReplyAccount } from '../net/reply-budget.js';
import { ReplyWriter } from '../net/reply-writer.js';
import type { WriteRequest } from '../router/router.js';
import { badRequest, RingkvError, type ErrorCode } from '../util/errors.js';
import {
  errorWithDetails,
  parseCrdtGet,
  parseCrdtUpdate,
  parseDefineTable,
  type CrdtGetParsed,
  type CrdtUpdateParsed,
  type DefineTableParsed,
} from './ipc-crdt.js';
import {
  IPC_OPS,
  IPC_PROTOCOL_VERSION,
  type BatchItemResult,
  type ErrorReply,
  type GetOk,
  type IpcLimits,
  type ItemError,
  type ScanOk,
  type WriteOk,
} from './ipc-protocol.js';
import { batchOkFrame, getOkFrame, writeOkFrame } from './ipc-reply-frames.js';
import { BatchAssembly, errorFields, estimateBytes, getOk, REPLY_OVERHEAD, scanOk, tooLargeGet } from './ipc-replies.js';
import {
  decodeRequest,
  describeValue,
  fieldName,
  isMsg,
  parseDigest,
  parseId,
  parseKvOp,
  parseQuery,
  parseScan,
  parseTimeout,
  refuseForeignFields,
  type DecodedRequest,
  type KvOp,
  type Msg,
  type QueryParsed,
  type ScanParsed,
  type ShapeProblem,
} from './ipc-request.js';
import type { IpcDeps } from './ipc-server-types.js';

/** What a connection uses of its server (IpcServerImpl in ipc-server.ts): counters, limits, budgets. */
export interface ConnectionHost {
  inFlight: number;
  maxInFlightSeen: number;
  requests: number;
  badFrames: number;
  pauses: number;
  readonly closing: boolean;
  readonly log: Logger;
  readonly deps: IpcDeps;
  readonly replies: ReplyBudget;
  readonly limits: IpcLimits;
  readonly publicLimits: Required<IpcLimits>;
  readonly maxBatchItems: number;
  readonly replyBudget: number;
  digest(): string;
  forget(c: Connection): void;
}

// ---------------------------------------------------------------------------------------------
// Connections

/**
 * A batch in progress: its reply, assembled in item order (BatchAssembly), and its bytes on the
 * connection's reply account.
 */
interface BatchRun {
  readonly asm: BatchAssembly;
  /**
   * Estimated bytes of the results recorded so far (the decided prefix and those held out of
   * order), held on the account until the batch's frame is written.
   */
  held: number;
  /** Bytes reserved on the account for its items in flight. */
  reserved: number;
}

type Work = (
  | { t: 'crdt_update'; id: number; op: CrdtUpdateParsed }
  | { t: 'crdt_get'; id: number; op: CrdtGetParsed }
  | { t: 'define_table'; id: number; op: DefineTableParsed }
  | { t: 'kv'; id: number; op: KvOp }
  | { t: 'item'; batch: BatchRun; index: number; op: KvOp }
  | { t: 'scan'; id: number; op: ScanParsed }
  | { t: 'ring'; id: number; digest: string | undefined }
  | { t: 'status'; id: number }
  | { t: 'query'; id: number; op: QueryParsed }
) & {
  /** Arrival order on the connection (set when queued): re-runs keep it. */
  seq?: number;
  /** Bytes reserved on the connection's account while the unit runs. */
  reserved?: number;
};

/**
 * What a small reply is reserved at: a write's (a context and a consistency report) or a batch
 * get's that is cut without running (an error and no value). Small and bounded.
 */
const SMALL_REPLY_RESERVE_BYTES = 1024;

/**
 * Reads may be run again when their finished reply does not fit the connection's reply bytes. A
 * `query` is a read when it is a SELECT; another statement is never run twice, nor is a CRDT
 * update (an increment run twice counts twice).
 */
function isRead(w: Work): boolean {
  if (w.t === 'query') return w.op.readOnly;
  if (w.t === 'crdt_update' || w.t === 'define_table') return false;
  return w.t === 'kv' || w.t === 'item' ? w.op.kind === 'get' : true;
}

/** Run a crdt_update, crdt_get or define_table; `complete` gets the outcome (never inside this call). */
function runCrdtWork(deps: IpcDeps, w: Extract<Work, { t: 'crdt_update' | 'crdt_get' | 'define_table' }>, complete: (out: Outcome) => void): void {
  const fail = (err: unknown): void => queueMicrotask(() => complete({ ok: false, err }));
  if (w.t === 'define_table') {
    if (!deps.tables) return fail(new RingkvError('unavailable', 'this server does not define tables'));
    let table: Record<string, unknown>;
    try {
      table = { ...deps.tables.define(w.op.table, w.op.settings, true) };
    } catch (err) {
      return fail(err);
    }
    return void queueMicrotask(() => complete({ ok: true, value: { table } }));
  }
  const crdts = deps.crdts;
  if (!crdts) return fail(new RingkvError('unavailable', 'this server does not serve convergent data types'));
  if (w.t === 'crdt_update') {
    const u = w.op;
    crdts.startUpdate({ table: u.table, key: u.key, operation: u.operation, consistency: u.consistency, timeoutMs: u.timeoutMs }, (err, r) =>
      complete(err ? { ok: false, err } : { ok: true, value: { ...r! } }),
    );
    return;
  }
  const g = w.op;
  crdts.startRead({ table: g.table, key: g.key, consistency: g.consistency, timeoutMs: g.timeoutMs }, (err, r) => complete(err ? { ok: false, err } : { ok: true, value: { ...r! } }));
}

/** The CRDT ops and define_table answer errors with their details (what the client may retry). */
function withDetails(w: Work): boolean {
  return w.t === 'crdt_update' || w.t === 'crdt_get' || w.t === 'define_table';
}

type Outcome = { ok: true; value: WriteOk | GetOk | ScanOk | Record<string, unknown> } | { ok: false; err: unknown };

/**
 * A batch item's `{ok: true, ...}` result, built field by field in the key order of the reply
 * (an object spread per item was a visible share of the router thread under batched ingest).
 */
function okItem(v: WriteOk | GetOk): BatchItemResult {
  if (!('found' in v)) return { ok: true, context: v.context, consistency: v.consistency };
  const r: { ok: true } & GetOk = { ok: true, found: v.found, context: v.context, consistency: v.consistency };
  if (v.value !== undefined) r.value = v.value;
  if (v.siblings !== undefined) r.siblings = v.siblings;
  return r;
}

/** How long a connection we closed for a protocol error may linger draining its last error frame. */
const CLOSE_LINGER_MS = 2000;
/** How long close() waits for in-flight requests to finish before cutting connections. */
export const CLOSE_DRAIN_MS = 2000;

export class Connection {
  private readonly decoder: FrameDecoder;
  private queue: Array<Work | undefined> = [];
  private qHead = 0;
  private nextSeq = 0;
  /**
   * Reads dropped because their reply did not fit, to run again before anything queued, in arrival
   * order (by seq): a batch's gets then run again in item order, as its cut is decided. Each was in
   * flight, so there are at most maxInFlightPerConnection.
   */
  private reruns: Work[] = [];
  inFlight = 0;
  closed = false;
  private readEnded = false;
  /**
   * Set once a frame could not be trusted: reading has stopped, and once the requests accepted
   * before it are answered, this error goes out with id nil and the connection closes.
   */
  private failing: { code: ErrorCode; message: string } | undefined;
  private readonly onDataBound = (chunk: Buffer): void => this.onData(chunk);
  private drainWaiter: (() => void) | undefined;
  readonly account: ReplyAccount;
  private readonly writer: ReplyWriter;

  constructor(
    private readonly srv: ConnectionHost,
    readonly socket: Socket,
  ) {
    // At most one shape problem per batch item plus a few top-level ones are worth reporting.
    const maxProblems = srv.maxBatchItems + 16;
    this.decoder = new FrameDecoder(srv.limits.maxFrameBytes, (payload) => decodeRequest(payload, maxProblems));
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
      if (this.decoder.bufferedBytes > 0 && !this.failing && !this.closed) {
        // The stream ended inside a frame: a truncated request we can never answer. (Bytes after
        // a bad frame are left in the decoder on purpose: they are not counted again.)
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
    if (this.closed || this.failing) return;
    let msgs: unknown[];
    let bad: FrameError | undefined;
    try {
      msgs = this.decoder.push(chunk);
    } catch (e) {
      bad = e instanceof FrameError ? e : new FrameError('malformed_frame', String(e));
      // The complete frames before the bad one are still answered (issue 10 item 14).
      msgs = bad.decodedBefore;
    }
    for (const m of msgs) {
      this.accept(m as DecodedRequest);
      if (this.closed || this.failing) break;
    }
    if (bad && !this.failing) this.protocolError(bad.code === 'frame_too_large' ? 'too_large' : 'bad_request', bad.message);
    this.pump();
  }

  private replyError(id: number, e: unknown): void {
    this.reply({ id, ok: false, ...errorFields(e), rv: this.srv.digest() } satisfies ErrorReply);
  }

  /** Validate one request frame: errors answer at once (no router work); valid work is queued. */
  private accept(decoded: DecodedRequest): void {
    const raw = decoded.msg;
    const m = isMsg(raw) ? raw : undefined;
    const idProblem = decoded.problems.find((p) => p.path.length === 1 && p.path[0] === 'id');
    const id = m && !idProblem ? parseId(m['id']) : null;
    if (!m || id === null) {
      this.protocolError('bad_request', `every request must be a msgpack map with an unsigned 32-bit integer id${idProblem ? ` (id: ${idProblem.message})` : ''}`);
      return;
    }
    this.srv.requests++;
    const op = m['op'];
    // Problems inside batch items fail only their item; any other fails the request.
    const itemProblems = new Map<number, ShapeProblem>();
    try {
      for (const p of decoded.problems) {
        // A query's bind parameters are values of any column type: a double column takes a float.
        if (op === 'query' && p.path[0] === 'params' && p.kind === 'float') continue;
        if (op === 'batch' && p.path[0] === 'items' && typeof p.path[1] === 'number') {
          if (!itemProblems.has(p.path[1])) itemProblems.set(p.path[1], p);
          continue;
        }
        throw badRequest(`${fieldName(p.path) || 'request'}: ${p.message}`, { field: fieldName(p.path) || 'request' });
      }
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
          this.acceptBatch(id, m, itemProblems);
          return;
        case 'ring':
          this.enqueue({ t: 'ring', id, digest: parseDigest(m) });
          return;
        case 'status':
          refuseForeignFields(m, 'status');
          this.enqueue({ t: 'status', id });
          return;
        case 'query':
          this.enqueue({ t: 'query', id, op: parseQuery(m) });
          return;
        case 'crdt_update':
          this.enqueue({ t: 'crdt_update', id, op: parseCrdtUpdate(m, this.srv.limits) });
          return;
        case 'crdt_get':
          this.enqueue({ t: 'crdt_get', id, op: parseCrdtGet(m, this.srv.limits) });
          return;
        case 'define_table':
          this.enqueue({ t: 'define_table', id, op: parseDefineTable(m) });
          return;
        default:
          throw badRequest(`op must be one of ${IPC_OPS.join(', ')}; got ${describeValue(op)}`, { field: 'op' });
      }
    } catch (e) {
      this.replyError(id, e);
    }
  }

  private acceptBatch(id: number, m: Msg, problems: Map<number, ShapeProblem>): void {
    refuseForeignFields(m, 'batch');
    const items = m['items'];
    if (!Array.isArray(items)) throw badRequest('items must be an array of {op: put|get|del, ...}', { field: 'items' });
    if (items.length > this.srv.maxBatchItems) {
      throw badRequest(`a batch carries at most ${this.srv.maxBatchItems} items, got ${items.length}; split it`, { field: 'items' });
    }
    const timeout = parseTimeout(m['timeoutMs']);
    const parsed: Array<KvOp | ItemError> = items.map((it: unknown, i) => {
      try {
        const p = problems.get(i);
        if (p) {
          const field = fieldName(p.path.slice(2)) || 'item';
          throw badRequest(`${field}: ${p.message}`, { field });
        }
        if (!isMsg(it)) throw badRequest('each batch item must be a map {op: put|get|del, ...}', { field: 'op' });
        return parseKvOp(it, this.srv.limits, timeout, true);
      } catch (e) {
        return { ok: false, ...errorFields(e) };
      }
    });
    const asm = new BatchAssembly(
      id,
      parsed.map((p) => ('kind' in p ? p.kind : 'invalid')),
      this.srv.replyBudget,
      this.srv.limits.maxFrameBytes,
    );
    const batch: BatchRun = { asm, held: 0, reserved: 0 };
    let last = parsed.length === 0;
    parsed.forEach((p, i) => {
      if (!('kind' in p)) last = asm.set(i, p);
    });
    this.syncBatchHeld(batch);
    if (last) return this.replyBatch(batch);
    parsed.forEach((p, index) => {
      if ('kind' in p) this.enqueue({ t: 'item', batch, index, op: p });
    });
  }

  private enqueue(w: Work): void {
    w.seq = this.nextSeq++;
    this.queue.push(w);
  }

  /** Units waiting to start: re-runs and queued work. */
  private get waiting(): number {
    return this.reruns.length + this.queue.length - this.qHead;
  }

  /**
   * Start queued work while under the in-flight bound and the reply bytes allow it (the client keeps
   * up with its replies). A batch's own items never hold each other back: the batch answers as one
   * frame, bounded by the frame limit, and what it holds for out-of-order completions is bounded by
   * its assembly (src/api/ipc-replies.ts) and on the account.
   */
  pump(): void {
    const max = this.srv.limits.maxInFlightPerConnection;
    while (!this.closed && !this.socket.destroyed && this.inFlight < max && this.waiting > 0) {
      const rerun = this.reruns.length > 0;
      const w = rerun ? this.reruns[0]! : this.queue[this.qHead]!;
      const need = this.replyReserve(w);
      if (!this.account.canStart(need, w.t === 'item' ? w.batch.held + w.batch.reserved : 0)) break;
      if (rerun) this.reruns.shift();
      else this.queue[this.qHead++] = undefined;
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
    if (this.inFlight === 0 && this.waiting === 0 && !this.closed) {
      this.drainWaiter?.();
      if (this.failing) this.closeAfterBadFrame(this.failing);
      else if (this.readEnded) {
        this.shutdown();
        this.socket.end();
      }
    }
  }

  /** What to reserve on the account for a unit's reply while it runs. */
  private replyReserve(w: Work): number {
    if (w.t === 'item' && !w.batch.asm.shouldRun(w.index)) return SMALL_REPLY_RESERVE_BYTES;
    // An update's reply carries the key's value (a set can be large), though it is never run again.
    if (w.t === 'crdt_update') return this.account.estimate;
    return isRead(w) ? this.account.estimate : SMALL_REPLY_RESERVE_BYTES;
  }

  /**
   * Pause or resume reading. Uses the socket's own paused state rather than a flag of ours: a
   * handed-over socket's previous owner may resume it behind our back, and the next data event
   * then simply pauses it again.
   */
  private updateFlow(): void {
    if (this.closed) return;
    const full =
      this.failing !== undefined ||
      this.inFlight >= this.srv.limits.maxInFlightPerConnection ||
      this.waiting > 0 ||
      this.account.atLimit ||
      this.srv.closing;
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
        if (w.t === 'item' && !w.batch.asm.shouldRun(w.index)) {
          // A get past the point where the batch reply is full: answered without running.
          queueMicrotask(() => this.complete(w, { ok: false, err: undefined }));
          return;
        }
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
          ttlSeconds: op.ttlSeconds,
        };
        // A WriteResult is exactly a WriteOk (context, consistency): passed on as it is.
        router.startWrite(req, (err, r) => this.complete(w, err ? { ok: false, err } : { ok: true, value: r! satisfies WriteOk }));
        return;
      }
      case 'scan': {
        const op = w.op;
        if (!router.startScan) {
          queueMicrotask(() => this.complete(w, { ok: false, err: new RingkvError('unavailable', 'this server does not serve scans') }));
          return;
        }
        const from = 'pagingState' in op.from ? { pagingState: op.from.pagingState } : { startKey: op.from.key, exclusive: op.from.exclusive };
        router.startScan({ table: op.table, ...from, limit: op.limit, consistency: op.consistency, timeoutMs: op.timeoutMs }, (err, r) =>
          this.complete(w, err ? { ok: false, err } : { ok: true, value: scanOk(r!) }),
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
        return;
      case 'query': {
        const q = this.srv.deps.query;
        if (!q) {
          queueMicrotask(() => this.complete(w, { ok: false, err: new RingkvError('unavailable', 'this server does not serve CQL queries') }));
          return;
        }
        q(w.op).then(
          (value) => this.complete(w, { ok: true, value: value as unknown as Record<string, unknown> }),
          (err: unknown) => this.complete(w, { ok: false, err }),
        );
        return;
      }
      case 'crdt_update':
      case 'crdt_get':
      case 'define_table':
        return runCrdtWork(this.srv.deps, w, (out) => this.complete(w, out));
    }
  }

  private complete(w: Work, out: Outcome): void {
    this.inFlight--;
    this.srv.inFlight--;
    const reserved = w.reserved ?? 0;
    this.account.unreserve(reserved);
    if (w.t === 'item') w.batch.reserved -= reserved;
    if (!out.ok && out.err !== undefined) {
      const f = errorFields(out.err);
      if (f.code === 'internal') this.srv.log.error({ err: out.err }, 'ipc request failed');
    }
    // A closed connection's results are dropped here, not queued.
    if (!this.closed) {
      if (w.t === 'item') this.completeItem(w, out);
      else {
        const frame = this.encodeOutcome(w, out);
        if (isRead(w)) this.account.observe(frame.length);
        if (isRead(w) && !this.account.fits(frame.length)) this.runAgain(w);
        else this.send(frame);
      }
    }
    this.pump();
  }

  /**
   * A read whose reply does not fit the connection's reply bytes (the client holds others it has
   * not read): drop the result and run the read again, before anything queued, once there is room.
   * Re-runs keep their arrival order (they usually finish in it, so this appends).
   */
  private runAgain(w: Work): void {
    this.account.rerun();
    const seq = w.seq ?? 0;
    let i = this.reruns.length;
    while (i > 0 && (this.reruns[i - 1]!.seq ?? 0) > seq) i--;
    this.reruns.splice(i, 0, w);
  }

  /**
   * A batch item finished. Cuts are decided by the assembly in item order, so a get that is run
   * again (its value did not fit the connection's reply bytes) only delays the items after it:
   * the batch waits for it, and the gets that keep their value stay a prefix.
   */
  private completeItem(w: Work & { t: 'item' }, out: Outcome): void {
    const b = w.batch;
    const ran = out.ok || out.err !== undefined;
    const r: BatchItemResult = out.ok ? okItem(out.value as WriteOk | GetOk) : ran ? { ok: false, ...errorFields(out.err) } : b.asm.cutResult(w.index);
    if (ran && isRead(w)) {
      const size = estimateBytes(r as GetOk);
      this.account.observe(size);
      // A get already past the batch's cut loses its value anyway: no need to fit it.
      if (b.asm.shouldRun(w.index) && !this.account.fits(size, b.held)) {
        this.runAgain(w);
        return;
      }
    }
    const last = b.asm.set(w.index, r);
    this.syncBatchHeld(b);
    if (last) this.replyBatch(b);
  }

  /** Put the batch's recorded results (the assembly's estimate, cuts included) on the account. */
  private syncBatchHeld(b: BatchRun): void {
    const now = b.asm.resultBytes;
    if (now > b.held) this.account.hold(now - b.held);
    else this.account.release(b.held - now);
    b.held = now;
  }

  private replyBatch(b: BatchRun): void {
    // The items' bytes become the batch frame's.
    this.account.release(b.held);
    b.held = 0;
    const frame = batchOkFrame(b.asm.id, b.asm.results, this.srv.digest());
    if (frame.length - FRAME_HEADER_BYTES <= this.srv.limits.maxFrameBytes) this.send(frame);
    else this.reply({ id: b.asm.id, ok: true, results: b.asm.results, rv: this.srv.digest() });
  }

  /** A finished unit's reply frame: the hot shapes (put, del, get answers) written by hand. */
  private encodeOutcome(w: Work & { id: number }, out: Outcome): Buffer {
    if (out.ok && w.t === 'kv') {
      let frame: Buffer | undefined;
      if (w.op.kind !== 'get') frame = writeOkFrame(w.id, out.value as WriteOk, this.srv.digest());
      else if (estimateBytes(out.value as GetOk) <= this.srv.replyBudget) frame = getOkFrame(w.id, out.value as GetOk, this.srv.digest());
      if (frame !== undefined && frame.length - FRAME_HEADER_BYTES <= this.srv.limits.maxFrameBytes) return frame;
    }
    return this.encodeReply(this.outcomeMessage(w.id, out, withDetails(w)));
  }

  private outcomeMessage(id: number, out: Outcome, details = false): Record<string, unknown> {
    if (!out.ok) return { id, ok: false, ...(details ? errorWithDetails(out.err) : errorFields(out.err)), rv: this.srv.digest() } satisfies ErrorReply;
    const v = out.value;
    // A CRDT state is bounded by crdt.maxStateBytes, far below the frame limit: only gets are cut.
    if (!details && 'found' in v && estimateBytes(v as GetOk) > this.srv.replyBudget) {
      return { id, ...tooLargeGet(v as GetOk, this.srv.replyBudget, this.srv.limits.maxFrameBytes), rv: this.srv.digest() } satisfies ErrorReply;
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
   * A frame we cannot trust: stop reading (frames after it are never run), answer the requests
   * accepted before it, then tell the client why (id nil) and close this connection only.
   */
  private protocolError(code: ErrorCode, message: string): void {
    if (this.closed || this.failing) return;
    this.srv.badFrames++;
    this.srv.log.warn({ code, message }, 'closing ipc connection after a bad frame');
    this.socket.removeListener('data', this.onDataBound);
    this.failing = { code, message };
    this.updateFlow();
  }

  private closeAfterBadFrame(f: { code: ErrorCode; message: string }): void {
    const frame = encodeFrame({ id: null, ok: false, code: f.code, message: f.message } satisfies ErrorReply);
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
    this.reruns = [];
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
