import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BATCH_SIZE_BUCKETS, ROUND_TRIP_BUCKETS_SECONDS, SlottedHistogram } from '../../src/metrics/histogram.js';
import { metricNameProblems } from '../../src/metrics/names.js';
import { checked, createNodeRegistry, PeerHistograms, rocksFileBytes, type MetricsSources } from '../../src/metrics/registry.js';
import { RequestMetrics } from '../../src/metrics/requests.js';
import { RingkvError } from '../../src/util/errors.js';
import { parseExposition, sampleValue } from '../helpers/prom.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ringkv-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function sources(requests = new RequestMetrics()): MetricsSources {
  const batches = new SlottedHistogram(BATCH_SIZE_BUCKETS, 2);
  batches.record(0, 1);
  batches.record(0, 100);
  const rtt = new PeerHistograms(ROUND_TRIP_BUCKETS_SECONDS, 8);
  rtt.observe('n2', 0.0015);
  return {
    nodeId: 'n1',
    clusterName: 'c',
    version: '0.1.0',
    requests,
    routerCounters: () => ({ coordinatedWrites: 0, coordinatedReads: 0, coordinatedScans: 0, replicaWrites: 4, replicaReads: 5, readRepairs: 1, unavailable: 0, timeouts: 0, hintedWrites: 2 }),
    shardCount: 2,
    shardQueueDepth: (i) => i * 3,
    shardStats: async () => [0, 1].map((shard) => ({ shard, keys: 10 + shard, writes: 7, reads: 8, batches: 3, queue: 0, merkleRanges: 4, merkleReady: 4, merkleRebuilds: 1, tombstonesPurged: 0 })),
    shardBatches: batches,
    rocksProperty: (name) => (name === 'rocksdb.num-running-compactions' ? '1' : '0'),
    rocksDir: dir,
    hints: () => ({ stored: 3, refused: 0, replayed: 2, replayFailures: 0, expired: 0, pending: { n3: 1 }, replay: {} }),
    hintsReplayedByTarget: () => new Map([['n3', 2]]),
    repair: () => ({
      running: true,
      startedAt: 1,
      pairsTotal: 10,
      pairsDone: 4,
      sessions: 1,
      failedSessions: 0,
      last: null,
      totals: { keysSent: 1, keysReceived: 2, bytesSent: 3, bytesReceived: 4, rangesDiffered: 1 },
    }),
    streaming: () => [{ id: 'join-n4', operation: 'join', peer: 'n4', direction: 'out', bytesDone: 10, bytesTotal: 100, rangesDone: 1, rangesTotal: 4 }],
    members: () => [
      { id: 'n1', up: true, phi: 0, owned: 0.5 },
      { id: 'n2', up: false, phi: 9.5, owned: 0.5 },
    ],
    ring: () => ({ digest: 'abc', tokens: 32, nodes: 2 }),
    gossipRounds: () => 12,
    gossipRoundTrips: rtt,
    transport: () => ({ peers: [{ address: '127.0.0.1:2', id: 'n2', connected: true, queued: 1, inFlight: 2, queuedBytes: 300 }], framesIn: 5, framesOut: 6, authFailures: 0, badFrames: 0 }),
    ipc: () => ({ connections: 1, inFlight: 0, maxInFlightSeen: 3, requests: 9, badFrames: 0, pauses: 0, pausedConnections: 0 }),
  };
}

/** Run `n` requests of `op` through the observer, `failures` of them answered with `code`. */
async function requestsThrough(m: RequestMetrics, op: 'read' | 'write', n: number, failures = 0, code: RingkvError['code'] = 'timeout'): Promise<void> {
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve) => {
      const done = m.wrap(op, op === 'write' ? { w: 2 } : {}, () => resolve());
      setImmediate(() => done(i < failures ? new RingkvError(code, 'x') : null, {}));
    });
  }
}

