/**
 * Issue 11: elasticity with range streaming, on one shared cluster of real node processes driven
 * through the CLI (`local-cluster add / decommission`, `removenode`, `cleanup`):
 *
 *  1. 3 nodes hold 20k keys (some deleted, some written while node3 was cut off, so on two replicas
 *     only); node4 joins while W=2 writers run. A second movement started meanwhile is refused.
 *     After the join, every acknowledged key reads at R=2 through every node, deleted keys stay
 *     deleted, the keys written to two replicas are still on two of their new replicas, node4
 *     holds about a quarter of the stored copies, and after cleanup every range's replicas report
 *     one Merkle root.
 *  2. node2 is decommissioned under the same writers: the same checks with 3 nodes.
 *  3. node5 is killed (-9) mid-stream while joining and restarted: the join completes.
 *  4. node6 joins and one of its sources is killed mid-stream: the join completes from the other
 *     replicas. Then removenode of the killed node restores 3 replicas of every range.
 *  5. node6 is killed and a new node (node7) replaces it (`start --replace node6`) under W=2
 *     writers: it takes node6's tokens (the ring does not reshuffle) and streams their data.
 *
 * The cluster runs with a low stream throttle (a config file; phases that need speed raise it per
 * node through PUT /api/v1/stream-throughput) so the streams last long enough to be interrupted.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingkvClient } from '../../src/client/index.js';
import { localCluster, type LocalCluster } from '../helpers/cluster.js';
import { initHasher } from '../../src/ring/hash.js';
import { clusterBody, hintsDrained, localReplica, mismatchesAtR2, replicasOfKey, ringRanges, rootDisagreements, storedKeys, Writers, type Body } from '../helpers/elastic.js';
import { freePort, http, removeDir, runCli, startNodeProc, waitFor, type CliResult, type NodeProc } from '../helpers/proc.js';

const TABLE = 'elastic';
const KEYS = 20_000;
const DELETED = 500;
const CUT_KEYS = 300;
/** A wide-column table beside the key-value one: its cells and tombstones stream like any record. */
const WIDE = 'ewide';
const WIDE_PARTITIONS = 100;
const WIDE_ROWS = 10;
/** The rows every partition must read as: rows c >= 5 range-deleted in k % 10 == 0, row 3 deleted in k % 10 == 1. */
function wideExpected(): Array<{ k: number; c: number; v: string }> {
  const out: Array<{ k: number; c: number; v: string }> = [];
  for (let k = 0; k < WIDE_PARTITIONS; k++) {
    for (let c = 0; c < WIDE_ROWS; c++) {
      if ((k % 10 === 0 && c >= 5) || (k % 10 === 1 && c === 3)) continue;
      out.push({ k, c, v: `w${k}-${c}` });
    }
  }
  return out;
}

