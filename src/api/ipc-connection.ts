/**
 * One IPC connection: frames in, work units through the router with per-connection flow control
 * (in-flight bound, reply-byte account, pauses, re-runs of reads whose reply did not fit), batches
 * fanned out and answered as one frame, replies out, and its lifecycle (half-close, failing on an
 * untrusted frame, drain on close). The flow-control rules are described in ipc-server.ts; the
 * server owns the connections. Its parts: requests are decoded and checked by ipc-request.ts (and
 * ipc-crdt.ts), a batch is split and assembled by ipc-batch.ts, a unit runs by ipc-work.ts, and its
 * reply frame is shaped by ipc-outcome.ts; this file is the per-connection state machine between.
 */
import { type Socket } from 'node:net';
import type { Logger } from '../log/logger.js';
import { encodeFrame, FrameDecoder, FrameError } from '../net/frames.js';
import { ReplyBudget, type ReplyAccount } from '../net/reply-budget.js';
import { ReplyWriter } from '../net/reply-writer.js';
import { badRequest, type ErrorCode } from '../util/errors.js';
import { BatchRun, isRunnable, okItem, parseBatchItems } from './ipc-batch.js';
import { parseCrdtGet, parseCrdtUpdate, parseDefineTable } from './ipc-crdt.js';
import { outcomeFrame, replyFrame, batchReplyFrame, type ReplyBounds } from './ipc-outcome.js';
import { IPC_OPS, type BatchItemResult, type ErrorReply, type GetOk, type IpcLimits, type WriteOk } from './ipc-protocol.js';
import { errorFields, estimateBytes, REPLY_OVERHEAD } from './ipc-replies.js';
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
  refuseForeignFields,
  type DecodedRequest,
  type Msg,
  type ShapeProblem,
} from './ipc-request.js';
import type { IpcDeps } from './ipc-server-types.js';
import { isRead, replyReserve, runWork, type Outcome, type Work, type WorkSink } from './ipc-work.js';

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

/** How long a connection we closed for a protocol error may linger draining its last error frame. */
const CLOSE_LINGER_MS = 2000;
/** How long close() waits for in-flight requests to finish before cutting connections. */
export const CLOSE_DRAIN_MS = 2000;

export class Connection implements WorkSink {
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
  private readonly bounds: ReplyBounds;

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
    this.bounds = { maxFrameBytes: srv.limits.maxFrameBytes, replyBudget: srv.replyBudget };
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

  /** Split a batch into its items: its errors are recorded at once, its ops queued in item order. */
  private acceptBatch(id: number, m: Msg, problems: Map<number, ShapeProblem>): void {
    const items = parseBatchItems(m, problems, this.srv.limits, this.srv.maxBatchItems);
    const batch = new BatchRun(id, items, this.srv.replyBudget, this.srv.limits.maxFrameBytes, this.account);
    if (batch.complete) return this.replyBatch(batch);
    items.forEach((p, index) => {
      if (isRunnable(p)) this.enqueue({ t: 'item', batch, index, op: p });
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
      const need = replyReserve(w, this.account.estimate);
      if (!this.account.canStart(need, w.t === 'item' ? w.batch.held + w.batch.reserved : 0)) break;
      if (rerun) this.reruns.shift();
      else this.queue[this.qHead++] = undefined;
      w.reserved = need;
      this.account.reserve(need);
      if (w.t === 'item') w.batch.reserved += need;
      this.inFlight++;
      this.srv.inFlight++;
      if (this.inFlight > this.srv.maxInFlightSeen) this.srv.maxInFlightSeen = this.inFlight;
      runWork(w, this.srv.deps, this.srv.publicLimits, this);
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

  /** A unit finished (WorkSink: its outcome, from the callbacks runWork handed out). */
  complete(w: Work, out: Outcome): void {
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
        const frame = outcomeFrame(w, out, this.srv.digest(), this.bounds);
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
    if (b.record(w.index, r, this.account)) this.replyBatch(b);
  }

  private replyBatch(b: BatchRun): void {
    // The items' bytes become the batch frame's.
    b.releaseHeld(this.account);
    this.send(batchReplyFrame(b, this.srv.digest(), this.srv.limits.maxFrameBytes));
  }

  private replyError(id: number, e: unknown): void {
    const rv = this.srv.digest();
    this.send(replyFrame({ id, ok: false, ...errorFields(e), rv } satisfies ErrorReply, rv, this.srv.limits.maxFrameBytes));
  }

  private send(frame: Buffer): void {
    if (this.closed || !this.socket.writable) return;
    this.writer.write(frame);
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
