/**
 * The lattice laws every convergent type must satisfy, as a reusable vitest block: call
 * `lattice(type, opArb)` inside a describe. States come from simulated runs (crdt-sim.ts).
 */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { crdtJoin, crdtLeq, crdtValue, decodeCrdt, encodeCrdt, type CrdtState, type CrdtType } from '../../src/crdt/index.js';
import { bytesOf, joinAll, roundTrip, simulate, stepsArb, type Resolver } from './crdt-sim.js';

const pick = <T>(xs: readonly T[], i: number): T => xs[i % xs.length]!;

export function lattice(type: CrdtType, opArb: fc.Arbitrary<Record<string, unknown>>, resolve?: Resolver, numRuns = 150): void {
  const triples = fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { minLength: 1, maxLength: 12 });

  it('join is commutative, associative and idempotent on states of one history', () => {
    fc.assert(
      fc.property(stepsArb(opArb), triples, (steps, picks) => {
        const { history } = simulate(type, steps, resolve);
        for (const [i, j, k] of picks) {
          const a = pick(history, i);
          const b = pick(history, j);
          const c = pick(history, k);
          expect(bytesOf(crdtJoin(a, b))).toBe(bytesOf(crdtJoin(b, a)));
          expect(bytesOf(crdtJoin(crdtJoin(a, b), c))).toBe(bytesOf(crdtJoin(a, crdtJoin(b, c))));
          expect(bytesOf(crdtJoin(a, a))).toBe(bytesOf(a));
        }
      }),
      { numRuns },
    );
  });

  it('join is inflationary (a ⊑ a ⊔ b) and ⊑ is the order of the join (a ⊑ b iff a ⊔ b = b)', () => {
    fc.assert(
      fc.property(stepsArb(opArb), triples, (steps, picks) => {
        const { history } = simulate(type, steps, resolve);
        for (const [i, j] of picks) {
          const a = pick(history, i);
          const b = pick(history, j);
          const ab = crdtJoin(a, b);
          expect(crdtLeq(a, ab)).toBe(true);
          expect(crdtLeq(b, ab)).toBe(true);
          expect(crdtLeq(a, b)).toBe(bytesOf(ab) === bytesOf(b));
        }
        // Every replica's own states only grow.
        for (let n = 1; n < history.length; n++) expect(crdtLeq(history[0]!, history[n]!)).toBe(true);
      }),
      { numRuns },
    );
  });

  it('any order and duplication of state deliveries converges to one state and value', () => {
    fc.assert(
      fc.property(stepsArb(opArb), fc.array(fc.nat(), { minLength: 1, maxLength: 80 }), fc.array(fc.nat(), { maxLength: 20 }), (steps, keys, dups) => {
        const { history, finals } = simulate(type, steps, resolve);
        const inOrder = joinAll(history, type);
        // A permutation of every state, then some of them again.
        const permuted = history.map((s, n) => ({ s, k: pick(keys, n) * 1000 + n })).sort((x, y) => x.k - y.k).map((x) => x.s);
        const shuffled = [...permuted, ...dups.map((d) => pick(history, d))];
        const any = joinAll(shuffled, type);
        expect(bytesOf(any)).toBe(bytesOf(inOrder));
        expect(crdtValue(any)).toEqual(crdtValue(inOrder));
        // Replicas that exchange their final states all reach that same state.
        const healed = finals.map((f) => finals.reduce((acc, g) => crdtJoin(acc, g), f));
        for (const h of healed) expect(bytesOf(h)).toBe(bytesOf(inOrder));
      }),
      { numRuns },
    );
  });

  it('encoding round-trips and is canonical', () => {
    fc.assert(
      fc.property(stepsArb(opArb), triples, (steps, picks) => {
        const { history } = simulate(type, steps, resolve);
        for (const s of history) {
          const bytes = encodeCrdt(s);
          const back = roundTrip(s);
          expect(back).toEqual(s);
          expect(Buffer.compare(encodeCrdt(back), bytes)).toBe(0);
          expect(crdtValue(decodeCrdt(bytes))).toEqual(crdtValue(s));
        }
        // Equal joins built along different paths encode to equal bytes.
        for (const [i, j, k] of picks) {
          const [a, b, c] = [pick(history, i), pick(history, j), pick(history, k)];
          const x: CrdtState = crdtJoin(crdtJoin(c, b), a);
          const y: CrdtState = roundTrip(crdtJoin(a, crdtJoin(b, c)));
          expect(Buffer.compare(encodeCrdt(x), encodeCrdt(y))).toBe(0);
        }
      }),
      { numRuns },
    );
  });
}
