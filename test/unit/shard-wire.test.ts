import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeReplies, decodeRequests, WIRE_CRDT_APPLY, WIRE_READ, WIRE_WRITE, WireError, WireReplyWriter, WireRequestWriter, type WireReply } from '../../src/storage/shard-wire.js';
import { encodeRecord, isSingleVersionRecord, newVersion } from '../../src/versions/index.js';

const bytes = fc.uint8Array({ maxLength: 300 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const table = fc.uint8Array({ minLength: 16, maxLength: 16 });

const requestArb = fc.oneof(
  fc.record({ kind: fc.constant(WIRE_READ), id: u32, table, hi: u32, lo: u32, key: bytes }),
  fc.record({
    kind: fc.constant(WIRE_WRITE),
    id: u32,
    table,
    hi: u32,
    lo: u32,
    key: bytes,
    mode: fc.constantFrom('vclock' as const, 'lww' as const, 'crdt' as const),
    record: bytes,
    returnMerged: fc.boolean(),
  }),
  fc.record({ kind: fc.constant(WIRE_CRDT_APPLY), id: u32, table, hi: u32, lo: u32, key: bytes, request: bytes }),
);

describe('shard wire', () => {
  it('requests round-trip in order, byte-exact, through one exact-size buffer', () => {
    const w = new WireRequestWriter(16); // tiny start: growth is exercised
    fc.assert(
      fc.property(fc.array(requestArb, { maxLength: 40 }), (reqs) => {
        for (const r of reqs) {
          if (r.kind === WIRE_READ) w.read(r.id, r.table, r.hi, r.lo, r.key);
          else if (r.kind === WIRE_CRDT_APPLY) w.crdtApply(r.id, r.table, r.hi, r.lo, r.key, r.request);
          else w.write(r.id, r.table, r.hi, r.lo, r.key, r.mode, r.record, r.returnMerged);
        }
        expect(w.count).toBe(reqs.length);
        const buf = w.take();
        expect(buf.byteOffset).toBe(0);
        expect(buf.buffer.byteLength).toBe(buf.length);
        const back = decodeRequests(buf).map((d) => ({
          ...d,
          table: new Uint8Array(d.table),
          key: new Uint8Array(d.key),
          ...(d.kind === WIRE_WRITE ? { record: new Uint8Array(d.record) } : {}),
          ...(d.kind === WIRE_CRDT_APPLY ? { request: new Uint8Array(d.request) } : {}),
        }));
        expect(back).toEqual(
          reqs.map((r) => ({
            ...r,
            key: new Uint8Array(r.key),
            ...(r.kind === WIRE_WRITE ? { record: new Uint8Array(r.record) } : {}),
            ...(r.kind === WIRE_CRDT_APPLY ? { request: new Uint8Array(r.request) } : {}),
          })),
        );
        expect(w.count).toBe(0);
      }),
    );
  });

  it('replies round-trip: records, absent values, changed flags and errors', () => {
    const w = new WireReplyWriter(8);
    const sent: Array<[number, WireReply]> = [
      [1, { ok: true, record: null, changed: false }],
      [2, { ok: true, record: new Uint8Array([1, 2, 3]), changed: true }],
      [3, { ok: false, code: 'not_owner', message: 'shard 1 does not own\nthis key' }],
      [0xffffffff, { ok: true, record: new Uint8Array(0), changed: false }],
      // A CRDT operation's refusal keeps its details (the precondition, the limit) across the wire.
      [4, { ok: false, code: 'conflict', message: 'remove: element "z"\nis not in the set', details: { precondition: 'not_present', path: 'remove' } }],
    ];
    for (const [id, r] of sent) {
      if (!r.ok) w.error(id, r.code, r.message, r.details);
      else w.ok(id, r.record, r.changed);
    }
    const got: Array<[number, WireReply]> = [];
    decodeReplies(w.take(), (id, r) => got.push([id, r.ok && r.record ? { ...r, record: new Uint8Array(r.record) } : r]));
    expect(got).toEqual(sent);
  });

  it('a truncated or unknown message is a loud error, not a silent partial decode', () => {
    const w = new WireRequestWriter();
    w.write(7, new Uint8Array(16).fill(1), 2, 3, new Uint8Array([9, 9]), 'vclock', new Uint8Array(50), false);
    // A table id of another width is a bug on the sender's side, refused before anything is written.
    expect(() => w.read(8, new Uint8Array(4), 2, 3, new Uint8Array([1]))).toThrow(/table id of 4 bytes/);
    const buf = w.take();
    expect(() => decodeRequests(buf.subarray(0, buf.length - 1))).toThrow(WireError);
    const bad = buf.slice();
    bad[0] = 9;
    expect(() => decodeRequests(bad)).toThrow(/unknown request kind 9/);
  });

  it('isSingleVersionRecord tells one-version records from others', () => {
    const v = (n: number) => newVersion({ node: 'a', counter: n, context: [], ts: n, tombstone: false, value: new Uint8Array([n]), maxClockEntries: 8 });
    expect(isSingleVersionRecord(encodeRecord([v(1)]))).toBe(true);
    expect(isSingleVersionRecord(encodeRecord([v(1), v(2)]))).toBe(false);
    expect(isSingleVersionRecord(encodeRecord([]))).toBe(false);
  });
});
