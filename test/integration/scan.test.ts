/**
 * Range scans against real node processes: one node with 2 shards (HTTP and the IPC client), and a
 * 3-node local cluster with N=3, R=2 (the coordinator reads remote replicas over the peer port).
 * The expected order is computed here from the ring hash of every live key. Run `npx tsc` first.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingkvClient } from '../../src/client/index.js';
import { initHasher, tokenOf, tokenToBigInt } from '../../src/ring/hash.js';
import { localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, startNodeProc, tempDir, waitFor, type NodeProc } from '../helpers/proc.js';

const RING = 1n << 64n;

/** Live keys in scan order from `start`'s token (inclusive), wrapping once. */
function expectedOrder(keys: readonly string[], start: string): string[] {
  const t0 = tokenToBigInt(tokenOf(start));
  const dist = (k: string): bigint => (((tokenToBigInt(tokenOf(k)) - t0) % RING) + RING) % RING;
  return [...keys].sort((x, y) => {
    const d = dist(x) - dist(y);
    return d < 0n ? -1 : d > 0n ? 1 : Buffer.compare(Buffer.from(x), Buffer.from(y));
  });
}

/**
 * Page with the server's paging state until it says endOfRing: no hashing, no wrap detection on
 * this side (issue 10 item 12). Fails if it does not end within `maxPages`.
 */
async function scanAll(client: RingkvClient, table: string, start: string, page: number, opts: { r?: number } = {}, maxPages = 1000): Promise<string[]> {
  const seen: string[] = [];
  let res = await client.scan(table, start, page, opts);
  for (let i = 1; ; i++) {
    seen.push(...res.rows.map((r) => r.key.toString()));
    if (res.endOfRing) {
      expect(res.pagingState).toBeUndefined();
      return seen;
    }
    if (i >= maxPages) throw new Error(`scan did not reach endOfRing in ${maxPages} pages (${seen.length} rows)`);
    expect(typeof res.pagingState).toBe('string');
    res = await client.scan(table, { pagingState: res.pagingState! }, page, opts);
  }
}

/** The same over HTTP: `?pagingState=` until `endOfRing`. */
async function httpScanAll(url: string, table: string, start: string, page: number, maxPages = 1000): Promise<string[]> {
  const seen: string[] = [];
  let q = `start=${encodeURIComponent(start)}`;
  for (let i = 0; i < maxPages; i++) {
    const r = await http<{ rows: Array<{ key: string }>; endOfRing: boolean; pagingState?: string }>('GET', `${url}/api/v1/store/${table}?${q}&limit=${page}`);
    expect(r.status).toBe(200);
    seen.push(...r.body.rows.map((x) => x.key));
    if (r.body.endOfRing) return seen;
    q = `pagingState=${encodeURIComponent(r.body.pagingState!)}`;
  }
  throw new Error(`HTTP scan did not reach endOfRing in ${maxPages} pages`);
}

beforeAll(async () => {
  await initHasher();
});

