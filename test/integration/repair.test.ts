import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterView, localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, tempDir, waitFor } from '../helpers/proc.js';

type Body = Record<string, unknown>;
interface RangeRow {
  start: string;
  end: string;
  replicas: string[];
  root: string;
  ready: boolean;
}
interface Report {
  rangesCompared: number;
  rangesDiffered: number;
  rangesSkipped: number;
  hashesCompared: number;
  keysCompared: number;
  keysSent: number;
  keysReceived: number;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
  errors: string[];
}

const NODES = [1, 2, 3] as const;
/** Keys written on each side of the partition (10k in all). */
const PER_SIDE = 5000;
/** Keys written on both sides (per table) to make concurrent versions. */
const SAME = 20;

describe('anti-entropy: Merkle trees, repair, tombstones (3 real nodes via `ringkv local-cluster`)', () => {
  let lc: LocalCluster;
  let cfgDir: string | undefined;
  const store = (i: number, t: string, q = ''): string => `${lc.url(i)}/api/v1/store/${t}${q}`;

  beforeAll(async () => {
    // One cluster for the whole file keeps it lean. Hints are disabled (a 0 ms window expires them
    // before replay) and periodic repair/sweeps are off, so what converges replicas here is the
    // repair under test. The 1 s grace period is safe for the delete test because tombstones are
    // purged only by an explicit POST /api/v1/gc, after repair has spread them.
    cfgDir = tempDir('ringkv-repair-cfg-');
    const cfg = path.join(cfgDir, 'repair-test.json');
    writeFileSync(cfg, JSON.stringify({ merkleDepth: 8, antiEntropyIntervalMs: 0, gcGraceSeconds: 1, tombstoneSweepIntervalMs: 86_400_000, maxHintWindowMs: 0, readRepair: 'off' }));
    lc = await localCluster(3, ['--test-mode', '--config', cfg]);
    const out = await lc.start();
    expect(out).toMatch(/converged: 3 nodes/);
    for (const [t, conflicts] of [['vc', 'vclock'], ['lw', 'lww']] as const) {
      expect((await http('PUT', `${lc.url(1)}/api/v1/tables/${t}`, { conflicts })).status).toBe(200);
    }
    await waitFor('table schemas to reach every node', async () => {
      for (const i of NODES) for (const t of ['vc', 'lw']) if ((await http('GET', `${lc.url(i)}/api/v1/tables/${t}`)).status !== 200) return false;
      return true;
    });
  });
  afterAll(async () => {
    await lc?.stop();
    if (lc) removeDir(lc.dir);
    if (cfgDir) removeDir(cfgDir);
  });

  async function ranges(i: number): Promise<RangeRow[]> {
    const r = await http<{ ranges: RangeRow[] }>('GET', `${lc.url(i)}/api/v1/ranges`);
    expect(r.status).toBe(200);
    return r.body.ranges;
  }

  /** Every node stores the same ranges, all trees built, with identical roots. */
  async function rootsAgree(): Promise<boolean> {
    const views = await Promise.all(NODES.map((i) => ranges(i)));
    const sig = views.map((v) => v.map((r) => `${r.start}-${r.end}:${r.ready ? r.root : 'building'}`).join(','));
    return views[0]!.length > 0 && sig.every((s) => s === sig[0]) && views.every((v) => v.every((r) => r.ready));
  }

  async function repair(i: number, body: Body = {}): Promise<Report> {
    const r = await http<Report>('POST', `${lc.url(i)}/api/v1/repair`, body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.errors).toEqual([]);
    return r.body;
  }

  async function keyCount(i: number): Promise<number> {
    const c = await http('GET', `${lc.url(i)}/api/v1/cluster`);
    return (c.body['shards'] as Array<{ keys: number }>).reduce((a, s) => a + s.keys, 0);
  }

  async function allUp(): Promise<void> {
    await waitFor('every node to see every node up', async () => {
      for (const i of NODES) if ((await clusterView(lc.url(i))).some((n) => n.liveness !== 'up')) return false;
      return true;
    }, 30_000);
  }

  async function partition(on: boolean): Promise<void> {
    const cut: Record<number, string[]> = on ? { 1: ['node3'], 2: ['node3'], 3: ['node1', 'node2'] } : { 1: [], 2: [], 3: [] };
    for (const i of NODES) expect((await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked: cut[i] })).status).toBe(200);
  }

  /** PUT many keys with bounded concurrency; every write must be acknowledged. */
  async function putAll(items: Array<{ node: number; table: string; key: string; value: unknown; w: number }>): Promise<void> {
    let next = 0;
    await Promise.all(
      Array.from({ length: 48 }, async () => {
        while (next < items.length) {
          const it = items[next++]!;
          const r = await http('PUT', store(it.node, it.table, `?w=${it.w}`), { key: it.key, value: it.value });
          if (r.status !== 200) throw new Error(`PUT ${it.table}/${it.key} via node${it.node}: ${r.status} ${JSON.stringify(r.body)}`);
        }
      }),
    );
  }

  it('after a partition with W=1 writes on both sides, repair converges every replica (10k keys)', async () => {
    expect(await waitFor('trees to be built', () => rootsAgree())).toBe(true);
    const before = await keyCount(1);
    await partition(true);
    const items: Array<{ node: number; table: string; key: string; value: unknown; w: number }> = [];
    for (let i = 0; i < PER_SIDE; i++) {
      items.push({ node: 1 + (i % 2), table: 'vc', key: `a-${i}`, value: `A${i}`, w: 1 });
      items.push({ node: 3, table: 'vc', key: `b-${i}`, value: `B${i}`, w: 1 });
    }
    for (let i = 0; i < SAME; i++) {
      for (const t of ['vc', 'lw']) {
        items.push({ node: 1, table: t, key: `same-${i}`, value: `left-${i}`, w: 1 });
        items.push({ node: 3, table: t, key: `same-${i}`, value: `right-${i}`, w: 1 });
      }
    }
    const tw = Date.now();
    await putAll(items);
    console.log(`wrote ${items.length} keys (W=1) across the partition in ${Date.now() - tw} ms`);
    // The two sides really diverged.
    expect((await http('GET', `${store(3, 'vc')}/a-1?replica=local`)).status).toBe(404);
    expect((await http('GET', `${store(1, 'vc')}/b-1?replica=local`)).status).toBe(404);
    expect(await rootsAgree()).toBe(false);

    await partition(false);
    const healed = Date.now();
    await allUp();
    const upAfter = Date.now() - healed;
    const reports: Report[] = [];
    for (const i of NODES) reports.push(await repair(i));
    await waitFor('identical Merkle roots on all nodes', () => rootsAgree(), 30_000);
    const convergedMs = Date.now() - healed;
    console.log(
      `heal -> identical roots for ${items.length} keys on 3 nodes: ${convergedMs} ms ` +
        `(${upAfter} ms until all nodes saw each other up, repair sessions ${reports.map((r) => r.durationMs).join(' + ')} ms; ` +
        `keys sent ${reports.map((r) => r.keysSent).join('/')}, received ${reports.map((r) => r.keysReceived).join('/')}, ` +
        `hashes ${reports.map((r) => r.hashesCompared).join('/')}, bytes sent ${reports.map((r) => r.bytesSent).join('/')})`,
    );
    expect(reports[0]!.rangesDiffered).toBeGreaterThan(0);
    expect(reports[0]!.keysSent + reports[0]!.keysReceived).toBeGreaterThan(0);

    // Every node now stores every key (N=3 on 3 nodes).
    const distinct = 2 * PER_SIDE + 2 * SAME;
    for (const i of NODES) expect(await keyCount(i)).toBe(before + distinct);
    // Acknowledged writes are readable from every node's own replica (a sample of each side).
    for (const i of NODES) {
      for (let k = 0; k < PER_SIDE; k += 97) {
        const a = await http('GET', `${store(i, 'vc')}/a-${k}?replica=local`);
        const b = await http('GET', `${store(i, 'vc')}/b-${k}?replica=local`);
        expect([a.body['value'], b.body['value']]).toEqual([`A${k}`, `B${k}`]);
      }
    }
    // Concurrent vclock writes are siblings everywhere; LWW picked the same winner everywhere.
    for (let k = 0; k < SAME; k++) {
      const winners = new Set<unknown>();
      for (const i of NODES) {
        const v = await http('GET', `${store(i, 'vc')}/same-${k}?replica=local`);
        expect((v.body['siblings'] as string[]).slice().sort()).toEqual([`left-${k}`, `right-${k}`]);
        const l = await http('GET', `${store(i, 'lw')}/same-${k}?replica=local`);
        expect(l.body['siblings']).toBeUndefined();
        winners.add(l.body['value']);
      }
      expect(winners.size).toBe(1);
    }
  });

  it('a repair of a consistent cluster ships only tree roots, no keys', async () => {
    const r = await repair(1);
    expect(r.rangesCompared).toBeGreaterThan(0);
    expect(r.rangesDiffered).toBe(0);
    expect(r.hashesCompared).toBe(r.rangesCompared);
    expect([r.keysCompared, r.keysSent, r.keysReceived]).toEqual([0, 0, 0]);
    console.log(
      `consistent-cluster repair from node1: ${r.rangesCompared} (range, peer) roots compared, ` +
        `${r.bytesSent} bytes sent, ${r.bytesReceived} bytes received, ${r.durationMs} ms`,
    );
    const t = await repair(2, { table: 'vc' });
    expect([t.keysSent, t.keysReceived]).toEqual([0, 0]);
    const missing = await http('POST', `${lc.url(1)}/api/v1/repair`, { table: 'no-such-table' });
    expect(missing.status).toBe(404);
  });

  it('a delete made while a replica was down stays deleted after it returns and repair runs', async () => {
    const put = await http('PUT', store(1, 'vc', '?w=3'), { key: 'del-k', value: 'doomed' });
    expect(put.status).toBe(200);
    await lc.kill9(2);
    // Seen down first: a node restarted before its peers convicted it can be convicted just after
    // (the heartbeat gap spans the restart), which would race the repair sessions below.
    await waitFor('node1 and node3 to see node2 down', async () => {
      for (const i of [1, 3]) if ((await clusterView(lc.url(i))).find((n) => n.id === 'node2')?.liveness !== 'down') return false;
      return true;
    }, 20_000);
    const del = await http('DELETE', `${store(1, 'vc')}/del-k?w=2&context=${encodeURIComponent(String(put.body['context']))}`);
    expect(del.status, JSON.stringify(del.body)).toBe(200);
    await lc.start();
    await allUp();
    const stale = await http('GET', `${store(2, 'vc')}/del-k?replica=local`);
    // The precondition that makes this test mean something: node2 missed the delete (hints and
    // read repair are off in this cluster, periodic anti-entropy too).
    expect([stale.status, stale.body['value']]).toEqual([200, 'doomed']);
    await waitFor('trees rebuilt on the restarted node', async () => (await ranges(2)).every((r) => r.ready));
    for (const i of NODES) await repair(i);
    await waitFor('identical roots after the delete repair', () => rootsAgree(), 30_000);
    for (const i of NODES) expect((await http('GET', `${store(i, 'vc')}/del-k?replica=local`)).status).toBe(404);
    expect((await http('GET', `${store(3, 'vc')}/del-k?r=3`)).status).toBe(404);
  });

  it('tombstones past gcGraceSeconds are purged by POST /api/v1/gc after repair, and stay purged', async () => {
    const G = 50;
    const ctx: string[] = [];
    for (let k = 0; k < G; k++) {
      const p = await http('PUT', store(1 + (k % 3), 'vc', '?w=3'), { key: `gc-${k}`, value: k });
      expect(p.status).toBe(200);
      ctx.push(String(p.body['context']));
    }
    for (let k = 0; k < G; k++) {
      const d = await http('DELETE', `${store(1 + (k % 3), 'vc')}/gc-${k}?w=3&context=${encodeURIComponent(ctx[k]!)}`);
      expect(d.status).toBe(200);
    }
    const counts = await Promise.all(NODES.map((i) => keyCount(i)));
    for (const i of NODES) await repair(i);
    // Tombstones become purgeable 1 s after they were written: poll the sweep rather than sleep.
    let purged = 0;
    await waitFor(
      'the sweep to purge the tombstones on every node',
      async () => {
        for (const i of NODES) {
          const r = await http<{ purged: number }>('POST', `${lc.url(i)}/api/v1/gc`);
          expect(r.status).toBe(200);
          purged += r.body.purged;
        }
        const now = await Promise.all(NODES.map((i) => keyCount(i)));
        // Each node drops the G tombstones plus del-k's.
        return now.every((c, j) => c <= counts[j]! - G - 1);
      },
      15_000,
      300,
    );
    const after = await Promise.all(NODES.map((i) => keyCount(i)));
    console.log(`tombstone sweep: key counts ${counts.join('/')} -> ${after.join('/')} (${purged} purged in all)`);
    for (const [j, c] of after.entries()) expect(c).toBe(counts[j]! - G - 1);
    expect(await rootsAgree()).toBe(true);
    // Nothing comes back: the replicas agree, so repair streams no keys.
    const r = await repair(1);
    expect([r.keysSent, r.keysReceived]).toEqual([0, 0]);
    for (const i of NODES) expect((await http('GET', `${store(i, 'vc')}/gc-7?replica=local`)).status).toBe(404);
    expect((await http('GET', `${store(2, 'vc')}/del-k?replica=local`)).status).toBe(404);
  });
});

