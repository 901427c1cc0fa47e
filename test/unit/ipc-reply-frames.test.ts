import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { batchOkFrame, getOkFrame, writeOkFrame } from '../../src/api/ipc-reply-frames.js';
import type { BatchItemResult, GetOk, WriteOk } from '../../src/api/ipc-protocol.js';
import { encodeFrame } from '../../src/net/frames.js';
import { resolveConsistency } from '../../src/router/consistency.js';
import { consistencyReport } from '../../src/router/quorum-read.js';

// Past the reply writer's cache of common reports (counts below 16) on both sides.
const count = fc.oneof(fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 40 }), fc.constantFrom(15, 16, 127, 128, 255, 256));
const consistencyArb = fc.record(
  { n: count, required: count, replied: count, clamped: fc.record({ requested: fc.record({ n: count, required: count }), ringReplicas: count }) },
  { requiredKeys: ['n', 'required', 'replied'] },
);
const contextArb = fc.oneof(fc.constant(''), fc.base64String({ maxLength: 60 }));
const writeOkArb: fc.Arbitrary<WriteOk> = fc.record({ context: contextArb, consistency: consistencyArb });
const bytes = fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.from(u));
const getOkArb: fc.Arbitrary<GetOk> = fc.oneof(
  fc.record({ found: fc.constant(false), context: contextArb, consistency: consistencyArb }),
  fc.record({ found: fc.constant(true), context: contextArb, consistency: consistencyArb, value: bytes }),
  fc.record({ found: fc.constant(true), context: contextArb, consistency: consistencyArb, siblings: fc.array(bytes, { minLength: 2, maxLength: 4 }) }),
);
// As the generic path built them: {found, context, consistency} and then value / siblings.
const ordered = (g: GetOk): GetOk => {
  const o: GetOk = { found: g.found, context: g.context, consistency: g.consistency };
  if (g.value) o.value = g.value;
  if (g.siblings) o.siblings = g.siblings;
  return o;
};
const idArb = fc.integer({ min: 0, max: 0xffffffff });
const rvArb = fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 16, maxLength: 16 });
const itemArb: fc.Arbitrary<BatchItemResult> = fc.oneof(
  writeOkArb.map((w) => ({ ok: true as const, ...w })),
  getOkArb.map((g) => ({ ok: true as const, ...ordered(g) })),
  fc.record({ ok: fc.constant(false as const), code: fc.constantFrom('bad_request' as const, 'too_large' as const), message: fc.string(), field: fc.string({ maxLength: 8 }) }, { requiredKeys: ['ok', 'code', 'message'] }),
);

describe('hand-written IPC reply frames', () => {
  it('a put/del answer is the frame the generic encoder writes for {id, ok, context, consistency, rv}', () => {
    fc.assert(
      fc.property(idArb, writeOkArb, rvArb, (id, r, rv) => {
        expect(writeOkFrame(id, r, rv).equals(encodeFrame({ id, ok: true, ...r, rv }))).toBe(true);
      }),
    );
  });

  it('a get answer (absent, one value, siblings) is the generic frame byte for byte', () => {
    fc.assert(
      fc.property(idArb, getOkArb, rvArb, (id, g, rv) => {
        expect(getOkFrame(id, ordered(g), rv).equals(encodeFrame({ id, ok: true, ...ordered(g), rv }))).toBe(true);
      }),
    );
  });

  it('a batch answer with writes, gets and item errors is the generic frame byte for byte', () => {
    fc.assert(
      fc.property(idArb, fc.array(itemArb, { maxLength: 40 }), rvArb, (id, results, rv) => {
        expect(batchOkFrame(id, results, rv).equals(encodeFrame({ id, ok: true, results, rv }))).toBe(true);
      },
      ),
    );
  });

  it("writes the clamped report resolveConsistency really returns as the generic encoder does (its shape is hand-written here)", () => {
    const cons = resolveConsistency({}, 'write', 3, 1);
    expect(cons.clamped).toBeDefined();
    const r: WriteOk = { context: 'ctx', consistency: consistencyReport(cons, 1) };
    expect(writeOkFrame(7, r, 'rv').equals(encodeFrame({ id: 7, ok: true, ...r, rv: 'rv' }))).toBe(true);
  });

  it('frames do not alias each other (each reply owns its bytes)', () => {
    const a = writeOkFrame(1, { context: 'abc', consistency: { n: 1, required: 1, replied: 1 } }, 'rv');
    const copy = Buffer.from(a);
    writeOkFrame(2, { context: 'xyz', consistency: { n: 3, required: 2, replied: 2 } }, 'rv');
    expect(a.equals(copy)).toBe(true);
  });
});