describe('range scans on one node with 2 shards', () => {
  let dir: string;
  let node: NodeProc;
  let client: RingkvClient;
  const keys: string[] = [];
  const deleted = new Set<string>();

  beforeAll(async () => {
    dir = tempDir('rkv-scan-');
    node = await startNodeProc({ dataDir: path.join(dir, 'data'), shards: 2 });
    client = await RingkvClient.connect({ socket: path.join(dir, 'data', 'ringkv.sock') });
    for (let i = 0; i < 300; i++) keys.push(`user${String(i).padStart(4, '0')}`);
    await Promise.all(keys.map((k) => client.put('scan', k, `v-${k}`)));
    for (let i = 0; i < 300; i += 23) deleted.add(keys[i]!);
    await Promise.all([...deleted].map((k) => client.delete('scan', k)));
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await node?.kill();
    if (dir) removeDir(dir);
  });

  const live = (): string[] => keys.filter((k) => !deleted.has(k));

  it('HTTP: exactly limit rows in token order from the start key, no deleted keys, values as GET', async () => {
    const start = 'user0100';
    const r = await http<{ rows: Array<{ key: string; value: unknown; context: string }>; truncated: boolean }>('GET', `${node.url}/api/v1/store/scan?start=${start}&limit=50`);
    expect(r.status).toBe(200);
    expect(r.body.truncated).toBe(false);
    const got = r.body.rows.map((x) => x.key);
    expect(got).toHaveLength(50);
    expect(got).toEqual(expectedOrder(live(), start).slice(0, 50));
    expect(got.some((k) => deleted.has(k))).toBe(false);
    const one = await http<{ value: unknown }>('GET', `${node.url}/api/v1/store/scan/${got[0]}`);
    expect(r.body.rows[0]!.value).toEqual(one.body.value);
    expect(typeof r.body.rows[0]!.context).toBe('string');
    for (const bad of ['0', '1001', 'x']) {
      const e = await http<{ error: { code: string } }>('GET', `${node.url}/api/v1/store/scan?start=${start}&limit=${bad}`);
      expect(e.status, `limit=${bad}`).toBe(400);
      expect(e.body.error.code).toBe('bad_request');
    }
    expect((await http('GET', `${node.url}/api/v1/store/scan?limit=5`)).status).toBe(400);
  });

  it('client: same rows as HTTP, and paging with the paging state covers every live key exactly once, then ends', async () => {
    const start = 'user0250';
    const r = await client.scan('scan', start, 50);
    expect(r.rows.map((x) => x.key.toString())).toEqual(expectedOrder(live(), start).slice(0, 50));
    expect(r.rows.every((x) => x.value?.toString() === `v-${x.key.toString()}` && x.found)).toBe(true);
    const all = await scanAll(client, 'scan', start, 50, {}, Math.ceil(live().length / 50) + 1);
    expect(all).toEqual(expectedOrder(live(), start));
    expect(new Set(all).size).toBe(live().length);
    // Small pages over HTTP: the same keys, each once, and the paging ends by itself.
    const viaHttp = await httpScanAll(node.url, 'scan', 'user0007', 7, Math.ceil(live().length / 7) + 1);
    expect(viaHttp).toEqual(expectedOrder(live(), 'user0007'));
    // One request for the whole ring says it reached the end.
    const whole = await client.scan('scan', 'anything', 1000);
    expect(whole.rows).toHaveLength(live().length);
    expect(whole.endOfRing).toBe(true);
    // Unknown tables scan empty, and bad limits are refused by the server.
    expect((await client.scan('nosuchtable', 'a', 10)).rows).toEqual([]);
    await expect(client.scan('scan', 'a', 0)).rejects.toMatchObject({ code: 'bad_request' });
  });
});

describe('range scans on a 3-node cluster (N=3, R=2)', () => {
  let lc: LocalCluster;
  beforeAll(async () => {
    lc = await localCluster(3);
    await lc.start();
  }, 90_000);
  afterAll(async () => {
    await lc?.stop();
    if (lc) removeDir(lc.dir);
  });

  it('scans every live key once in token order, reading remote replicas; paging ends at endOfRing', async () => {
    const client = await RingkvClient.connect({ socket: path.join(lc.dir, 'node1', 'ringkv.sock') });
    try {
      await waitFor('3 nodes in the client ring', () => (client.currentRing?.nodes.length ?? 0) === 3);
      const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
      await Promise.all(keys.map((k) => client.put('c3', k, `v${k}`, { consistency: 'ALL' })));
      const gone = new Set(keys.filter((_, i) => i % 17 === 0));
      await Promise.all([...gone].map((k) => client.delete('c3', k, { consistency: 'ALL' })));
      const live = keys.filter((k) => !gone.has(k));
      const before = (await http('GET', `${lc.url(2)}/api/v1/metrics`)).body['router'] as Record<string, number>;
      const all = await scanAll(client, 'c3', 'k7', 40, { r: 2 }, Math.ceil(live.length / 40) + 1);
      expect(all).toEqual(expectedOrder(live, 'k7'));
      // Continued on other nodes (a paging state is not tied to the node that made it).
      expect(await httpScanAll(lc.url(3), 'c3', 'k100', 9, Math.ceil(live.length / 9) + 1)).toEqual(expectedOrder(live, 'k100'));
      const res = await client.scan('c3', 'k7', 40, { r: 2 });
      expect(res.consistency).toMatchObject({ n: 3, required: 2, replied: 2 });
      expect(res.rows).toHaveLength(40);
      // Over HTTP on another node, ALL: the same order.
      const h = await http<{ rows: Array<{ key: string }> }>('GET', `${lc.url(3)}/api/v1/store/c3?start=k7&limit=40&consistency=ALL`);
      expect(h.status).toBe(200);
      expect(h.body.rows.map((x) => x.key)).toEqual(expectedOrder(live, 'k7').slice(0, 40));
      // node2 served replica pages to other coordinators (remote scans went over the peer port).
      const after = (await http('GET', `${lc.url(2)}/api/v1/metrics`)).body['router'] as Record<string, number>;
      expect(after['replicaReads']!).toBeGreaterThan(before['replicaReads']!);
    } finally {
      await client.close();
    }
  }, 60_000);
});
