import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RING_HEADER_BYTES, RingError, SpscRing } from '../../src/storage/spsc-ring.js';

const msg = (n: number, seed: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (seed * 31 + i) & 0xff);
const drainAll = (r: SpscRing): Uint8Array[] => {
  const out: Uint8Array[] = [];
  r.drain((m) => out.push(m.slice()));
  return out;
};
const align4 = (n: number): number => (n + 3) & ~3;

describe('SpscRing', () => {
  it('refuses capacities that are not powers of two, and buffers that are not rings', () => {
    expect(() => SpscRing.create(100)).toThrow(RingError);
    expect(() => SpscRing.create(32)).toThrow(/power of two/);
    expect(() => new SpscRing(new SharedArrayBuffer(RING_HEADER_BYTES + 100))).toThrow(/not a ring/);
  });

  it('delivers a multi-message batch in order, byte-exact, and releases the space', () => {
    const r = SpscRing.create(1024);
    const sent = [msg(0, 1), msg(1, 2), msg(5, 3), msg(100, 4)];
    for (const m of sent) expect(r.push(m)).toBe(true);
    expect(r.hasData).toBe(true);
    expect(drainAll(r)).toEqual(sent);
    expect(r.usedBytes).toBe(0);
    expect(r.hasData).toBe(false);
  });

  it('concatenates the parts of one message', () => {
    const r = SpscRing.create(256);
    expect(r.push(msg(3, 1), msg(0, 2), msg(7, 3))).toBe(true);
    const [m] = drainAll(r);
    expect(m).toEqual(Uint8Array.from([...msg(3, 1), ...msg(7, 3)]));
  });

  it('wraps around: a message that does not fit before the end starts over at 0 behind a pad', () => {
    const r = SpscRing.create(256);
    // Move the counters near the end of the first lap.
    for (let i = 0; i < 3; i++) {
      expect(r.push(msg(56, i))).toBe(true); // 60 bytes each
      drainAll(r);
    }
    // 180 bytes used of the lap; 76 left before the end: a 100-byte message pads and wraps.
    const big = msg(100, 9);
    expect(r.push(big)).toBe(true);
    expect(r.usedBytes).toBe(76 + 104);
    expect(drainAll(r)).toEqual([big]);
    expect(r.usedBytes).toBe(0);
    // And keeps working across many laps and the uint32 counter wrap is not needed to be correct.
    for (let i = 0; i < 1000; i++) {
      const m = msg(i % 90, i);
      expect(r.push(m)).toBe(true);
      expect(drainAll(r)).toEqual([m]);
    }
  });

  it('a full ring refuses a push and writes nothing; draining makes room again', () => {
    const r = SpscRing.create(128); // maxMessageBytes 56
    expect(r.push(msg(56, 1))).toBe(true); // 60
    expect(r.push(msg(56, 2))).toBe(true); // 120
    const before = r.usedBytes;
    expect(r.push(msg(8, 3))).toBe(false);
    expect(r.usedBytes).toBe(before);
    expect(drainAll(r)).toEqual([msg(56, 1), msg(56, 2)]);
    expect(r.push(msg(8, 3))).toBe(true);
    expect(drainAll(r)).toEqual([msg(8, 3)]);
  });

  it('a message over the bound is an error, never a partial write', () => {
    const r = SpscRing.create(128);
    expect(r.maxMessageBytes).toBe(56);
    expect(() => r.push(msg(57, 1))).toThrow(/message bound/);
    expect(r.usedBytes).toBe(0);
  });

  it('a message released only after the consumer returns; a throwing consumer still releases it', () => {
    const r = SpscRing.create(128);
    r.push(msg(4, 1));
    r.push(msg(4, 2));
    let seen = 0;
    expect(() =>
      r.drain(() => {
        seen++;
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(seen).toBe(1);
    expect(drainAll(r)).toEqual([msg(4, 2)]);
  });

  it('a corrupt length is reported, not read past the ring', () => {
    const r = SpscRing.create(128);
    r.push(msg(4, 1));
    new DataView(r.buffer, RING_HEADER_BYTES).setUint32(0, 1000, true);
    expect(() => drainAll(r)).toThrow(/corrupt/);
  });

  it('park: refuses while data is waiting, parks when empty; a push wakes (clears) it', () => {
    const r = SpscRing.create(128);
    const [word, idx] = r.sleepWord();
    r.push(msg(1, 1));
    expect(r.park()).toBe(false);
    expect(Atomics.load(word, idx)).toBe(0);
    drainAll(r);
    expect(r.park()).toBe(true);
    expect(Atomics.load(word, idx)).toBe(1);
    r.push(msg(1, 2));
    expect(Atomics.load(word, idx)).toBe(0);
    expect(r.wakes).toBe(1);
    // A second ring object over the same buffer (the other thread's view) sees the same state.
    const other = new SpscRing(r.buffer);
    expect(drainAll(other)).toEqual([msg(1, 2)]);
    expect(r.usedBytes).toBe(0);
  });

  it('behaves like a bounded FIFO queue under any interleaving of pushes and drains (model test)', () => {
    const cap = 256;
    const op = fc.oneof(fc.record({ t: fc.constant('push' as const), parts: fc.array(fc.integer({ min: 0, max: 40 }), { minLength: 1, maxLength: 3 }) }), fc.record({ t: fc.constant('drain' as const), n: fc.constant(0) }));
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const r = SpscRing.create(cap);
        const model: Uint8Array[] = [];
        // Model of the byte accounting: lap position and used bytes, padding included.
        let head = 0;
        let used = 0;
        let seed = 0;
        for (const o of ops) {
          if (o.t === 'push') {
            const parts = o.parts.map((n) => msg(n, seed++));
            const len = parts.reduce((s, p) => s + p.length, 0);
            const need = 4 + align4(len);
            const at = head % cap;
            const skip = need > cap - at ? cap - at : 0;
            const room = skip + need <= cap - used;
            expect(r.push(...parts)).toBe(room);
            if (room) {
              model.push(Uint8Array.from(parts.flatMap((p) => [...p])));
              head += skip + need;
              used += skip + need;
            }
          } else {
            expect(drainAll(r)).toEqual(model.splice(0));
            used = 0;
          }
          expect(r.usedBytes).toBe(used);
        }
        expect(drainAll(r)).toEqual(model);
      }),
      { numRuns: 300 },
    );
  });
});