describe('metric naming', () => {
  it('accepts names that follow the Prometheus conventions', () => {
    expect(metricNameProblems('ringkv_requests_total', 'counter', ['op'])).toEqual([]);
    expect(metricNameProblems('ringkv_request_duration_seconds', 'histogram', ['op', 'consistency'])).toEqual([]);
    expect(metricNameProblems('ringkv_peer_queue_bytes', 'gauge', ['peer'])).toEqual([]);
  });

  it.each([
    ['requests_total', 'counter', 'must start with ringkv_'],
    ['ringkv_requests', 'counter', 'must end in _total'],
    ['ringkv_queue_total', 'gauge', 'only counters end in _total'],
    ['ringkv_latency_ms', 'histogram', 'base units'],
    ['ringkv_request_latency', 'histogram', 'say the unit'],
    ['ringkv_memtable_mb', 'gauge', 'base units'],
    ['ringkv_Requests_total', 'counter', 'lowercase'],
    ['ringkv_rtt_count', 'gauge', 'suffix Prometheus adds'],
    ['ringkv_x-y', 'gauge', 'not a valid Prometheus metric name'],
  ] as const)('rejects %s (%s)', (name, kind, why) => {
    expect(metricNameProblems(name, kind).join('; ')).toContain(why);
  });

  it('rejects bad label names', () => {
    expect(metricNameProblems('ringkv_x_seconds', 'histogram', ['le']).join()).toContain('reserved');
    expect(metricNameProblems('ringkv_x', 'gauge', ['__x']).join()).toContain('reserved');
    expect(metricNameProblems('ringkv_x', 'gauge', ['a-b']).join()).toContain('not a valid label name');
  });

  it('refuses to register a badly named metric (the node would not start)', () => {
    // Every family of the node registry is created through this check.
    expect(() => checked('counter', 'ringkv_requests', ['op'])).toThrow(/must end in _total/);
    expect(() => checked('gauge', 'ringkv_queue_bytes', ['peer'])).not.toThrow();
  });
});

