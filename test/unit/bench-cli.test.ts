/**
 * `ringkv bench` end to end through the compiled CLI (`npm test` runs tsc first): flag
 * validation (exit 2), the --target-iops verdict (exit 1 / 0), the JSON report, and one run
 * against a real node over its IPC socket with the RocksDB baseline beside it. The plumbing
 * tests use `--target rocksdb` (the baseline alone, in a temp dir) so they need no node.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BenchUsageError, parseBenchOptions } from '../../src/cli/bench.js';
import { ROOT, removeDir, runCli, startNodeProc, tempDir, type NodeProc } from '../helpers/proc.js';

// Small and bounded: a few thousand ops finish in well under a second on a busy 2-core box.
const ROCKS = ['bench', '--target', 'rocksdb', '--records', '500', '--operations', '1000', '--concurrency', '4', '--no-progress'];

let dir: string;
beforeAll(() => {
  if (!existsSync(path.join(ROOT, 'dist', 'src', 'cli', 'bench.js'))) {
    throw new Error('dist/src/cli/bench.js is missing: run `npx tsc -p tsconfig.json` (npm test does) first');
  }
  dir = tempDir('ringkv-bench-cli-');
});
afterAll(() => {
  if (dir) removeDir(dir);
});

function readJson(file: string): Record<string, unknown> {
  return JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
}

describe('ringkv bench: flag validation', () => {
  it.each([
    [['--rate', '100', '--concurrency', '4'], /either --rate .* or --concurrency/],
    [['--workload', 'z'], /--workload must be one of ingest, a, b, c, d, e, f/],
    [['--records', 'many'], /--records must be a number/],
    [['--socket', 's.sock', '--http', 'http://127.0.0.1:1'], /only one of --socket, --hosts, --http/],
    [['--target-iops', '-5'], /--target-iops must be a number/],
    [['--no-such-flag'], /unknown option/],
  ])('exits 2 with a message for %j', async (args, message) => {
    const r = await runCli(['bench', ...args], { timeoutMs: 30_000 });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe('');
  });

  it('rejects inconsistent combinations before touching anything', () => {
    const bad: Array<[Record<string, unknown>, RegExp]> = [
      [{ workload: 'a', records: '0' }, /--records must be ≥ 1/],
      [{ consistency: 'quorum', w: '2' }, /either --consistency or --w\/--r/],
      [{ consistency: 'any', workload: 'c' }, /ANY is for writes only/],
      [{ w: '6' }, /--w must be an integer between 1 and 5/],
      [{ target: 'rocksdb', hosts: '127.0.0.1:7001' }, /--hosts applies to --target ringkv only/],
      [{ target: 'rocksdb', skipLoad: true }, /--skip-load applies to --target ringkv only/],
      [{ baseline: 'leveldb' }, /--baseline must be rocksdb/],
      [{ hosts: 'nohostport' }, /--hosts must be HOST:PORT/],
      [{ table: 'no spaces' }, /--table: table name must match/],
      [{ maxErrorRate: '0.1' }, /--max-error-rate needs --target-iops/],
      [{ maxInFlight: '100' }, /--max-in-flight applies to open-loop runs/],
      [{ duration: '0' }, /--duration must be a number > 0/],
    ];
    for (const [raw, msg] of bad) {
      expect(() => parseBenchOptions(raw), JSON.stringify(raw)).toThrow(BenchUsageError);
      expect(() => parseBenchOptions(raw), JSON.stringify(raw)).toThrow(msg);
    }
  });

  it('--workload counter | set: defaults of their own, and flags that do not apply are refused by name', () => {
    expect(parseBenchOptions({ workload: 'counter' })).toMatchObject({ crdt: 'counter', records: 1000, operations: 20_000, concurrency: 16 });
    expect(parseBenchOptions({ workload: 'SET', records: '50', operations: '2k', w: '2' })).toMatchObject({ crdt: 'set', records: 50, operations: 2000, w: 2 });
    expect(() => parseBenchOptions({ workload: 'counter', rate: '100' })).toThrow(/--rate does not apply to --workload counter/);
    expect(() => parseBenchOptions({ workload: 'set', http: 'http://127.0.0.1:1', baseline: 'rocksdb' })).toThrow(/--http, --baseline do not apply to --workload set/);
    expect(() => parseBenchOptions({ workload: 'counter', target: 'rocksdb' })).toThrow(/--target rocksdb does not apply/);
  });

  it('accepts workload e against ringkv (range scans in token order)', () => {
    expect(parseBenchOptions({ workload: 'e' })).toMatchObject({ target: 'ringkv', workload: 'E' });
    expect(parseBenchOptions({ workload: 'e', http: 'http://127.0.0.1:1' })).toMatchObject({ workload: 'E', connection: { kind: 'http' } });
  });

  it('fills defaults and accepts 10k / 1e3 style numbers', () => {
    const c = parseBenchOptions({ workload: 'ingest', operations: '10k', rate: '1e3', batch: '100' });
    expect(c).toMatchObject({ target: 'ringkv', workload: 'ingest', records: 0, operations: 10_000, rate: 1000, batch: 100, valueSize: 100, table: 'bench' });
    expect(c.concurrency).toBeUndefined();
    expect(c.connection).toEqual({ kind: 'socket', socket: './data/ringkv.sock' });
    const d = parseBenchOptions({ hosts: '127.0.0.1:7001,127.0.0.1:7002' }, { RINGKV_SECRET: 's3' });
    expect(d).toMatchObject({ workload: 'A', records: 10_000, durationSec: 10, concurrency: 16 });
    expect(d.connection).toEqual({ kind: 'hosts', hosts: ['127.0.0.1:7001', '127.0.0.1:7002'], secret: 's3' });
  });
});

describe('ringkv bench --target rocksdb (CLI plumbing without a node)', () => {
  it('an impossible --target-iops exits 1 and says why', async () => {
    const r = await runCli([...ROCKS, '--target-iops', '1e12'], { timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/FAIL: ≥ 1,000,000,000,000 ops\/s/);
    expect(r.stdout).toMatch(/throughput [\d,.]+ ops\/s < target 1,000,000,000,000 ops\/s/);
  });

  it('a trivial target passes with exit 0 and writes the JSON report', async () => {
    const json = path.join(dir, 'pass.json');
    // Open loop at a rate any machine sustains, so the p99 bound is meaningful too.
    const args = ['bench', '--target', 'rocksdb', '--workload', 'b', '--records', '500', '--operations', '300', '--rate', '1000', '--no-progress'];
    const r = await runCli([...args, '--target-iops', '10', '--p99-ms', '5000', '--json', json], { timeoutMs: 60_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/PASS: ≥ 10 ops\/s, p99 ≤ 5000 ms/);
    expect(r.stdout).toMatch(/RUN PHASE/);
    const j = readJson(json);
    expect(j).toMatchObject({ target: 'rocksdb', workload: 'B', mode: 'open', targetRate: 1000, operations: 300, errors: 0 });
    expect(j['throughput']).toBeGreaterThan(0);
    const lat = j['latencyMs'] as Record<string, number>;
    for (const p of ['p50', 'p90', 'p99', 'p999', 'max']) expect(typeof lat[p], p).toBe('number');
    expect(lat['p50']).toBeLessThanOrEqual(lat['p99']!);
    expect(j['verdict']).toMatchObject({ pass: true, reasons: [], targets: { targetIops: 10, p99Ms: 5000 } });
    expect(j['load']).toMatchObject({ workload: 'load', operations: 500, errors: 0 });
    expect(j['config']).toMatchObject({ records: 500, valueSize: 100, seed: 1 });
  });

  it('--warmup runs the workload first and leaves it out of the report', async () => {
    const json = path.join(dir, 'warm.json');
    const args = ['bench', '--target', 'rocksdb', '--workload', 'd', '--records', '500', '--operations', '300', '--rate', '1000', '--warmup', '0.4', '--no-progress', '--json', json];
    const r = await runCli(args, { timeoutMs: 60_000 });
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const m = /warm-up rocksdb \(discarded\): ([\d.]+) s, ([\d,]+) ops\/s/.exec(r.stderr);
    expect(m, r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThanOrEqual(0.3);
    const j = readJson(json);
    // Only the measured run's ops are in the report.
    expect(j).toMatchObject({ workload: 'D', operations: 300, errors: 0 });
    expect(j['config']).toMatchObject({ warmupSec: 0.4 });
    expect(() => parseBenchOptions({ warmup: '-1' })).toThrow(/--warmup must be a number/);
  });
});

describe('ringkv bench against a real node', () => {
  let node: NodeProc | undefined;
  let dataDir: string;

  beforeAll(async () => {
    dataDir = tempDir();
    node = await startNodeProc({ dataDir });
  });
  afterAll(async () => {
    await node?.kill();
    if (dataDir) removeDir(dataDir);
  });

  it('--workload set: CRDT updates beside as many LWW writes, with the ratio and the state sizes per segment', async () => {
    const json = path.join(dir, 'crdt.json');
    const r = await runCli(['bench', '--socket', path.join(dataDir, 'ringkv.sock'), '--workload', 'set', '--records', '50', '--operations', '1000', '--concurrency', '4', '--no-progress', '--json', json], {
      timeoutMs: 90_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/ratio \(crdt set\/lww writes\)/);
    expect(r.stdout).toMatch(/growth per 1,000 operations/);
    const j = readJson(json);
    expect(j).toMatchObject({ target: 'crdt set', operations: 1000, errors: 0, baseline: { target: 'lww writes', errors: 0 } });
    expect((j['baseline'] as Record<string, number>)['throughput']).toBeGreaterThan(0);
    expect((j['ratio'] as Record<string, number>)['throughput']).toBeGreaterThan(0);
    const sizes = (j['crdt'] as { sizes: Array<{ operations: number; keys: number; totalBytes: number; maxKeyBytes: number }> }).sizes;
    expect(sizes.map((s) => s.operations)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(sizes[0]).toMatchObject({ keys: 0, totalBytes: 0 });
    const last = sizes[sizes.length - 1]!;
    expect(last.keys).toBeGreaterThan(0);
    expect(last.keys).toBeLessThanOrEqual(50);
    // A set of at most 100 elements of a few bytes each: every key's state stays small.
    expect(last.maxKeyBytes).toBeLessThan(2000);
  });

  it('runs YCSB A over the IPC socket with the RocksDB baseline beside it', async () => {
    const json = path.join(dir, 'node.json');
    const r = await runCli(
      [
        'bench',
        '--socket',
        path.join(dataDir, 'ringkv.sock'),
        '--workload',
        'a',
        '--records',
        '1000',
        '--operations',
        '2000',
        '--concurrency',
        '8',
        '--baseline',
        'rocksdb',
        '--json',
        json,
      ],
      { timeoutMs: 90_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    // Progress and phase summaries go to stderr, the report to stdout.
    expect(r.stderr).toMatch(/run ringkv: [\d,]+ ops\/s/);
    expect(r.stdout).toMatch(/ratio \(ringkv\/rocksdb\)/);
    const j = readJson(json);
    expect(j).toMatchObject({ target: 'ringkv', workload: 'A', mode: 'closed', concurrency: 8, operations: 2000, errors: 0 });
    expect(j['throughput']).toBeGreaterThan(0);
    expect((j['latencyMs'] as Record<string, number>)['p99']).toBeGreaterThan(0);
    expect((j['load'] as Record<string, unknown>)['errors']).toBe(0);
    const base = j['baseline'] as Record<string, unknown>;
    expect(base['target']).toBe('rocksdb');
    expect(base['throughput']).toBeGreaterThan(0);
    expect((j['ratio'] as Record<string, unknown>)['throughput']).toBeGreaterThan(0);
  });
});
