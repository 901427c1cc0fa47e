import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTsBenchOptions, formatTsReport, tsPhases } from '../../src/cli/bench-ts.js';
import { BenchUsageError } from '../../src/cli/bench-common.js';
import { openRocksTs, type TsTarget } from '../../src/bench/ts-targets.js';
import { removeDir, tempDir } from '../helpers/proc.js';

describe('ringkv bench --workload ts', () => {
  it('parses its flags, with defaults, and refuses what does not apply', () => {
    const cfg = parseTsBenchOptions({ workload: 'ts', socket: '/tmp/x.sock', baseline: 'rocksdb' }, {});
    expect(cfg).toMatchObject({ target: 'ringkv', records: 100_000, users: 100, durationSec: 10, concurrency: 16, rangeReads: 2000, baseline: true, connection: { socket: '/tmp/x.sock' } });
    expect(() => parseTsBenchOptions({ workload: 'ts', records: '500', users: '10' }, {})).toThrow(BenchUsageError);
    expect(() => parseTsBenchOptions({ workload: 'ts', batch: '4' }, {})).toThrow(/--batch does not apply/);
    expect(() => parseTsBenchOptions({ workload: 'ts', table: 'bad-name' }, {})).toThrow(/--table/);
  });

  describe('phases against the RocksDB target (the same seeks ringkv is measured with)', () => {
    let dir: string;
    let t: TsTarget;
    beforeAll(async () => {
      dir = tempDir('ringkv-bench-ts-');
      t = await openRocksTs(dir);
    });
    afterAll(async () => {
      await t?.close();
      if (dir) removeDir(dir);
    });

    it('loads every row, reads the latest rows newest first, and reads exactly 100 rows per range', async () => {
      const cfg = { ...parseTsBenchOptions({ workload: 'ts', target: 'rocksdb', records: '2000', users: '10', duration: '0.3', rangeReads: '50', concurrency: '4' }, {}) };
      const res = await tsPhases(t, cfg, { out: () => undefined, err: () => undefined, tty: false });
      expect(res.load).toMatchObject({ rows: 2000, errors: 0 });
      expect(res.run.errors).toBe(0);
      expect(res.run.inserts + res.run.reads).toBeGreaterThan(0);
      expect(res.range).toMatchObject({ reads: 50, rowsPerRead: 100, errors: 0 });
      expect(await t.latest('user3', 5)).toBe(5);
      expect(await t.range('user3', Date.UTC(2024, 0, 1), Date.UTC(2024, 0, 1) + 1000 * 100)).toBe(100);
      const report = formatTsReport(res, res, ['ringkv', 'rocksdb']);
      expect(report).toMatch(/ratio 1\.00/);
      expect(report).toMatch(/RANGE \(100-row clustering range reads/);
    });
  });
});