describe('the node registry', () => {
  it('registers only conventional names, default process metrics included', async () => {
    const reg = createNodeRegistry(sources());
    const all = await reg.registry.getMetricsAsJSON();
    const problems = all.flatMap((m) => metricNameProblems(m.name, String(m.type) as 'gauge', []));
    expect(problems).toEqual([]);
    const names = all.map((m) => m.name);
    expect(names).toContain('ringkv_nodejs_eventloop_lag_seconds');
    expect(names).toContain('ringkv_nodejs_gc_duration_seconds');
    expect(names).toContain('ringkv_process_cpu_seconds_total');
  });

  it('writes an exposition that parses, with the values of its sources', async () => {
    const requests = new RequestMetrics();
    await requestsThrough(requests, 'write', 5, 2, 'unavailable');
    await requestsThrough(requests, 'read', 3);
    writeFileSync(path.join(dir, '000001.sst'), Buffer.alloc(1000));
    writeFileSync(path.join(dir, '000002.log'), Buffer.alloc(10));
    const { contentType, body } = await createNodeRegistry(sources(requests)).scrape();
    expect(contentType).toContain('text/plain; version=0.0.4');
    const fams = parseExposition(body);
    expect(sampleValue(fams, 'ringkv_requests_total', { op: 'write', consistency: 'w=2' })).toBe(5);
    expect(sampleValue(fams, 'ringkv_requests_total', { op: 'read', consistency: 'QUORUM' })).toBe(3);
    expect(sampleValue(fams, 'ringkv_request_duration_seconds', { op: 'write', consistency: 'w=2' })).toBe(5);
    expect(sampleValue(fams, 'ringkv_request_errors_total', { op: 'write', code: 'unavailable' })).toBe(2);
    expect(sampleValue(fams, 'ringkv_request_errors_total', { op: 'read' })).toBe(0);
    expect(sampleValue(fams, 'ringkv_shard_queue_ops', { shard: '1' })).toBe(3);
    expect(sampleValue(fams, 'ringkv_shard_keys', { shard: '1' })).toBe(11);
    expect(sampleValue(fams, 'ringkv_shard_batch_ops', { shard: '0' })).toBe(2);
    expect(sampleValue(fams, 'ringkv_rocksdb_running_compactions')).toBe(1);
    expect(sampleValue(fams, 'ringkv_rocksdb_sst_files_bytes')).toBe(1000);
    expect(sampleValue(fams, 'ringkv_rocksdb_wal_files_bytes')).toBe(10);
    expect(sampleValue(fams, 'ringkv_hints_pending', { target: 'n3' })).toBe(1);
    expect(sampleValue(fams, 'ringkv_hints_replayed_total', { target: 'n3' })).toBe(2);
    expect(sampleValue(fams, 'ringkv_repair_session_ranges_done')).toBe(4);
    expect(sampleValue(fams, 'ringkv_streaming_transferred_bytes', { peer: 'n4', direction: 'out' })).toBe(10);
    expect(sampleValue(fams, 'ringkv_gossip_phi', { peer: 'n2' })).toBe(9.5);
    expect(fams.find((f) => f.name === 'ringkv_gossip_phi')!.samples.map((m) => m.labels['peer'])).toEqual(['n2']);
    expect(sampleValue(fams, 'ringkv_gossip_round_trip_seconds', { peer: 'n2' })).toBe(1);
    expect(sampleValue(fams, 'ringkv_peer_queue_bytes', { peer: 'n2' })).toBe(300);
    expect(sampleValue(fams, 'ringkv_member_up', { peer: 'n2' })).toBe(0);
    expect(sampleValue(fams, 'ringkv_ipc_connections')).toBe(1);
  });

  it('asks the shards for their stats once per scrape, and anew at the next', async () => {
    const src = sources();
    let calls = 0;
    const stats = src.shardStats;
    src.shardStats = () => {
      calls++;
      return stats();
    };
    const reg = createNodeRegistry(src, { defaultMetrics: false });
    await reg.scrape();
    expect(calls).toBe(1);
    await reg.scrape();
    expect(calls).toBe(2);
  });

  it('counts a request once it is answered, with its latency in the right bucket', async () => {
    const m = new RequestMetrics();
    const done = m.wrap('scan', { level: 'ONE' }, () => undefined);
    expect(m.inFlight).toBe(1);
    expect(m.slotsInUse()).toEqual([]);
    await new Promise((r) => setTimeout(r, 5));
    done(null, undefined);
    expect(m.inFlight).toBe(0);
    const [slot] = m.slotsInUse();
    expect(slot).toMatchObject({ op: 'scan', consistency: 'ONE' });
    const row = m.latency.row(slot!.slot);
    // At least 5 ms: nothing below the 0.005 s bucket, and the +Inf bucket holds the one request.
    const le5ms = m.latency.bounds.indexOf(0.002);
    expect(row.cumulative[le5ms]).toBe(0);
    expect(row.cumulative[row.cumulative.length - 1]).toBe(1);
    expect(row.sum).toBeGreaterThanOrEqual(0.004);
  });
});

describe('rocksFileBytes', () => {
  it('adds SST and WAL files and ignores the rest', async () => {
    const d = mkdtempSync(path.join(tmpdir(), 'ringkv-files-'));
    try {
      writeFileSync(path.join(d, '1.sst'), Buffer.alloc(7));
      writeFileSync(path.join(d, '2.sst'), Buffer.alloc(3));
      writeFileSync(path.join(d, '3.log'), Buffer.alloc(5));
      writeFileSync(path.join(d, 'LOG'), Buffer.alloc(50));
      writeFileSync(path.join(d, 'MANIFEST-000001'), Buffer.alloc(50));
      expect(await rocksFileBytes(d)).toEqual({ sst: 10, wal: 5 });
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