describe('periodic anti-entropy (3 real nodes, antiEntropyIntervalMs 1 s)', () => {
  let lc: LocalCluster;
  let cfgDir: string | undefined;
  beforeAll(async () => {
    // Hints and read repair off: only the periodic sessions can heal the replica that missed writes.
    cfgDir = tempDir('ringkv-ae-cfg-');
    const cfg = path.join(cfgDir, 'ae.json');
    writeFileSync(cfg, JSON.stringify({ merkleDepth: 6, antiEntropyIntervalMs: 1000, maxHintWindowMs: 0, readRepair: 'off' }));
    lc = await localCluster(3, ['--test-mode', '--config', cfg]);
    await lc.start();
  });
  afterAll(async () => {
    await lc?.stop();
    if (lc) removeDir(lc.dir);
    if (cfgDir) removeDir(cfgDir);
  });

  it('heals a replica that missed writes without anyone asking for a repair', async () => {
    const cut: Record<number, string[]> = { 1: ['node3'], 2: ['node3'], 3: ['node1', 'node2'] };
    for (const i of NODES) expect((await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked: cut[i] })).status).toBe(200);
    for (let k = 0; k < 200; k++) expect((await http('PUT', `${lc.url(1 + (k % 2))}/api/v1/store/ae?w=2`, { key: `p-${k}`, value: k })).status).toBe(200);
    expect((await http('GET', `${lc.url(3)}/api/v1/store/ae/p-0?replica=local`)).status).toBe(404);
    for (const i of NODES) await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked: [] });
    await waitFor(
      'node3 to hold every key through periodic repair',
      async () => {
        for (let k = 0; k < 200; k += 7) if ((await http('GET', `${lc.url(3)}/api/v1/store/ae/p-${k}?replica=local`)).status !== 200) return false;
        return true;
      },
      30_000,
      250,
    );
    for (let k = 0; k < 200; k++) expect((await http('GET', `${lc.url(3)}/api/v1/store/ae/p-${k}?replica=local`)).body['value']).toBe(k);
  });
});
