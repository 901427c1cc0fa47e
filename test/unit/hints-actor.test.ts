/**
 * The hints actor's comlink API with a real worker thread and a temp RocksDB (HintStore spawns the
 * compiled worker, so this imports dist/): a dead actor fails every call instead of leaving it
 * waiting forever, and the per-turn store batch keeps mailbox order with the other calls.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { removeDir, tempDir } from '../helpers/proc.js';
import { openDatabase, HINTS_CF, type OpenedDatabase } from '../../dist/src/storage/db.js';
import { SyncWriteBatch } from '../../dist/src/storage/rocks.js';
import { HintStore } from '../../dist/src/hints/store.js';
import type { Hint } from '../../dist/src/hints/protocol.js';
import { initVersions, newVersion } from '../../dist/src/versions/index.js';

function hint(target: string, i: number): Hint {
  const createdAt = Date.now();
  return {
    target,
    table: 't',
    mode: 'vclock',
    key: new TextEncoder().encode(`key${i}`),
    versions: [newVersion({ node: 'n1', counter: i + 1, context: [], ts: createdAt * 1000, tombstone: false, value: new Uint8Array([i & 0xff]), maxClockEntries: 64 })],
    createdAt,
  };
}

/** The store's worker, to kill it as a crash would (HintStore has no public way to, on purpose). */
function workerOf(store: HintStore): Worker {
  return (store as unknown as { worker: Worker }).worker;
}

/** How each promise settled, failing the test (instead of timing it out) if one is still pending after `ms`. */
async function settledWithin<T>(ms: number, ps: Array<Promise<T>>): Promise<Array<PromiseSettledResult<T>>> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms)));
  try {
    return await Promise.race([Promise.allSettled(ps), hung]);
  } finally {
    clearTimeout(timer);
  }
}

function rejection(r: PromiseSettledResult<unknown>): { code?: string; message: string } {
  expect(r.status).toBe('rejected');
  return (r as PromiseRejectedResult).reason as { code?: string; message: string };
}

describe('hints actor over comlink (real worker + RocksDB)', () => {
  let dir: string;
  let odb: OpenedDatabase;
  const stores: HintStore[] = [];
  const start = async (maxHintsPerTarget = 1_000_000): Promise<HintStore> => {
    const s = await HintStore.start({ handle: odb.db.handle, durability: 'periodic', maxHintsPerTarget });
    stores.push(s);
    return s;
  };
  beforeAll(async () => {
    await initVersions();
    dir = tempDir('ringkv-hints-comlink-');
    odb = await openDatabase(dir, 1);
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close();
  });
  afterAll(async () => {
    await odb?.db.close();
    if (dir) removeDir(dir);
  });

  it('a worker that dies fails every outstanding call with unavailable, and every later one at once', async () => {
    const store = await start();
    expect(await store.store(hint('dead', 0))).toBe(true);
    // terminate() stops the worker's JavaScript before it returns, so the calls below reach a
    // worker that never runs them: they are outstanding until the worker's exit fails them.
    const exited = workerOf(store).terminate();
    const outstanding = [store.list('dead', 10), store.store(hint('dead', 1)), store.delete('dead', [0]), store.expire(0, 10), store.refreshCounts()];
    const settled = await settledWithin(10_000, outstanding);
    for (const r of settled) {
      const e = rejection(r);
      expect(e.code).toBe('unavailable');
      expect(e.message).toMatch(/^hints actor exited \(code \d+\)$/);
    }
    await exited;
    // A call after the death fails at once with the same error, and close() does not wait for an answer.
    const [later] = await settledWithin(1000, [store.list('dead', 1)]);
    expect(rejection(later!).message).toMatch(/^hints actor exited/);
    const t0 = performance.now();
    await store.close();
    expect(performance.now() - t0).toBeLessThan(1000);
    // What the actor committed before it died is still there for the next one.
    const next = await start();
    expect(next.pendingCounts()['dead']).toBe(1);
    expect((await next.list('dead', 10)).map((h) => h.seq)).toEqual([0]);
    await next.delete('dead', [0]);
  });

  it('a worker that crashes while starting fails start() with the reason instead of hanging', async () => {
    // A malformed hint key: the actor's startup scan throws (an invariant) and the worker dies.
    const bad = Buffer.from('no-separator');
    const w = new SyncWriteBatch(odb.db, odb.column(HINTS_CF));
    w.put(bad, Buffer.from([0xc0]));
    w.commit(true);
    try {
      const [r] = await settledWithin(10_000, [HintStore.start({ handle: odb.db.handle, durability: 'periodic', maxHintsPerTarget: 10 })]);
      const e = rejection(r!);
      expect(e.code).toBe('unavailable');
      expect(e.message).toMatch(/^hints actor failed: invariant violated: malformed hint key$/);
    } finally {
      w.del(bad);
      w.commit(true);
    }
  });

  it("stores batched per turn keep mailbox order with other calls, each store answered on its own", async () => {
    const store = await start(3);
    // One turn: two stores, a list, two more stores (the bound of 3 refuses the last), a delete.
    // The list sends the open batch first, so it sees exactly the two stores made before it; the
    // delete sees all three stored ones.
    const s1 = store.store(hint('order', 1));
    const s2 = store.store(hint('order', 2));
    const listed = store.list('order', 10);
    const s3 = store.store(hint('order', 3));
    const s4 = store.store(hint('order', 4));
    const deleted = store.delete('order', [0, 1, 2, 3]);
    expect(await Promise.all([s1, s2])).toEqual([true, true]);
    expect((await listed).map((h) => [h.seq, new TextDecoder().decode(h.key)])).toEqual([
      [0, 'key1'],
      [1, 'key2'],
    ]);
    expect(await Promise.all([s3, s4])).toEqual([true, false]);
    expect(await deleted).toEqual([0, 1, 2]);
    expect(store.pendingFor('order')).toBe(0);
    expect(await store.refreshCounts()).toEqual({});
  });
});
