/**
 * The hand-written reader of record bodies (readRecordBody in src/versions/record.ts): where it
 * reads a record at all, it returns what msgpackr returns, and decodeRecord is the same function of
 * the bytes whichever path it takes (valid, corrupted and foreign inputs alike).
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, newVersion, RECORD_FORMAT, readRecordBody, type Version } from '../../src/versions/index.js';

// The record codec's decoding options.
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number', copyBuffers: true });

const NODES = ['a', 'node-b', 'ü-node'];
const versionArb: fc.Arbitrary<Version> = fc
  .record({
    node: fc.constantFrom(...NODES),
    counter: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER - 1 })),
    ctx: fc.dictionary(fc.constantFrom(...NODES), fc.integer({ min: 1, max: 2 ** 40 }), { maxKeys: 3 }),
    ts: fc.oneof(fc.constant(0), fc.maxSafeNat()),
    tombstone: fc.boolean(),
    value: fc.uint8Array({ maxLength: 70_000 / 50 }),
    ttl: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 1000 })),
  })
  .map(({ node, counter, ctx, ts, tombstone, value, ttl }) => {
    const context = Object.entries(ctx)
      .filter(([n, c]) => n !== node || c < counter)
      .sort(([x], [y]) => (x < y ? -1 : 1));
    return newVersion({ node, counter, context, ts, tombstone, value: tombstone ? new Uint8Array(0) : value, maxClockEntries: 10, ttl: tombstone ? 0 : ttl });
  });
const recordArb = fc.uniqueArray(versionArb, { minLength: 1, maxLength: 4, selector: (v) => `${v.dot[0]}:${v.dot[1]}` });

/** Versions in one order, whatever the record's canonical order is. */
const byDot = (vs: readonly Version[]): Version[] => [...vs].sort((x, y) => (`${x.dot[0]}:${x.dot[1]}` < `${y.dot[0]}:${y.dot[1]}` ? -1 : 1));

/** decodeRecord's outcome as a comparable value: the versions, or the error's message. */
function outcome(buf: Uint8Array): unknown {
  try {
    return { ok: decodeRecord(buf) };
  } catch (e) {
    return { err: (e as Error).message };
  }
}

/** decodeRecord as it was before the hand-written reader: msgpackr for every body. */
function outcomeViaMsgpackr(buf: Uint8Array): unknown {
  let body: unknown;
  try {
    body = packr.unpack(buf.subarray(1));
  } catch {
    return 'undecodable';
  }
  return body;
}

describe('record body reader', () => {
  it('reads exactly what msgpackr reads from encodeRecord output (and ASCII-only node ids are read by hand)', () => {
    fc.assert(
      fc.property(recordArb, (vs) => {
        const buf = encodeRecord(vs);
        const body = readRecordBody(buf);
        if (vs.every((v) => v.clock.every(([n]) => /^[\x00-\x7f]*$/.test(n)))) expect(body).not.toBeNull();
        if (body !== null) expect(body).toEqual(packr.unpack(buf.subarray(1)));
        // And the whole decode gives back the versions that were encoded (in the record's canonical order).
        const decoded = decodeRecord(buf);
        expect(byDot(decoded)).toEqual(byDot(vs.map((v) => ({ ...v, value: Buffer.from(v.value) }))));
      }),
      { numRuns: 300 },
    );
  });

  it('on corrupted bytes it either declines or agrees with msgpackr, and decodeRecord judges them the same either way', () => {
    fc.assert(
      fc.property(recordArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(), (vs, flips, cut) => {
        const buf = Buffer.from(encodeRecord(vs));
        for (const [at, byte] of flips) buf[1 + (at % (buf.length - 1))] = byte;
        const bytes = cut % 3 === 0 ? buf.subarray(0, Math.max(2, buf.length - 1 - (cut % 7))) : buf;
        const body = readRecordBody(bytes);
        if (body !== null) expect(body).toEqual(outcomeViaMsgpackr(bytes));
        // Both paths end in the same checks: valid versions, or a corrupt-record error.
        const o = outcome(bytes) as { ok?: Version[]; err?: string };
        if (o.err !== undefined) expect(o.err).toMatch(/corrupt record/);
      }),
      { numRuns: 500 },
    );
  });

  it('declines trailing bytes, other containers and non-ASCII node ids (msgpackr then decides)', () => {
    const one = encodeRecord([newVersion({ node: 'a', counter: 1, context: [], ts: 5, tombstone: false, value: new Uint8Array([1]), maxClockEntries: 10 })]);
    expect(readRecordBody(one)).not.toBeNull();
    expect(readRecordBody(Buffer.concat([one, Buffer.from([0xc0])]))).toBeNull();
    expect(() => decodeRecord(Buffer.concat([one, Buffer.from([0xc0])]))).toThrow(/corrupt record/);
    expect(readRecordBody(Buffer.from([RECORD_FORMAT, 0x81, 0xa1, 0x61, 0x01]))).toBeNull();
    expect(() => decodeRecord(Buffer.from([RECORD_FORMAT, 0x81, 0xa1, 0x61, 0x01]))).toThrow(/body is not an array/);
    const uml = encodeRecord([newVersion({ node: 'ü', counter: 1, context: [], ts: 5, tombstone: false, value: new Uint8Array([1]), maxClockEntries: 10 })]);
    expect(readRecordBody(uml)).toBeNull();
    expect(decodeRecord(uml)[0]!.dot).toEqual(['ü', 1]);
  });

  it('copies values: a decoded value does not alias the input', () => {
    const buf = Buffer.from(encodeRecord([newVersion({ node: 'a', counter: 1, context: [], ts: 5, tombstone: false, value: new Uint8Array([9, 9]), maxClockEntries: 10 })]));
    const v = decodeRecord(buf)[0]!.value;
    buf.fill(0);
    expect([...v]).toEqual([9, 9]);
  });
});
