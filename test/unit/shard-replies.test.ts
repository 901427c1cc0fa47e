/**
 * The router's decode of shard replies straight from its reply ring (decodeReplies with
 * copyRecords, src/storage/shard-wire.ts): the same replies as the decode of a copy, with records
 * that stay intact once the ring's bytes are reused, and no object per reply without a record.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeReplies, WireReplyWriter, type WireReply } from '../../src/storage/shard-wire.js';

type Sent = { id: number; record: Uint8Array | null; changed: boolean } | { id: number; code: string; message: string };

const sentArb: fc.Arbitrary<Sent[]> = fc.array(
  fc.oneof(
    fc.record({ id: fc.nat(), record: fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null }), changed: fc.boolean() }),
    fc.record({ id: fc.nat(), code: fc.constantFrom('overloaded', 'not_owner'), message: fc.string({ maxLength: 20 }) }),
  ),
  { maxLength: 30 },
);

function encode(sent: Sent[]): Uint8Array {
  const w = new WireReplyWriter(64);
  for (const s of sent) {
    if ('code' in s) w.error(s.id, s.code, s.message);
    else w.ok(s.id, s.record, s.changed);
  }
  return w.take();
}

const plain = (r: WireReply): unknown => (r.ok ? { ...r, record: r.record ? Array.from(r.record) : null } : { ...r });

describe('decodeReplies from the reply ring (copyRecords)', () => {
  it('gives the replies the decode of a copy gives, and records survive the reuse of the bytes', () => {
    fc.assert(
      fc.property(sentArb, (sent) => {
        const wire = encode(sent);
        const viaCopy: Array<[number, unknown]> = [];
        decodeReplies(wire.slice(), (id, r) => viaCopy.push([id, plain(r)]));
        const kept: Array<[number, WireReply]> = [];
        decodeReplies(wire, (id, r) => kept.push([id, r]), true);
        wire.fill(0xee); // the ring's space is reused once the callbacks returned
        expect(kept.map(([id, r]) => [id, plain(r)])).toEqual(viaCopy);
      }),
    );
  });

  it('answers a reply without a record with one shared frozen object per `changed`', () => {
    const got: WireReply[] = [];
    decodeReplies(encode([{ id: 1, record: null, changed: true }, { id: 2, record: null, changed: true }, { id: 3, record: null, changed: false }]), (_id, r) => got.push(r), true);
    expect(got[0]).toBe(got[1]);
    expect(got[2]).not.toBe(got[0]);
    expect(got[2]).toEqual({ ok: true, record: null, changed: false });
    expect(Object.isFrozen(got[0])).toBe(true);
  });
});
