import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tableDefSupersedes, type TableDef } from '../../src/router/tables.js';

const defArb = fc.record({
  name: fc.constant('t'),
  id: fc.constant(1),
  conflicts: fc.constantFrom('vclock' as const, 'lww' as const),
  n: fc.integer({ min: 1, max: 5 }),
  quorum: fc.constantFrom('sloppy' as const, 'strict' as const),
  createdAt: fc.integer({ min: 1, max: 5 }),
  explicit: fc.boolean(),
  updatedAt: fc.integer({ min: 1, max: 5 }),
});

/** What a node ends with after adopting `defs` in this order (adopt = replace when superseded). */
function settle(defs: TableDef[]): TableDef {
  let cur = defs[0]!;
  for (const d of defs.slice(1)) if (tableDefSupersedes(cur, d)) cur = d;
  return cur;
}

describe('table definitions from gossip', () => {
  it('converge to the same definition whatever the delivery order', () => {
    fc.assert(
      fc.property(fc.array(defArb, { minLength: 1, maxLength: 6 }), fc.infiniteStream(fc.nat()), (defs, seeds) => {
        const winner = settle(defs);
        for (let k = 0; k < 4; k++) {
          const shuffled = defs.map((d) => [seeds.next().value as number, d] as const).sort((a, b) => a[0] - b[0]).map(([, d]) => d);
          expect(settle(shuffled)).toEqual(winner);
        }
      }),
    );
  });

  it('an explicit definition beats one created on first use; the earlier creation keeps its conflict mode', () => {
    const base: TableDef = { name: 't', id: 1, conflicts: 'vclock', n: 3, quorum: 'sloppy', createdAt: 10 };
    expect(tableDefSupersedes(base, { ...base, conflicts: 'lww', explicit: true, createdAt: 20 })).toBe(true);
    expect(tableDefSupersedes({ ...base, explicit: true }, { ...base, conflicts: 'lww', createdAt: 5 })).toBe(false);
    expect(tableDefSupersedes(base, { ...base, conflicts: 'lww', createdAt: 20 })).toBe(false);
    expect(tableDefSupersedes(base, { ...base, conflicts: 'lww', createdAt: 5 })).toBe(true);
    expect(tableDefSupersedes(base, { ...base, n: 5, updatedAt: 30 })).toBe(true);
    expect(tableDefSupersedes(base, base)).toBe(false);
  });
});