describe('elasticity: join, decommission, kills mid-stream, removenode (real nodes)', () => {
  let lc: LocalCluster;
  /** Every acknowledged key -> the bytes it must read as; undefined: deleted (must not resurrect). */
  const expected = new Map<string, string | undefined>();
  const sock = (i: number): string => path.join(lc.dir, `node${i}`, 'ringkv.sock');
  const live = new Set<number>([1, 2, 3]);
  const urls = (): string[] => [...live].map((i) => lc.url(i));
  const urlsById = (): Map<string, string> => new Map([...live].map((i) => [`node${i}`, lc.url(i)]));

  const add = (): Promise<CliResult> => runCli(['local-cluster', 'add', '--dir', lc.dir], { timeoutMs: 120_000 });
  const throughput = async (i: number, mibs: number): Promise<void> => {
    expect((await http('PUT', `${lc.url(i)}/api/v1/stream-throughput`, { mibs })).status).toBe(200);
  };
  const movementOn = async (i: number): Promise<Body | null> => {
    try {
      return ((await clusterBody(lc.url(i)))['movement'] as Body | null) ?? null;
    } catch {
      return null;
    }
  };
  /** Every acknowledged key at R=2 through each of `nodes` (default: every live node). */
  const checkReads = async (nodes: Iterable<number> = live): Promise<void> => {
    for (const i of nodes) expect(await mismatchesAtR2(sock(i), TABLE, expected), `reads at R=2 through node${i}`).toEqual([]);
  };
  /** Every wide-column row (and no deleted one) through node `url`, read at `consistency` (ONE: node i's own replica where it is one). */
  const checkWide = async (url: string, consistency: 'ONE' | 'QUORUM'): Promise<void> => {
    const keys = Array.from({ length: WIDE_PARTITIONS }, (_, k) => k);
    const r = await http<Array<{ k: number; c: number; v: string }>>('POST', `${url}/api/v1/query`, { query: `SELECT k, c, v FROM ${WIDE} WHERE k IN ?`, params: [keys], consistency });
    expect(r.status, JSON.stringify(r.body).slice(0, 300)).toBe(200);
    expect(r.body).toEqual(wideExpected());
  };
  /** Range roots compared across each range's first 3 replicas, once every tree is built. */
  const builtRoots = (nodes: Map<string, string>): Promise<{ compared: number; differing: string[] }> =>
    waitFor(
      'every tree built',
      async () => {
        try {
          return await rootDisagreements(nodes, 3);
        } catch {
          return undefined;
        }
      },
      30_000,
      200,
    );
  const cleanupAndCompareRoots = async (): Promise<void> => {
    for (const i of live) {
      const r = await runCli(['cleanup', '--host', `127.0.0.1:${lc.httpBase + i}`, '--json'], { timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
    }
    await hintsDrained(urls());
    const res = await builtRoots(urlsById());
    expect(res.compared).toBeGreaterThan(16);
    expect(res.differing).toEqual([]);
  };

  beforeAll(async () => {
    await initHasher();
    lc = await localCluster(3);
    const cfg = path.join(lc.dir, 'elastic.json');
    writeFileSync(cfg, JSON.stringify({ streamThroughputMiBs: 0.2 }));
    // The file is read by every node local-cluster starts, `add` included.
    const start = await runCli(
      ['local-cluster', 'start', '--nodes', '3', '--dir', lc.dir, '--http-base', String(lc.httpBase), '--peer-base', String(lc.peerBase), '--test-mode', '--config', cfg, '--shards', '1'],
      { timeoutMs: 90_000 },
    );
    if (start.code !== 0) throw new Error(`local-cluster start failed: ${start.stderr}${start.stdout}`);
    const client = await RingkvClient.connect({ socket: sock(1) });
    try {
      for (let i = 0; i < KEYS; i += 1000) {
        const items = Array.from({ length: 1000 }, (_, j) => ({ op: 'put' as const, table: TABLE, key: `k${i + j}`, value: `value-${i + j}`, w: 2 }));
        const res = await client.batch(items);
        res.forEach((r, j) => r.ok && expected.set(items[j]!.key, items[j]!.value));
      }
      expect(expected.size).toBe(KEYS);
      await client.query(`CREATE TABLE ${WIDE} (k int, c int, v text, PRIMARY KEY ((k), c))`);
      for (let k = 0; k < WIDE_PARTITIONS; k++) {
        await Promise.all(Array.from({ length: WIDE_ROWS }, (_, c) => client.query(`INSERT INTO ${WIDE} (k, c, v) VALUES (?, ?, ?)`, [k, c, `w${k}-${c}`])));
        if (k % 10 === 0) await client.query(`DELETE FROM ${WIDE} WHERE k = ? AND c >= 5`, [k]);
        if (k % 10 === 1) await client.query(`DELETE FROM ${WIDE} WHERE k = ? AND c = 3`, [k]);
      }
      for (let i = 0; i < DELETED; i += 100) {
        const res = await client.batch(Array.from({ length: 100 }, (_, j) => ({ op: 'del' as const, table: TABLE, key: `k${i + j}`, w: 2 })));
        res.forEach((r, j) => {
          expect(r.ok).toBe(true);
          expected.set(`k${i + j}`, undefined);
        });
      }
    } finally {
      await client.close();
    }
  }, 180_000);

  let replacement: NodeProc | undefined;

  afterAll(async () => {
    await replacement?.kill('SIGTERM');
    await lc?.stop();
    if (lc) removeDir(lc.dir);
  });

  const cutKeys: string[] = [];

  it('node4 joins under W=2 writers; a second movement is refused meanwhile; every acknowledged key reads at R=2 everywhere', async () => {
    // Keys on two replicas only: node3 is cut off from node1 and node2 while they are written.
    await http('PUT', `${lc.url(1)}/api/v1/test/partition`, { blocked: ['node3'] });
    await http('PUT', `${lc.url(2)}/api/v1/test/partition`, { blocked: ['node3'] });
    await http('PUT', `${lc.url(3)}/api/v1/test/partition`, { blocked: ['node1', 'node2'] });
    for (let i = 0; i < CUT_KEYS; i++) {
      const key = `cut${i}`;
      const r = await http('PUT', `${lc.url(1 + (i % 2))}/api/v1/store/${TABLE}?w=2`, { key, value: key });
      expect(r.status).toBe(200);
      expected.set(key, JSON.stringify(key));
      cutKeys.push(key);
    }
    const writers = new Writers(TABLE, 'join');
    writers.start(() => [lc.url(1), lc.url(2)]);
    const joining = add();
    // While node4's join is visible, a decommission elsewhere is refused with the reason.
    await waitFor('the join to be visible on node2', async () => ((await clusterBody(lc.url(2)))['movements'] as unknown[]).length > 0, 60_000, 50);
    const refused = await http<{ error: { code: string; message: string } }>('POST', `${lc.url(2)}/api/v1/decommission`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/another range movement is under way \(join of node4/);
    const noCleanup = await http<{ error: { message: string } }>('POST', `${lc.url(1)}/api/v1/cleanup`);
    expect(noCleanup.status).toBe(409);
    expect(noCleanup.body.error.message).toMatch(/cleanup refused: a range movement is under way/);
    // Bad input to the movement endpoints is refused and changes nothing.
    expect((await http('POST', `${lc.url(1)}/api/v1/removenode`, {})).status).toBe(400);
    expect((await http('POST', `${lc.url(1)}/api/v1/removenode`, { node: 'no-such-node' })).status).toBe(404);
    expect((await http('PUT', `${lc.url(1)}/api/v1/stream-throughput`, { mibs: -1 })).status).toBe(400);
    const res = await joining;
    expect(res.code, res.stderr + res.stdout).toBe(0);
    expect(res.stdout).toMatch(/node4 joined and is normal/);
    live.add(4);
    await writers.stop();
    for (const [k, v] of writers.acked) expected.set(k, v);
    expect(writers.acked.size).toBeGreaterThan(100);

    const m = (await movementOn(4))!;
    expect(m['state']).toBe('done');
    expect(m['sources'] as number).toBeGreaterThanOrEqual(3);
    expect((m['settle'] as Body)['settled']).toBe(true);
    const status = await runCli(['status', '--host', `127.0.0.1:${lc.httpBase + 4}`]);
    expect(status.stdout).toMatch(/This node's last movement: join of node4: done {2}100\.0% {2}\d+\/\d+ ranges {2}[\d,]+ keys/);

    // Written to two replicas only (node3 missed them), and still on at least two of each key's new
    // replicas: node4 streamed each range from the replica that gave it up, never from one that
    // may have missed a write (a range node1 gives up, streamed from node3, would leave one copy).
    const ranges = await ringRanges(urls());
    const idUrl = new Map([1, 2, 3, 4].map((i) => [`node${i}`, lc.url(i)]));
    for (const key of cutKeys) {
      const replicas = replicasOfKey(ranges, key, 3);
      let holders = 0;
      for (const id of replicas) if ((await localReplica(idUrl.get(id)!, TABLE, key)) === 'value') holders++;
      expect(holders, `${key} on ${replicas.join(',')}`).toBeGreaterThanOrEqual(2);
    }
    // Tombstones streamed like any version: every replica of a deleted key holds its tombstone.
    for (let i = 0; i < DELETED; i++) {
      const key = `k${i}`;
      for (const id of replicasOfKey(ranges, key, 3)) expect(await localReplica(idUrl.get(id)!, TABLE, key), `${key} on ${id}`).toBe('tombstone');
    }
    // Reads through node1 and node2 while node3 is still cut off (they reach the others).
    for (const i of [1, 2]) expect(await mismatchesAtR2(sock(i), TABLE, new Map(cutKeys.map((k) => [k, expected.get(k)]))), `cut keys through node${i}`).toEqual([]);
    for (const i of [1, 2, 3]) await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked: [] });
    await checkReads();
    // Wide-column cells, row and range tombstones streamed to node4 as records: node4's own
    // replicas (ONE through node4) hold every row and none that was deleted.
    await checkWide(lc.url(4), 'ONE');
    await checkWide(lc.url(1), 'QUORUM');
  });

  it('node4 holds about a quarter of the stored copies, and after cleanup every range\'s replicas report one root', async () => {
    await cleanupAndCompareRoots();
    const counts = await Promise.all([1, 2, 3, 4].map((i) => storedKeys(lc.url(i))));
    const share = counts[3]! / counts.reduce((a, b) => a + b, 0);
    expect(share).toBeGreaterThan(0.17);
    expect(share).toBeLessThan(0.33);
  });

  it('node2 is decommissioned under W=2 writers: it streams its ranges away, leaves and stops; the 3 others serve everything', async () => {
    await throughput(2, 64);
    const writers = new Writers(TABLE, 'leave');
    writers.start(() => [lc.url(1), lc.url(3), lc.url(4)]);
    const res = await runCli(['local-cluster', 'decommission', '2', '--dir', lc.dir], { timeoutMs: 120_000 });
    expect(res.code, res.stderr + res.stdout).toBe(0);
    expect(res.stdout).toMatch(/node2 left the ring and stopped; 3 nodes remain/);
    live.delete(2);
    await writers.stop();
    for (const [k, v] of writers.acked) expected.set(k, v);
    expect(writers.acked.size).toBeGreaterThan(50);
    for (const i of live) {
      const nodes = (await clusterBody(lc.url(i)))['nodes'] as Array<{ id: string; status: string }>;
      expect(nodes.find((n) => n.id === 'node2')?.status).toBe('left');
    }
    await checkReads();
    await cleanupAndCompareRoots();
    // After node2 streamed its ranges away and cleanup ran with the wide table's N, each node's own copy is whole.
    for (const i of live) await checkWide(lc.url(i), 'ONE');
    // A decommissioned data directory does not rejoin silently.
    const again = await runCli(['start', '--data', path.join(lc.dir, 'node2'), '--http', '127.0.0.1:0', '--peer', `127.0.0.1:${lc.peerBase + 2}`, '--shards', '1']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/was decommissioned and left the ring; .*empty data directory/);
  });

  it('node5 is killed -9 mid-stream while joining, restarted, and the join completes', async () => {
    const joining = add();
    const before = await waitFor('node5 to stream', async () => {
      const m = await movementOn(5);
      return m !== null && m['state'] === 'streaming' && (m['bytes'] as number) > 0 ? m : null;
    }, 60_000, 25);
    const killedAt = Date.now();
    await lc.kill9(5);
    const cut = await joining;
    expect(cut.code, cut.stderr).toBe(1);
    expect(cut.stderr).toMatch(/node5 (exited|stopped answering during its join)/);
    const restart = await runCli(['local-cluster', 'start', '--dir', lc.dir], { timeoutMs: 120_000 });
    expect(restart.code, restart.stderr + restart.stdout).toBe(0);
    live.add(5);
    const m = (await movementOn(5))!;
    expect(m['state']).toBe('done');
    expect(m['kind']).toBe('join');
    expect(m['rangesDone']).toBe(m['rangesTotal']);
    // The same movement, resumed from its persisted progress (not a new join with new tokens), with
    // the same range tasks (whose cursors it continued from).
    expect(m['id']).toBe(before['id']);
    expect(m['startedAt'] as number).toBeLessThan(killedAt);
    expect(m['rangesTotal']).toBe(before['rangesTotal']);
    expect(await mismatchesAtR2(sock(5), TABLE, expected)).toEqual([]);
  });

  it('node6 joins and a source is killed -9 mid-stream: the join completes from the other replicas; removenode restores 3 replicas', async () => {
    const joining = add();
    await waitFor('node6 to stream', async () => {
      const m = await movementOn(6);
      return m !== null && m['state'] === 'streaming' && (m['bytes'] as number) > 0;
    }, 60_000, 25);
    await lc.kill9(3);
    live.delete(3);
    const res = await joining;
    expect(res.code, res.stderr + res.stdout).toBe(0);
    live.add(6);
    // node6 lost node3 as a source mid-range and continued from the cursor on the other replicas.
    const lost = readFileSync(path.join(lc.dir, 'node6', 'node.log'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"event":"range.source-lost"'));
    expect(lost.length).toBeGreaterThan(0);
    expect(lost.every((l) => l.includes('"lost":["node3"]'))).toBe(true);
    // Through the new node (the others were checked before; with node3 dead each key has 2 of 3).
    await checkReads([6]);

    // removenode is refused for a live node, then removes the dead one.
    const up = await runCli(['removenode', 'node4', '--host', `127.0.0.1:${lc.httpBase + 1}`]);
    expect(up.code).toBe(1);
    expect(up.stderr).toMatch(/node node4 is up/);
    await waitFor('node1 to see node3 down', async () => ((await clusterBody(lc.url(1)))['nodes'] as Array<{ id: string; liveness: string }>).find((n) => n.id === 'node3')?.liveness === 'down', 30_000);
    const rm = await runCli(['removenode', 'node3', '--host', `127.0.0.1:${lc.httpBase + 1}`], { timeoutMs: 120_000 });
    expect(rm.code, rm.stderr + rm.stdout).toBe(0);
    for (const i of live) {
      await waitFor(`node${i} to drop node3 from the ring`, async () => {
        const b = await clusterBody(lc.url(i));
        return (b['nodes'] as Array<{ id: string; status: string }>).find((n) => n.id === 'node3')?.status === 'left' && (b['movements'] as unknown[]).length === 0;
      });
    }
    await checkReads([1]);
    // Every range has its 3 replicas again, holding the same data (no cleanup needed for that).
    await hintsDrained(urls());
    expect((await builtRoots(urlsById())).differing).toEqual([]);
    for (const i of live) {
      const ranges = (await http<{ ranges: Array<{ replicas: string[] }> }>('GET', `${lc.url(i)}/api/v1/ranges`)).body.ranges;
      for (const r of ranges) expect(r.replicas.slice(0, 3).every((id) => id !== 'node3' && [...live].map((k) => `node${k}`).includes(id))).toBe(true);
    }
  });

  it('node7 replaces the dead node6 under W=2 writers: same tokens, its data streamed, every key readable, replicas agree', async () => {
    const tokensOf6 = ((await clusterBody(lc.url(1)))['nodes'] as Array<{ id: string; tokens: number; owned: number }>).find((n) => n.id === 'node6')!;
    const digestBefore = (await clusterBody(lc.url(1)))['ringDigest'];
    await lc.kill9(6);
    live.delete(6);
    await waitFor('node1 to see node6 down', async () => ((await clusterBody(lc.url(1)))['nodes'] as Array<{ id: string; liveness: string }>).find((n) => n.id === 'node6')?.liveness === 'down', 30_000);
    const writers = new Writers(TABLE, 'replace');
    writers.start(urls);
    // Same cluster name (and secret, when local-cluster keeps one) as the local cluster's nodes.
    const cf = JSON.parse(readFileSync(path.join(lc.dir, 'cluster.json'), 'utf8')) as { extraArgs: string[] };
    const http7 = await freePort();
    replacement = await startNodeProc({
      dataDir: path.join(lc.dir, 'node7'),
      httpPort: http7,
      shards: 1,
      args: ['--node-id', 'node7', '--seeds', `127.0.0.1:${lc.peerBase + 1}`, '--replace', 'node6', '--secret-file', path.join(lc.dir, 'secret'), ...cf.extraArgs],
    });
    await waitFor('node7 to be normal in every live view', async () => {
      for (const u of urls()) {
        const nodes = (await clusterBody(u))['nodes'] as Array<{ id: string; status: string }>;
        if (nodes.find((n) => n.id === 'node7')?.status !== 'normal' || nodes.find((n) => n.id === 'node6')?.status !== 'left') return false;
      }
      return true;
    }, 90_000);
    const url7 = `http://127.0.0.1:${http7}`;
    const m = ((await clusterBody(url7))['movement'] as Body | null)!;
    expect(m['kind']).toBe('replace');
    expect(m['replaces']).toBe('node6');
    expect(m['state']).toBe('done');
    expect(m['keys'] as number).toBeGreaterThan(1000);
    await writers.stop();
    for (const [k, v] of writers.acked) expected.set(k, v);
    expect(writers.acked.size).toBeGreaterThan(50);
    const nodes = (await clusterBody(lc.url(1)))['nodes'] as Array<{ id: string; tokens: number; owned: number }>;
    const n7 = nodes.find((n) => n.id === 'node7')!;
    // It took node6's place: the same tokens, so the same ring apart from the node id.
    expect(n7.tokens).toBe(tokensOf6.tokens);
    expect(n7.owned).toBeCloseTo(tokensOf6.owned, 9);
    expect((await clusterBody(lc.url(1)))['ringDigest']).not.toBe(digestBefore);
    await checkReads([1]);
    expect(await mismatchesAtR2(path.join(lc.dir, 'node7', 'ringkv.sock'), TABLE, expected), 'reads through node7').toEqual([]);
    const all = new Map([...urlsById(), ['node7', url7]]);
    await hintsDrained(all.values());
    expect((await builtRoots(all)).differing).toEqual([]);
  });
});
