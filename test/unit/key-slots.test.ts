import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KeySlots } from '../../src/storage/key-slots.js';
import { encodeStorageKey, TABLE_ID_BYTES } from '../../src/storage/keys.js';

const TABLE = new Uint8Array(TABLE_ID_BYTES).fill(7);

describe('a shard turn\'s key slots', () => {
  it('property: equal keys share a slot, distinct keys get their own, in first-seen order (as a Map by string would)', () => {
    // Few tokens and short keys, so that keys of one token and equal keys recur.
    const keyArb = fc.record({ lo: fc.integer({ min: 0, max: 3 }), pk: fc.uint8Array({ minLength: 1, maxLength: 3 }) }).map(({ lo, pk }) => encodeStorageKey(1, lo, TABLE, pk));
    fc.assert(
      fc.property(fc.array(keyArb, { maxLength: 200 }), (ks) => {
        const slots = new KeySlots();
        const ref = new Map<string, number>();
        for (const k of ks) {
          const s = k.toString('latin1');
          if (!ref.has(s)) ref.set(s, ref.size);
          expect(slots.slotOf(Buffer.from(k))).toBe(ref.get(s));
        }
        expect(slots.keys.map((k) => k.toString('latin1'))).toEqual([...ref.keys()]);
      }),
      { numRuns: 300 },
    );
  });

  it('keys of one token (the rows and cells of one wide partition) do not chain into one bucket', () => {
    const slots = new KeySlots();
    const partition = Buffer.from('sensor-42');
    for (let row = 0; row < 1000; row++) {
      for (const column of ['temperature', 'humidity', 'pressure']) {
        const clustering = Buffer.concat([Buffer.from([0, 0, 1, 0x8f, (row >> 8) & 0xff, row & 0xff]), Buffer.from(column)]);
        slots.slotOf(encodeStorageKey(0x12345678, 0x9abcdef0, TABLE, partition, clustering));
      }
    }
    expect(slots.keys).toHaveLength(3000);
    expect(slots.longestChain()).toBeLessThanOrEqual(4);
  });
});
