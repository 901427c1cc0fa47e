/**
 * Issue 10 item 2: a node joining a cluster that holds data hid about half of it. The shard of a
 * key used to follow the ring (ranges dealt round-robin to shards), so the join re-dealt ranges and
 * the first node looked for its own data in the wrong shards. Real processes through the CLI: one
 * node (2 shards) takes writes, a second (3 shards) joins with --seeds; every acknowledged key must
 * still read at QUORUM through either node and from the first node's own replica, and once repair
 * ran the two nodes (different shard counts) must report equal Merkle roots and equal scans.
 *
 * Fails on a3f3559 (checked by running this file against that build: about half the keys read 404).
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, removeDir, startNodeProc, tempDir, waitFor, type NodeProc } from '../helpers/proc.js';

const KEYS = 400;
const TABLE = 'placed';

interface ClusterView {
  ringDigest: string;
  nodes: Array<{ id: string; liveness: string; tokens: number }>;
}
interface RangeRow {
  start: string;
  end: string;
  root: string;
  ready: boolean;
}

describe('a join never hides stored data (real nodes, different shard counts)', () => {
  let dir: string;
  let a: NodeProc | undefined;
  let b: NodeProc | undefined;
  const acked = new Map<string, string>();

  beforeAll(async () => {
    dir = tempDir('ringkv-placement-');
    a = await startNodeProc({ dataDir: path.join(dir, 'a'), shards: 2 });
    for (let i = 0; i < KEYS; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const key = `key-${i + j}`;
          const value = { n: i + j, text: `value of ${key}` };
          const r = await http('PUT', `${a!.url}/api/v1/store/${TABLE}`, { key, value });
          if (r.status === 200) acked.set(key, JSON.stringify(value));
        }),
      );
    }
    expect(acked.size).toBe(KEYS);
    b = await startNodeProc({ dataDir: path.join(dir, 'b'), shards: 3, args: ['--seeds', `127.0.0.1:${a.peerPort}`] });
    // Both nodes see both nodes up, owning tokens, with one ring digest.
    await waitFor('both nodes to agree on a 2-node ring', async () => {
      const views = await Promise.all([a!, b!].map(async (n) => (await http<ClusterView>('GET', `${n.url}/api/v1/cluster`)).body));
      const ok = views.every((v) => v.nodes.length === 2 && v.nodes.every((m) => m.liveness === 'up' && m.tokens > 0));
      return ok && views[0]!.ringDigest === views[1]!.ringDigest;
    });
  }, 120_000);

  afterAll(async () => {
    await Promise.all([a?.kill('SIGTERM'), b?.kill('SIGTERM')]);
    if (dir) removeDir(dir);
  });

  it('the first node still finds every key it held in its own replica', async () => {
    const missing: string[] = [];
    for (const [key, value] of acked) {
      const r = await http<{ value?: unknown }>('GET', `${a!.url}/api/v1/store/${TABLE}/${key}?replica=local`);
      if (r.status !== 200 || JSON.stringify(r.body.value) !== value) missing.push(`${key}: ${r.status}`);
    }
    expect(missing).toEqual([]);
  });

  it('every acknowledged key reads at QUORUM through either node', async () => {
    for (const n of [a!, b!]) {
      const missing: string[] = [];
      for (const [key, value] of acked) {
        const r = await http<{ value?: unknown }>('GET', `${n.url}/api/v1/store/${TABLE}/${key}?consistency=QUORUM`);
        if (r.status !== 200 || JSON.stringify(r.body.value) !== value) missing.push(`${key}: ${r.status}`);
      }
      expect(missing).toEqual([]);
    }
  });

  it('after repair, the nodes (2 and 3 shards) report equal Merkle roots and scan the same rows', async () => {
    const rep = await http<{ rangesCompared: number; errors: string[] }>('POST', `${a!.url}/api/v1/repair`, {});
    expect(rep.status).toBe(200);
    expect(rep.body.errors).toEqual([]);
    expect(rep.body.rangesCompared).toBeGreaterThan(0);
    // With 2 nodes and N=3 both replicate every range: each range's root must match, tree by tree.
    const roots = await waitFor('both nodes\' trees to be built and equal', async () => {
      const [ra, rb] = await Promise.all([a!, b!].map(async (n) => (await http<{ ranges: RangeRow[] }>('GET', `${n.url}/api/v1/ranges`)).body.ranges));
      if (!ra!.every((r) => r.ready) || !rb!.every((r) => r.ready)) return false;
      const key = (r: RangeRow): string => `${r.start}-${r.end}:${r.root}`;
      return ra!.map(key).join() === rb!.map(key).join() ? ra : false;
    });
    expect(roots.length).toBeGreaterThan(16);
    expect(roots.some((r) => r.root !== '0000000000000000')).toBe(true);
    // A whole-ring scan (one page holds every key) returns each acknowledged key once, from either node.
    for (const n of [a!, b!]) {
      const r = await http<{ rows: Array<{ key: string; value: unknown }>; truncated: boolean }>('GET', `${n.url}/api/v1/store/${TABLE}?start=key-0&limit=1000&consistency=QUORUM`);
      expect(r.status).toBe(200);
      expect(r.body.truncated).toBe(false);
      expect(r.body.rows).toHaveLength(KEYS);
      expect(new Map(r.body.rows.map((row) => [row.key, JSON.stringify(row.value)]))).toEqual(acked);
    }
  });
});
