/**
 * What a finished IPC unit sends (pure; the connection writes it: src/api/ipc-connection.ts): the
 * reply frame of a unit's outcome, of a batch's assembled results, or of any reply message, never
 * over the frame limit. The hot shapes (put, del, get answers and batch results) are written by
 * hand (src/api/ipc-reply-frames.ts); the others, and a hot one the hand path cannot take, go
 * through the generic msgpack path. A `get` whose estimate is past the reply budget answers
 * `too_large` with its context (tooLargeGet); a frame still over the limit (the estimates failed)
 * becomes a `too_large` error rather than a frame the client must reject.
 */
import { encodeFrame, FRAME_HEADER_BYTES } from '../net/frames.js';
import type { BatchRun } from './ipc-batch.js';
import { errorWithDetails } from './ipc-crdt.js';
import type { ErrorReply, GetOk, WriteOk } from './ipc-protocol.js';
import { batchOkFrame, getOkFrame, writeOkFrame } from './ipc-reply-frames.js';
import { errorFields, estimateBytes, tooLargeGet } from './ipc-replies.js';
import { withDetails, type Outcome, type Work } from './ipc-work.js';

/** The frame bounds a reply is shaped by: the connection's server's. */
export interface ReplyBounds {
  /** Payload bytes of one frame (IpcLimits.maxFrameBytes). */
  readonly maxFrameBytes: number;
  /** Estimated reply bytes allowed under the frame limit (replyBudgetOf(maxFrameBytes)). */
  readonly replyBudget: number;
}

/** A finished unit's reply frame (`rv`: the ring digest every reply carries). */
export function outcomeFrame(w: Work & { id: number }, out: Outcome, rv: string, bounds: ReplyBounds): Buffer {
  if (out.ok && w.t === 'kv') {
    let frame: Buffer | undefined;
    if (w.op.kind !== 'get') frame = writeOkFrame(w.id, out.value as WriteOk, rv);
    else if (estimateBytes(out.value as GetOk) <= bounds.replyBudget) frame = getOkFrame(w.id, out.value as GetOk, rv);
    if (frame !== undefined && frame.length - FRAME_HEADER_BYTES <= bounds.maxFrameBytes) return frame;
  }
  return replyFrame(outcomeMessage(w.id, out, rv, bounds, withDetails(w)), rv, bounds.maxFrameBytes);
}

/** A finished unit's reply as a message for the generic path. */
export function outcomeMessage(id: number, out: Outcome, rv: string, bounds: ReplyBounds, details = false): Record<string, unknown> {
  if (!out.ok) return { id, ok: false, ...(details ? errorWithDetails(out.err) : errorFields(out.err)), rv } satisfies ErrorReply;
  const v = out.value;
  // A CRDT state is bounded by crdt.maxStateBytes, far below the frame limit: only gets are cut.
  if (!details && 'found' in v && estimateBytes(v as GetOk) > bounds.replyBudget) {
    return { id, ...tooLargeGet(v as GetOk, bounds.replyBudget, bounds.maxFrameBytes), rv } satisfies ErrorReply;
  }
  return { id, ok: true, ...v, rv };
}

/** A complete batch's reply frame: its results in item order (the assembly's cuts included). */
export function batchReplyFrame(b: BatchRun, rv: string, maxFrameBytes: number): Buffer {
  const frame = batchOkFrame(b.asm.id, b.asm.results, rv);
  if (frame.length - FRAME_HEADER_BYTES <= maxFrameBytes) return frame;
  return replyFrame({ id: b.asm.id, ok: true, results: b.asm.results, rv }, rv, maxFrameBytes);
}

/** Any reply message as a frame; one over the frame limit becomes a `too_large` error for its id. */
export function replyFrame(msg: Record<string, unknown>, rv: string, maxFrameBytes: number): Buffer {
  let frame = encodeFrame(msg);
  if (frame.length - FRAME_HEADER_BYTES > maxFrameBytes) {
    // The size estimates should prevent this; never send a frame the client must reject.
    frame = encodeFrame({
      id: msg['id'] as number,
      ok: false,
      code: 'too_large',
      message: `the reply is ${frame.length - FRAME_HEADER_BYTES} bytes, over the ${maxFrameBytes}-byte frame limit; request fewer items`,
      rv,
    } satisfies ErrorReply);
  }
  return frame;
}
