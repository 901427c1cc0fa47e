import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyToEncoded, crdtApply, crdtValue, emptyCrdt, parseOp, readEncoded, type CrdtState } from '../../src/crdt/index.js';
import { crdtLimits } from '../../src/crdt/limits.js';
import { lattice } from '../helpers/crdt-laws.js';
import { joinAll, simulate, stepsArb } from '../helpers/crdt-sim.js';

const opArb = fc.oneof(
  fc.record({ increment: fc.integer({ min: -50, max: 50 }) }),
  fc.record({ decrement: fc.integer({ min: 0, max: 50 }) }),
) as fc.Arbitrary<Record<string, unknown>>;

function delta(body: Record<string, unknown>): number {
  return 'increment' in body ? (body['increment'] as number) : -(body['decrement'] as number);
}

describe('counter (PN-counter)', () => {
  lattice('counter', opArb);

  it('the value is the sum of the applied increments whatever the delivery order', () => {
    fc.assert(
      fc.property(stepsArb(opArb, 40), (steps) => {
        const run = simulate('counter', steps);
        expect(run.refused.size).toBe(0);
        const sum = run.applied.reduce((acc, a) => acc + delta(a.body), 0);
        expect(crdtValue(joinAll(run.history, 'counter'))).toBe(sum);
        expect(crdtValue(joinAll([...run.history].reverse(), 'counter'))).toBe(sum);
      }),
    );
  });

  it('keeps one entry per coordinating node, however many increments', () => {
    let s: CrdtState = emptyCrdt('counter');
    for (let i = 0; i < 1000; i++) s = crdtApply(s, { type: 'counter', increment: i % 3 === 0 ? -1 : 2 }, `n${i % 3}`);
    expect(s.type === 'counter' && s.entries.length).toBe(3);
    expect(crdtValue(s)).toBe(334 * -1 + 666 * 2);
  });

  it('accepts increment, negative increment and decrement', () => {
    let bytes: Uint8Array | undefined;
    for (const body of [{ increment: 5 }, { increment: -2 }, { decrement: 3 }]) {
      bytes = applyToEncoded('counter', bytes, parseOp('counter', body), 'n1', 1).bytes;
    }
    expect(readEncoded('counter', bytes)).toEqual({ value: 0, context: undefined });
    expect(readEncoded('counter', undefined)).toEqual({ value: 0, context: undefined });
  });

  it('refuses a new actor past crdt.maxActors, naming the limit', () => {
    const limits = crdtLimits({ maxActors: 2 });
    let s: CrdtState = emptyCrdt('counter');
    s = crdtApply(s, { type: 'counter', increment: 1 }, 'n1', { limits });
    s = crdtApply(s, { type: 'counter', increment: 1 }, 'n2', { limits });
    expect(() => crdtApply(s, { type: 'counter', increment: 1 }, 'n3', { limits })).toThrow(/crdt\.maxActors \(2\)/);
    // Known actors keep counting.
    expect(crdtValue(crdtApply(s, { type: 'counter', increment: 1 }, 'n2', { limits }))).toBe(3);
  });

  it('refuses an increment that would leave the exact integer range', () => {
    const s = crdtApply(emptyCrdt('counter'), { type: 'counter', increment: Number.MAX_SAFE_INTEGER }, 'n1');
    expect(() => crdtApply(s, { type: 'counter', increment: 1 }, 'n2')).toThrow(/exact integer range/);
    expect(() => crdtApply(s, { type: 'counter', increment: 1 }, 'n1')).toThrow(/exact integer range/);
    expect(crdtValue(crdtApply(s, { type: 'counter', increment: -5 }, 'n1'))).toBe(Number.MAX_SAFE_INTEGER - 5);
  });
});
