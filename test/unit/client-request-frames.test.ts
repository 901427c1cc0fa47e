import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BatchItem } from '../../src/api/ipc-protocol.js';
import { BatchRequest, isFrameEncoder, SingleRequest } from '../../src/client/request-frames.js';
import { decodePayload, encodeFrame } from '../../src/net/frames.js';

const bytes = fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u));
const key = fc.oneof(fc.string({ minLength: 1, maxLength: 40 }), fc.uint8Array({ minLength: 1, maxLength: 40 }).map((u) => Buffer.from(u)));
const table = fc.string({ unit: fc.constantFrom(...'abcxyz_-019'), minLength: 1, maxLength: 64 });
const small = fc.integer({ min: 0, max: 70_000 });
const level = fc.constantFrom('ONE', 'quorum', 'ALL', 'ANY');
// As the client builds them: op, table, key, value, then the defined optional fields in order.
const putArb = fc.record(
  { op: fc.constant('put' as const), table, key, value: fc.oneof(bytes, fc.string({ maxLength: 50 })), context: fc.base64String({ maxLength: 80 }), w: small, n: small, consistency: level, timeoutMs: small, ttl: small },
  { requiredKeys: ['op', 'table', 'key', 'value'] },
);
const getArb = fc.record({ op: fc.constant('get' as const), table, key, r: small, n: small, consistency: level, timeoutMs: small }, { requiredKeys: ['op', 'table', 'key'] });
const delArb = fc.record({ op: fc.constant('del' as const), table, key, context: fc.base64String({ maxLength: 80 }), w: small }, { requiredKeys: ['op', 'table', 'key'] });
const itemsArb = fc.array(fc.oneof(putArb, getArb, delArb), { minLength: 1, maxLength: 40 }) as fc.Arbitrary<BatchItem[]>;

/** What the generic path sent: `encodeFrame({ id, op: 'batch', items, timeoutMs? })`. */
function generic(id: number, items: BatchItem[], timeoutMs: number | undefined): Buffer {
  const msg: Record<string, unknown> = { id, op: 'batch', items };
  if (timeoutMs !== undefined) msg['timeoutMs'] = timeoutMs;
  return encodeFrame(msg);
}

describe('client batch request frames', () => {
  it('property: a batch frame is byte-identical to the generic encoding of the same request', () => {
    fc.assert(
      fc.property(itemsArb, fc.integer({ min: 0, max: 0xffffffff }), fc.option(small, { nil: undefined }), (items, id, timeoutMs) => {
        expect(new BatchRequest(items, 0, items.length, timeoutMs).encodeFrame(id).equals(generic(id, items, timeoutMs))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("property: an item sent alone is byte-identical to the generic encoding of {id, ...item}, with the batch's timeoutMs when it has none", () => {
    fc.assert(
      fc.property(fc.oneof(putArb, getArb, delArb), fc.integer({ min: 0, max: 0xffffffff }), fc.option(small, { nil: undefined }), (item, id, timeoutMs) => {
        const expected = encodeFrame(timeoutMs !== undefined && item.timeoutMs === undefined ? { id, ...item, timeoutMs } : { id, ...item });
        expect(new SingleRequest(item as BatchItem, timeoutMs).encodeFrame(id).equals(expected)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it('a frame carries items [start, end) only, with the length prefix of its payload', () => {
    const items: BatchItem[] = [0, 1, 2, 3].map((i) => ({ op: 'put', table: 't', key: `k${i}`, value: Buffer.from([i]) }));
    const frame = new BatchRequest(items, 1, 3, undefined).encodeFrame(5);
    expect(frame.readUInt32BE(0)).toBe(frame.length - 4);
    expect(decodePayload(frame.subarray(4))).toEqual({ id: 5, op: 'batch', items: [items[1], items[2]] });
  });

  it('items with 1,000 values and a 70 KB value grow the writer and still match the generic bytes', () => {
    const items: BatchItem[] = Array.from({ length: 1000 }, (_, i) => ({ op: 'put', table: 'bulk', key: `key-${i}`, value: Buffer.alloc(i === 500 ? 70_000 : 100, i % 256) }));
    expect(new BatchRequest(items, 0, items.length, 2000).encodeFrame(1).equals(generic(1, items, 2000))).toBe(true);
  });

  it('a field value outside the writer vocabulary falls back to the generic encoding (the server then names it)', () => {
    const items = [{ op: 'put', table: 't', key: 'k', value: Buffer.from('v'), w: 2n }] as unknown as BatchItem[];
    const frame = new BatchRequest(items, 0, 1, undefined).encodeFrame(3);
    expect(frame.equals(encodeFrame({ id: 3, op: 'batch', items }))).toBe(true);
  });

  it('connections tell an encoder from a plain message', () => {
    expect(isFrameEncoder(new BatchRequest([], 0, 0, undefined))).toBe(true);
    expect(isFrameEncoder({ op: 'ring' })).toBe(false);
  });
});
