import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterView, localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, startNodeProc, tempDir, waitFor } from '../helpers/proc.js';

type Body = Record<string, unknown>;

/**
 * Reads of the kill test that may wait out a survivor falsely suspecting the other (each such
 * episode lasts about a second and the reads run one at a time): more means the failure detector
 * convicts live nodes too often under load, which is a bug to look at, not noise to retry away.
 */
const MAX_SUSPECTED_READS = 3;

describe('3-node cluster (real processes via `ringkv local-cluster`)', () => {
  let lc: LocalCluster;
  let cfgDir: string | undefined;
  const store = (i: number, t: string, q = ''): string => `${lc.url(i)}/api/v1/store/${t}${q}`;

  beforeAll(async () => {
    // Hinted handoff off (a 0 ms window expires every hint before replay): here only read repair
    // may heal a replica that missed a write, so the read-repair test tests read repair.
    cfgDir = tempDir('ringkv-cluster-cfg-');
    const cfg = path.join(cfgDir, 'no-hints.json');
    writeFileSync(cfg, JSON.stringify({ maxHintWindowMs: 0 }));
    lc = await localCluster(3, ['--test-mode', '--config', cfg]);
    const out = await lc.start();
    expect(out).toMatch(/converged: 3 nodes/);
  });
  afterAll(async () => {
    await lc?.stop();
    if (lc) removeDir(lc.dir);
    if (cfgDir) removeDir(cfgDir);
  });

  it('every node agrees on the ring and sees three normal, up nodes', async () => {
    const digests = new Set<string>();
    for (let i = 1; i <= 3; i++) {
      const c = await http('GET', `${lc.url(i)}/api/v1/cluster`);
      digests.add(String(c.body['ringDigest']));
      const nodes = c.body['nodes'] as Body[];
      expect(nodes.map((n) => n['id'])).toEqual(['node1', 'node2', 'node3']);
      expect(nodes.every((n) => n['liveness'] === 'up' && n['status'] === 'normal')).toBe(true);
      const owned = nodes.reduce((s, n) => s + (n['owned'] as number), 0);
      expect(owned).toBeCloseTo(1, 6);
    }
    expect(digests.size).toBe(1);
  });

  it('a write through node 1 (N=3, W=2) is read through node 3 (R=2) and lands on all three replicas', async () => {
    const put = await http('PUT', store(1, 'kv', '?w=2'), { key: 'hello', value: 'world' });
    expect(put.status).toBe(200);
    expect(put.body['consistency']).toMatchObject({ n: 3, required: 2 });
    const get = await http('GET', `${store(3, 'kv')}/hello?r=2`);
    expect(get.status).toBe(200);
    expect(get.body['value']).toBe('world');
    for (let i = 1; i <= 3; i++) {
      await waitFor(`replica on node${i}`, async () => (await http('GET', `${store(i, 'kv')}/hello?replica=local`)).status === 200);
    }
  });

  it('concurrent writes through two coordinators become siblings; a context-carrying write resolves them', async () => {
    await Promise.all([http('PUT', store(1, 'kv', '?w=3'), { key: 'cc', value: 'from-1' }), http('PUT', store(2, 'kv', '?w=3'), { key: 'cc', value: 'from-2' })]);
    const g = await http('GET', `${store(3, 'kv')}/cc?r=3`);
    expect(g.status).toBe(200);
    expect((g.body['siblings'] as unknown[]).sort()).toEqual(['from-1', 'from-2']);
    const w = await http('PUT', store(3, 'kv', '?w=3'), { key: 'cc', value: 'merged', context: g.body['context'] });
    expect(w.status).toBe(200);
    for (let i = 1; i <= 3; i++) {
      const r = await http('GET', `${store(i, 'kv')}/cc?r=3`);
      expect(r.body['value']).toBe('merged');
      expect(r.body['siblings']).toBeUndefined();
    }
  });

  async function readRepairs(i: number): Promise<number> {
    const m = await http('GET', `${lc.url(i)}/api/v1/metrics`);
    return (m.body['router'] as Body)['readRepairs'] as number;
  }

  it('read repair makes a stale replica current', async () => {
    // Cut node 3 off, write with W=2 through node 1: node 3 misses it.
    for (const [i, blocked] of [[1, ['node3']], [2, ['node3']], [3, ['node1', 'node2']]] as const) {
      expect((await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked })).status).toBe(200);
    }
    const put = await http('PUT', store(1, 'kv', '?w=2'), { key: 'rr', value: 'fresh' });
    expect(put.status).toBe(200);
    for (const i of [1, 2, 3]) await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked: [] });
    expect((await http('GET', `${store(3, 'kv')}/rr?replica=local`)).status).toBe(404);
    const repairsBefore = await readRepairs(1);
    // A read that reaches node 3 through the coordinator repairs it.
    const r = await http('GET', `${store(1, 'kv')}/rr?r=3`);
    expect(r.body['value']).toBe('fresh');
    await waitFor('node3 to be repaired', async () => {
      const l = await http('GET', `${store(3, 'kv')}/rr?replica=local`);
      return l.status === 200 && l.body['value'] === 'fresh';
    });
    // It was the coordinator's read repair (hints are off, and nothing else writes node3).
    expect(await readRepairs(1)).toBe(repairsBefore + 1);
    expect((await http('GET', `${lc.url(1)}/api/v1/metrics`)).body['hints']).toMatchObject({ replayed: 0 });
  });

  it('with a node killed (SIGKILL): W=2/R=2 still work, W=3 fails clearly, the node is seen down, then up after restart', async () => {
    // W=2 writes stream through node1 and node3 while node2 is killed: every acknowledged one must
    // be readable afterwards from the two survivors alone (an ack needs 2 of 3 replicas, so at least
    // one survivor holds it, and R=2 of the survivors finds it).
    const acked: number[] = [];
    const failed: string[] = [];
    let next = 0;
    let killedAt = -1;
    let killTime = 0;
    let detection: Promise<number> | undefined;
    const TOTAL = 600; // bounded: half before the kill, half after
    const writers = Array.from({ length: 16 }, async () => {
      while (next < TOTAL) {
        const i = next++;
        const r = await http('PUT', store(i % 2 === 0 ? 1 : 3, 'kv', '?w=2'), { key: `stream-${i}`, value: i });
        if (r.status === 200) acked.push(i);
        else failed.push(`${i}: ${r.status} ${JSON.stringify(r.body)}`);
        if (killedAt < 0 && acked.length >= TOTAL / 2) {
          killedAt = acked.length;
          killTime = Date.now();
          await lc.kill9(2);
          // Polled alongside the stream, so the detection time is not inflated by it.
          detection = waitFor('node1 and node3 to see node2 down', async () => {
            for (const i of [1, 3]) {
              const v = await clusterView(lc.url(i));
              if (v.find((n) => n.id === 'node2')?.liveness !== 'down') return false;
            }
            return true;
          }, 15_000).then(() => Date.now() - killTime);
        }
      }
    });
    await Promise.all(writers);
    expect(killedAt).toBeGreaterThan(0);
    // Coordinators never wait on node2 once two replicas acked, so the stream is not interrupted.
    expect(failed).toEqual([]);
    expect(acked.length).toBe(TOTAL);
    // A 503 here can only be a survivor falsely suspecting the other (phi accrual on a loaded
    // machine): it is unavailability, not loss, so the read is polled with a deadline. But every
    // such read is counted and bounded, so frequent false suspicions fail the test instead of
    // hiding behind the retry. A 404 or another value from two replicas would be a lost write.
    const lost: string[] = [];
    const suspected: string[] = [];
    for (const i of acked) {
      const url = `${store(i % 2 === 0 ? 3 : 1, 'kv')}/stream-${i}?r=2`;
      let first503: string | undefined;
      const r = await waitFor(`stream-${i} to be readable with R=2`, async () => {
        const g = await http('GET', url);
        if (g.status !== 503) return g;
        first503 ??= String((g.body['error'] as Body | undefined)?.['message']);
        return undefined;
      }, 10_000);
      if (first503 !== undefined) suspected.push(`stream-${i}: ${first503}`);
      if (r.status !== 200 || r.body['value'] !== i) lost.push(`${i}: ${r.status} ${JSON.stringify(r.body)}`);
    }
    expect(lost).toEqual([]);
    // The reads run one at a time, so each false suspicion delays about one read.
    console.log(`R=2 read-back: ${suspected.length} of ${acked.length} reads waited out a false suspicion${suspected.length > 0 ? `: ${suspected.slice(0, 3).join(' | ')}` : ''}`);
    expect(suspected.length, suspected.join('\n')).toBeLessThanOrEqual(MAX_SUSPECTED_READS);

    expect(detection).toBeDefined();
    const detectMs = await detection!;
    console.log(`killed node detected down by both peers after ${detectMs} ms`);

    const ok = await http('PUT', store(1, 'kv', '?w=2'), { key: 'during-outage', value: 1 });
    expect(ok.status).toBe(200);
    const read = await http('GET', `${store(3, 'kv')}/during-outage?r=2`);
    expect(read.status).toBe(200);
    expect(read.body['value']).toBe(1);
    const all = await http('PUT', store(3, 'kv', '?w=3'), { key: 'during-outage-2', value: 2 });
    expect(all.status).toBe(503);
    const err = all.body['error'] as Body;
    expect(String(err['message'])).toMatch(/2 of 3 replicas are up, 3 acks required \(down: node2\)/);
    expect((await http('GET', `${store(1, 'kv')}/during-outage-2?r=2`)).status).toBe(404);

    await lc.start();
    await waitFor('node2 to be seen up again', async () => {
      for (const i of [1, 3]) {
        const v = await clusterView(lc.url(i));
        if (v.find((n) => n.id === 'node2')?.liveness !== 'up') return false;
      }
      return true;
    }, 30_000);
    // The restarted node kept its data.
    const back = await http('GET', `${store(2, 'kv')}/hello?replica=local`);
    expect(back.body['value']).toBe('world');
  });

  it('a process without the cluster secret cannot join: it is refused and says why', async () => {
    const dir = tempDir();
    try {
      const rogue = await startNodeProc({ dataDir: dir, waitReady: false, args: ['--seeds', `127.0.0.1:${lc.peerBase + 1}`, '--secret', 'not-the-secret'] });
      expect(await rogue.exited).toBe(2);
      expect(rogue.output()).toMatch(/rejected this node's cluster secret/);
      for (let i = 1; i <= 3; i++) expect((await clusterView(lc.url(i))).map((n) => n.id)).toEqual(['node1', 'node2', 'node3']);
      const m = await http('GET', `${lc.url(1)}/api/v1/metrics`);
      expect(((m.body['transport'] as Body)['authFailures'] as number) > 0).toBe(true);
    } finally {
      removeDir(dir);
    }
  });
  it('a node restarted while every peer is down starts with the ring it last knew (not a one-node ring)', async () => {
    const before = String((await http('GET', `${lc.url(1)}/api/v1/cluster`)).body['ringDigest']);
    const cf = JSON.parse(readFileSync(path.join(lc.dir, 'cluster.json'), 'utf8')) as { shards: number; extraArgs: string[] };
    for (const i of [1, 2, 3]) await lc.kill9(i);
    const node2 = await startNodeProc({
      dataDir: path.join(lc.dir, 'node2'),
      httpPort: lc.httpBase + 2,
      peerPort: lc.peerBase + 2,
      shards: cf.shards,
      args: ['--node-id', 'node2', '--ipc', path.join(lc.dir, 'node2', 'ringkv.sock'), '--seeds', `127.0.0.1:${lc.peerBase + 1}`, ...cf.extraArgs],
    });
    try {
      const c = await http('GET', `${node2.url}/api/v1/cluster`);
      expect(c.body['ringDigest']).toBe(before);
      const nodes = c.body['nodes'] as Body[];
      expect(nodes.map((n) => [n['id'], n['liveness']])).toEqual([['node1', 'down'], ['node2', 'up'], ['node3', 'down']]);
      // Its own replica still answers, and a quorum write fails clearly instead of landing in the wrong ranges.
      expect((await http('GET', `${node2.url}/api/v1/store/kv/hello?replica=local`)).body['value']).toBe('world');
      expect((await http('PUT', `${node2.url}/api/v1/store/kv?w=2`, { key: 'alone', value: 1 })).status).toBe(503);
    } finally {
      await node2.kill('SIGKILL');
    }
  });
});
