import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeReplies, decodeRequests, splitReplies, WIRE_CRDT_APPLY, WIRE_READ, WIRE_WRITE, WireError, WireReplyWriter, WireRequestWriter, type WireReply } from '../../src/storage/shard-wire.js';
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
  // A wide-column counter cell: the suffix after the partition key.
  fc.record({ kind: fc.constant(WIRE_CRDT_APPLY), id: u32, table, hi: u32, lo: u32, key: bytes, suffix: bytes, request: bytes }),
);

describe('shard wire', () => {
  it('requests round-trip in order, byte-exact, through one exact-size buffer', () => {
    const w = new WireRequestWriter(16); // tiny start: growth is exercised
    fc.assert(
      fc.property(fc.array(requestArb, { maxLength: 40 }), (reqs) => {
        for (const r of reqs) {
          if (r.kind === WIRE_READ) w.read(r.id, r.table, r.hi, r.lo, r.key);
          else if (r.kind === WIRE_CRDT_APPLY) w.crdtApply(r.id, r.table, r.hi, r.lo, r.key, r.request, 'suffix' in r ? r.suffix : undefined);
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
          ...(d.kind === WIRE_CRDT_APPLY && d.suffix !== undefined ? { suffix: new Uint8Array(d.suffix) } : {}),
        }));
        expect(back).toEqual(
          reqs.map((r) => ({
            ...r,
            key: new Uint8Array(r.key),
            ...(r.kind === WIRE_WRITE ? { record: new Uint8Array(r.record) } : {}),
            ...(r.kind === WIRE_CRDT_APPLY ? { request: new Uint8Array(r.request) } : {}),
            ...(r.kind === WIRE_CRDT_APPLY && 'suffix' in r ? { suffix: new Uint8Array(r.suffix) } : {}),
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

describe('splitReplies (reply messages cut to a channel bound)', () => {
  it('cuts at reply boundaries, each piece within the bound unless one reply alone is larger, and loses nothing', () => {
    // Replies of every status: ok with or without a record, an error, an error with details (a CRDT refusal).
    const replyArb = fc.oneof(
      fc.option(fc.uint8Array({ maxLength: 200 }), { nil: null }),
      fc.record({ code: fc.constantFrom('conflict', 'too_large'), message: fc.string({ maxLength: 40 }), details: fc.option(fc.record({ path: fc.string({ maxLength: 20 }) }), { nil: undefined }) }),
    );
    fc.assert(
      fc.property(fc.array(replyArb, { maxLength: 30 }), fc.integer({ min: 1, max: 400 }), (recs, bound) => {
        const w = new WireReplyWriter(16);
        recs.forEach((r, i) => (r === null || r instanceof Uint8Array ? w.ok(i, r, false) : w.error(i, r.code, r.message, r.details)));
        const all = w.take();
        const pieces = splitReplies(all, bound);
        const got: unknown[] = [];
        for (const p of pieces) {
          let n = 0;
          decodeReplies(p, (_id, rep) => {
            n++;
            got.push(rep.ok ? (rep.record ? Uint8Array.from(rep.record) : null) : { code: rep.code, message: rep.message, details: rep.details });
          });
          if (p.length > bound) expect(n).toBe(1);
        }
        expect(got).toEqual(recs.map((r) => (r === null ? null : r instanceof Uint8Array ? Uint8Array.from(r) : { code: r.code, message: r.message, details: r.details })));
        expect(pieces.reduce((s, p) => s + p.length, 0)).toBe(all.length);
      }),
    );
  });

  it('rejects a truncated or overrunning reply message with a clear error', () => {
    const w = new WireReplyWriter();
    w.ok(1, new Uint8Array(50), false);
    w.ok(2, new Uint8Array(50), false);
    const all = w.take();
    expect(() => splitReplies(all.subarray(0, all.length - 3), 60)).toThrow(/overruns|truncated/);
    expect(() => splitReplies(all.subarray(0, 3), 1)).toThrow(/truncated/);
  });
});
