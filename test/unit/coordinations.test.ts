/**
 * The live-coordination registry (src/router/coordinations.ts): every registered coordination is
 * answered exactly once, the registry empties when all have answered, and `overdue` names exactly
 * the entries past deadline + grace.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LiveCoordinations } from '../../src/router/coordinations.js';

type Step = { t: 'begin'; deadline: number } | { t: 'answer'; pick: number } | { t: 'sweep'; now: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ t: fc.constant('begin' as const), deadline: fc.integer({ min: 0, max: 10_000 }) }),
  fc.record({ t: fc.constant('answer' as const), pick: fc.nat() }),
  fc.record({ t: fc.constant('sweep' as const), now: fc.integer({ min: 0, max: 12_000 }) }),
);

describe('LiveCoordinations', () => {
  it('answers each coordination exactly once, the backstop only past deadline + grace, and empties', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 80 }), fc.integer({ min: 0, max: 2000 }), (steps, grace) => {
        const reg = new LiveCoordinations(grace);
        const calls: number[] = [];
        const open: Array<{ i: number; deadline: number; answer: (e: Error | null, r: number | undefined) => void }> = [];
        let begun = 0;
        for (const s of steps) {
          if (s.t === 'begin') {
            const i = begun++;
            calls.push(0);
            const answer = reg.begin<number>('read', s.deadline, () => calls[i]!++);
            open.push({ i, deadline: s.deadline, answer });
          } else if (s.t === 'answer') {
            if (open.length === 0) continue;
            const [o] = open.splice(s.pick % open.length, 1);
            o!.answer(null, 1);
            o!.answer(null, 2); // a second answer is ignored
          } else {
            const due = reg.overdue(s.now);
            expect(due.map((d) => d.deadline)).toEqual(open.filter((o) => s.now > o.deadline + grace).map((o) => o.deadline).sort((a, b) => a - b));
            for (const d of due) d.fail(new Error('overdue'));
            for (let k = open.length - 1; k >= 0; k--) if (s.now > open[k]!.deadline + grace) open.splice(k, 1);
          }
          expect(reg.size).toBe(open.length);
        }
        for (const o of open) o.answer(null, 3);
        expect(reg.size).toBe(0);
        expect(calls.every((c) => c === 1)).toBe(true);
      }),
    );
  });

  it('whenAnswered settles once every coordination live at the call has answered, not those begun later', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: 12 }), fc.array(fc.nat(), { maxLength: 12 }), async (n, order) => {
        const reg = new LiveCoordinations(0);
        const live = Array.from({ length: n }, () => reg.begin<number>('write', 1000, () => undefined));
        let settled = false;
        const barrier = reg.whenAnswered().then(() => (settled = true));
        const later = reg.begin<number>('read', 1000, () => undefined);
        // Answer the live ones in an arbitrary order; the barrier must hold until the last.
        const left = [...live];
        for (const pick of order) {
          if (left.length <= 1) break;
          left.splice(pick % left.length, 1)[0]!(null, 1);
          await Promise.resolve();
          expect(settled).toBe(false);
        }
        for (const a of left) a(null, 1);
        await barrier;
        expect(settled).toBe(true);
        expect(reg.size).toBe(1);
        later(null, 2);
        expect(reg.size).toBe(0);
      }),
    );
  });
});
