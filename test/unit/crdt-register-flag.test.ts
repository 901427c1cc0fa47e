import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crdtApply, crdtContext, crdtJoin, crdtValue, emptyCrdt, parseOp, type CrdtState } from '../../src/crdt/index.js';
import { crdtLimits } from '../../src/crdt/limits.js';
import { RingkvError } from '../../src/util/errors.js';
import { lattice } from '../helpers/crdt-laws.js';
import { joinAll, simulate, stepsArb } from '../helpers/crdt-sim.js';

const registerOp = fc.record({ assign: fc.constantFrom('x', 'y', 'z', '') }) as fc.Arbitrary<Record<string, unknown>>;
const flagOp = fc.constantFrom<Record<string, unknown>>({ enable: true }, { enable: true }, { disable: true });

function assign(s: CrdtState, value: string, actor: string, nowMicros: number): CrdtState {
  return crdtApply(s, { type: 'register', assign: value }, actor, { nowMicros });
}

describe('register (LWW)', () => {
  lattice('register', registerOp);

  it('the larger timestamp wins, then the larger actor, then the larger value, on every replica', () => {
    const e = emptyCrdt('register');
    const early = assign(e, 'early', 'n9', 100);
    const late = assign(e, 'late', 'n1', 200);
    expect(crdtValue(crdtJoin(early, late))).toBe('late');
    expect(crdtValue(crdtJoin(late, early))).toBe('late');
    const tieA = assign(e, 'from-a', 'a', 300);
    const tieB = assign(e, 'from-b', 'b', 300);
    expect(crdtValue(crdtJoin(tieA, tieB))).toBe('from-b');
    expect(crdtValue(crdtJoin(tieB, tieA))).toBe('from-b');
    const sameActor1 = assign(e, 'v1', 'a', 400);
    const sameActor2 = assign(e, 'v2', 'a', 400);
    expect(crdtValue(crdtJoin(sameActor1, sameActor2))).toBe('v2');
    expect(crdtValue(crdtJoin(sameActor2, sameActor1))).toBe('v2');
  });

  it('an assign applied after another at the same replica wins even when that replica clock is behind', () => {
    const fromFastClock = assign(emptyCrdt('register'), 'first', 'n1', 5_000_000);
    const second = assign(fromFastClock, 'second', 'n2', 1_000); // n2's clock is far behind
    expect(crdtValue(crdtJoin(fromFastClock, second))).toBe('second');
    expect(second.type === 'register' && second.entry!.ts).toBe(5_000_001);
  });

  it('converges to the assign with the largest (timestamp, actor, value)', () => {
    fc.assert(
      fc.property(stepsArb(registerOp, 30), (steps) => {
        const run = simulate('register', steps);
        const all = joinAll(run.history, 'register');
        const cmp = (x: string, y: string): number => (x < y ? -1 : x > y ? 1 : 0);
        const entries = run.history.flatMap((st) => (st.type === 'register' && st.entry !== null ? [st.entry] : []));
        entries.sort((a, b) => a.ts - b.ts || cmp(a.actor, b.actor) || cmp(a.value, b.value));
        expect(crdtValue(all)).toBe(entries.at(-1)?.value ?? null);
        if (run.applied.length === 0) expect(crdtValue(all)).toBeNull();
      }),
    );
  });

  it('refuses values past crdt.maxRegisterBytes and registers take no context', () => {
    const limits = crdtLimits({ maxRegisterBytes: 4 });
    expect(() => parseOp('register', { assign: 'abcde' }, limits)).toThrow(/crdt\.maxRegisterBytes \(4\)/);
    expect(() => crdtApply(emptyCrdt('register'), { type: 'register', assign: 'abcde' }, 'n1', { nowMicros: 1, limits })).toThrow(RingkvError);
    expect(() => parseOp('register', { assign: 'v', context: '' })).toThrow(/register operations take no context/);
  });
});

describe('flag (enable-wins)', () => {
  lattice('flag', flagOp);

  it('enable wins over a concurrent disable; a disable that saw the enable wins', () => {
    const on = crdtApply(emptyCrdt('flag'), { type: 'flag', enable: true }, 'n1');
    const seen = crdtJoin(emptyCrdt('flag'), on);
    const reEnabled = crdtApply(on, { type: 'flag', enable: true }, 'n1');
    const off = crdtApply(seen, { type: 'flag', enable: false }, 'n2', { context: seen.type === 'flag' ? seen.clock : [] });
    expect(crdtValue(off)).toBe(false);
    expect(crdtValue(crdtJoin(off, reEnabled))).toBe(true);
    expect(crdtValue(crdtJoin(off, on))).toBe(false);
  });

  it('disabling a disabled flag is not an error; a context ahead of the replica is', () => {
    const off = crdtApply(emptyCrdt('flag'), { type: 'flag', enable: false }, 'n1');
    expect(crdtValue(off)).toBe(false);
    const elsewhere = crdtApply(emptyCrdt('flag'), { type: 'flag', enable: true }, 'n2');
    const parsed = parseOp('flag', { disable: true, context: crdtContext(elsewhere) });
    expect(() => crdtApply(off, parsed.op, 'n1', { context: parsed.context })).toThrow(/not yet seen everything/);
  });

  it('after convergence the flag is on iff some enable was not seen by a later disable', () => {
    fc.assert(
      fc.property(stepsArb(flagOp, 30), (steps) => {
        const run = simulate('flag', steps);
        const all = joinAll(run.history, 'flag');
        // Enabled iff some applied enable's dot survived: equivalently, a fresh disable with the
        // merged context turns it off everywhere, and a stale state cannot turn it back on.
        const off = crdtApply(all, { type: 'flag', enable: false }, 'n1');
        expect(crdtValue(joinAll([...run.history, off], 'flag'))).toBe(false);
        if (!run.applied.some((a) => a.body['enable'] === true)) expect(crdtValue(all)).toBe(false);
      }),
    );
  });
});
