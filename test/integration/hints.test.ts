import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterView, localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, waitFor } from '../helpers/proc.js';

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

  it('writes succeed while a replica is dead, hints are kept durably and replayed when it returns', async () => {
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
    expect(replayed).toBeGreaterThanOrEqual(KEYS - beforeCrash); // node2's counter restarted with it
    console.log(`hint replay: ${KEYS} hints delivered within ${replayMs} ms of restart; last passes:`, (m1.body['hints'] as Body)['lastReplay'], (m2.body['hints'] as Body)['lastReplay']);

    // node3 alone (its own replica, no coordination) now holds every key.
    const missing: string[] = [];
    for (let i = 0; i < KEYS; i++) {
      const r = await http('GET', `${lc.url(3)}/api/v1/store/hinted/k${i}?replica=local`);
      if (r.status !== 200 || r.body['value'] !== i) missing.push(`k${i}`);
    }
    expect(missing).toEqual([]);
  });
});
