import fc from 'fast-check';
import { Packr, unpack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { MsgpackWriter } from '../../src/util/msgpack-writer.js';

// The options of the record codec, the context codec and the frames (src/net/frames.ts).
const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });

const numberArb = fc.oneof(
  fc.integer({ min: -40, max: 300 }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.constantFrom(0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff, 2 ** 32, -0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -(2 ** 31), -(2 ** 31) - 1),
  fc.double({ noNaN: true }),
);
const strArb = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: 'grapheme', maxLength: 40 }), fc.integer({ min: 0, max: 300 }).map((n) => 'é'.repeat(n)));
const binArb = fc.uint8Array({ maxLength: 300 });
/** Lengths around every header boundary (fix / 8 / 16 / 32-bit). */
const sizeArb = fc.oneof(fc.integer({ min: 0, max: 70000 }), fc.constantFrom(31, 32, 255, 256, 65535, 65536));

const { tree } = fc.letrec((tie) => ({
  tree: fc.oneof({ depthSize: 'small', maxDepth: 3 }, tie('leaf'), tie('arr'), tie('obj')),
  leaf: fc.oneof(fc.constant(null), fc.boolean(), numberArb, strArb, binArb.map((u) => Buffer.from(u))),
  arr: fc.array(tie('tree'), { maxLength: 18 }),
  obj: fc.dictionary(fc.string({ maxLength: 12 }).filter((k) => k !== '__proto__'), tie('tree'), { maxKeys: 20 }),
}));

/** msgpackr writes -0 as the integer 0 (so does MsgpackWriter, byte for byte), so -0 comes back as 0. */
function withoutNegativeZero(v: unknown): unknown {
  if (Object.is(v, -0)) return 0;
  if (Array.isArray(v)) return v.map(withoutNegativeZero);
  if (v !== null && typeof v === 'object' && !Buffer.isBuffer(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutNegativeZero(x)]));
  return v;
}

function written(v: unknown): Buffer {
  const w = new MsgpackWriter();
  w.value(v);
  return w.takeBuffer();
}

describe('MsgpackWriter', () => {
  it("writes msgpackr's bytes for every value of its vocabulary (round trip through msgpackr too)", () => {
    fc.assert(
      fc.property(tree, (v) => {
        const mine = written(v);
        expect(mine.equals(packr.pack(v))).toBe(true);
        expect(unpack(mine)).toEqual(withoutNegativeZero(v));
      }),
      { numRuns: 200 },
    );
  });

  it('writes -0 as msgpackr does (the integer 0)', () => {
    expect(written(-0).equals(packr.pack(-0))).toBe(true);
    expect(Object.is(unpack(written(-0)), 0)).toBe(true);
    expect(unpack(written([-0, { a: -0 }]))).toEqual([0, { a: 0 }]);
  });

  it('writes the header msgpackr writes for str, bin, array and map lengths at every boundary', () => {
    fc.assert(
      fc.property(sizeArb, (n) => {
        for (const v of ['a'.repeat(n), Buffer.alloc(n, 1)]) expect(written(v).equals(packr.pack(v))).toBe(true);
        const w = new MsgpackWriter();
        w.arrayHeader(n);
        w.mapHeader(n);
        const ref = Buffer.concat([packr.pack(new Array(n).fill(0)).subarray(0, n < 16 ? 1 : n < 65536 ? 3 : 5), packr.pack(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 0]))).subarray(0, n < 16 ? 1 : n < 65536 ? 3 : 5)]);
        expect(w.takeBuffer().equals(ref)).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it('grows its scratch past the initial size and keeps what it wrote', () => {
    const big = new Uint8Array(200_000).fill(3);
    const w = new MsgpackWriter();
    w.arrayHeader(2);
    w.str('x'.repeat(100_000));
    w.bin(big);
    expect(w.takeBuffer().equals(packr.pack(['x'.repeat(100_000), Buffer.from(big)]))).toBe(true);
  });

  it('leaves undefined map values out and refuses what is not in its vocabulary', () => {
    expect(unpack(written({ a: 1, b: undefined }))).toEqual({ a: 1 });
    expect(() => written({ f: () => 1 })).toThrow(/cannot write a function/);
    expect(() => written(10n)).toThrow(/cannot write a bigint/);
  });

  it('fills a reserved header in place', () => {
    const w = new MsgpackWriter();
    const at = w.skip(4);
    w.str('hello');
    w.setUint32At(at, w.pos - 4);
    const b = w.takeBuffer();
    expect(b.readUInt32BE(0)).toBe(b.length - 4);
    expect(unpack(b.subarray(4))).toBe('hello');
  });
});
