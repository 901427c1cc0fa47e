import { describe, expect, it } from 'vitest';
import { BatchRun } from '../../src/api/ipc-batch.js';
import { batchReplyFrame, outcomeFrame, replyFrame, type ReplyBounds } from '../../src/api/ipc-outcome.js';
import type { GetOk, WriteOk } from '../../src/api/ipc-protocol.js';
import { batchOkFrame, getOkFrame, writeOkFrame } from '../../src/api/ipc-reply-frames.js';
import { replyBudgetOf } from '../../src/api/ipc-replies.js';
import type { KvOp } from '../../src/api/ipc-request.js';
import type { Work } from '../../src/api/ipc-work.js';
import { decodePayload, FRAME_HEADER_BYTES } from '../../src/net/frames.js';
import { ReplyBudget } from '../../src/net/reply-budget.js';
import { RingkvError } from '../../src/util/errors.js';

const RV = '0123456789abcdef';
const MAX_FRAME = 4096;
const BOUNDS: ReplyBounds = { maxFrameBytes: MAX_FRAME, replyBudget: replyBudgetOf(MAX_FRAME) };
const consistency = { n: 3, required: 2, replied: 2 };
const kv = (kind: KvOp['kind']): Work & { id: number } => ({
  t: 'kv',
  id: 9,
  op: { kind, table: 't', key: new Uint8Array([1]), value: new Uint8Array(0), context: undefined, consistency: {}, timeoutMs: undefined, ttlSeconds: undefined },
});
const decode = (frame: Buffer): Record<string, unknown> => {
  expect(frame.readUInt32BE(0)).toBe(frame.length - FRAME_HEADER_BYTES);
  return decodePayload(frame.subarray(FRAME_HEADER_BYTES)) as Record<string, unknown>;
};

describe('ipc outcome frames (pure)', () => {
  it('a put, del or get answer within the bounds is the hand-written frame', () => {
    const w: WriteOk = { context: 'ctx', consistency };
    expect(outcomeFrame(kv('put'), { ok: true, value: w }, RV, BOUNDS)).toEqual(writeOkFrame(9, w, RV));
    expect(outcomeFrame(kv('del'), { ok: true, value: w }, RV, BOUNDS)).toEqual(writeOkFrame(9, w, RV));
    const g: GetOk = { found: true, context: 'ctx', consistency, value: Buffer.alloc(100, 1) };
    expect(outcomeFrame(kv('get'), { ok: true, value: g }, RV, BOUNDS)).toEqual(getOkFrame(9, g, RV));
  });

  it('a get past the reply budget answers too_large with its context and the sizes of what it left out', () => {
    const big = Buffer.alloc(MAX_FRAME, 2);
    const msg = decode(outcomeFrame(kv('get'), { ok: true, value: { found: true, context: 'ctx', consistency, value: big } }, RV, BOUNDS));
    expect(msg).toMatchObject({ id: 9, ok: false, code: 'too_large', context: 'ctx', siblings: [null], omitted: [0], sizes: [MAX_FRAME], rv: RV });
  });

  it('errors carry their field; a CRDT op’s also its details', () => {
    const err = new RingkvError('bad_request', 'no', { field: 'key', limit: 3 });
    expect(decode(outcomeFrame(kv('put'), { ok: false, err }, RV, BOUNDS))).toEqual({ id: 9, ok: false, code: 'bad_request', message: 'no', field: 'key', rv: RV });
    const crdt: Work & { id: number } = { t: 'crdt_get', id: 4, op: { table: 't', key: new Uint8Array([1]), consistency: {}, timeoutMs: undefined } };
    expect(decode(outcomeFrame(crdt, { ok: false, err }, RV, BOUNDS))).toEqual({
      id: 4,
      ok: false,
      code: 'bad_request',
      message: 'no',
      field: 'key',
      details: { field: 'key', limit: 3 },
      rv: RV,
    });
  });

  it('a reply over the frame limit becomes a too_large error for its id, never a frame the client must reject', () => {
    const frame = replyFrame({ id: 5, ok: true, rows: [Buffer.alloc(MAX_FRAME)], rv: RV }, RV, MAX_FRAME);
    expect(frame.length - FRAME_HEADER_BYTES).toBeLessThanOrEqual(MAX_FRAME);
    expect(decode(frame)).toMatchObject({ id: 5, ok: false, code: 'too_large', rv: RV });
    expect(String(decode(frame)['message'])).toMatch(/^the reply is \d+ bytes, over the 4096-byte frame limit; request fewer items$/);
  });

  it('a complete batch answers with the hand-written frame of its results in item order', () => {
    const account = new ReplyBudget().open(1024);
    const run = new BatchRun(3, [{ ok: false, code: 'bad_request', message: 'bad item' }], BOUNDS.replyBudget, MAX_FRAME, account);
    expect(run.complete).toBe(true);
    expect(batchReplyFrame(run, RV, MAX_FRAME)).toEqual(batchOkFrame(3, run.asm.results, RV));
    expect(decode(batchReplyFrame(run, RV, MAX_FRAME))).toEqual({ id: 3, ok: true, results: [{ ok: false, code: 'bad_request', message: 'bad item' }], rv: RV });
  });
});
