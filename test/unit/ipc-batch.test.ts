import { describe, expect, it } from 'vitest';
import { BatchRun, isRunnable, okItem, parseBatchItems } from '../../src/api/ipc-batch.js';
import type { IpcLimits, ItemError } from '../../src/api/ipc-protocol.js';
import type { KvOp, ShapeProblem } from '../../src/api/ipc-request.js';
import { ReplyBudget } from '../../src/net/reply-budget.js';
import { RingkvError } from '../../src/util/errors.js';
import { thrown } from '../helpers/thrown.js';

const LIMITS: IpcLimits = { maxKeyBytes: 64, maxValueBytes: 1024, maxFrameBytes: 64 * 1024, maxInFlightPerConnection: 16 };
const NO_PROBLEMS: ReadonlyMap<number, ShapeProblem> = new Map();
const consistency = { n: 3, required: 2, replied: 2 };

describe('ipc batch fan-out: splitting a batch into its items (pure)', () => {
  it('parses each item on its own: a bad item fails alone naming its field, and the batch timeoutMs is the default of the rest', () => {
    const items = parseBatchItems(
      {
        id: 1,
        op: 'batch',
        timeoutMs: 250,
        items: [
          { op: 'put', table: 't', key: 'a', value: 'x' },
          'not a map',
          { op: 'get', table: 't', key: 'k'.repeat(65) },
          { op: 'del', table: 't', key: 'b', timeoutMs: 99 },
        ],
      },
      NO_PROBLEMS,
      LIMITS,
      8,
    );
    expect(items.map(isRunnable)).toEqual([true, false, false, true]);
    const [put, notMap, longKey, del] = items as [KvOp, ItemError, ItemError, KvOp];
    expect(put).toMatchObject({ kind: 'put', table: 't', tombstone: false, timeoutMs: 250 });
    expect(Buffer.from(put.key).toString()).toBe('a');
    expect(notMap).toMatchObject({ ok: false, code: 'bad_request', field: 'op' });
    expect(longKey).toMatchObject({ ok: false, code: 'too_large', field: 'key' });
    // The batch's timeoutMs is its items' default: an item's own wins.
    expect(del).toMatchObject({ kind: 'del', table: 't', tombstone: true, timeoutMs: 99 });
  });

  it('a msgpack-level shape problem under items[i] fails item i only, named by its path inside the item', () => {
    const problems = new Map<number, ShapeProblem>([[1, { path: ['items', 1, 'value'], kind: 'float', message: 'must be bin or str, got a float' }]]);
    const items = parseBatchItems(
      { id: 1, op: 'batch', items: [{ op: 'get', table: 't', key: 'a' }, { op: 'put', table: 't', key: 'b', value: 1.5 }] },
      problems,
      LIMITS,
      8,
    );
    expect(isRunnable(items[0]!)).toBe(true);
    expect(items[1]).toEqual({ ok: false, code: 'bad_request', message: 'value: must be bin or str, got a float', field: 'value' });
  });

  it('a problem with the batch itself throws bad_request for the whole request', () => {
    const tooMany = thrown(() => parseBatchItems({ id: 1, op: 'batch', items: [{}, {}, {}] }, NO_PROBLEMS, LIMITS, 2), RingkvError);
    expect(tooMany).toMatchObject({ code: 'bad_request', message: 'a batch carries at most 2 items, got 3; split it' });
    expect(thrown(() => parseBatchItems({ id: 1, op: 'batch', items: 'x' }, NO_PROBLEMS, LIMITS, 2), RingkvError)).toMatchObject({ code: 'bad_request', details: { field: 'items' } });
    expect(thrown(() => parseBatchItems({ id: 1, op: 'batch', items: [], key: 'a' }, NO_PROBLEMS, LIMITS, 2), RingkvError)).toMatchObject({ code: 'bad_request' });
  });
});

describe('ipc batch fan-out: a batch in progress on its reply account', () => {
  const items = (n: number, bad: number[] = []): Array<KvOp | ItemError> =>
    Array.from({ length: n }, (_, i) =>
      bad.includes(i)
        ? { ok: false as const, code: 'bad_request' as const, message: 'bad item' }
        : ({ kind: 'put', table: 't', key: new Uint8Array([i]), value: new Uint8Array(1), tombstone: false, context: undefined, consistency: {}, timeoutMs: undefined, ttlSeconds: undefined } satisfies KvOp),
    );

  it('records the items already answered when it opens, and holds exactly the assembly’s estimate on the account', () => {
    const account = new ReplyBudget().open(1024);
    const run = new BatchRun(7, items(3, [1]), 60_000, 64 * 1024, account);
    expect(run.complete).toBe(false);
    expect(run.held).toBe(run.asm.resultBytes);
    expect(account.held).toBe(run.held);
    expect(run.asm.results[1]).toMatchObject({ ok: false, code: 'bad_request' });

    expect(run.record(0, { ok: true, context: 'c0', consistency }, account)).toBe(false);
    expect(account.held).toBe(run.asm.resultBytes);
    expect(run.record(2, { ok: true, context: 'c2', consistency }, account)).toBe(true);
    expect(run.complete).toBe(true);
    expect(account.held).toBe(run.asm.resultBytes);
    expect(run.asm.results.map((r) => r.ok)).toEqual([true, false, true]);

    run.releaseHeld(account);
    expect(run.held).toBe(0);
    expect(account.held).toBe(0);
  });

  it('a batch of only bad items (or none) is complete at once', () => {
    const account = new ReplyBudget().open(1024);
    expect(new BatchRun(1, items(2, [0, 1]), 60_000, 64 * 1024, account).complete).toBe(true);
    expect(new BatchRun(2, [], 60_000, 64 * 1024, account).complete).toBe(true);
  });
});

describe('okItem', () => {
  it('builds a batch item result in the reply key order, without fields that are absent', () => {
    expect(Object.keys(okItem({ context: 'c', consistency }))).toEqual(['ok', 'context', 'consistency']);
    const v = Buffer.from('v');
    expect(okItem({ found: true, context: 'c', consistency, value: v })).toEqual({ ok: true, found: true, context: 'c', consistency, value: v });
    expect(Object.keys(okItem({ found: true, context: 'c', consistency, value: v }))).toEqual(['ok', 'found', 'context', 'consistency', 'value']);
    expect(Object.keys(okItem({ found: false, context: '', consistency }))).toEqual(['ok', 'found', 'context', 'consistency']);
  });
});
