import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterView, localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, runCli, tempDir, waitFor } from '../helpers/proc.js';
import { openDatabase, type OpenedDatabase } from '../../dist/src/storage/db.js';
import { HintStore } from '../../dist/src/hints/store.js';
import type { Hint } from '../../dist/src/hints/protocol.js';
import { initVersions, newVersion } from '../../dist/src/versions/index.js';

type Body = Record<string, unknown>;

async function pendingHints(url: string, target: string): Promise<number> {
  const c = await http('GET', `${url}/api/v1/cluster`);
  const pending = ((c.body['hints'] as Body)['pending'] as Record<string, number>) ?? {};
  return pending[target] ?? 0;
}

describe('hinted handoff (3 real nodes)', () => {
  let lc: LocalCluster;
  beforeAll(async () => {
    lc = await localCluster(3);
    await lc.start();
  });
  afterAll(async () => {
    await lc?.stop();
    if (lc) removeDir(lc.dir);
  });

  /** A CQL statement through node i's HTTP API (JSON body); must succeed. */
  async function cql(i: number, query: string, params: unknown[] = [], consistency?: string): Promise<unknown> {
    const r = await http('POST', `${lc.url(i)}/api/v1/query`, { query, params, ...(consistency ? { consistency } : {}) });
    expect(r.status, `${query}: ${JSON.stringify(r.body)}`).toBe(200);
    return r.body;
  }

  it('writes succeed while a replica is dead, hints are kept durably and replayed when it returns', async () => {
    // A wide-column table too: its partition mutations are hinted and replayed like any write.
    await cql(1, 'CREATE TABLE hinted_rows (k int, c int, v text, PRIMARY KEY ((k), c))');
    await lc.kill9(3);
    await waitFor('node3 seen down by nodes 1 and 2', async () => {
      for (const i of [1, 2]) if ((await clusterView(lc.url(i))).find((n) => n.id === 'node3')?.liveness !== 'down') return false;
      return true;
    }, 15_000);

    const KEYS = 2000;
    let next = 0;
    const failures: string[] = [];
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < KEYS) {
          const i = next++;
          const coord = 1 + (i % 2);
          const r = await http('PUT', `${lc.url(coord)}/api/v1/store/hinted?w=2`, { key: `k${i}`, value: i });
          if (r.status !== 200) failures.push(`k${i}: ${r.status} ${JSON.stringify(r.body)}`);
        }
      }),
    );
    expect(failures).toEqual([]);

    // With 3 nodes and N=3 there is no non-replica fallback, so each coordinator keeps the hint.
    // A write is acknowledged once W=2 replicas have it; its hint is stored alongside, not before
    // the ack (it does not count toward W here), so wait for the hint store to catch up.
    const held = async (): Promise<number> => (await pendingHints(lc.url(1), 'node3')) + (await pendingHints(lc.url(2), 'node3'));
    await waitFor(`${KEYS} hints held for node3`, async () => (await held()) === KEYS, 10_000);
    expect(await held()).toBe(KEYS);
    // 100 one-row partitions (QUORUM: node1 and node2): one hint per partition mutation.
    const WIDE = 100;
    for (let k = 0; k < WIDE; k++) await cql(1 + (k % 2), 'INSERT INTO hinted_rows (k, c, v) VALUES (?, 1, ?)', [k, `v${k}`]);
    await waitFor(`${KEYS + WIDE} hints held for node3`, async () => (await held()) === KEYS + WIDE, 10_000);
    const status = await http('GET', `${lc.url(1)}/api/v1/cluster`);
    const self = (status.body['nodes'] as Body[]).find((n) => n['id'] === 'node1')!;
    expect(self['hints']).toBeGreaterThan(0);

    // Hints survive a crash of the node holding them, too.
    const beforeCrash = await pendingHints(lc.url(2), 'node3');
    await lc.kill9(2);
    await lc.start(); // restarts node2 and node3 on their data
    const t0 = Date.now();
    await waitFor('all hints replayed', async () => (await pendingHints(lc.url(1), 'node3')) === 0 && (await pendingHints(lc.url(2), 'node3')) === 0, 60_000);
    const replayMs = Date.now() - t0;
    const m1 = await http('GET', `${lc.url(1)}/api/v1/metrics`);
    const m2 = await http('GET', `${lc.url(2)}/api/v1/metrics`);
    const replayed = ((m1.body['hints'] as Body)['replayed'] as number) + ((m2.body['hints'] as Body)['replayed'] as number);
    expect(replayed).toBeGreaterThanOrEqual(KEYS + WIDE - beforeCrash); // node2's counter restarted with it
    // node3 alone (ONE, coordinated by node3: its own replica) has every hinted row.
    const rows = (await cql(3, 'SELECT k, v FROM hinted_rows', [], 'ONE')) as Array<{ k: number; v: string }>;
    expect(rows.map((r) => r.k).sort((a, b) => a - b)).toEqual(Array.from({ length: WIDE }, (_, k) => k));
    expect(rows.every((r) => r.v === `v${r.k}`)).toBe(true);
    console.log(`hint replay: ${KEYS} hints delivered within ${replayMs} ms of restart; last passes:`, (m1.body['hints'] as Body)['lastReplay'], (m2.body['hints'] as Body)['lastReplay']);

    // Replay progress in GET /api/v1/cluster: node1's pass to node3 is over, with what it sent.
    const progress = ((await http('GET', `${lc.url(1)}/api/v1/cluster`)).body['hints'] as Body)['replay'] as Record<string, Body>;
    expect(progress['node3']).toMatchObject({ pending: 0, replaying: false, targetUp: true, failed: 0 });
    expect(progress['node3']!['sent'] as number).toBeGreaterThan(0);
    expect(progress['node3']!['finishedAt'] as number).toBeGreaterThanOrEqual(progress['node3']!['startedAt'] as number);
    const st = await runCli(['status', '--host', `127.0.0.1:${lc.httpBase + 1}`]);
    expect(st.code).toBe(0);
    expect(st.stdout).toMatch(/node1 → node3: 0 pending, last pass [\d,]+ sent in [\d.]+ s \([\d,]+\/s\), 0 failed/);

    // node3 alone (its own replica, no coordination) now holds every key.
    const missing: string[] = [];
    for (let i = 0; i < KEYS; i++) {
      const r = await http('GET', `${lc.url(3)}/api/v1/store/hinted/k${i}?replica=local`);
      if (r.status !== 200 || r.body['value'] !== i) missing.push(`k${i}`);
    }
    expect(missing).toEqual([]);
  });

  it('a crdt table\'s hints carry states: increments made while a replica was dead reach it on replay', async () => {
    expect((await http('PUT', `${lc.url(1)}/api/v1/tables/hcount`, { conflicts: 'crdt', type: 'counter' })).status).toBe(200);
    await waitFor('the table on every node', async () => {
      for (const i of [1, 2, 3]) if ((await http('GET', `${lc.url(i)}/api/v1/tables/hcount`)).status !== 200) return false;
      return true;
    });
    await lc.kill9(3);
    await waitFor('node3 seen down by nodes 1 and 2', async () => {
      for (const i of [1, 2]) if ((await clusterView(lc.url(i))).find((n) => n.id === 'node3')?.liveness !== 'down') return false;
      return true;
    }, 15_000);
    for (let i = 0; i < 40; i++) {
      const r = await http('POST', `${lc.url(1 + (i % 2))}/api/v1/crdt/hcount/c?w=2`, { increment: 1 });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
    }
    // Every increment left a hint holding the state after it (a later one covers the earlier ones).
    await waitFor('40 crdt hints held for node3', async () => (await pendingHints(lc.url(1), 'node3')) + (await pendingHints(lc.url(2), 'node3')) === 40, 10_000);
    await lc.start();
    await waitFor('the crdt hints replayed', async () => (await pendingHints(lc.url(1), 'node3')) === 0 && (await pendingHints(lc.url(2), 'node3')) === 0, 60_000);
    const r = await http('GET', `${lc.url(3)}/api/v1/crdt/hcount/c?replica=local`);
    expect(r.status).toBe(200);
    expect(r.body['value']).toBe(40);
  });
});

