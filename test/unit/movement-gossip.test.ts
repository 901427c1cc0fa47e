import { beforeAll, describe, expect, it } from 'vitest';
import { initHasher, tokenFromBigInt, tokenToHex } from '../../src/ring/hash.js';
import { EXTRA_MV_STATE, EXTRA_REPLACES, type Movement } from '../../src/streaming/membership.js';
import { clusterMovementOf, patchExtra, progressExtra } from '../../src/streaming/movement-gossip.js';
import { streamProgressOf, type MovementRecord, type TaskProgress } from '../../src/streaming/progress.js';

beforeAll(async () => {
  await initHasher();
});

const hex = (x: bigint) => tokenToHex(tokenFromBigInt(x % (1n << 64n)));
/** A task over a quarter of the ring each (so byte totals extrapolate from a known fraction). */
function task(i: number, target: string, sources: string[], over: Partial<TaskProgress> = {}): TaskProgress {
  const q = 1n << 62n;
  return { start: hex(BigInt(i) * q), end: hex(BigInt(i + 1) * q), target, sources, replicas: [target, ...sources], strict: true, cursor: null, done: false, keys: 0, bytes: 0, ...over };
}
function record(state: MovementRecord['state'], tasks: TaskProgress[]): MovementRecord {
  return { id: 'join:n4:x', kind: 'join', node: 'n4', driver: 'n4', state, startedAt: 0, updatedAt: 0, tasks };
}

describe('movement progress in gossip', () => {
  it('a running movement\'s progress round-trips through extra into the cluster view', () => {
    const r = record('streaming', [task(0, 'n4', ['n1'], { done: true, keys: 7, bytes: 700 }), task(1, 'n4', ['n2'])]);
    const patched = patchExtra({ [EXTRA_REPLACES]: 'n9' }, progressExtra(r, null, 1_000));
    expect(patched).not.toBeNull();
    const m: Movement = { kind: 'join', node: 'n4', driver: 'n4', id: r.id, streaming: true };
    expect(clusterMovementOf(m, patched!.extra!)).toEqual({ id: r.id, kind: 'join', node: 'n4', driver: 'n4', state: 'streaming', rangesDone: 1, rangesTotal: 2, keys: 7, bytes: 700 });
    // Other keys of extra survive the patch.
    expect(patched!.extra![EXTRA_REPLACES]).toBe('n9');
  });

  it('a movement not gossiped yet reads as announced with unknown figures', () => {
    const m: Movement = { kind: 'replace', node: 'n5', replaces: 'n2', driver: 'n5', id: 'replace:n5', streaming: false };
    expect(clusterMovementOf(m, {})).toEqual({ id: 'replace:n5', kind: 'replace', node: 'n5', replaces: 'n2', driver: 'n5', state: 'announced', rangesDone: null, rangesTotal: null, keys: null, bytes: null });
  });

  it('a finished movement clears its keys; an unchanged patch mints nothing; an empty extra is dropped', () => {
    const running = patchExtra(undefined, progressExtra(record('streaming', [task(0, 'n4', ['n1'])]), null, 0))!.extra!;
    expect(running[EXTRA_MV_STATE]).toBe('streaming');
    expect(patchExtra(running, progressExtra(record('streaming', [task(0, 'n4', ['n1'])]), null, 0))).toBeNull();
    expect(patchExtra(running, progressExtra(record('done', []), null, 0))).toEqual({ extra: undefined });
    expect(patchExtra({ [EXTRA_REPLACES]: 'n9' }, progressExtra(null, null, 0))).toBeNull();
  });
});

describe('stream progress for the metrics', () => {
  it('groups tasks per peer and direction and extrapolates the byte total from the span done', () => {
    const half = hex((1n << 61n) + 0n) + '00';
    const r = record('streaming', [
      task(0, 'n4', ['n1'], { cursor: half, bytes: 100 }),
      task(1, 'n4', ['n1'], { done: true, bytes: 300 }),
      task(2, 'n2', ['n4']),
      task(3, 'n4', [], {}),
    ]);
    const got = streamProgressOf(r, 'n4', 0);
    expect(got).toEqual([
      // Ranges 0 and 1: 1.5 of 2 equal spans done, 400 bytes so far.
      { id: r.id, operation: 'join', peer: 'n1', direction: 'in', bytesDone: 400, bytesTotal: 533, rangesDone: 1, rangesTotal: 2 },
      { id: r.id, operation: 'join', peer: 'n2', direction: 'out', bytesDone: 0, bytesTotal: 0, rangesDone: 0, rangesTotal: 1 },
      { id: r.id, operation: 'join', peer: '(none)', direction: 'in', bytesDone: 0, bytesTotal: 0, rangesDone: 0, rangesTotal: 1 },
    ]);
  });

  it('is empty with no movement, a finished one, or no tasks yet', () => {
    expect(streamProgressOf(null, 'n4', 0)).toEqual([]);
    expect(streamProgressOf(record('done', [task(0, 'n4', ['n1'])]), 'n4', 0)).toEqual([]);
    expect(streamProgressOf(record('failed', [task(0, 'n4', ['n1'])]), 'n4', 0)).toEqual([]);
    expect(streamProgressOf(record('settling', []), 'n4', 0)).toEqual([]);
  });
});
