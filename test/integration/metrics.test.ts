import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricNameProblems } from '../../src/metrics/names.js';
import { http, removeDir, startNodeProc, tempDir, type NodeProc } from '../helpers/proc.js';
import { parseExposition, sampleValue, type PromFamily } from '../helpers/prom.js';

async function scrape(url: string): Promise<PromFamily[]> {
  const r = await fetch(`${url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get('content-type')).toContain('text/plain; version=0.0.4');
  return parseExposition(await r.text());
}

describe('/metrics, /readyz and events of a real node', () => {
  let dir: string;
  let node: NodeProc;

  beforeAll(async () => {
    dir = tempDir();
    node = await startNodeProc({ dataDir: dir, shards: 2, args: ['--log-level', 'info'] });
  });
  afterAll(async () => {
    await node?.kill('SIGTERM');
    removeDir(dir);
  });

  it('counts exactly the requests made, per operation and consistency level, with their latencies', async () => {
    const before = await scrape(node.url);
    const writes = 37;
    const reads = 23;
    const store = `${node.url}/api/v1/store/m`;
    // Sequential within each kind, both kinds interleaved: a short, concurrent load.
    await Promise.all([
      (async () => {
        for (let i = 0; i < writes; i++) expect((await http('PUT', store, { key: `k${i}`, value: i })).status).toBe(200);
      })(),
      (async () => {
        for (let i = 0; i < reads; i++) expect([200, 404]).toContain((await http('GET', `${store}/k${i}?consistency=ONE`)).status);
      })(),
    ]);
    // A request rejected before coordination (bad consistency) is not a coordinated request.
    expect((await http('GET', `${store}/k1?consistency=MOST`)).status).toBe(400);
    const after = await scrape(node.url);
    const grown = (name: string, labels: Record<string, string>): number => sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(grown('ringkv_requests_total', { op: 'write', consistency: 'QUORUM' })).toBe(writes);
    expect(grown('ringkv_requests_total', { op: 'read', consistency: 'ONE' })).toBe(reads);
    expect(grown('ringkv_request_duration_seconds', { op: 'write', consistency: 'QUORUM' })).toBe(writes);
    expect(sampleValue(after, 'ringkv_requests_total', { op: 'read', consistency: 'QUORUM' })).toBe(0);
    expect(sampleValue(after, 'ringkv_requests_in_flight')).toBe(0);
    // The shard side saw them too: every write reached a shard commit.
    const shardWrites = ['0', '1'].reduce((a, shard) => a + sampleValue(after, 'ringkv_shard_ops_total', { shard, op: 'write' }), 0);
    expect(shardWrites).toBeGreaterThanOrEqual(writes);
  });

  it('exports only conventionally named families, node facts and process metrics among them', async () => {
    const fams = await scrape(node.url);
    for (const f of fams) expect(metricNameProblems(f.name, f.type as 'gauge'), f.name).toEqual([]);
    expect(sampleValue(fams, 'ringkv_ring_tokens')).toBe(16);
    expect(sampleValue(fams, 'ringkv_member_up')).toBe(1);
    expect(sampleValue(fams, 'ringkv_shard_keys', { shard: '0' }) + sampleValue(fams, 'ringkv_shard_keys', { shard: '1' })).toBeGreaterThan(0);
    expect(sampleValue(fams, 'ringkv_rocksdb_write_stopped')).toBe(0);
    expect(fams.map((f) => f.name)).toEqual(expect.arrayContaining(['ringkv_nodejs_eventloop_lag_seconds', 'ringkv_nodejs_gc_duration_seconds', 'ringkv_ipc_connections']));
  });

  it('answers /readyz and /healthz, and keeps the JSON counters at /api/v1/metrics', async () => {
    const ready = await http('GET', `${node.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', checks: { shards: true, ring: true, status: true, running: true }, reasons: [] });
    expect((await http('GET', `${node.url}/healthz`)).status).toBe(200);
    expect((await http('GET', `${node.url}/api/v1/metrics`)).body['router']).toBeDefined();
  });

  it('logs the ring publication as one structured event line', () => {
    const events = node
      .output()
      .split('\n')
      .filter((l) => l.includes('"event":"ring.published"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events.length).toBeGreaterThan(0);
    expect(events.at(-1)).toMatchObject({ level: 30, event: 'ring.published', nodes: 1, tokens: 16 });
    expect(typeof events.at(-1)!['digest']).toBe('string');
  });
});

describe('a node with metrics.enabled false', () => {
  it('serves requests and answers /metrics with 404', async () => {
    const dir = tempDir();
    const cfg = path.join(dir, 'config.json');
    writeFileSync(cfg, JSON.stringify({ metrics: { enabled: false } }));
    const node = await startNodeProc({ dataDir: path.join(dir, 'data'), shards: 1, args: ['--config', cfg] });
    try {
      expect((await http('PUT', `${node.url}/api/v1/store/t`, { key: 'a', value: 1 })).status).toBe(200);
      const m = await http('GET', `${node.url}/metrics`);
      expect(m.status).toBe(404);
      expect(JSON.stringify(m.body)).toContain('metrics.enabled');
      expect((await http('GET', `${node.url}/readyz`)).status).toBe(200);
    } finally {
      await node.kill('SIGTERM');
      removeDir(dir);
    }
  });
});