function hint(target: string, createdAt: number, i: number): Hint {
  return {
    target,
    table: 't',
    tableId: 1,
    mode: 'vclock',
    key: new TextEncoder().encode(`key${i}`),
    versions: [newVersion({ node: 'n1', counter: i + 1, context: [], ts: createdAt * 1000, tombstone: false, value: new Uint8Array([i & 0xff]), maxClockEntries: 64 })],
    createdAt,
  };
}

describe('hints actor (real worker + RocksDB)', () => {
  let dir: string;
  let odb: OpenedDatabase;
  let store: HintStore;
  const start = () => HintStore.start({ handle: odb.db.handle, durability: 'periodic', maxHintsPerTarget: 1_000_000 });
  beforeAll(async () => {
    await initVersions();
    dir = tempDir('ringkv-hints-actor-');
    odb = await openDatabase(dir, 1);
    store = await start();
  });
  afterAll(async () => {
    await store?.close();
    await odb?.db.close();
    removeDir(dir);
  });

  it("expires in bounded steps from each target's head, keeps the mailbox draining, and keeps counts exact", async () => {
    const OLD = 20_000;
    const now = Date.now();
    // Target a: OLD hints created at 1..OLD ms since the epoch (long expired), then 100 fresh ones.
    for (let i = 0; i < OLD; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => store.store(hint('a', 1 + i + j, i + j))));
    await Promise.all(Array.from({ length: 100 }, (_, j) => store.store(hint('a', now + j, OLD + j))));
    await Promise.all(Array.from({ length: 10 }, (_, j) => store.store(hint('b', now + 60_000, j))));
    expect(store.pendingCounts()).toEqual({ a: OLD + 100, b: 10 });

    // Replay lists in seq order from the head.
    const head = await store.list('a', 5);
    expect(head.map((h) => h.seq)).toEqual([0, 1, 2, 3, 4]);

    // One expiry step reads at most its budget; a store sent meanwhile is answered between steps.
    const cutoff = now - 1000;
    const order: string[] = [];
    let steps = 0;
    let removed = 0;
    const storeDuring = (async () => {
      await Promise.resolve();
      await store.store(hint('c', now + 60_000, 0));
      order.push(`store after step ${steps}`);
    })();
    for (;;) {
      const r = await store.expire(cutoff, 2000);
      steps++;
      expect(r.removed).toBeLessThanOrEqual(2000);
      removed += r.removed;
      if (!r.more) break;
    }
    order.push(`expiry done after ${steps}`);
    await storeDuring;
    expect(removed).toBe(OLD);
    expect(steps).toBeGreaterThanOrEqual(OLD / 2000);
    expect(order[0]).toMatch(/^store after step [0-2]$/);
    expect(store.pendingCounts()).toEqual({ a: 100, b: 10, c: 1 });
    // The first unexpired hint is now the head.
    expect((await store.list('a', 1))[0]!.seq).toBe(OLD);

    // Fresh heads cost no reads: a budget of 1 is enough to check every target.
    expect(await store.expire(cutoff, 1)).toEqual({ removed: 0, more: false });

    // A replay delete racing an expiry of the same seqs (same mailbox turn): each hint counts once.
    const racing = await Promise.all([store.expire(now + 5, 10_000), store.delete('a', [OLD, OLD + 1, OLD + 1, 3, OLD + 50]), store.delete('a', [OLD + 50, OLD + 60])]);
    const expiredNow = racing[0].removed;
    const deleted = [...racing[1], ...racing[2]];
    // Hints OLD..OLD+5 were created at now..now+5: the expiry takes OLD..OLD+4 first (it was sent
    // first), so the deletes find only what is left of theirs; seq 3 is long gone.
    expect(expiredNow).toBe(5);
    expect(racing[1]).toEqual([OLD + 50]);
    expect(racing[2]).toEqual([OLD + 60]);
    expect(store.pendingFor('a')).toBe(100 - expiredNow - deleted.length);
    // The copy on the main thread matches the actor's own count and what is really stored.
    expect(await store.refreshCounts()).toEqual({ a: 100 - 7, b: 10, c: 1 });
    expect((await store.list('a', 1000)).length).toBe(100 - 7);

    // Counts and order survive a restart of the actor (heads unknown until read again).
    await store.close();
    store = await start();
    expect(store.pendingCounts()).toEqual({ a: 93, b: 10, c: 1 });
    const again = await store.list('a', 1000);
    expect(again.map((h) => h.seq)).toEqual(again.map((h) => h.seq).sort((x, y) => x - y));
    expect(again[0]!.seq).toBe(OLD + 5);
  });
});
